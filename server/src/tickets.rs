//! Tickets as routed work, for staff: department queues, claiming and assigning, the lifecycle,
//! transfers between departments, history; and the two background jobs the server runs on a
//! timer — the SLA sweep and the delivery of customer notifications into their conversations.
//!
//! | method | path | what |
//! |---|---|---|
//! | `GET` | `/v1/tickets/queues/{department}?status=&limit=` | a department's queue, most urgent first (without `status`: everything not closed) |
//! | `GET` | `/v1/tickets/{id}` | one ticket with its history |
//! | `GET` | `/v1/tickets/{id}/history` | its history alone |
//! | `POST` | `/v1/tickets/{id}/assign` | `{agent_id, department, assignee?}`: claim (no `assignee`) or assign |
//! | `POST` | `/v1/tickets/{id}/status` | `{agent_id, department, status, note?}`: move along the lifecycle |
//! | `POST` | `/v1/tickets/{id}/transfer` | `{agent_id, department, to, note}`: hand to another department |
//!
//! `department` in a body is the queue the person works from: acting on a ticket of another queue
//! is `409 wrong_department`. People are recorded as `human:{agent_id}`. The rules (which moves are
//! allowed, what a transfer resets, who hears of what) are the store's, shared by every backend
//! ([`fenliu_tools_commerce::store::apply_ticket_update`]). Errors use the API's JSON shape:
//! `404 unknown_ticket | unknown_department`, `409 wrong_state | wrong_department`,
//! `422 invalid_id | invalid_status | invalid_request`, `413 payload_too_large`.
//!
//! Like the human-agent console, these endpoints trust whatever authenticates staff in front of
//! fenliu.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use fenliu_agent::{ConversationStore, Speaker, Turn};
use fenliu_store_sql::SqlStore;
use fenliu_tools_commerce::store::MAX_QUEUE_LIMIT;
use fenliu_tools_commerce::{
    Department, OrderStore, SlaAlert, StoreError, Ticket, TicketChange, TicketEvent,
    TicketNotification, TicketStatus, TicketStore, TicketUpdate, parse_ticket_id, ticket_id,
};
use serde::{Deserialize, Serialize};

use crate::app::{ApiError, json_rejection};

/// Longest accepted id of a person.
const MAX_ID_LEN: usize = 128;

/// Queue length when the caller names none.
const DEFAULT_QUEUE_LIMIT: usize = 100;

/// Notifications one delivery round claims.
const DELIVERY_BATCH: usize = 50;

/// The agent name notification turns carry in the conversation.
pub const NOTIFIER: &str = "tickets";

/// The background jobs' timing (`[server.tickets]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketsConfig {
    /// Seconds between SLA sweeps.
    pub sla_sweep_seconds: u64,
    /// Share of the time from creation to the SLA due time after which a reminder is emitted.
    pub sla_reminder_fraction: f64,
    /// Seconds between deliveries of customer notifications.
    pub notify_interval_seconds: u64,
    /// Seconds a delivery round holds the notifications it claimed (a crashed round's are
    /// delivered by the next one after this).
    pub notify_lease_seconds: u64,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        Self {
            sla_sweep_seconds: 60,
            sla_reminder_fraction: 0.8,
            notify_interval_seconds: 2,
            notify_lease_seconds: 60,
        }
    }
}

impl TicketsConfig {
    /// Checks the values, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=86_400).contains(&self.sla_sweep_seconds) {
            return Err("server.tickets.sla_sweep_seconds must be in 1..=86400".into());
        }
        if !(self.sla_reminder_fraction > 0.0 && self.sla_reminder_fraction <= 1.0) {
            return Err(format!(
                "server.tickets.sla_reminder_fraction must be in (0, 1], got {}",
                self.sla_reminder_fraction
            ));
        }
        if !(1..=3_600).contains(&self.notify_interval_seconds) {
            return Err("server.tickets.notify_interval_seconds must be in 1..=3600".into());
        }
        if !(1..=86_400).contains(&self.notify_lease_seconds) {
            return Err("server.tickets.notify_lease_seconds must be in 1..=86400".into());
        }
        Ok(())
    }
}

/// The staff routes over the shop's store.
pub fn routes(store: SqlStore, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/tickets/queues/{department}", get(get_queue))
        .route("/v1/tickets/{id}", get(get_ticket))
        .route("/v1/tickets/{id}/history", get(get_history))
        .route("/v1/tickets/{id}/assign", post(assign))
        .route("/v1/tickets/{id}/status", post(change_status))
        .route("/v1/tickets/{id}/transfer", post(transfer))
        .with_state(Desk { store, max_body_bytes })
}

#[derive(Clone)]
struct Desk {
    store: SqlStore,
    max_body_bytes: usize,
}

/// Query of a queue read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// Only tickets in this status (`open`, `assigned`, `in_progress`, …).
    #[serde(default)]
    pub status: Option<String>,
    /// At most this many (1–500, default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A department's queue.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueResponse {
    /// The department.
    pub department: Department,
    /// Its tickets, most urgent first.
    pub tickets: Vec<Ticket>,
}

