//! Handing escalated conversations to people: when a turn ends in `Escalate`, the server (not the
//! specialist, which only returns the package) queues the conversation in the human dispatcher
//! and tells the customer where they stand — queue position, expected wait, and a callback offer
//! when the wait is long.
//!
//! The dispatcher is configured under `[server.handoff]`: embedded (in process, persisted to a
//! SQLite file under `data/`) by default, or PostgreSQL shared by replicas. It is opened on the
//! first escalation.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use fenliu_agent::{Channel, CustomerTier, EscalationPackage};
use fenliu_dispatch::{
    Backend, DispatchBackend, DispatchError, EmbeddedBackend, EstimateMethod, ItemId, NewWorkItem,
    Policy, PostgresBackend, SystemClock,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

/// Where the dispatcher keeps its state, and when to offer a callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HandoffConfig {
    /// `embedded` (one process, SQLite file at `path`) or `postgres` (replicas share `url`).
    pub kind: HandoffKind,
    /// The embedded dispatcher's SQLite file; created with its directory if missing.
    pub path: PathBuf,
    /// PostgreSQL connection URL (required for `postgres`).
    pub url: Option<String>,
    /// Offer a callback when the expected wait exceeds this many seconds.
    pub callback_threshold_seconds: f64,
}

/// Dispatcher backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandoffKind {
    /// In process, persisted to SQLite.
    #[default]
    Embedded,
    /// PostgreSQL, for several replicas.
    Postgres,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            kind: HandoffKind::Embedded,
            path: PathBuf::from("data/dispatch.sqlite"),
            url: None,
            callback_threshold_seconds: Policy::default().callback_threshold_seconds,
        }
    }
}

/// What the customer is told about the hand-off (part of the `/v1/messages` response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffStatus {
    /// The work item in the dispatcher's queue (the conversation id).
    pub queue_item: String,
    /// Conversations ahead of this one for the same kind of contact (0 = next).
    pub position: usize,
    /// Expected wait in seconds; `None` when nobody who could answer is online.
    pub expected_wait_seconds: Option<f64>,
    /// `observed_rate` or `erlang_c`.
    pub method: String,
    /// Whether to offer the customer a callback instead of waiting.
    pub callback_offered: bool,
}

/// The dispatcher the server hands escalations to, opened on first use.
#[derive(Debug, Clone)]
pub struct Handoff {
    config: HandoffConfig,
    backend: Arc<OnceCell<Backend>>,
}

impl Handoff {
    /// A hand-off to the dispatcher `config` describes (nothing is opened yet).
    pub fn new(config: HandoffConfig) -> Self {
        Self { config, backend: Arc::new(OnceCell::new()) }
    }

    /// A hand-off to an already opened dispatcher (tests, embedding).
    pub fn with_backend(config: HandoffConfig, backend: Backend) -> Self {
        Self { config, backend: Arc::new(OnceCell::new_with(Some(backend))) }
    }

    /// The dispatcher, opening it on first use.
    pub async fn backend(&self) -> anyhow::Result<&Backend> {
        let config = self.config.clone();
        // Opening runs sqlx's migrator, whose future is not `Send` (a higher-ranked lifetime
        // sqlx cannot prove), while axum handlers must be: it runs on a blocking thread that
        // drives it on this runtime.
        self.backend
            .get_or_try_init(|| async move {
                let handle = tokio::runtime::Handle::current();
                let backend = tokio::task::spawn_blocking(move || handle.block_on(open(config)))
                    .await
                    .context("opening the dispatcher")??;
                tokio::spawn(keep_ticking(backend.clone()));
                anyhow::Ok(backend)
            })
            .await
    }

    /// Queues conversation `conversation_id`'s escalation and estimates the customer's wait. A
    /// conversation already waiting is not queued twice: its current estimate is returned.
    pub async fn escalate(
        &self,
        conversation_id: &str,
        package: &EscalationPackage,
        tier: CustomerTier,
        channel: Channel,
    ) -> anyhow::Result<HandoffStatus> {
        let backend = self.backend().await?.clone();
        let item = NewWorkItem::from_escalation(conversation_id, package.clone(), tier, channel);
        let threshold = self.config.callback_threshold_seconds;
        // On a task of its own with owned data (see `backend`).
        tokio::spawn(queue(backend, item, threshold)).await.context("queueing the escalation")?
    }
}

async fn queue(
    backend: Backend,
    item: NewWorkItem,
    callback_threshold_seconds: f64,
) -> anyhow::Result<HandoffStatus> {
    let id: ItemId = item.id.clone();
    match backend.enqueue(item).await {
        Ok(_) | Err(DispatchError::Duplicate { .. }) => {}
        Err(e) => return Err(e).context("queueing the escalation"),
    }
    let estimate = match backend.wait_estimate(&id).await {
        Ok(e) => e,
        // Already offered to (or taken by) a person: next in line.
        Err(DispatchError::WrongState { .. }) => {
            return Ok(HandoffStatus {
                queue_item: id.0,
                position: 0,
                expected_wait_seconds: Some(0.0),
                method: "assigned".into(),
                callback_offered: false,
            });
        }
        Err(e) => return Err(e).context("estimating the wait"),
    };
    let wait = estimate.expected_wait_seconds;
    Ok(HandoffStatus {
        queue_item: id.0,
        position: estimate.position,
        expected_wait_seconds: wait.is_finite().then_some(wait.round()),
        method: match estimate.method {
            EstimateMethod::ObservedRate => "observed_rate",
            EstimateMethod::ErlangC => "erlang_c",
        }
        .into(),
        callback_offered: !wait.is_finite() || wait > callback_threshold_seconds,
    })
}

