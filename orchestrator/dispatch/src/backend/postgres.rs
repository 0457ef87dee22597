//! The PostgreSQL backend: replicas share the queue; row locks keep them apart.
//!
//! Every operation locks the rows it changes (`FOR UPDATE`), loads them into a one-item
//! [`Dispatcher`] so the same rules apply as in the embedded backend, and writes them back; the
//! `CHECK` constraint on `dispatch_agents` makes over-capacity impossible even for a buggy
//! replica. Lock order is always item → person, except in assignment, which takes a free person
//! and then an item both with `SKIP LOCKED` and so never waits: no deadlocks.
//!
//! Assignment is person-first: the free person offered work least recently is locked, then the
//! best queued item they may serve at its current workflow step. Because the item query orders by
//! the dispatcher's queue key, every person takes VIP and urgent work of their skills before
//! regular work; an item a concurrent replica has locked is already being offered.
//!
//! Per-item timers (workflow steps, SLA reminders and breaches, starvation promotion) run in
//! `tick` on the items whose `next_timer_at` has come. Not yet here: the breach *prediction*,
//! which needs the whole queue's order and the service rate (embedded backend only).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fenliu_agent::{Language, Route};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, Postgres, Row, Transaction};

use super::{Clock, DispatchBackend, micros};
use crate::dispatcher::{Dispatcher, WaitEstimate};
use crate::error::{DispatchError, DispatchResult, backend};
use crate::event::{Event, EventKind};
use crate::model::{
    AgentId, AgentStatus, HumanAgent, ItemId, ItemState, Medium, NewWorkItem, Outcome,
    PRIMARY_LEVEL, WorkItem,
};
use crate::policy::{Policy, QueueKey};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel events are announced on.
pub const NOTIFY_CHANNEL: &str = "fenliu_dispatch";

/// Connections per replica.
const MAX_CONNECTIONS: u32 = 8;

/// People locked and filled per assignment transaction: commits (an fsync each) and round trips
/// are what PostgreSQL throughput is bound by.
const AGENT_BATCH: i64 = 128;

/// Candidate queries per assignment transaction (a further pass only when two people of the
/// batch were sent the same item).
const MAX_PASSES: usize = 4;

/// Items inserted per statement by `enqueue_many`.
const ENQUEUE_BATCH: usize = 2_000;

/// Items whose timers run per transaction.
const TIMER_BATCH: i64 = 256;

/// How long connecting waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Tx = Transaction<'static, Postgres>;

/// The dispatcher's state in PostgreSQL, shared by replicas. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
    policy: Arc<Policy>,
    clock: Arc<dyn Clock>,
}

