//! Backend-specific behaviour: the embedded backend survives a restart; PostgreSQL announces
//! events with NOTIFY; two PostgreSQL replicas under load keep every invariant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use fenliu_agent::{Channel, CustomerTier, Language, Priority, Route};
use fenliu_dispatch::{
    AgentStatus, Capacity, DispatchBackend, EmbeddedBackend, EventKind, HumanAgent, ItemState,
    NewWorkItem, Outcome, PostgresBackend, Skills,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use sqlx::PgPool;

use crate::core::{chat, person};
use crate::support::{clock, policy, with_postgres};

const DONE: Outcome = Outcome { resolved_first_contact: true, csat: None };

#[tokio::test]
async fn embedded_state_survives_a_restart_and_lapsed_offers_expire() {
    let c = clock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dispatch.db");
    {
        let b = EmbeddedBackend::open(&path, policy(), Arc::new(c.clone())).await.unwrap();
        b.upsert_agent(person("ann", Route::ORDER, Language::En, 4)).await.unwrap();
        b.upsert_agent(person("bob", Route::ORDER, Language::En, 3)).await.unwrap();
        for id in ["a", "b", "q"] {
            b.enqueue(chat(id, Route::ORDER)).await.unwrap();
        }
        b.set_status(&"bob".into(), AgentStatus::Away).await.unwrap();
        b.tick().await.unwrap();
        b.accept(&"a".into(), &"ann".into()).await.unwrap();
        // "b" and "q" are offered to ann; then the process stops.
        b.close().await;
    }
    let b = EmbeddedBackend::open(&path, policy(), Arc::new(c.clone())).await.unwrap();
    let ann = b.agent(&"ann".into()).await.unwrap().unwrap();
    assert_eq!(ann.load.total(), 3);
    assert!(matches!(
        b.item(&"a".into()).await.unwrap().unwrap().state,
        ItemState::Assigned { .. }
    ));
    assert!(matches!(b.item(&"b".into()).await.unwrap().unwrap().state, ItemState::Offered { .. }));
    // The offers lapse while the process was down; the first tick returns them to the queue and
    // re-offers them to Bob, who is back.
    c.advance(TimeDelta::seconds(45));
    b.set_status(&"bob".into(), AgentStatus::Online).await.unwrap();
    let ev = b.tick().await.unwrap();
    let expired = ev.iter().filter(|e| matches!(e.kind, EventKind::OfferExpired { .. })).count();
    let reoffered: Vec<_> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Offered { agent, .. } => Some(agent.0.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(expired, 2);
    assert_eq!(reoffered, ["bob", "bob"]);
    // New work after the restart gets a fresh sequence number (no collision with old items).
    b.enqueue(chat("new", Route::ORDER)).await.unwrap();
    let seqs: HashSet<u64> = futures::future::join_all(["a", "b", "q", "new"].map(|id| {
        let b = b.clone();
        async move { b.item(&id.into()).await.unwrap().unwrap().seq }
    }))
    .await
    .into_iter()
    .collect();
    assert_eq!(seqs.len(), 4);
}

#[tokio::test]
async fn postgres_notifies_every_replica() {
    with_postgres("postgres_notifies_every_replica", |schema| async move {
        let c = clock();
        let a = schema.backend(&c).await;
        let b = schema.backend(&c).await;
        let mut listener = b.listen().await.unwrap();
        a.upsert_agent(person("ann", Route::ORDER, Language::En, 4)).await.unwrap();
        a.enqueue(chat("notify-me", Route::ORDER)).await.unwrap();
        a.tick().await.unwrap();
        let mut seen = Vec::new();
        // Other tests share the server (and the channel): wait for our own item's offer.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let e = tokio::time::timeout(Duration::from_secs(5), listener.recv())
                .await
                .unwrap()
                .unwrap();
            if let EventKind::Offered { item, agent, .. } = &e.kind
                && item.0 == "notify-me"
            {
                seen.push(agent.0.clone());
                break;
            }
        }
        assert_eq!(seen, ["ann"]);
        // The listener holds one of b's pooled connections: closing b waits for it.
        drop(listener);
        a.close().await;
        b.close().await;
    })
    .await;
}

const ROUTES: [Route; 3] = [Route::ORDER, Route::AFTER_SALES, Route::COMPLAINT];
const LANGUAGES: [Language; 2] = [Language::En, Language::Zh];
const CHANNELS: [Channel; 3] = [Channel::Web, Channel::Phone, Channel::Email];

/// Two replicas (separate pools) on one PostgreSQL, 200 people, 5,000 conversations arriving at
/// once with random skills, channels and priorities. Scaled down from the 500 × 20,000
/// to keep the suite quick; the invariants do not depend on scale.
///
/// Rounds: both replicas tick concurrently; then every offer made by the live replicas is accepted
/// and every accepted conversation closed. In the first round replica B "dies" right after
/// making its offers (its pool is closed, nobody accepts them); the clock moves past the offer
/// timeout and replica A re-offers them. Checked after every round:
/// - no person is over capacity (the loads equal the held items, and are within capacity);
/// - no conversation is held twice (one holder per row; accepted events ≤ 1 per item);
/// - VIP/urgent first: in every skill group (route, language, medium), once a regular item has
///   been offered, no VIP/urgent item of the group is still queued;
/// - at the end every conversation was closed exactly once: nothing lost.
#[tokio::test]
async fn two_replicas_under_load_keep_every_invariant() {
    with_postgres("two_replicas_under_load_keep_every_invariant", |schema| async move {
        const AGENTS: usize = 200;
        const ITEMS: usize = 5_000;
        let c = clock();
        let a = schema.backend(&c).await;
        let b = schema.backend(&c).await;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut pick = |n: usize| (rng.next_u64() % n as u64) as usize;
        for i in 0..AGENTS {
            let mut skills = Skills::default();
            // One or two primary routes, one or both languages.
            skills = skills.route(ROUTES[i % 3].clone(), 3 + (pick(3) as u8));
            if pick(2) == 0 {
                skills = skills.route(ROUTES[(i + 1) % 3].clone(), 3);
            }
            skills = skills.language(LANGUAGES[i % 2], 5);
            if pick(3) == 0 {
                skills = skills.language(LANGUAGES[(i + 1) % 2], 3);
            }
            let agent = HumanAgent::new(format!("agent{i:03}"), "x", skills)
                .with_capacity(Capacity { chat: 3, call: 1, email: 2 })
                .with_status(AgentStatus::Online);
            a.upsert_agent(agent).await.unwrap();
        }
        let mut items = Vec::new();
        for i in 0..ITEMS {
            let mut it = NewWorkItem::new(
                format!("conv{i:05}"),
                ROUTES[pick(3)].clone(),
                LANGUAGES[pick(2)],
                CHANNELS[pick(3)],
            );
            it.priority = [Priority::Low, Priority::Normal, Priority::Normal, Priority::High][pick(4)];
            if pick(10) == 0 {
                it.tier = CustomerTier::Vip;
            }
            if pick(20) == 0 {
                it.priority = Priority::Urgent;
            }
            items.push(it);
        }
        let started = Instant::now();
        // Arriving at once, through both replicas.
        let (half_a, half_b) = items.split_at(ITEMS / 2);
        let enqueue = |backend: PostgresBackend, part: Vec<NewWorkItem>| async move {
            for it in part {
                backend.enqueue(it).await.unwrap();
            }
        };
        tokio::join!(enqueue(a.clone(), half_a.to_vec()), enqueue(b.clone(), half_b.to_vec()));
        let enqueued = started.elapsed();

        let mut b_alive = Some(b);
        let mut offers_made = 0usize;
        let mut closed: HashMap<String, usize> = HashMap::new();
        let mut assign_time = Duration::ZERO;
        for round in 0..200 {
            let t = Instant::now();
            let (ea, eb) = match &b_alive {
                Some(b) => {
                    let (ea, eb) = tokio::join!(tick(&a), tick(b));
                    (ea, eb)
                }
                None => (tick(&a).await, Vec::new()),
            };
            assign_time += t.elapsed();
            offers_made += ea.len() + eb.len();
            check_invariants(&a).await;
            if round == 0 {
                // Replica B dies with its offers open.
                assert!(!eb.is_empty());
                if let Some(b) = b_alive.take() {
                    b.close().await;
                }
                c.advance(TimeDelta::seconds(31));
            }
            for (item, agent) in &ea {
                a.accept(&item.as_str().into(), &agent.as_str().into()).await.unwrap();
                a.complete(&item.as_str().into(), &agent.as_str().into(), DONE).await.unwrap();
                *closed.entry(item.clone()).or_default() += 1;
            }
            let (queued,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM dispatch_items WHERE state IN ('queued', 'offered', 'assigned')",
            )
            .fetch_one(a.pool())
            .await
            .unwrap();
            if queued == 0 {
                break;
            }
        }
        // Nothing lost, nothing closed twice.
        assert_eq!(closed.len(), ITEMS);
        assert!(closed.values().all(|&n| n == 1));
        let (completed,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM dispatch_items WHERE state = 'completed'")
                .fetch_one(a.pool())
                .await
                .unwrap();
        assert_eq!(completed as usize, ITEMS);
        let (expired,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM dispatch_events WHERE kind = 'offer_expired'")
                .fetch_one(a.pool())
                .await
                .unwrap();
        assert!(expired > 0, "replica B's offers expired and were re-offered");
        let line = format!(
            "concurrency: {AGENTS} agents, {ITEMS} items, 2 replicas: enqueue {:.2?}, {offers_made} offers in {:.2?} of ticks ({:.0} offers/s), {expired} offers of the dead replica expired and were re-offered; 0 over capacity, 0 double assignments, 0 lost\n",
            enqueued,
            assign_time,
            offers_made as f64 / assign_time.as_secs_f64(),
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        a.close().await;
    })
    .await;
}

/// One tick; the offers made, as (item, agent).
async fn tick(b: &PostgresBackend) -> Vec<(String, String)> {
    b.tick()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Offered { item, agent, .. } => Some((item.0, agent.0)),
            _ => None,
        })
        .collect()
}

async fn check_invariants(b: &PostgresBackend) {
    check_loads(b.pool()).await;
    check_no_double_acceptance(b.pool()).await;
    check_vip_first(b.pool(), 0, "after a round").await;
}

/// Loads equal the held items, per person and medium, and are within capacity (one snapshot:
/// safe to run while replicas work).
pub(crate) async fn check_loads(pool: &PgPool) {
    let (mismatched,): (i64,) = sqlx::query_as(
        "WITH held AS (
             SELECT agent,
                    count(*) FILTER (WHERE medium = 'chat') AS chat,
                    count(*) FILTER (WHERE medium = 'call') AS call,
                    count(*) FILTER (WHERE medium = 'email') AS email
             FROM dispatch_items WHERE state IN ('offered', 'assigned') GROUP BY agent)
         SELECT count(*) FROM dispatch_agents a LEFT JOIN held h ON h.agent = a.id
         WHERE a.load_chat <> coalesce(h.chat, 0) OR a.load_call <> coalesce(h.call, 0)
            OR a.load_email <> coalesce(h.email, 0)
            OR a.load_chat > a.cap_chat OR a.load_call > a.cap_call OR a.load_email > a.cap_email",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0, "loads must equal held items and stay within capacity");
}

/// No conversation was accepted twice.
pub(crate) async fn check_no_double_acceptance(pool: &PgPool) {
    let (double,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT item FROM dispatch_events WHERE kind = 'accepted'
                               GROUP BY item HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(double, 0, "no conversation accepted twice");
}

/// In every skill group (route, language, medium), once a regular item has been offered (an
/// offer numbered above `after`), no VIP/urgent item of the group is still queued. Valid between
/// rounds, when no replica is inside an assignment.
pub(crate) async fn check_vip_first(pool: &PgPool, after: i64, when: &str) {
    let (overtaken,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM dispatch_items v
         WHERE v.state = 'queued' AND v.class = 1
           AND EXISTS (SELECT 1 FROM dispatch_items r
                       WHERE r.class = 0 AND r.offer_seq > $1 AND r.route = v.route
                         AND r.language = v.language AND r.medium = v.medium)",
    )
    .bind(after)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(overtaken, 0, "VIP/urgent work of a skill is offered before regular work ({when})");
}

/// The number of the latest offer (0 before the first).
pub(crate) async fn last_offer(pool: &PgPool) -> i64 {
    let (n,): (Option<i64>,) =
        sqlx::query_as("SELECT max(offer_seq) FROM dispatch_items").fetch_one(pool).await.unwrap();
    n.unwrap_or(0)
}
