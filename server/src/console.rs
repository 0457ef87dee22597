//! The minimum a human-agent console needs from the dispatcher over HTTP:
//!
//! | method | path | what |
//! |---|---|---|
//! | `PUT` | `/v1/dispatch/agents/{id}` | add or update a person (skills, capacity) |
//! | `POST` | `/v1/dispatch/agents/{id}/status` | `online`, `away`, `offline` |
//! | `GET` | `/v1/dispatch/items/{id}` | a queued or held conversation, with its wait estimate |
//! | `POST` | `/v1/dispatch/items/{id}/accept` | the person accepts the offer |
//! | `POST` | `/v1/dispatch/items/{id}/decline` | the person declines it (offered to someone else) |
//! | `POST` | `/v1/dispatch/items/{id}/transfer` | the person hands it to another route with a note (it re-queues keeping its SLA clocks, package and history) |
//! | `POST` | `/v1/dispatch/items/{id}/complete` | the person closes it (wrap-up follows) |
//!
//! Offers are made by the dispatcher's tick, which the hand-off runs every second. Errors use the
//! API's JSON shape: `404 unknown_item | unknown_agent`, `409 wrong_state | not_holder`,
//! `422 invalid_id | invalid_request`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fenliu_agent::Route;
use fenliu_dispatch::{
    AgentId, AgentStatus, Capacity, DispatchBackend, DispatchError, Event, HumanAgent, ItemId,
    Outcome, Skills, WaitEstimate, WorkItem,
};
use serde::{Deserialize, Serialize};

use crate::app::{ApiError, json_rejection};
use crate::handoff::Handoff;

/// Longest accepted id of a person or a conversation.
const MAX_ID_LEN: usize = 128;

/// The console's routes, sharing the hand-off's dispatcher.
pub fn routes(handoff: Handoff, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/dispatch/agents/{id}", put(put_agent))
        .route("/v1/dispatch/agents/{id}/status", post(post_status))
        .route("/v1/dispatch/items/{id}", get(get_item))
        .route("/v1/dispatch/items/{id}/accept", post(accept))
        .route("/v1/dispatch/items/{id}/decline", post(decline))
        .route("/v1/dispatch/items/{id}/transfer", post(transfer))
        .route("/v1/dispatch/items/{id}/complete", post(complete))
        .with_state(Console { handoff, max_body_bytes })
}

#[derive(Clone)]
struct Console {
    handoff: Handoff,
    max_body_bytes: usize,
}

/// A person's profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    /// Display name.
    pub name: String,
    /// Routes, languages and products with levels 1–5.
    pub skills: Skills,
    /// Conversations held at once per medium.
    pub capacity: Capacity,
    /// Member of the overflow team.
    #[serde(default)]
    pub overflow: bool,
}

/// A status change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `online`, `away` or `offline`.
    pub status: AgentStatus,
}

/// Who acts on an item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorBody {
    /// The person.
    pub agent_id: String,
}

/// Handing an accepted item to another route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The person who holds it.
    pub agent_id: String,
    /// The route whose people should take it over (e.g. `complaint`).
    pub route: String,
    /// Context for the next person (1–2,000 characters).
    pub note: String,
}

/// Longest transfer note.
const MAX_NOTE_CHARS: usize = 2_000;

/// Closing an item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The person.
    pub agent_id: String,
    /// Resolved without the customer coming back.
    pub resolved_first_contact: bool,
    /// The customer's rating, 1–5.
    #[serde(default)]
    pub csat: Option<u8>,
}

/// What an action changed.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventsResponse {
    /// The dispatcher's events, in order.
    pub events: Vec<Event>,
}

/// A conversation in the dispatcher.
#[derive(Debug, Serialize)]
pub struct ItemResponse {
    /// The work item (state, holder, SLA due times, the hand-off package).
    pub item: WorkItem,
    /// Its wait estimate while queued.
    pub wait: Option<WaitEstimate>,
}

type Body<T> = Result<Json<T>, JsonRejection>;

fn body<T>(c: &Console, b: Body<T>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|r| json_rejection(r, c.max_body_bytes))
}

fn id(raw: &str) -> Result<String, ApiError> {
    let id = raw.trim();
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(ApiError::Invalid {
            code: "invalid_id",
            message: format!("ids are 1-{MAX_ID_LEN} bytes without control characters"),
        });
    }
    Ok(id.to_owned())
}

fn dispatch_error(e: DispatchError) -> ApiError {
    match e {
        DispatchError::UnknownItem { .. } => {
            ApiError::NotFound { code: "unknown_item", message: e.to_string() }
        }
        DispatchError::UnknownAgent { .. } => {
            ApiError::NotFound { code: "unknown_agent", message: e.to_string() }
        }
        DispatchError::WrongState { .. } => {
            ApiError::Conflict { code: "wrong_state", message: e.to_string() }
        }
        DispatchError::NotHolder { .. } => {
            ApiError::Conflict { code: "not_holder", message: e.to_string() }
        }
        DispatchError::Duplicate { .. } => {
            ApiError::Conflict { code: "duplicate", message: e.to_string() }
        }
        other => ApiError::Internal(other.into()),
    }
}