impl PostgresBackend {
    /// Connects to a `postgres:` URL and brings the schema up to date.
    pub async fn connect(url: &str, policy: Policy, clock: Arc<dyn Clock>) -> DispatchResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(backend("parse the URL"))?;
        Self::connect_with(options, policy, clock).await
    }

    /// Connects with explicit options (e.g. a `search_path`) and brings the schema up to date.
    pub async fn connect_with(
        options: PgConnectOptions,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> DispatchResult<Self> {
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| DispatchError::Backend {
                op: "connect",
                source: sqlx::Error::PoolTimedOut,
            })?
            .map_err(backend("connect"))?;
        // sqlx takes an advisory lock while migrating: replicas starting together are safe.
        let migrated = MIGRATOR.run(&mut conn).await;
        let _ = conn.close().await;
        migrated?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool, policy: Arc::new(policy), clock })
    }

    /// The pool, for maintenance and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Listens to the events every replica announces.
    pub async fn listen(&self) -> DispatchResult<EventListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(backend("listen"))?;
        listener.listen(NOTIFY_CHANNEL).await.map_err(backend("listen"))?;
        Ok(EventListener(listener))
    }

    async fn begin(&self) -> DispatchResult<Tx> {
        self.pool.begin().await.map_err(backend("begin"))
    }

    fn now(&self) -> DateTime<Utc> {
        micros(self.clock.now())
    }

    /// Locks an item and its holder (or `agent`), runs `f` on a dispatcher holding just them,
    /// writes back what changed.
    async fn with_item(
        &self,
        item: &ItemId,
        agent: &AgentId,
        f: impl FnOnce(&mut Dispatcher, DateTime<Utc>) -> DispatchResult<Vec<Event>>,
    ) -> DispatchResult<Vec<Event>> {
        let mut tx = self.begin().await?;
        let it = lock_item(&mut tx, item)
            .await?
            .ok_or_else(|| DispatchError::UnknownItem { item: item.clone() })?;
        let a = lock_agent(&mut tx, agent)
            .await?
            .ok_or_else(|| DispatchError::UnknownAgent { agent: agent.clone() })?;
        let now = self.now();
        let mut d = Dispatcher::restore((*self.policy).clone(), [a], [it]);
        let events = f(&mut d, now)?;
        save_changes(&mut tx, &self.policy, &mut d).await?;
        log(&mut tx, &events).await?;
        tx.commit().await.map_err(backend("commit"))?;
        Ok(events)
    }

    /// Offers as much work as the free people can take. Returns the offers made.
    ///
    /// Set-based, a few round trips per [`AGENT_BATCH`] people whatever the number of offers:
    /// 1. lock free people (`SKIP LOCKED`);
    /// 2. one `LATERAL` query reads, for every (person, medium with free slots, skill group with
    ///    queued work the person may serve at its workflow step), the best items of the group —
    ///    an index seek on the group's queue order, as many rows as the person has free slots;
    /// 3. in memory, each person takes their best ones across groups, none taken twice;
    /// 4. exactly the items taken are locked (`SKIP LOCKED`, re-checking they are still queued);
    ///    an item a concurrent replica holds is left out and the person asks again;
    /// 5. offers, loads and events are written with one `UPDATE … FROM UNNEST` each.
    ///
    /// Only items that are then offered are ever locked, so an item a concurrent replica skips is
    /// being offered: VIP and urgent work of a skill goes before regular work of that skill,
    /// across replicas.
    async fn assign(&self, now: DateTime<Utc>) -> DispatchResult<Vec<Event>> {
        let groups = self.queued_groups().await?;
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let steps = self.policy.steps();
        let step_since: Vec<DateTime<Utc>> =
            steps.iter().map(|s| now - Policy::secs(s.after_seconds)).collect();
        let mut events = Vec::new();
        let mut tried: Vec<String> = Vec::new();
        // Items a concurrent replica held when we tried them: not asked for again this tick.
        let mut held_elsewhere: Vec<String> = Vec::new();
        let expires_at = now + Policy::secs(self.policy.offer_timeout_seconds);
        loop {
            let mut tx = self.begin().await?;
            let rows: Vec<(Json<HumanAgent>,)> = sqlx::query_as(
                "SELECT data FROM dispatch_agents
                 WHERE status = 'online'
                   AND (load_chat < cap_chat OR load_call < cap_call OR load_email < cap_email)
                   AND NOT (id = ANY($1))
                 ORDER BY last_offered_at NULLS FIRST, id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED",
            )
            .bind(&tried)
            .bind(AGENT_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend("pick free people"))?;
            if rows.is_empty() {
                break;
            }
            let mut people: Vec<HumanAgent> = rows.into_iter().map(|(Json(a),)| a).collect();
            tried.extend(people.iter().map(|a| a.id.0.clone()));
            let mut asks: Vec<(usize, Medium)> = Vec::new();
            for (who, a) in people.iter().enumerate() {
                asks.extend(Medium::ALL.into_iter().filter(|m| a.free(*m) > 0).map(|m| (who, m)));
            }
            let mut offered: Vec<Event> = Vec::new();
            let mut filled = vec![false; people.len()];
            for _ in 0..MAX_PASSES {
                let probes = self.probes(&people, &asks, &groups, &step_since);
                if probes.is_empty() {
                    break;
                }
                let candidates = read_candidates(&mut tx, &probes, &held_elsewhere).await?;
                // Per ask, best first, none taken twice.
                let mut per_ask: Vec<Vec<(QueueKey, String)>> = vec![Vec::new(); asks.len()];
                for (probe, key, id) in candidates {
                    if let Some(p) = probes.get(probe) {
                        per_ask[p.ask].push((key, id));
                    }
                }
                let mut taken: HashSet<String> = HashSet::new();
                let mut picks: Vec<(usize, String)> = Vec::new();
                let mut short = vec![false; asks.len()];
                for (n, list) in per_ask.iter_mut().enumerate() {
                    let (who, m) = asks[n];
                    list.sort();
                    let mut free = usize::from(people[who].free(m));
                    let mut dropped = false;
                    for (_, id) in list.iter() {
                        if free == 0 {
                            break;
                        }
                        if taken.insert(id.clone()) {
                            picks.push((n, id.clone()));
                            free -= 1;
                        } else {
                            dropped = true;
                        }
                    }
                    // A list cut short by items the batch took: there may be more to ask for.
                    short[n] = dropped;
                }
                if picks.is_empty() {
                    break;
                }
                let ids: Vec<String> = picks.iter().map(|(_, id)| id.clone()).collect();
                let mut locked = lock_queued(&mut tx, &ids).await?;
                let mut items: Vec<(WorkItem, usize)> = Vec::new();
                for (n, id) in picks {
                    let (who, m) = asks[n];
                    let Some(mut item) = locked.remove(&id) else {
                        held_elsewhere.push(id);
                        short[n] = true;
                        continue;
                    };
                    let person = &mut people[who];
                    if item.medium != m || person.free(m) == 0 {
                        // Changed since it was read (and now locked by us): leave it queued
                        // and ask again; it is the best the person can still get.
                        short[n] = true;
                        held_elsewhere.push(id);
                        continue;
                    }
                    item.state = ItemState::Offered { agent: person.id.clone(), expires_at };
                    person.load.add(m);
                    person.last_offered_at = Some(now);
                    filled[who] = true;
                    items.push((item, who));
                }
                if !items.is_empty() {
                    save_offers(&mut tx, &self.policy, &items).await?;
                }
                offered.extend(items.into_iter().map(|(item, who)| Event {
                    at: now,
                    kind: EventKind::Offered {
                        item: item.id,
                        agent: people[who].id.clone(),
                        expires_at,
                    },
                }));
                asks = asks
                    .iter()
                    .enumerate()
                    .filter(|&(n, &(who, m))| short[n] && people[who].free(m) > 0)
                    .map(|(_, &ask)| ask)
                    .collect();
                if asks.is_empty() {
                    break;
                }
            }
            let changed: Vec<&HumanAgent> =
                people.iter().zip(&filled).filter(|(_, f)| **f).map(|(a, _)| a).collect();
            save_loads(&mut tx, &changed).await?;
            log(&mut tx, &offered).await?;
            tx.commit().await.map_err(backend("commit offers"))?;
            events.extend(offered);
        }
        Ok(events)
    }

    /// For every ask (person, medium) the skill groups with queued work of that medium the person
    /// may serve, with the arrival time an item must have to be at a workflow step that lets
    /// them (the widest step open to them for that group).
    fn probes(
        &self,
        people: &[HumanAgent],
        asks: &[(usize, Medium)],
        groups: &[QueuedGroup],
        step_since: &[DateTime<Utc>],
    ) -> Vec<Probe> {
        let mut probes = Vec::new();
        for (n, &(who, m)) in asks.iter().enumerate() {
            let a = &people[who];
            for g in groups.iter().filter(|g| g.medium == m) {
                // Steps are ordered by waiting time: the earliest eligible step admits the most.
                let Some(since) = step_since
                    .iter()
                    .enumerate()
                    .filter(|(s, _)| self.policy.eligible_for(a, &g.route, g.language, *s))
                    .map(|(_, since)| *since)
                    .max()
                else {
                    continue;
                };
                if g.oldest > since {
                    continue;
                }
                probes.push(Probe {
                    ask: n,
                    agent: a.id.0.clone(),
                    route: g.route.as_str().to_owned(),
                    language: g.language.code(),
                    medium: m.as_str(),
                    since,
                    limit: i32::from(a.free(m)),
                });
            }
        }
        probes
    }

    /// The skill groups that have queued work, with their oldest arrival: what lets `assign`
    /// skip people who could match nothing without scanning the queue for them.
    async fn queued_groups(&self) -> DispatchResult<Vec<QueuedGroup>> {
        let rows: Vec<(String, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT route, language, medium, min(queued_since) FROM dispatch_items
             WHERE state = 'queued' GROUP BY route, language, medium",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend("read the queue's groups"))?;
        // A row a newer version wrote that this one cannot read is skipped here; assignment of
        // it waits for a replica that can.
        Ok(rows
            .into_iter()
            .filter_map(|(route, language, medium, oldest)| {
                Some(QueuedGroup {
                    route: Route::new(route).ok()?,
                    language: serde_json::from_value(serde_json::Value::String(language)).ok()?,
                    medium: Medium::parse(&medium)?,
                    oldest,
                })
            })
            .collect())
    }
}

