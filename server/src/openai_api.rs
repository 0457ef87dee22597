//! fenliu's own models over the OpenAI wire protocol: `POST /v1/chat/completions` (JSON and SSE
//! streaming) and `POST /v1/embeddings`, so one fenliu instance can serve its local models to
//! others — and our hosted client can be tested end to end against a real model.
//!
//! Only what the local models support is accepted: text messages, sampling options, stop
//! sequences, seed, `response_format` JSON schema. Tool definitions are refused with 400 rather
//! than silently ignored.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use fenliu_agent::{
    ChatMessage, ChatRequest, ChatRole, DynChatModel, FinishReason, ResponseFormat, StreamEvent,
};
use fenliu_knowledge::DynEmbedder;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

/// The models served.
#[derive(Clone)]
pub struct ServedModels {
    /// The chat model behind `/v1/chat/completions`, if one is served.
    pub chat: Option<Arc<dyn DynChatModel>>,
    /// The embedder behind `/v1/embeddings`.
    pub embedder: Arc<dyn DynEmbedder>,
}

/// Most texts one embeddings request may carry.
const MAX_EMBED_INPUTS: usize = 256;

/// The `/v1` routes.
pub fn routes(models: ServedModels) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .with_state(models)
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "code"}}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let kind = if status.is_server_error() { "server_error" } else { "invalid_request_error" };
    (status, Json(json!({"error": {"message": message.into(), "type": kind, "code": code}})))
        .into_response()
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default, alias = "max_completion_tokens")]
    max_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    tools: Option<Value>,
}

fn text_of(content: Option<Value>) -> Result<String, String> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        // The array form: only text parts are supported.
        Some(Value::Array(parts)) => parts
            .into_iter()
            .map(|p| {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str))
                {
                    (Some("text"), Some(t)) => Ok(t.to_owned()),
                    _ => Err("only text content parts are supported".to_owned()),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("")),
        Some(_) => Err("message content must be a string or an array of text parts".into()),
    }
}

fn to_request(w: WireRequest) -> Result<ChatRequest, String> {
    if w.tools.as_ref().is_some_and(|t| !t.is_null() && t.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err("this model does not support tools".into());
    }
    if w.messages.is_empty() {
        return Err("messages must not be empty".into());
    }
    let mut messages = Vec::with_capacity(w.messages.len());
    for m in w.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => ChatRole::System,
            "user" => ChatRole::User,
            "assistant" => ChatRole::Assistant,
            other => return Err(format!("unsupported role {other:?}")),
        };
        let content = text_of(m.content)?;
        messages.push(ChatMessage { role, content, tool_calls: Vec::new(), tool_call_id: None });
    }
    let stop = match w.stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or("stop must be strings"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("stop must be a string or an array of strings".into()),
    };
    let response_format = match w.response_format {
        None | Some(Value::Null) => ResponseFormat::Text,
        Some(f) => match f.get("type").and_then(Value::as_str) {
            Some("text") => ResponseFormat::Text,
            Some("json_schema") => {
                let spec = f.get("json_schema").ok_or("json_schema is missing")?;
                ResponseFormat::JsonSchema {
                    name: spec.get("name").and_then(Value::as_str).unwrap_or("answer").to_owned(),
                    schema: spec.get("schema").cloned().unwrap_or(json!({"type": "object"})),
                    strict: spec.get("strict").and_then(Value::as_bool).unwrap_or(false),
                }
            }
            Some("json_object") => ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: json!({"type": "object"}),
                strict: false,
            },
            _ => return Err("unsupported response_format".into()),
        },
    };
    Ok(ChatRequest {
        messages,
        response_format,
        temperature: w.temperature,
        top_p: w.top_p,
        max_tokens: w.max_tokens,
        stop,
        seed: w.seed,
        ..ChatRequest::default()
    })
}

