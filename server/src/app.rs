//! The HTTP API.
//!
//! | method | path | what |
//! |---|---|---|
//! | `POST` | `/v1/messages` | one customer message → the AI front line's reply |
//! | `GET` | `/healthz` | liveness |
//! | `PUT`, `GET`, `POST` | `/v1/dispatch/…` | the human-agent console ([`crate::console`]) |
//! | `GET`, `POST` | `/v1/tickets/…` | staff: department ticket queues ([`crate::tickets`]) |
//! | `POST` | `/v1/chat/completions` | the local chat model, OpenAI wire protocol (when served) |
//! | `POST` | `/v1/embeddings` | the sentence embedder, OpenAI wire protocol |
//!
//! Errors are JSON `{"error": {"code": "...", "message": "..."}}` with a 4xx status for anything
//! the caller can fix; internal failures are logged and answered with a generic 500.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fenliu_agent::{Channel, EscalationPackage, Language, RouteDecision};
use fenliu_orchestrator::{OrchestratorError, ReplyKind, TurnRequest};
use fenliu_tool::ToolCallRecord;
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::ServerConfig;
use crate::handoff::{Handoff, HandoffStatus};
use crate::runtime::Runtime;

/// Longest accepted customer id: ids are short; anything longer is not one.
const MAX_CUSTOMER_ID_LEN: usize = 128;

/// An error answered to an HTTP caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON of the right shape.
    #[error("{0}")]
    InvalidJson(String),
    /// The body is larger than the configured limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The content type is not JSON.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// A field has an invalid value.
    #[error("{message}")]
    Invalid {
        /// Machine-readable code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// The customer is not known to the shop.
    #[error("unknown customer {0:?}")]
    UnknownCustomer(String),
    /// The conversation does not exist for this customer.
    #[error("conversation {0:?} not found")]
    ConversationNotFound(String),
    /// Something named in the path does not exist.
    #[error("{message}")]
    NotFound {
        /// Machine-readable code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// The request conflicts with the current state (e.g. accepting an offer that lapsed).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// Anything else: logged, answered generically.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::UnknownCustomer(_) => (StatusCode::NOT_FOUND, "unknown_customer"),
            Self::ConversationNotFound(_) => (StatusCode::NOT_FOUND, "conversation_not_found"),
            Self::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The error body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let body =
            ErrorBody { error: ErrorDetail { code: code.into(), message: self.to_string() } };
        (status, Json(body)).into_response()
    }
}

pub(crate) fn json_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(limit)
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::Invalid { code: "invalid_request", message: e.body_text() }
        }
        other => ApiError::InvalidJson(other.body_text()),
    }
}

/// A customer message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// The customer's id in the shop. (Authentication in front of fenliu vouches for it.)
    pub customer_id: String,
    /// The message.
    pub text: String,
    /// The conversation to continue; omit to start one.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Where the message came from.
    #[serde(default)]
    pub channel: Channel,
}

/// The reply to a customer message.
#[derive(Debug, Serialize, Deserialize)]
pub struct MessageResponse {
    /// Conversation id to send with the next message.
    pub conversation_id: String,
    /// Text for the customer.
    pub reply: String,
    /// How the turn ended.
    pub kind: ReplyKind,
    /// Reply language.
    pub language: Language,
    /// The route chosen.
    pub route: String,
    /// The supervisor's confidence.
    pub confidence: f32,
    /// The full routing decision (stage, reason, runner-up routes).
    pub decision: RouteDecision,
    /// The agent that handled the turn.
    pub agent: Option<String>,
    /// Tools called in this turn, with arguments and results.
    pub tool_calls: Vec<ToolCallRecord>,
    /// The hand-off package, when a person takes over.
    pub escalation: Option<EscalationPackage>,
    /// Where the customer stands in the people's queue, when a person takes over.
    pub handoff: Option<HandoffStatus>,
}

struct AppState {
    runtime: Runtime,
    max_body_bytes: usize,
    handoff: Handoff,
}

/// The application router.
pub fn router(runtime: Runtime, config: &ServerConfig) -> Router {
    let served = crate::openai_api::ServedModels {
        chat: runtime.local_chat.clone(),
        embedder: runtime.embedder.clone(),
    };
    let handoff = Handoff::new(config.handoff.clone());
    let console = crate::console::routes(handoff.clone(), config.max_body_bytes);
    let tickets =
        crate::tickets::routes(runtime.orchestrator.conversations().clone(), config.max_body_bytes);
    let state = Arc::new(AppState { runtime, max_body_bytes: config.max_body_bytes, handoff });
    Router::new()
        .route("/v1/messages", post(post_message))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
        .merge(console)
        .merge(tickets)
        .merge(crate::openai_api::routes(served))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(tower::limit::ConcurrencyLimitLayer::new(config.max_concurrent_requests))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.request_timeout_secs),
        ))
        .layer(TraceLayer::new_for_http())
}

async fn post_message(
    State(state): State<Arc<AppState>>,
    body: Result<Json<MessageRequest>, JsonRejection>,
) -> Result<Json<MessageResponse>, ApiError> {
    let Json(request) = body.map_err(|r| json_rejection(r, state.max_body_bytes))?;
    let customer_id = request.customer_id.trim();
    if customer_id.is_empty() || customer_id.len() > MAX_CUSTOMER_ID_LEN {
        return Err(ApiError::Invalid {
            code: "invalid_customer_id",
            message: format!("customer_id must be 1-{MAX_CUSTOMER_ID_LEN} bytes"),
        });
    }
    if request.text.trim().is_empty() {
        return Err(ApiError::Invalid {
            code: "empty_message",
            message: "the message is empty".into(),
        });
    }
    let customer = state
        .runtime
        .customer(customer_id)
        .await
        .map_err(ApiError::Internal)?
        .ok_or_else(|| ApiError::UnknownCustomer(customer_id.to_owned()))?;
    let tier = customer.tier;
    let outcome = state
        .runtime
        .orchestrator
        .handle_turn(TurnRequest {
            conversation_id: request.conversation_id,
            customer,
            channel: request.channel,
            text: request.text,
        })
        .await
        .map_err(|e| match e {
            OrchestratorError::InvalidMessage(m) => {
                ApiError::Invalid { code: "invalid_message", message: m }
            }
            OrchestratorError::ConversationNotFound(id) => ApiError::ConversationNotFound(id),
            other => ApiError::Internal(other.into()),
        })?;
    // The specialist only returned the package; queueing it for a person happens here.
    let handoff = match &outcome.escalation {
        Some(package) => Some(
            state
                .handoff
                .escalate(&outcome.conversation_id, package, tier, request.channel)
                .await
                .map_err(ApiError::Internal)?,
        ),
        None => None,
    };
    Ok(Json(MessageResponse {
        conversation_id: outcome.conversation_id,
        reply: outcome.reply,
        kind: outcome.kind,
        language: outcome.language,
        route: outcome.decision.route.to_string(),
        confidence: outcome.decision.confidence,
        decision: outcome.decision,
        agent: outcome.agent,
        tool_calls: outcome.tool_calls,
        escalation: outcome.escalation,
        handoff,
    }))
}