/// One skill group to read for one ask.
#[derive(Debug)]
struct Probe {
    ask: usize,
    agent: String,
    route: String,
    language: &'static str,
    medium: &'static str,
    since: DateTime<Utc>,
    limit: i32,
}

/// The best queued items of each probe's group (index seek per probe, no locks): (probe index,
/// queue key, item id).
async fn read_candidates(
    tx: &mut Tx,
    probes: &[Probe],
    exclude: &[String],
) -> DispatchResult<Vec<(usize, QueueKey, String)>> {
    let mut n = Vec::with_capacity(probes.len());
    let mut agent = Vec::with_capacity(probes.len());
    let mut route = Vec::with_capacity(probes.len());
    let mut language = Vec::with_capacity(probes.len());
    let mut medium = Vec::with_capacity(probes.len());
    let mut since = Vec::with_capacity(probes.len());
    let mut limit = Vec::with_capacity(probes.len());
    for (i, p) in probes.iter().enumerate() {
        n.push(i32::try_from(i).unwrap_or(i32::MAX));
        agent.push(p.agent.as_str());
        route.push(p.route.as_str());
        language.push(p.language);
        medium.push(p.medium);
        since.push(p.since);
        limit.push(p.limit);
    }
    let rows: Vec<(i32, i16, i64, i64, String)> = sqlx::query_as(
        "SELECT p.n, i.class, i.key, i.seq, i.id
         FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::int4[])
              AS p (n, agent, route, language, medium, since, lim)
         CROSS JOIN LATERAL (
             SELECT class, key, seq, id FROM dispatch_items
             WHERE state = 'queued' AND route = p.route AND language = p.language
               AND medium = p.medium AND queued_since <= p.since
               AND NOT (p.agent = ANY(declined)) AND NOT (id = ANY($8))
             ORDER BY class DESC, key DESC, seq
             LIMIT p.lim) i",
    )
    .bind(n)
    .bind(agent)
    .bind(route)
    .bind(language)
    .bind(medium)
    .bind(since)
    .bind(limit)
    .bind(exclude)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend("read candidates"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(n, class, key, seq, id)| {
            let key =
                QueueKey { class: u8::try_from(class).ok()?, key, seq: u64::try_from(seq).ok()? };
            Some((usize::try_from(n).ok()?, key, id))
        })
        .collect())
}

/// Locks those of `ids` that are still queued and not held by a concurrent transaction.
async fn lock_queued(
    tx: &mut Tx,
    ids: &[String],
) -> DispatchResult<std::collections::HashMap<String, WorkItem>> {
    let rows: Vec<(Json<WorkItem>,)> = sqlx::query_as(
        "SELECT data FROM dispatch_items WHERE id = ANY($1) AND state = 'queued'
         FOR UPDATE SKIP LOCKED",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend("lock items"))?;
    Ok(rows.into_iter().map(|(Json(i),)| (i.id.0.clone(), i)).collect())
}

/// A skill group with queued work.
#[derive(Debug)]
struct QueuedGroup {
    route: Route,
    language: Language,
    medium: Medium,
    oldest: DateTime<Utc>,
}

/// Events announced by all replicas (`LISTEN fenliu_dispatch`).
///
/// It holds one connection of the backend's pool: drop it before [`PostgresBackend::close`],
/// which waits for every connection to come back.
#[derive(Debug)]
pub struct EventListener(PgListener);

impl EventListener {
    /// The next event.
    pub async fn recv(&mut self) -> DispatchResult<Event> {
        let n = self.0.recv().await.map_err(backend("receive a notification"))?;
        serde_json::from_str(n.payload()).map_err(|e| DispatchError::Corrupt {
            what: "notification",
            id: NOTIFY_CHANNEL.into(),
            reason: e.to_string(),
        })
    }
}

async fn lock_item(tx: &mut Tx, id: &ItemId) -> DispatchResult<Option<WorkItem>> {
    let row: Option<(Json<WorkItem>,)> = sqlx::query_as(
        "SELECT data FROM dispatch_items
         WHERE id = $1 AND state IN ('queued', 'offered', 'assigned') FOR UPDATE",
    )
    .bind(&id.0)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend("lock item"))?;
    Ok(row.map(|(Json(i),)| i))
}