async fn put_agent(
    State(c): State<Console>,
    Path(raw): Path<String>,
    b: Body<AgentBody>,
) -> Result<Json<EventsResponse>, ApiError> {
    let agent_id = id(&raw)?;
    let b = body(&c, b)?;
    if b.name.trim().is_empty() || b.name.len() > MAX_ID_LEN {
        return Err(ApiError::Invalid {
            code: "invalid_request",
            message: format!("name must be 1-{MAX_ID_LEN} bytes"),
        });
    }
    let levels = b.skills.routes.values().chain(b.skills.languages.values());
    if levels.chain(b.skills.products.values()).any(|l| !(1..=5).contains(l)) {
        return Err(ApiError::Invalid {
            code: "invalid_request",
            message: "skill levels are 1-5".into(),
        });
    }
    let backend = c.handoff.backend().await.map_err(ApiError::Internal)?;
    let mut agent = HumanAgent::new(agent_id, b.name, b.skills).with_capacity(b.capacity);
    agent.overflow = b.overflow;
    if let Some(old) = backend.agent(&agent.id).await.map_err(dispatch_error)? {
        agent.status = old.status;
    }
    backend.upsert_agent(agent).await.map_err(dispatch_error)?;
    Ok(Json(EventsResponse { events: Vec::new() }))
}

async fn post_status(
    State(c): State<Console>,
    Path(raw): Path<String>,
    b: Body<StatusBody>,
) -> Result<Json<EventsResponse>, ApiError> {
    let agent = AgentId(id(&raw)?);
    let b = body(&c, b)?;
    if b.status == AgentStatus::WrapUp {
        return Err(ApiError::Invalid {
            code: "invalid_request",
            message: "wrap-up follows a closed conversation; it is not set by hand".into(),
        });
    }
    let backend = c.handoff.backend().await.map_err(ApiError::Internal)?;
    let events = backend.set_status(&agent, b.status).await.map_err(dispatch_error)?;
    Ok(Json(EventsResponse { events }))
}

async fn get_item(
    State(c): State<Console>,
    Path(raw): Path<String>,
) -> Result<Json<ItemResponse>, ApiError> {
    let item_id = ItemId(id(&raw)?);
    let backend = c.handoff.backend().await.map_err(ApiError::Internal)?;
    let item = backend
        .item(&item_id)
        .await
        .map_err(dispatch_error)?
        .ok_or_else(|| dispatch_error(DispatchError::UnknownItem { item: item_id.clone() }))?;
    let wait = backend.wait_estimate(&item_id).await.ok();
    Ok(Json(ItemResponse { item, wait }))
}

async fn accept(
    State(c): State<Console>,
    Path(raw): Path<String>,
    b: Body<ActorBody>,
) -> Result<Json<EventsResponse>, ApiError> {
    let item = ItemId(id(&raw)?);
    let agent = AgentId(id(&body(&c, b)?.agent_id)?);
    let backend = c.handoff.backend().await.map_err(ApiError::Internal)?;
    let events = backend.accept(&item, &agent).await.map_err(dispatch_error)?;
    Ok(Json(EventsResponse { events }))
}

async fn decline(
    State(c): State<Console>,
    Path(raw): Path<String>,
    b: Body<ActorBody>,
) -> Result<Json<EventsResponse>, ApiError> {
    let item = ItemId(id(&raw)?);
    let agent = AgentId(id(&body(&c, b)?.agent_id)?);
    let backend = c.handoff.backend().await.map_err(ApiError::Internal)?;
    let events = backend.decline(&item, &agent).await.map_err(dispatch_error)?;
    Ok(Json(EventsResponse { events }))
}

async fn transfer(
    State(c): State<Console>,
    Path(raw): Path<String>,
    b: Body<TransferBody>,
) -> Result<Json<EventsResponse>, ApiError> {
    let item = ItemId(id(&raw)?);
    let b = body(&c, b)?;
    let agent = AgentId(id(&b.agent_id)?);
    let route = Route::new(b.route.clone()).map_err(|e| ApiError::Invalid {
        code: "invalid_request",
        message: format!("route: {e}"),
    })?;
    let note = b.note.trim();
    if note.is_empty() || note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::Invalid {
            code: "invalid_request",
            message: format!("note is required, at most {MAX_NOTE_CHARS} characters"),
        });
    }
    let backend = c.handoff.backend().await.map_err(ApiError::Internal)?;
    let events = backend.transfer(&item, &agent, route, note).await.map_err(dispatch_error)?;
    Ok(Json(EventsResponse { events }))
}

async fn complete(
    State(c): State<Console>,
    Path(raw): Path<String>,
    b: Body<CompleteBody>,
) -> Result<Json<EventsResponse>, ApiError> {
    let item = ItemId(id(&raw)?);
    let b = body(&c, b)?;
    let agent = AgentId(id(&b.agent_id)?);
    if b.csat.is_some_and(|c| !(1..=5).contains(&c)) {
        return Err(ApiError::Invalid { code: "invalid_request", message: "csat is 1-5".into() });
    }
    let outcome = Outcome { resolved_first_contact: b.resolved_first_contact, csat: b.csat };
    let backend = c.handoff.backend().await.map_err(ApiError::Internal)?;
    let events = backend.complete(&item, &agent, outcome).await.map_err(dispatch_error)?;
    Ok(Json(EventsResponse { events }))
}
