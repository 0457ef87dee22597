//! Where the dispatcher's state lives: one trait, [`DispatchBackend`], and the two built-in
//! backends as a closed enum, [`Backend`].
//!
//! - [`EmbeddedBackend`]: the [`Dispatcher`](crate::Dispatcher) state machine in memory, every
//!   change written through to SQLite in the same critical section, so a restart resumes where it
//!   stopped (open offers that lapsed meanwhile expire on the first tick). One process.
//! - [`PostgresBackend`]: the state in PostgreSQL, for several replicas. Assignment takes a free
//!   person with `FOR UPDATE SKIP LOCKED`, then the best queued item that person may serve, also
//!   `SKIP LOCKED`; every offer is announced with `NOTIFY`. Capacity is a `CHECK` constraint.
//!
//! Both pass the same conformance suite (`tests/integration/conformance.rs`).

mod embedded;
mod postgres;

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use fenliu_agent::Route;

use crate::dispatcher::WaitEstimate;
use crate::error::DispatchResult;
use crate::event::Event;
use crate::model::{AgentId, AgentStatus, HumanAgent, ItemId, NewWorkItem, Outcome, WorkItem};

pub use embedded::EmbeddedBackend;
pub use postgres::{EventListener, NOTIFY_CHANNEL, PostgresBackend};

/// The time source: the system clock in production, a manual one in tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: deterministic tests of timers.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `at` (truncated to microseconds, PostgreSQL's precision).
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(micros(at))))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: TimeDelta) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Truncates to whole microseconds.
pub(crate) fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// The dispatcher's operations, on whichever backend holds its state. Times come from the
/// backend's [`Clock`].
pub trait DispatchBackend: Send + Sync {
    /// Adds a person or updates their profile (what they hold and their performance are kept).
    fn upsert_agent(&self, agent: HumanAgent) -> impl Future<Output = DispatchResult<()>> + Send;

    /// Changes a person's status; away or offline withdraws their pending offers.
    fn set_status(
        &self,
        agent: &AgentId,
        status: AgentStatus,
    ) -> impl Future<Output = DispatchResult<Vec<Event>>> + Send;

    /// Queues an item.
    fn enqueue(&self, item: NewWorkItem)
    -> impl Future<Output = DispatchResult<Vec<Event>>> + Send;

    /// Queues several items in one go (a surge, an import), all or none: a duplicate queues
    /// nothing.
    fn enqueue_many(
        &self,
        items: Vec<NewWorkItem>,
    ) -> impl Future<Output = DispatchResult<Vec<Event>>> + Send;

    /// Expires offers, ends wrap-ups, runs timers and makes offers.
    fn tick(&self) -> impl Future<Output = DispatchResult<Vec<Event>>> + Send;

    /// Accepts an offer.
    fn accept(
        &self,
        item: &ItemId,
        agent: &AgentId,
    ) -> impl Future<Output = DispatchResult<Vec<Event>>> + Send;

    /// Declines an offer.
    fn decline(
        &self,
        item: &ItemId,
        agent: &AgentId,
    ) -> impl Future<Output = DispatchResult<Vec<Event>>> + Send;

    /// Transfers an accepted item to another route with a note.
    fn transfer(
        &self,
        item: &ItemId,
        agent: &AgentId,
        route: Route,
        note: &str,
    ) -> impl Future<Output = DispatchResult<Vec<Event>>> + Send;

    /// Closes an accepted item.
    fn complete(
        &self,
        item: &ItemId,
        agent: &AgentId,
        outcome: Outcome,
    ) -> impl Future<Output = DispatchResult<Vec<Event>>> + Send;

    /// The customer-facing wait estimate of a queued item: its position among queued items of
    /// its medium, the expected wait (observed service rate, or Erlang C while too little has been
    /// observed) and whether to offer a callback.
    fn wait_estimate(
        &self,
        item: &ItemId,
    ) -> impl Future<Output = DispatchResult<WaitEstimate>> + Send;

    /// A live item (queued, offered, assigned).
    fn item(&self, id: &ItemId) -> impl Future<Output = DispatchResult<Option<WorkItem>>> + Send;

    /// A person.
    fn agent(
        &self,
        id: &AgentId,
    ) -> impl Future<Output = DispatchResult<Option<HumanAgent>>> + Send;
}

/// A built-in backend, chosen by configuration.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In process, persisted to SQLite.
    Embedded(EmbeddedBackend),
    /// PostgreSQL, shared by replicas.
    Postgres(PostgresBackend),
}

macro_rules! delegate {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Backend::Embedded($b) => $e,
            Backend::Postgres($b) => $e,
        }
    };
}

impl DispatchBackend for Backend {
    async fn upsert_agent(&self, agent: HumanAgent) -> DispatchResult<()> {
        delegate!(self, b => b.upsert_agent(agent).await)
    }
    async fn set_status(&self, agent: &AgentId, status: AgentStatus) -> DispatchResult<Vec<Event>> {
        delegate!(self, b => b.set_status(agent, status).await)
    }
    async fn enqueue(&self, item: NewWorkItem) -> DispatchResult<Vec<Event>> {
        delegate!(self, b => b.enqueue(item).await)
    }
    async fn enqueue_many(&self, items: Vec<NewWorkItem>) -> DispatchResult<Vec<Event>> {
        delegate!(self, b => b.enqueue_many(items).await)
    }
    async fn tick(&self) -> DispatchResult<Vec<Event>> {
        delegate!(self, b => b.tick().await)
    }
    async fn accept(&self, item: &ItemId, agent: &AgentId) -> DispatchResult<Vec<Event>> {
        delegate!(self, b => b.accept(item, agent).await)
    }
    async fn decline(&self, item: &ItemId, agent: &AgentId) -> DispatchResult<Vec<Event>> {
        delegate!(self, b => b.decline(item, agent).await)
    }
    async fn transfer(
        &self,
        item: &ItemId,
        agent: &AgentId,
        route: Route,
        note: &str,
    ) -> DispatchResult<Vec<Event>> {
        delegate!(self, b => b.transfer(item, agent, route, note).await)
    }
    async fn complete(
        &self,
        item: &ItemId,
        agent: &AgentId,
        outcome: Outcome,
    ) -> DispatchResult<Vec<Event>> {
        delegate!(self, b => b.complete(item, agent, outcome).await)
    }
    async fn wait_estimate(&self, item: &ItemId) -> DispatchResult<WaitEstimate> {
        delegate!(self, b => b.wait_estimate(item).await)
    }
    async fn item(&self, id: &ItemId) -> DispatchResult<Option<WorkItem>> {
        delegate!(self, b => b.item(id).await)
    }
    async fn agent(&self, id: &AgentId) -> DispatchResult<Option<HumanAgent>> {
        delegate!(self, b => b.agent(id).await)
    }
}

/// Hands an escalated conversation to the people: queues it and tells how long the customer
/// should expect to wait (and whether to offer a callback). What the turn loop's caller does with
/// an `Escalate` reply; the specialists themselves never call the dispatcher.
pub async fn hand_off(
    backend: &impl DispatchBackend,
    item: NewWorkItem,
) -> DispatchResult<(ItemId, WaitEstimate)> {
    let id = item.id.clone();
    backend.enqueue(item).await?;
    let estimate = backend.wait_estimate(&id).await?;
    Ok((id, estimate))
}