async fn lock_agent(tx: &mut Tx, id: &AgentId) -> DispatchResult<Option<HumanAgent>> {
    let row: Option<(Json<HumanAgent>,)> =
        sqlx::query_as("SELECT data FROM dispatch_agents WHERE id = $1 FOR UPDATE")
            .bind(&id.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend("lock agent"))?;
    Ok(row.map(|(Json(a),)| a))
}

async fn save_changes(tx: &mut Tx, policy: &Policy, d: &mut Dispatcher) -> DispatchResult<()> {
    let changes = d.take_changes();
    for a in &changes.agents {
        save_agent(tx, a).await?;
    }
    match changes.items.as_slice() {
        [] => Ok(()),
        [one] => save_item(tx, policy, one).await,
        many => save_items(tx, policy, many).await,
    }
}

/// [`save_item`] for many items in one statement.
async fn save_items(tx: &mut Tx, policy: &Policy, items: &[WorkItem]) -> DispatchResult<()> {
    let n = items.len();
    let (mut id, mut state, mut class, mut key) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut route, mut language, mut medium, mut since) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut agent, mut expires, mut declined, mut data) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut offered, mut timer) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let corrupt = |i: &WorkItem, e: serde_json::Error| DispatchError::Corrupt {
        what: "item",
        id: i.id.0.clone(),
        reason: e.to_string(),
    };
    for i in items {
        let k = policy.queue_key(i);
        let (holder, expiry) = match &i.state {
            ItemState::Offered { agent, expires_at } => (Some(agent.0.clone()), Some(*expires_at)),
            ItemState::Assigned { agent, .. } | ItemState::Completed { agent, .. } => {
                (Some(agent.0.clone()), None)
            }
            _ => (None, None),
        };
        id.push(i.id.0.clone());
        state.push(i.state.name());
        class.push(i16::from(k.class));
        key.push(k.key);
        route.push(i.route.as_str().to_owned());
        language.push(i.language.code());
        medium.push(i.medium.as_str());
        since.push(i.queued_since);
        agent.push(holder);
        expires.push(expiry);
        let names: Vec<&str> = i.declined.iter().map(|a| a.0.as_str()).collect();
        declined.push(serde_json::to_string(&names).map_err(|e| corrupt(i, e))?);
        data.push(serde_json::to_string(i).map_err(|e| corrupt(i, e))?);
        offered.push(matches!(i.state, ItemState::Offered { .. }));
        timer.push(policy.next_timer(i));
    }
    sqlx::query(
        "UPDATE dispatch_items d SET state = u.state, class = u.class, key = u.key,
             route = u.route, language = u.language, medium = u.medium,
             queued_since = u.since, agent = u.agent, offer_expires_at = u.expires,
             declined = ARRAY(SELECT jsonb_array_elements_text(u.declined::jsonb)),
             data = u.data::jsonb,
             offer_seq = CASE WHEN u.offered THEN nextval('dispatch_offer_seq')
                              ELSE d.offer_seq END,
             next_timer_at = u.timer
         FROM UNNEST($1::text[], $2::text[], $3::int2[], $4::int8[], $5::text[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::text[], $10::timestamptz[],
                     $11::text[], $12::text[], $13::bool[], $14::timestamptz[])
              AS u (id, state, class, key, route, language, medium, since, agent, expires,
                    declined, data, offered, timer)
         WHERE d.id = u.id",
    )
    .bind(id)
    .bind(state)
    .bind(class)
    .bind(key)
    .bind(route)
    .bind(language)
    .bind(medium)
    .bind(since)
    .bind(agent)
    .bind(expires)
    .bind(declined)
    .bind(data)
    .bind(offered)
    .bind(timer)
    .execute(&mut **tx)
    .await
    .map_err(backend("save items"))?;
    Ok(())
}

async fn save_agent(tx: &mut Tx, a: &HumanAgent) -> DispatchResult<()> {
    let routes = |min: u8| -> Vec<String> {
        a.skills
            .routes
            .iter()
            .filter(|(_, l)| **l >= min)
            .map(|(r, _)| r.as_str().to_owned())
            .collect()
    };
    let languages: Vec<String> = a.skills.languages.keys().map(|l| l.code().to_owned()).collect();
    sqlx::query(
        "INSERT INTO dispatch_agents (id, status, overflow, routes_primary, routes_any, languages,
             cap_chat, cap_call, cap_email, load_chat, load_call, load_email, last_offered_at,
             wrap_up_until, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (id) DO UPDATE SET status = $2, overflow = $3, routes_primary = $4,
             routes_any = $5, languages = $6, cap_chat = $7, cap_call = $8, cap_email = $9,
             load_chat = $10, load_call = $11, load_email = $12, last_offered_at = $13,
             wrap_up_until = $14, data = $15",
    )
    .bind(&a.id.0)
    .bind(a.status.as_str())
    .bind(a.overflow)
    .bind(routes(PRIMARY_LEVEL))
    .bind(routes(1))
    .bind(languages)
    .bind(i32::from(a.capacity.chat))
    .bind(i32::from(a.capacity.call))
    .bind(i32::from(a.capacity.email))
    .bind(i32::from(a.load.of(Medium::Chat)))
    .bind(i32::from(a.load.of(Medium::Call)))
    .bind(i32::from(a.load.of(Medium::Email)))
    .bind(a.last_offered_at)
    .bind(a.wrap_up_until)
    .bind(Json(a))
    .execute(&mut **tx)
    .await
    .map_err(backend("save agent"))?;
    Ok(())
}