fn finish(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

fn model_error(e: fenliu_agent::ModelError) -> Response {
    use fenliu_agent::ModelError as E;
    match e {
        E::InvalidRequest(m) => error(StatusCode::BAD_REQUEST, "invalid_request", m),
        E::Timeout(_) => error(StatusCode::GATEWAY_TIMEOUT, "timeout", "the model timed out"),
        E::RateLimited { .. } | E::Unavailable(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the model is busy or unavailable",
        ),
        other => {
            tracing::error!(error = %other, "local model failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the model failed")
        }
    }
}

async fn chat_completions(
    State(models): State<ServedModels>,
    body: Result<Json<WireRequest>, JsonRejection>,
) -> Response {
    let Some(model) = models.chat.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "model_not_found",
            "this instance serves no chat model",
        );
    };
    let Json(wire) = match body {
        Ok(b) => b,
        Err(r) => return error(r.status(), "invalid_json", r.body_text()),
    };
    if wire.model != model.model_id() {
        return error(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("unknown model {:?}; this instance serves {:?}", wire.model, model.model_id()),
        );
    }
    let stream = wire.stream;
    let request = match to_request(wire) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    let name = model.model_id().to_owned();
    if !stream {
        return match model.chat(request).await {
            Ok(r) => Json(json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": name,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": r.message.content},
                    "finish_reason": finish(r.finish_reason),
                }],
                "usage": {
                    "prompt_tokens": r.usage.prompt_tokens,
                    "completion_tokens": r.usage.completion_tokens,
                    "total_tokens": r.usage.total(),
                },
            }))
            .into_response(),
            Err(e) => model_error(e),
        };
    }
    let events = match model.chat_stream(request).await {
        Ok(s) => s,
        Err(e) => return model_error(e),
    };
    let chunk = move |delta: Value, finish_reason: Value, usage: Value| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        });
        if !usage.is_null() {
            c["usage"] = usage;
        }
        Event::default().data(c.to_string())
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), Value::Null, Value::Null);
    let body = futures::stream::once(async move { first })
        .chain(events.map(move |e| {
            match e {
                Ok(StreamEvent::Delta { text }) => {
                    chunk(json!({"content": text}), Value::Null, Value::Null)
                }
                Ok(StreamEvent::ToolCall { .. }) => chunk(json!({}), Value::Null, Value::Null),
                Ok(StreamEvent::Done { finish_reason, usage }) => chunk(
                    json!({}),
                    json!(finish(finish_reason)),
                    json!({
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total(),
                    }),
                ),
                // A failure mid-stream ends it without [DONE], which clients read as truncation.
                Err(e) => Event::default()
                    .event("error")
                    .data(json!({"error": {"message": e.to_string()}}).to_string()),
            }
        }))
        .chain(futures::stream::once(async { Event::default().data("[DONE]") }))
        .map(Ok::<_, Infallible>);
    Sse::new(body).into_response()
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    #[serde(default)]
    model: Option<String>,
    input: Value,
}

async fn embeddings(
    State(models): State<ServedModels>,
    body: Result<Json<EmbeddingsRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(b) => b,
        Err(r) => return error(r.status(), "invalid_json", r.body_text()),
    };
    if let Some(m) = &request.model
        && m != models.embedder.model_id()
    {
        return error(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("unknown model {m:?}; this instance serves {:?}", models.embedder.model_id()),
        );
    }
    let texts: Vec<String> = match request.input {
        Value::String(s) => vec![s],
        Value::Array(items) => match items
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
        {
            Some(t) => t,
            None => {
                return error(StatusCode::BAD_REQUEST, "invalid_request", "input must be strings");
            }
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "input must be a string or an array of strings",
            );
        }
    };
    if texts.is_empty() || texts.len() > MAX_EMBED_INPUTS {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("input must hold 1-{MAX_EMBED_INPUTS} texts"),
        );
    }
    match models.embedder.embed(&texts).await {
        Ok(vectors) => {
            let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
            Json(json!({
                "object": "list",
                "model": models.embedder.model_id(),
                "data": vectors.into_iter().enumerate().map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v})).collect::<Vec<_>>(),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }))
            .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "embedding failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "embedding failed")
        }
    }
}