/// How often the dispatcher expires offers, runs timers and makes offers.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the dispatcher's tick for as long as the runtime lives.
async fn keep_ticking(backend: Backend) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = backend.tick().await {
            tracing::warn!(error = %e, "dispatcher tick failed");
        }
    }
}

async fn open(config: HandoffConfig) -> anyhow::Result<Backend> {
    let policy = Policy {
        callback_threshold_seconds: config.callback_threshold_seconds,
        ..Policy::default()
    };
    let clock = Arc::new(SystemClock);
    match config.kind {
        HandoffKind::Embedded => {
            if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let b = EmbeddedBackend::open(&config.path, policy, clock)
                .await
                .with_context(|| format!("opening the dispatcher at {}", config.path.display()))?;
            Ok(Backend::Embedded(b))
        }
        HandoffKind::Postgres => {
            let url = config
                .url
                .as_deref()
                .context("server.handoff.url is required for kind = \"postgres\"")?;
            let b = PostgresBackend::connect(url, policy, clock)
                .await
                .context("connecting the dispatcher to PostgreSQL")?;
            Ok(Backend::Postgres(b))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use fenliu_agent::{EscalationReason, Language, Priority, Route, Sentiment};

    use super::*;

    fn package(route: Route, priority: Priority) -> EscalationPackage {
        EscalationPackage {
            reason: EscalationReason::CustomerRequest,
            priority,
            route,
            language: Language::En,
            agent: "complaint".into(),
            summary: "wants a person".into(),
            slots: serde_json::json!({}),
            sentiment: Sentiment::Negative,
            tools_tried: Vec::new(),
            message_to_customer: "A colleague will take over.".into(),
        }
    }

    #[tokio::test]
    async fn escalations_are_queued_in_order_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = HandoffConfig {
            path: dir.path().join("data/dispatch.sqlite"),
            ..HandoffConfig::default()
        };
        let h = Handoff::new(config.clone());
        let first = h
            .escalate(
                "c-1",
                &package(Route::ORDER, Priority::Normal),
                CustomerTier::Regular,
                Channel::Web,
            )
            .await
            .unwrap();
        assert_eq!(first.position, 0);
        // Nobody online yet: no finite wait, a callback offered.
        assert_eq!(first.expected_wait_seconds, None);
        assert!(first.callback_offered);
        let second = h
            .escalate(
                "c-2",
                &package(Route::ORDER, Priority::Normal),
                CustomerTier::Regular,
                Channel::Web,
            )
            .await
            .unwrap();
        assert_eq!(second.position, 1);
        // A VIP goes ahead of both.
        let vip = h
            .escalate(
                "c-3",
                &package(Route::ORDER, Priority::Normal),
                CustomerTier::Vip,
                Channel::Web,
            )
            .await
            .unwrap();
        assert_eq!(vip.position, 0);
        // The same conversation escalating again is not queued twice.
        let again = h
            .escalate(
                "c-2",
                &package(Route::ORDER, Priority::Normal),
                CustomerTier::Regular,
                Channel::Web,
            )
            .await
            .unwrap();
        assert_eq!(again.position, 2);
        if let Backend::Embedded(b) = h.backend().await.unwrap() {
            b.close().await;
        }
        // Another process start: the queue is still there.
        let h = Handoff::new(config);
        let b = h.backend().await.unwrap();
        assert!(b.item(&"c-1".into()).await.unwrap().is_some());
        assert_eq!(b.wait_estimate(&"c-1".into()).await.unwrap().position, 1, "behind the VIP");
    }

    #[tokio::test]
    async fn a_short_wait_offers_no_callback_and_bad_configuration_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = HandoffConfig {
            path: dir.path().join("dispatch.sqlite"),
            callback_threshold_seconds: 1e9,
            ..HandoffConfig::default()
        };
        let h = Handoff::new(config);
        let b = h.backend().await.unwrap();
        b.upsert_agent(
            fenliu_dispatch::HumanAgent::new(
                "ann",
                "Ann",
                // Counted as a server by Erlang C, but not for order work: the background tick
                // cannot offer the item before the estimate is read.
                fenliu_dispatch::Skills::default()
                    .route(Route::COMPLAINT, 4)
                    .language(Language::En, 5),
            )
            .with_status(fenliu_dispatch::AgentStatus::Online),
        )
        .await
        .unwrap();
        let s = h
            .escalate(
                "c-1",
                &package(Route::ORDER, Priority::High),
                CustomerTier::Regular,
                Channel::Web,
            )
            .await
            .unwrap();
        assert_eq!(s.method, "erlang_c");
        assert!(s.expected_wait_seconds.is_some());
        assert!(!s.callback_offered);
        // PostgreSQL without a URL; a file where a directory should be.
        let bad =
            Handoff::new(HandoffConfig { kind: HandoffKind::Postgres, ..HandoffConfig::default() });
        assert!(bad.backend().await.is_err());
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let bad = Handoff::new(HandoffConfig {
            path: file.join("dispatch.sqlite"),
            ..HandoffConfig::default()
        });
        assert!(
            bad.escalate(
                "c-9",
                &package(Route::ORDER, Priority::Normal),
                CustomerTier::Regular,
                Channel::Web
            )
            .await
            .is_err()
        );
    }
}