/// Writes an item; an offered item gets the next number of the global offer order.
async fn save_item(tx: &mut Tx, policy: &Policy, i: &WorkItem) -> DispatchResult<()> {
    let key = policy.queue_key(i);
    let (agent, expires) = match &i.state {
        ItemState::Offered { agent, expires_at } => (Some(agent.0.clone()), Some(*expires_at)),
        ItemState::Assigned { agent, .. } | ItemState::Completed { agent, .. } => {
            (Some(agent.0.clone()), None)
        }
        _ => (None, None),
    };
    let offered = matches!(i.state, ItemState::Offered { .. });
    let declined: Vec<String> = i.declined.iter().map(|a| a.0.clone()).collect();
    sqlx::query(
        "UPDATE dispatch_items SET state = $2, class = $3, key = $4, route = $5, language = $6,
             medium = $7, queued_since = $8, agent = $9, offer_expires_at = $10, declined = $11,
             data = $12,
             offer_seq = CASE WHEN $13 THEN nextval('dispatch_offer_seq') ELSE offer_seq END,
             next_timer_at = $14
         WHERE id = $1",
    )
    .bind(&i.id.0)
    .bind(i.state.name())
    .bind(i16::from(key.class))
    .bind(key.key)
    .bind(i.route.as_str())
    .bind(i.language.code())
    .bind(i.medium.as_str())
    .bind(i.queued_since)
    .bind(agent)
    .bind(expires)
    .bind(declined)
    .bind(Json(i))
    .bind(offered)
    .bind(policy.next_timer(i))
    .execute(&mut **tx)
    .await
    .map_err(backend("save item"))?;
    Ok(())
}

/// Writes a batch of new offers in one statement; each gets the next number of the global offer
/// order.
async fn save_offers(
    tx: &mut Tx,
    policy: &Policy,
    items: &[(WorkItem, usize)],
) -> DispatchResult<()> {
    let mut ids = Vec::with_capacity(items.len());
    let mut agents = Vec::with_capacity(items.len());
    let mut expires = Vec::with_capacity(items.len());
    let mut timers = Vec::with_capacity(items.len());
    let mut data = Vec::with_capacity(items.len());
    for (i, _) in items {
        let ItemState::Offered { agent, expires_at } = &i.state else {
            continue;
        };
        ids.push(i.id.0.clone());
        agents.push(agent.0.clone());
        expires.push(*expires_at);
        timers.push(policy.next_timer(i));
        data.push(serde_json::to_string(i).map_err(|e| DispatchError::Corrupt {
            what: "item",
            id: i.id.0.clone(),
            reason: e.to_string(),
        })?);
    }
    sqlx::query(
        "UPDATE dispatch_items d SET state = 'offered', agent = u.agent,
             offer_expires_at = u.expires, next_timer_at = u.timer, data = u.data::jsonb,
             offer_seq = nextval('dispatch_offer_seq')
         FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[])
              AS u (id, agent, expires, timer, data)
         WHERE d.id = u.id",
    )
    .bind(ids)
    .bind(agents)
    .bind(expires)
    .bind(timers)
    .bind(data)
    .execute(&mut **tx)
    .await
    .map_err(backend("save offers"))?;
    Ok(())
}

/// Writes the loads (and the whole record) of people who were just offered work, in one
/// statement.
async fn save_loads(tx: &mut Tx, people: &[&HumanAgent]) -> DispatchResult<()> {
    if people.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(people.len());
    let mut load = [Vec::new(), Vec::new(), Vec::new()];
    let mut last = Vec::with_capacity(people.len());
    let mut data = Vec::with_capacity(people.len());
    for a in people {
        ids.push(a.id.0.clone());
        for (l, m) in load.iter_mut().zip(Medium::ALL) {
            l.push(i32::from(a.load.of(m)));
        }
        last.push(a.last_offered_at);
        data.push(serde_json::to_string(a).map_err(|e| DispatchError::Corrupt {
            what: "agent",
            id: a.id.0.clone(),
            reason: e.to_string(),
        })?);
    }
    let [chat, call, email] = load;
    sqlx::query(
        "UPDATE dispatch_agents a SET load_chat = u.chat, load_call = u.call,
             load_email = u.email, last_offered_at = u.last, data = u.data::jsonb
         FROM UNNEST($1::text[], $2::int4[], $3::int4[], $4::int4[], $5::timestamptz[],
                     $6::text[]) AS u (id, chat, call, email, last, data)
         WHERE a.id = u.id",
    )
    .bind(ids)
    .bind(chat)
    .bind(call)
    .bind(email)
    .bind(last)
    .bind(data)
    .execute(&mut **tx)
    .await
    .map_err(backend("save loads"))?;
    Ok(())
}

/// The columns of a batch of new items, for `INSERT … SELECT FROM UNNEST`.
#[derive(Default)]
struct EnqueueColumns {
    id: Vec<String>,
    seq: Vec<i64>,
    class: Vec<i16>,
    key: Vec<i64>,
    route: Vec<String>,
    language: Vec<&'static str>,
    medium: Vec<&'static str>,
    queued_since: Vec<DateTime<Utc>>,
    data: Vec<String>,
    next_timer: Vec<Option<DateTime<Utc>>>,
}

