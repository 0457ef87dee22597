//! The embedded backend: the state machine in memory, written through to SQLite.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fenliu_agent::Route;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::sync::{Mutex, broadcast};

use super::{Clock, DispatchBackend};
use crate::dispatcher::{Changes, Dispatcher, WaitEstimate};
use crate::error::{DispatchError, DispatchResult, backend};
use crate::event::Event;
use crate::model::{AgentId, AgentStatus, HumanAgent, ItemId, NewWorkItem, Outcome, WorkItem};
use crate::policy::Policy;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for the file lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Events buffered for slow subscribers before they start missing some.
const EVENT_BUFFER: usize = 4096;

/// The dispatcher in this process, persisted to SQLite (or not at all, for benchmarks).
///
/// Cloning is cheap and shares the state. Operations are serialised by one async mutex held
/// until the change is on disk, so the file never lags behind what callers were told.
#[derive(Debug, Clone)]
pub struct EmbeddedBackend {
    state: Arc<Mutex<Dispatcher>>,
    /// `None`: memory only.
    pool: Option<SqlitePool>,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<Event>,
}

impl EmbeddedBackend {
    /// Memory only: nothing survives the process (benchmarks, simulations, tests).
    pub fn in_memory(policy: Policy, clock: Arc<dyn Clock>) -> Self {
        Self::with(Dispatcher::new(policy), None, clock)
    }