/// A ticket's history.
#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The ticket.
    pub ticket_id: String,
    /// Its entries, oldest first.
    pub history: Vec<TicketEvent>,
}

/// Claiming or assigning a ticket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// The person acting.
    pub agent_id: String,
    /// The queue they work from.
    pub department: Department,
    /// Who gets it; the person acting when omitted (a claim).
    #[serde(default)]
    pub assignee: Option<String>,
}

/// A status change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// The person acting.
    pub agent_id: String,
    /// The queue they work from.
    pub department: Department,
    /// The new status.
    pub status: TicketStatus,
    /// Why (kept in the history).
    #[serde(default)]
    pub note: String,
}

/// A transfer to another department.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The person acting.
    pub agent_id: String,
    /// The queue they work from.
    pub department: Department,
    /// The receiving department.
    pub to: Department,
    /// Why (required, kept in the history).
    pub note: String,
}

type Body<T> = Result<Json<T>, JsonRejection>;

fn body<T>(d: &Desk, b: Body<T>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|r| json_rejection(r, d.max_body_bytes))
}

fn person(raw: &str) -> Result<String, ApiError> {
    let id = raw.trim();
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(ApiError::Invalid {
            code: "invalid_id",
            message: format!("agent ids are 1-{MAX_ID_LEN} bytes without control characters"),
        });
    }
    Ok(format!("human:{id}"))
}

/// The normalised ticket id of a path segment.
fn ticket(raw: &str) -> Result<String, ApiError> {
    parse_ticket_id(raw).map(ticket_id).ok_or_else(|| ApiError::Invalid {
        code: "invalid_id",
        message: "ticket ids look like T-000042".into(),
    })
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => {
            ApiError::NotFound { code: "unknown_ticket", message: e.to_string() }
        }
        StoreError::InvalidState { .. } => {
            ApiError::Conflict { code: "wrong_state", message: e.to_string() }
        }
        StoreError::WrongDepartment { .. } => {
            ApiError::Conflict { code: "wrong_department", message: e.to_string() }
        }
        StoreError::InvalidInput(message) => ApiError::Invalid { code: "invalid_request", message },
        other => ApiError::Internal(other.into()),
    }
}

async fn get_queue(
    State(d): State<Desk>,
    Path(raw): Path<String>,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Json<QueueResponse>, ApiError> {
    let department = Department::parse(&raw).ok_or_else(|| ApiError::NotFound {
        code: "unknown_department",
        message: format!(
            "unknown department {:?}; known: after_sales, logistics, quality, finance, \
             customer_care",
            raw.chars().take(40).collect::<String>()
        ),
    })?;
    let Query(q) =
        query.map_err(|e| ApiError::Invalid { code: "invalid_request", message: e.body_text() })?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(TicketStatus::parse(s).ok_or_else(|| {
            ApiError::Invalid {
                code: "invalid_status",
                message: "status is one of open, assigned, in_progress, waiting_for_customer, \
                      resolved, closed"
                    .into(),
            }
        })?),
    };
    let limit = q.limit.unwrap_or(DEFAULT_QUEUE_LIMIT);
    if !(1..=MAX_QUEUE_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid {
            code: "invalid_request",
            message: format!("limit is 1-{MAX_QUEUE_LIMIT}"),
        });
    }
    let tickets = d.store.department_queue(department, status, limit).await.map_err(store_error)?;
    Ok(Json(QueueResponse { department, tickets }))
}

async fn load(d: &Desk, raw: &str) -> Result<Ticket, ApiError> {
    let id = ticket(raw)?;
    d.store.ticket(&id).await.map_err(store_error)?.ok_or_else(|| ApiError::NotFound {
        code: "unknown_ticket",
        message: format!("ticket {id} not found"),
    })
}

async fn get_ticket(
    State(d): State<Desk>,
    Path(raw): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    Ok(Json(load(&d, &raw).await?))
}

async fn get_history(
    State(d): State<Desk>,
    Path(raw): Path<String>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let t = load(&d, &raw).await?;
    Ok(Json(HistoryResponse { ticket_id: t.id, history: t.history }))
}

async fn apply(
    d: &Desk,
    raw: &str,
    change: TicketChange,
    actor: String,
    note: String,
    department: Department,
) -> Result<Json<Ticket>, ApiError> {
    let id = ticket(raw)?;
    let update = TicketUpdate { change, actor, note, at: Utc::now(), department: Some(department) };
    let ticket = d.store.change_ticket(&id, &update).await.map_err(store_error)?;
    Ok(Json(ticket))
}

async fn assign(
    State(d): State<Desk>,
    Path(raw): Path<String>,
    b: Body<AssignBody>,
) -> Result<Json<Ticket>, ApiError> {
    let b = body(&d, b)?;
    let actor = person(&b.agent_id)?;
    let assignee = match b.assignee.as_deref() {
        Some(other) => person(other)?,
        None => actor.clone(),
    };
    apply(&d, &raw, TicketChange::Assign { assignee }, actor, String::new(), b.department).await
}