impl EnqueueColumns {
    fn push(&mut self, policy: &Policy, item: &WorkItem, seq: i64) -> DispatchResult<()> {
        let key = policy.queue_key(item);
        self.data.push(serde_json::to_string(item).map_err(|e| DispatchError::Corrupt {
            what: "item",
            id: item.id.0.clone(),
            reason: e.to_string(),
        })?);
        self.id.push(item.id.0.clone());
        self.seq.push(seq);
        self.class.push(i16::from(key.class));
        self.key.push(key.key);
        self.route.push(item.route.as_str().to_owned());
        self.language.push(item.language.code());
        self.medium.push(item.medium.as_str());
        self.queued_since.push(item.queued_since);
        self.next_timer.push(policy.next_timer(item));
        Ok(())
    }
}

/// Logs events and announces them, in one round trip however many there are; NOTIFY is
/// delivered on commit, to every listening replica and console.
async fn log(tx: &mut Tx, events: &[Event]) -> DispatchResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut at = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut items: Vec<Option<String>> = Vec::with_capacity(events.len());
    let mut agents: Vec<Option<String>> = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for e in events {
        let (item, agent) = match &e.kind {
            EventKind::Offered { item, agent, .. }
            | EventKind::Accepted { item, agent }
            | EventKind::Declined { item, agent }
            | EventKind::OfferExpired { item, agent }
            | EventKind::Completed { item, agent } => (Some(&item.0), Some(&agent.0)),
            EventKind::Transferred { item, from, .. } => (Some(&item.0), Some(&from.0)),
            EventKind::WrapUpEnded { agent } => (None, Some(&agent.0)),
            EventKind::Enqueued { item }
            | EventKind::Widened { item, .. }
            | EventKind::Promoted { item }
            | EventKind::Abandoned { item }
            | EventKind::Reminder { item, .. }
            | EventKind::BreachPredicted { item, .. }
            | EventKind::Breached { item, .. } => (Some(&item.0), None),
        };
        payloads.push(serde_json::to_string(e).map_err(|err| DispatchError::Corrupt {
            what: "event",
            id: e.kind.name().into(),
            reason: err.to_string(),
        })?);
        at.push(e.at);
        kinds.push(e.kind.name());
        items.push(item.cloned());
        agents.push(agent.cloned());
    }
    sqlx::query(
        "WITH e AS (
             INSERT INTO dispatch_events (at, kind, item, agent, data)
             SELECT at, kind, item, agent, data::jsonb
             FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[])
                  WITH ORDINALITY AS u (at, kind, item, agent, data, n)
             ORDER BY n
             RETURNING seq, data)
         SELECT pg_notify($6, data::text) FROM e ORDER BY seq",
    )
    .bind(at)
    .bind(kinds)
    .bind(items)
    .bind(agents)
    .bind(payloads)
    .bind(NOTIFY_CHANNEL)
    .execute(&mut **tx)
    .await
    .map_err(backend("log events"))?;
    Ok(())
}

impl DispatchBackend for PostgresBackend {
    async fn upsert_agent(&self, mut agent: HumanAgent) -> DispatchResult<()> {
        let mut tx = self.begin().await?;
        if let Some(old) = lock_agent(&mut tx, &agent.id).await? {
            agent.load = old.load;
            agent.performance = old.performance;
            agent.last_offered_at = old.last_offered_at;
            agent.wrap_up_until = old.wrap_up_until;
        }
        save_agent(&mut tx, &agent).await?;
        tx.commit().await.map_err(backend("commit"))
    }

    async fn set_status(&self, agent: &AgentId, status: AgentStatus) -> DispatchResult<Vec<Event>> {
        let mut tx = self.begin().await?;
        // Items before the person: the lock order of every other operation.
        let offered: Vec<(Json<WorkItem>,)> = sqlx::query_as(
            "SELECT data FROM dispatch_items WHERE state = 'offered' AND agent = $1
             ORDER BY id FOR UPDATE",
        )
        .bind(&agent.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend("lock offers"))?;
        let a = lock_agent(&mut tx, agent)
            .await?
            .ok_or_else(|| DispatchError::UnknownAgent { agent: agent.clone() })?;
        let now = self.now();
        let mut d = Dispatcher::restore(
            (*self.policy).clone(),
            [a],
            offered.into_iter().map(|(Json(i),)| i),
        );
        let events = d.set_status(agent, status, now)?;
        save_changes(&mut tx, &self.policy, &mut d).await?;
        log(&mut tx, &events).await?;
        tx.commit().await.map_err(backend("commit"))?;
        Ok(events)
    }

