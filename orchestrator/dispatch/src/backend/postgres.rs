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

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fenliu_agent::Route;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder, Transaction};

use super::{Clock, DispatchBackend, micros};
use crate::dispatcher::Dispatcher;
use crate::error::{DispatchError, DispatchResult, backend};
use crate::event::{Event, EventKind};
use crate::model::{
    AgentId, AgentStatus, HumanAgent, ItemId, ItemState, Medium, NewWorkItem, Outcome,
    PRIMARY_LEVEL, WorkItem,
};
use crate::policy::Policy;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel events are announced on.
pub const NOTIFY_CHANNEL: &str = "fenliu_dispatch";

/// Connections per replica.
const MAX_CONNECTIONS: u32 = 8;

/// People locked and filled per assignment transaction.
const AGENT_BATCH: i64 = 16;

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
    /// People are taken [`AGENT_BATCH`] at a time, each filled to capacity, in one transaction:
    /// commits (an fsync each) are what PostgreSQL throughput is bound by.
    async fn assign(&self, now: DateTime<Utc>) -> DispatchResult<Vec<Event>> {
        let mut events = Vec::new();
        let mut tried: Vec<String> = Vec::new();
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
            let mut offered = Vec::new();
            for (Json(mut agent),) in rows {
                tried.push(agent.id.0.clone());
                let before = offered.len();
                loop {
                    let media: Vec<&str> = Medium::ALL
                        .iter()
                        .filter(|&&m| agent.free(m) > 0)
                        .map(|m| m.as_str())
                        .collect();
                    if media.is_empty() {
                        break;
                    }
                    // Items offered earlier in this transaction are no longer `queued`.
                    let Some(mut item) = self.best_item_for(&mut tx, &agent, &media, now).await?
                    else {
                        break;
                    };
                    item.state = ItemState::Offered { agent: agent.id.clone(), expires_at };
                    agent.load.add(item.medium);
                    agent.last_offered_at = Some(now);
                    save_item(&mut tx, &self.policy, &item).await?;
                    offered.push(Event {
                        at: now,
                        kind: EventKind::Offered {
                            item: item.id,
                            agent: agent.id.clone(),
                            expires_at,
                        },
                    });
                }
                if offered.len() > before {
                    save_agent(&mut tx, &agent).await?;
                }
            }
            log(&mut tx, &offered).await?;
            tx.commit().await.map_err(backend("commit offers"))?;
            events.extend(offered);
        }
        Ok(events)
    }

    /// The best queued item `agent` may serve now, locked; the query mirrors
    /// [`Policy::eligible`] step by step.
    async fn best_item_for(
        &self,
        tx: &mut Tx,
        agent: &HumanAgent,
        media: &[&str],
        now: DateTime<Utc>,
    ) -> DispatchResult<Option<WorkItem>> {
        let languages: Vec<String> =
            agent.skills.languages.keys().map(|l| l.code().to_owned()).collect();
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT data FROM dispatch_items WHERE state = 'queued' AND medium = ANY(",
        );
        q.push_bind(media.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>());
        q.push(") AND NOT (");
        q.push_bind(agent.id.0.clone());
        q.push(" = ANY(declined)) AND (false");
        let default_steps = [crate::policy::WorkflowStep {
            after_seconds: 0,
            min_route_level: PRIMARY_LEVEL,
            any_language: false,
            overflow: false,
        }];
        let steps: &[_] =
            if self.policy.workflow.is_empty() { &default_steps } else { &self.policy.workflow };
        for step in steps {
            if agent.overflow && !step.overflow {
                continue;
            }
            q.push(" OR (queued_since <= ");
            q.push_bind(now - Policy::secs(step.after_seconds));
            if !agent.overflow {
                let routes: Vec<String> = agent
                    .skills
                    .routes
                    .iter()
                    .filter(|(_, l)| **l >= step.min_route_level.max(1))
                    .map(|(r, _)| r.as_str().to_owned())
                    .collect();
                q.push(" AND route = ANY(");
                q.push_bind(routes);
                q.push(")");
            }
            if !step.any_language {
                q.push(" AND language = ANY(");
                q.push_bind(languages.clone());
                q.push(")");
            }
            q.push(")");
        }
        q.push(") ORDER BY class DESC, key DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED");
        let row: Option<(Json<WorkItem>,)> =
            q.build_query_as().fetch_optional(&mut **tx).await.map_err(backend("pick an item"))?;
        Ok(row.map(|(Json(i),)| i))
    }
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
    for i in &changes.items {
        save_item(tx, policy, i).await?;
    }
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
        // Offers that lapsed (including those of a replica that died): back to the queue.
        loop {
            let mut tx = self.begin().await?;
            let row: Option<(Json<WorkItem>,)> = sqlx::query_as(
                "SELECT data FROM dispatch_items WHERE state = 'offered' AND offer_expires_at <= $1
                 ORDER BY offer_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend("find lapsed offers"))?;
            let Some((Json(item),)) = row else { break };
            let Some(holder) = item.state.holder().cloned() else { break };
            let Some(a) = lock_agent(&mut tx, &holder).await? else { break };
            let mut d = Dispatcher::restore((*self.policy).clone(), [a], [item]);
            let expired = d.expire(now);
            save_changes(&mut tx, &self.policy, &mut d).await?;
            log(&mut tx, &expired).await?;
            tx.commit().await.map_err(backend("commit"))?;
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