    /// Opens (creating it if missing) the SQLite file at `path` and restores the state saved in it.
    pub async fn open(
        path: impl AsRef<Path>,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> DispatchResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT);
        // One connection: every write goes through the mutex anyway.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(backend("open the SQLite file"))?;
        MIGRATOR.run(&pool).await?;
        let agents: Vec<(String, String)> = sqlx::query_as("SELECT id, data FROM dispatch_agents")
            .fetch_all(&pool)
            .await
            .map_err(backend("load agents"))?;
        let items: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, data FROM dispatch_items WHERE state IN ('queued', 'offered', 'assigned')",
        )
        .fetch_all(&pool)
        .await
        .map_err(backend("load items"))?;
        let agents = agents
            .into_iter()
            .map(|(id, data)| decode::<HumanAgent>("agent", id, &data))
            .collect::<DispatchResult<Vec<_>>>()?;
        let items = items
            .into_iter()
            .map(|(id, data)| decode::<WorkItem>("item", id, &data))
            .collect::<DispatchResult<Vec<_>>>()?;
        tracing::info!(agents = agents.len(), items = items.len(), "dispatch state restored");
        Ok(Self::with(Dispatcher::restore(policy, agents, items), Some(pool), clock))
    }

    fn with(d: Dispatcher, pool: Option<SqlitePool>, clock: Arc<dyn Clock>) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self { state: Arc::new(Mutex::new(d)), pool, clock, events }
    }

    /// Events as they happen (a lagging subscriber misses the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Runs `f` on the dispatcher at the clock's time, persists what changed and publishes the
    /// events, all under the lock.
    async fn run(
        &self,
        f: impl FnOnce(&mut Dispatcher, chrono::DateTime<chrono::Utc>) -> DispatchResult<Vec<Event>>,
    ) -> DispatchResult<Vec<Event>> {
        let mut d = self.state.lock().await;
        let now = super::micros(self.clock.now());
        let result = f(&mut d, now);
        let changes = d.take_changes();
        // Even a failed operation may have changed nothing but is persisted consistently.
        if let Some(pool) = &self.pool {
            persist(pool, &changes, result.as_deref().unwrap_or_default()).await?;
        }
        let events = result?;
        for e in &events {
            // No subscribers is fine.
            let _ = self.events.send(e.clone());
        }
        Ok(events)
    }

    /// A read of the state.
    async fn read<T>(&self, f: impl FnOnce(&Dispatcher) -> T) -> T {
        f(&*self.state.lock().await)
    }

    /// Closes the SQLite file.
    pub async fn close(&self) {
        if let Some(pool) = &self.pool {
            pool.close().await;
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    id: String,
    data: &str,
) -> DispatchResult<T> {
    serde_json::from_str(data).map_err(|e| DispatchError::Corrupt {
        what,
        id,
        reason: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(what: &'static str, id: &str, value: &T) -> DispatchResult<String> {
    serde_json::to_string(value).map_err(|e| DispatchError::Corrupt {
        what,
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

async fn persist(pool: &SqlitePool, changes: &Changes, events: &[Event]) -> DispatchResult<()> {
    if changes.agents.is_empty() && changes.items.is_empty() && events.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(backend("begin"))?;
    for a in &changes.agents {
        sqlx::query("INSERT INTO dispatch_agents (id, data) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data")
            .bind(&a.id.0)
            .bind(encode("agent", &a.id.0, a)?)
            .execute(&mut *tx)
            .await
            .map_err(backend("save agent"))?;
    }
    for i in &changes.items {
        sqlx::query("INSERT INTO dispatch_items (id, state, data) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, data = excluded.data")
            .bind(&i.id.0)
            .bind(i.state.name())
            .bind(encode("item", &i.id.0, i)?)
            .execute(&mut *tx)
            .await
            .map_err(backend("save item"))?;
    }
    for e in events {
        sqlx::query("INSERT INTO dispatch_events (at, kind, data) VALUES (?, ?, ?)")
            .bind(e.at.to_rfc3339())
            .bind(e.kind.name())
            .bind(encode("event", e.kind.name(), e)?)
            .execute(&mut *tx)
            .await
            .map_err(backend("log event"))?;
    }
    tx.commit().await.map_err(backend("commit"))
}

impl DispatchBackend for EmbeddedBackend {
    async fn upsert_agent(&self, agent: HumanAgent) -> DispatchResult<()> {
        self.run(|d, _| {
            d.upsert_agent(agent);
            Ok(Vec::new())
        })
        .await
        .map(drop)
    }

    async fn set_status(&self, agent: &AgentId, status: AgentStatus) -> DispatchResult<Vec<Event>> {
        self.run(|d, now| d.set_status(agent, status, now)).await
    }

    async fn enqueue(&self, item: NewWorkItem) -> DispatchResult<Vec<Event>> {
        self.run(|d, now| d.enqueue(item, now)).await
    }

    async fn enqueue_many(&self, items: Vec<NewWorkItem>) -> DispatchResult<Vec<Event>> {
        self.run(|d, now| d.enqueue_many(items, now)).await
    }

    async fn tick(&self) -> DispatchResult<Vec<Event>> {
        self.run(|d, now| Ok(d.tick(now))).await
    }

    async fn accept(&self, item: &ItemId, agent: &AgentId) -> DispatchResult<Vec<Event>> {
        self.run(|d, now| d.accept(item, agent, now)).await
    }

    async fn decline(&self, item: &ItemId, agent: &AgentId) -> DispatchResult<Vec<Event>> {
        self.run(|d, now| d.decline(item, agent, now)).await
    }

    async fn transfer(
        &self,
        item: &ItemId,
        agent: &AgentId,
        route: Route,
        note: &str,
    ) -> DispatchResult<Vec<Event>> {
        self.run(|d, now| d.transfer(item, agent, route, None, note, now)).await
    }

    async fn complete(
        &self,
        item: &ItemId,
        agent: &AgentId,
        outcome: Outcome,
    ) -> DispatchResult<Vec<Event>> {
        self.run(|d, now| d.complete(item, agent, outcome, now)).await
    }

    async fn wait_estimate(&self, item: &ItemId) -> DispatchResult<WaitEstimate> {
        self.read(|d| d.wait_estimate(item)).await
    }

    async fn item(&self, id: &ItemId) -> DispatchResult<Option<WorkItem>> {
        Ok(self.read(|d| d.item(id).cloned()).await)
    }

    async fn agent(&self, id: &AgentId) -> DispatchResult<Option<HumanAgent>> {
        Ok(self.read(|d| d.agent(id).cloned()).await)
    }
}