    async fn enqueue(&self, new: NewWorkItem) -> DispatchResult<Vec<Event>> {
        let mut tx = self.begin().await?;
        let (seq,): (i64,) =
            sqlx::query_as("SELECT nextval(pg_get_serial_sequence('dispatch_items', 'seq'))")
                .fetch_one(&mut *tx)
                .await
                .map_err(backend("number the item"))?;
        let now = self.now();
        let d = Dispatcher::new((*self.policy).clone());
        let item = d.new_item(new, u64::try_from(seq).unwrap_or_default(), now);
        let key = self.policy.queue_key(&item);
        // A finished conversation may be escalated again; a live one is a duplicate.
        let inserted = sqlx::query(
            "INSERT INTO dispatch_items (id, seq, state, class, key, route, language, medium,
                 queued_since, data, next_timer_at)
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET seq = $2, state = 'queued', class = $3, key = $4,
                 route = $5, language = $6, medium = $7, queued_since = $8, data = $9,
                 next_timer_at = $10,
                 agent = NULL, offer_expires_at = NULL, offer_seq = NULL, declined = '{}'
             WHERE dispatch_items.state IN ('completed', 'abandoned')",
        )
        .bind(&item.id.0)
        .bind(seq)
        .bind(i16::from(key.class))
        .bind(key.key)
        .bind(item.route.as_str())
        .bind(item.language.code())
        .bind(item.medium.as_str())
        .bind(item.queued_since)
        .bind(Json(&item))
        .bind(self.policy.next_timer(&item))
        .execute(&mut *tx)
        .await
        .map_err(backend("queue item"))?;
        if inserted.rows_affected() == 0 {
            return Err(DispatchError::Duplicate { item: item.id });
        }
        let events = vec![Event { at: now, kind: EventKind::Enqueued { item: item.id } }];
        log(&mut tx, &events).await?;
        tx.commit().await.map_err(backend("commit"))?;
        Ok(events)
    }

    async fn enqueue_many(&self, new: Vec<NewWorkItem>) -> DispatchResult<Vec<Event>> {
        if let Some(dup) = crate::dispatcher::first_duplicate(&new, |_| false) {
            return Err(DispatchError::Duplicate { item: dup });
        }
        let mut tx = self.begin().await?;
        let now = self.now();
        let d = Dispatcher::new((*self.policy).clone());
        let mut events = Vec::with_capacity(new.len());
        let mut new = new.into_iter().peekable();
        while new.peek().is_some() {
            let chunk: Vec<NewWorkItem> = new.by_ref().take(ENQUEUE_BATCH).collect();
            let seqs: Vec<(i64,)> = sqlx::query_as(
                "SELECT nextval(pg_get_serial_sequence('dispatch_items', 'seq'))
                 FROM generate_series(1, $1)",
            )
            .bind(i64::try_from(chunk.len()).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend("number the items"))?;
            let mut cols = EnqueueColumns::default();
            for (n, (seq,)) in chunk.into_iter().zip(seqs) {
                let item = d.new_item(n, u64::try_from(seq).unwrap_or_default(), now);
                cols.push(&self.policy, &item, seq)?;
                events.push(Event { at: now, kind: EventKind::Enqueued { item: item.id } });
            }
            let expected = cols.id.len() as u64;
            let inserted = sqlx::query(
                "INSERT INTO dispatch_items (id, seq, state, class, key, route, language, medium,
                     queued_since, data, next_timer_at)
                 SELECT id, seq, 'queued', class, key, route, language, medium, queued_since,
                        data::jsonb, next_timer_at
                 FROM UNNEST($1::text[], $2::int8[], $3::int2[], $4::int8[], $5::text[],
                             $6::text[], $7::text[], $8::timestamptz[], $9::text[],
                             $10::timestamptz[])
                      AS u (id, seq, class, key, route, language, medium, queued_since, data,
                            next_timer_at)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, state = 'queued',
                     class = excluded.class, key = excluded.key, route = excluded.route,
                     language = excluded.language, medium = excluded.medium,
                     queued_since = excluded.queued_since, data = excluded.data,
                     next_timer_at = excluded.next_timer_at, agent = NULL,
                     offer_expires_at = NULL, offer_seq = NULL, declined = '{}'
                 WHERE dispatch_items.state IN ('completed', 'abandoned')
                 RETURNING id",
            )
            .bind(&cols.id)
            .bind(&cols.seq)
            .bind(&cols.class)
            .bind(&cols.key)
            .bind(&cols.route)
            .bind(&cols.language)
            .bind(&cols.medium)
            .bind(&cols.queued_since)
            .bind(&cols.data)
            .bind(&cols.next_timer)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend("queue items"))?;
            if inserted.len() as u64 != expected {
                // A live item of the same id: nothing of the batch is queued (rollback on drop).
                let queued: std::collections::HashSet<String> =
                    inserted.iter().filter_map(|r| r.try_get::<String, _>(0).ok()).collect();
                let dup = cols.id.into_iter().find(|id| !queued.contains(id)).unwrap_or_default();
                return Err(DispatchError::Duplicate { item: ItemId(dup) });
            }
        }
        log(&mut tx, &events).await?;
        tx.commit().await.map_err(backend("commit"))?;
        Ok(events)
    }

    async fn tick(&self) -> DispatchResult<Vec<Event>> {
        let now = self.now();
        let mut events = Vec::new();
        // Wrap-ups that ended.
        loop {
            let mut tx = self.begin().await?;
            let row: Option<(Json<HumanAgent>,)> = sqlx::query_as(
                "SELECT data FROM dispatch_agents WHERE status = 'wrap_up' AND wrap_up_until <= $1
                 LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend("find wrap-ups"))?;
            let Some((Json(a),)) = row else { break };
            let mut d = Dispatcher::restore((*self.policy).clone(), [a], []);
            let ended = d.expire(now);
            save_changes(&mut tx, &self.policy, &mut d).await?;
            log(&mut tx, &ended).await?;
            tx.commit().await.map_err(backend("commit"))?;
            events.extend(ended);
        }
        // Offers that lapsed (including those of a replica that died): back to the queue, a batch
        // per transaction; their holders are locked after them, in id order.
        loop {
            let mut tx = self.begin().await?;
            let rows: Vec<(Json<WorkItem>,)> = sqlx::query_as(
                "SELECT data FROM dispatch_items WHERE state = 'offered' AND offer_expires_at <= $1
                 ORDER BY offer_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(now)
            .bind(TIMER_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend("find lapsed offers"))?;
            if rows.is_empty() {
                break;
            }
            let items: Vec<WorkItem> = rows.into_iter().map(|(Json(i),)| i).collect();
            let mut holders: Vec<String> =
                items.iter().filter_map(|i| i.state.holder().map(|a| a.0.clone())).collect();
            holders.sort();
            holders.dedup();
            let people: Vec<(Json<HumanAgent>,)> = sqlx::query_as(
                "SELECT data FROM dispatch_agents WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            )
            .bind(&holders)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend("lock holders"))?;
            let mut d = Dispatcher::restore(
                (*self.policy).clone(),
                people.into_iter().map(|(Json(a),)| a),
                items,
            );
            let expired = d.expire(now);
            save_changes(&mut tx, &self.policy, &mut d).await?;
            log(&mut tx, &expired).await?;
            tx.commit().await.map_err(backend("commit"))?;
            if expired.is_empty() {
                break;
            }
            events.extend(expired);
        }
        // Per-item timers that have come: workflow steps, SLA reminders and breaches, starvation.
        loop {
            let mut tx = self.begin().await?;
            let rows: Vec<(Json<WorkItem>,)> = sqlx::query_as(
                "SELECT data FROM dispatch_items
                 WHERE next_timer_at <= $1 AND state IN ('queued', 'offered', 'assigned')
                 ORDER BY next_timer_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(now)
            .bind(TIMER_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend("find timers"))?;
            if rows.is_empty() {
                break;
            }
            let mut d = Dispatcher::restore(
                (*self.policy).clone(),
                [],
                rows.into_iter().map(|(Json(i),)| i),
            );
            let fired = d.run_timers(now);
            save_changes(&mut tx, &self.policy, &mut d).await?;
            log(&mut tx, &fired).await?;
            tx.commit().await.map_err(backend("commit timers"))?;
            events.extend(fired);
        }
        events.extend(self.assign(now).await?);
        Ok(events)
    }

    async fn accept(&self, item: &ItemId, agent: &AgentId) -> DispatchResult<Vec<Event>> {
        self.with_item(item, agent, |d, now| d.accept(item, agent, now)).await
    }

    async fn decline(&self, item: &ItemId, agent: &AgentId) -> DispatchResult<Vec<Event>> {
        self.with_item(item, agent, |d, now| d.decline(item, agent, now)).await
    }

    async fn transfer(
        &self,
        item: &ItemId,
        agent: &AgentId,
        route: Route,
        note: &str,
    ) -> DispatchResult<Vec<Event>> {
        self.with_item(item, agent, |d, now| d.transfer(item, agent, route, None, note, now)).await
    }

    async fn complete(
        &self,
        item: &ItemId,
        agent: &AgentId,
        outcome: Outcome,
    ) -> DispatchResult<Vec<Event>> {
        self.with_item(item, agent, |d, now| d.complete(item, agent, outcome, now)).await
    }

    async fn wait_estimate(&self, item: &ItemId) -> DispatchResult<WaitEstimate> {
        let row: Option<(String, String, i16, i64, i64)> = sqlx::query_as(
            "SELECT state, medium, class, key, seq FROM dispatch_items
             WHERE id = $1 AND state IN ('queued', 'offered', 'assigned')",
        )
        .bind(&item.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend("read item"))?;
        let (state, medium, class, key, seq) =
            row.ok_or_else(|| DispatchError::UnknownItem { item: item.clone() })?;
        if state != "queued" {
            let state = if state == "offered" { "offered" } else { "assigned" };
            return Err(DispatchError::WrongState {
                item: item.clone(),
                state,
                expected: "queued",
            });
        }
        let start = self.now() - Policy::secs(self.policy.rate_window_seconds);
        let (ahead, completions, arrivals, servers): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT
                 (SELECT count(*) FROM dispatch_items
                  WHERE state = 'queued' AND medium = $1
                    AND (class > $2 OR (class = $2 AND (key > $3 OR (key = $3 AND seq < $4))))),
                 (SELECT count(*) FROM dispatch_events WHERE kind = 'completed' AND at >= $5),
                 (SELECT count(*) FROM dispatch_events WHERE kind = 'enqueued' AND at >= $5),
                 (SELECT coalesce(sum(CASE $1 WHEN 'chat' THEN cap_chat WHEN 'call' THEN cap_call
                                             ELSE cap_email END), 0)::int8
                  FROM dispatch_agents WHERE status IN ('online', 'wrap_up'))",
        )
        .bind(&medium)
        .bind(class)
        .bind(key)
        .bind(seq)
        .bind(start)
        .fetch_one(&self.pool)
        .await
        .map_err(backend("estimate the wait"))?;
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok(crate::dispatcher::estimate(
            &self.policy,
            count(ahead),
            count(completions),
            count(arrivals),
            u32::try_from(servers).unwrap_or(u32::MAX),
        ))
    }

    async fn item(&self, id: &ItemId) -> DispatchResult<Option<WorkItem>> {
        let row: Option<(Json<WorkItem>,)> = sqlx::query_as(
            "SELECT data FROM dispatch_items
             WHERE id = $1 AND state IN ('queued', 'offered', 'assigned')",
        )
        .bind(&id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend("read item"))?;
        Ok(row.map(|(Json(i),)| i))
    }

    async fn agent(&self, id: &AgentId) -> DispatchResult<Option<HumanAgent>> {
        let row: Option<(Json<HumanAgent>,)> =
            sqlx::query_as("SELECT data FROM dispatch_agents WHERE id = $1")
                .bind(&id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend("read agent"))?;
        Ok(row.map(|(Json(a),)| a))
    }
}
