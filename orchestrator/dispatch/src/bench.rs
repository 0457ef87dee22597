//! `fenliu bench dispatch`: assignments per second on the embedded and PostgreSQL backends.
//!
//! A fixed, seeded population (people with random skills and 3 chats + 1 call + 2 e-mails each;
//! conversations with random route, language, channel and priority) all arriving at once. Rounds
//! of tick (offers) → accept → complete run until every conversation is closed; the figure is
//! offers made per second of tick time, and end-to-end conversations per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fenliu_agent::{Channel, CustomerTier, Language, Priority, Route};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use crate::backend::{DispatchBackend, SystemClock};
use crate::error::DispatchResult;
use crate::event::EventKind;
use crate::model::{AgentStatus, Capacity, HumanAgent, NewWorkItem, Outcome, Skills};
use crate::policy::Policy;

/// The figures of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Which backend.
    pub backend: String,
    /// Replicas ticking concurrently.
    pub replicas: usize,
    /// People.
    pub agents: usize,
    /// Conversations.
    pub items: usize,
    /// Offers made (re-offers included).
    pub offers: usize,
    /// Seconds spent in ticks.
    pub tick_seconds: f64,
    /// Offers per second of tick time.
    pub assignments_per_second: f64,
    /// Seconds to enqueue everything.
    pub enqueue_seconds: f64,
    /// Seconds from first enqueue to last completion.
    pub total_seconds: f64,
}

/// The benchmark population, from a seed; conversation ids start with `tag` so runs on one
/// database do not collide.
pub fn population(
    agents: usize,
    items: usize,
    seed: u64,
    tag: &str,
) -> (Vec<HumanAgent>, Vec<NewWorkItem>) {
    const ROUTES: [Route; 3] = [Route::ORDER, Route::AFTER_SALES, Route::COMPLAINT];
    const LANGUAGES: [Language; 2] = [Language::En, Language::Zh];
    const CHANNELS: [Channel; 3] = [Channel::Web, Channel::Phone, Channel::Email];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pick = |n: usize| (rng.next_u64() % n as u64) as usize;
    let people = (0..agents)
        .map(|i| {
            let mut skills = Skills::default()
                .route(ROUTES[i % 3].clone(), 3 + pick(3) as u8)
                .language(LANGUAGES[i % 2], 5);
            if pick(2) == 0 {
                skills = skills.route(ROUTES[(i + 1) % 3].clone(), 3);
            }
            if pick(3) == 0 {
                skills = skills.language(LANGUAGES[(i + 1) % 2], 3);
            }
            HumanAgent::new(format!("agent{i:05}"), format!("Agent {i}"), skills)
                .with_capacity(Capacity { chat: 3, call: 1, email: 2 })
                .with_status(AgentStatus::Online)
        })
        .collect();
    let work = (0..items)
        .map(|i| {
            let mut it = NewWorkItem::new(
                format!("{tag}conv{i:06}"),
                ROUTES[pick(3)].clone(),
                LANGUAGES[pick(2)],
                CHANNELS[pick(3)],
            );
            it.priority =
                [Priority::Low, Priority::Normal, Priority::Normal, Priority::High][pick(4)];
            if pick(10) == 0 {
                it.tier = CustomerTier::Vip;
            }
            if pick(20) == 0 {
                it.priority = Priority::Urgent;
            }
            it
        })
        .collect();
    (people, work)
}

/// The policy benchmarks use: no wrap-up (people take the next conversation at once).
pub fn bench_policy() -> Policy {
    Policy { wrap_up_seconds: 0, ..Policy::default() }
}

/// Runs the benchmark on `replicas` (all sharing one state: clones of one embedded backend, or
/// PostgreSQL backends with separate pools).
pub async fn run<B>(
    name: &str,
    replicas: &[B],
    agents: usize,
    items: usize,
) -> DispatchResult<BenchReport>
where
    B: DispatchBackend + Clone + 'static,
{
    let tag = format!("bench{}-", chrono::Utc::now().timestamp_millis());
    let (people, work) = population(agents, items, 42, &tag);
    let Some(first) = replicas.first() else {
        return Ok(empty(name, agents, items));
    };
    for p in people {
        first.upsert_agent(p).await?;
    }
    let start = Instant::now();
    let n = replicas.len().max(1);
    let mut parts: Vec<Vec<NewWorkItem>> = (0..n).map(|_| Vec::new()).collect();
    for (i, w) in work.into_iter().enumerate() {
        parts[i % n].push(w);
    }
    let mut tasks = Vec::new();
    for (b, part) in replicas.iter().cloned().zip(parts) {
        tasks.push(tokio::spawn(async move {
            for w in part {
                b.enqueue(w).await?;
            }
            DispatchResult::Ok(())
        }));
    }
    for t in tasks {
        join(t).await?;
    }
    let enqueue_seconds = start.elapsed().as_secs_f64();
    let mut offers = 0usize;
    let mut tick_time = Duration::ZERO;
    let mut done = 0usize;
    while done < items {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for b in replicas {
            let b = b.clone();
            tasks.push(tokio::spawn(async move { b.tick().await }));
        }
        let mut made = Vec::new();
        for t in tasks {
            for e in join(t).await? {
                if let EventKind::Offered { item, agent, .. } = e.kind {
                    made.push((item, agent));
                }
            }
        }
        tick_time += t.elapsed();
        if made.is_empty() {
            break;
        }
        offers += made.len();
        // People accept and close what they were offered, spread over the replicas.
        let mut shares: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
        for (i, m) in made.into_iter().enumerate() {
            shares[i % n].push(m);
        }
        let mut tasks = Vec::new();
        for (b, share) in replicas.iter().cloned().zip(shares) {
            tasks.push(tokio::spawn(async move {
                let outcome = Outcome { resolved_first_contact: true, csat: None };
                for (item, agent) in &share {
                    b.accept(item, agent).await?;
                    b.complete(item, agent, outcome).await?;
                }
                DispatchResult::Ok(share.len())
            }));
        }
        for t in tasks {
            done += join(t).await?;
        }
    }
    let tick_seconds = tick_time.as_secs_f64();
    Ok(BenchReport {
        backend: name.to_owned(),
        replicas: n,
        agents,
        items,
        offers,
        tick_seconds,
        assignments_per_second: if tick_seconds > 0.0 { offers as f64 / tick_seconds } else { 0.0 },
        enqueue_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
    })
}

fn empty(name: &str, agents: usize, items: usize) -> BenchReport {
    BenchReport {
        backend: name.to_owned(),
        replicas: 0,
        agents,
        items,
        offers: 0,
        tick_seconds: 0.0,
        assignments_per_second: 0.0,
        enqueue_seconds: 0.0,
        total_seconds: 0.0,
    }
}

async fn join<T>(t: tokio::task::JoinHandle<DispatchResult<T>>) -> DispatchResult<T> {
    match t.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(crate::error::DispatchError::Scenario("benchmark task cancelled".into())),
    }
}

/// The system clock, shared.
pub fn system_clock() -> Arc<SystemClock> {
    Arc::new(SystemClock)
}