async fn change_status(
    State(d): State<Desk>,
    Path(raw): Path<String>,
    b: Body<StatusBody>,
) -> Result<Json<Ticket>, ApiError> {
    let b = body(&d, b)?;
    let actor = person(&b.agent_id)?;
    apply(&d, &raw, TicketChange::Status { to: b.status }, actor, b.note, b.department).await
}

async fn transfer(
    State(d): State<Desk>,
    Path(raw): Path<String>,
    b: Body<TransferBody>,
) -> Result<Json<Ticket>, ApiError> {
    let b = body(&d, b)?;
    let actor = person(&b.agent_id)?;
    apply(&d, &raw, TicketChange::Transfer { to: b.to }, actor, b.note, b.department).await
}

/// One SLA sweep: emits (logs) every reminder and breach now due, each once per ticket.
pub async fn sweep_once(store: &SqlStore, reminder_fraction: f64) -> anyhow::Result<Vec<SlaAlert>> {
    let alerts = store.sweep_ticket_sla(Utc::now(), reminder_fraction).await?;
    for a in &alerts {
        tracing::warn!(
            ticket = %a.ticket_id,
            kind = ?a.kind,
            department = a.department.as_str(),
            priority = ?a.priority,
            status = a.status.as_str(),
            assignee = a.assignee.as_deref().unwrap_or("-"),
            due = %a.sla_due_at,
            "ticket SLA event"
        );
    }
    Ok(alerts)
}

/// One delivery round: claims pending notifications and appends each to its conversation as an
/// agent turn (agent [`NOTIFIER`]) in the customer's language, then acknowledges it. A turn
/// already appended by a round that died before its acknowledgement is not appended twice.
/// Returns how many were acknowledged.
pub async fn deliver_once(store: &SqlStore, lease: Duration) -> anyhow::Result<usize> {
    let lease = chrono::Duration::from_std(lease)?;
    let claimed = store.claim_ticket_notifications(Utc::now(), lease, DELIVERY_BATCH).await?;
    let mut delivered = 0;
    for n in claimed {
        match deliver(store, &n).await {
            Ok(()) => {
                if store.ack_ticket_notification(n.id, Utc::now()).await? {
                    delivered += 1;
                }
            }
            // Left claimed: the next round after the lease tries again.
            Err(e) => tracing::warn!(notification = n.id, error = %e, "ticket notification failed"),
        }
    }
    Ok(delivered)
}

async fn deliver(store: &SqlStore, n: &TicketNotification) -> anyhow::Result<()> {
    let Some(mut state) = ConversationStore::load(store, &n.conversation_id).await? else {
        tracing::warn!(notification = n.id, ticket = %n.ticket_id, "conversation gone; dropped");
        return Ok(());
    };
    if state.customer_id != n.customer_id {
        tracing::warn!(notification = n.id, ticket = %n.ticket_id, "conversation of another customer; dropped");
        return Ok(());
    }
    let language =
        OrderStore::customer(store, &n.customer_id).await?.map(|c| c.language).unwrap_or_default();
    let turn = Turn {
        speaker: Speaker::Agent,
        text: n.message(&language),
        at: n.created_at,
        agent: Some(NOTIFIER.to_owned()),
    };
    if !state.turns.contains(&turn) {
        state.push_turn(turn);
        state.updated_at = Utc::now();
        ConversationStore::save(store, &state).await?;
    }
    Ok(())
}

/// Runs the SLA sweep and the notification delivery on their timers for as long as the runtime
/// lives (`serve` starts it).
pub fn spawn_background(store: SqlStore, config: TicketsConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(Duration::from_secs(config.sla_sweep_seconds));
        let mut notify = tokio::time::interval(Duration::from_secs(config.notify_interval_seconds));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        notify.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lease = Duration::from_secs(config.notify_lease_seconds);
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    if let Err(e) = sweep_once(&store, config.sla_reminder_fraction).await {
                        tracing::warn!(error = %e, "ticket SLA sweep failed");
                    }
                }
                _ = notify.tick() => {
                    if let Err(e) = deliver_once(&store, lease).await {
                        tracing::warn!(error = %e, "ticket notification delivery failed");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn config_is_checked() {
        assert!(TicketsConfig::default().validate().is_ok());
        for bad in [
            TicketsConfig { sla_sweep_seconds: 0, ..TicketsConfig::default() },
            TicketsConfig { sla_reminder_fraction: 0.0, ..TicketsConfig::default() },
            TicketsConfig { sla_reminder_fraction: f64::NAN, ..TicketsConfig::default() },
            TicketsConfig { notify_interval_seconds: 0, ..TicketsConfig::default() },
            TicketsConfig { notify_lease_seconds: 0, ..TicketsConfig::default() },
        ] {
            assert!(bad.validate().unwrap_err().contains("server.tickets."));
        }
    }

    #[test]
    fn people_and_ticket_ids_are_checked() {
        assert_eq!(person(" ann ").unwrap(), "human:ann");
        assert!(
            person("").is_err() && person(&"a".repeat(200)).is_err() && person("a\nb").is_err()
        );
        assert_eq!(ticket("t-7").unwrap(), "T-000007");
        assert!(ticket("' OR 1=1").is_err() && ticket("T-").is_err());
    }
}
