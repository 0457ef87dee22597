//! The chat-model contract: requests with messages, tools and structured output; responses with
//! usage; token streams.
//!
//! The types follow the OpenAI chat-completions vocabulary because every provider we target
//! (OpenAI, DeepSeek, vLLM, Ollama, and fenliu's own local server) speaks it; a local model maps the
//! same request onto its prompt template.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use fenliu_tool::{BoxFuture, ToolDefinition};
use futures_core::Stream;
use serde::{Deserialize, Serialize};

/// Role of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The user (for us: the customer, or the orchestrator speaking for them).
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRequest {
    /// Provider-assigned id, echoed in the tool result message.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as the model produced them (a JSON document, possibly invalid).
    pub arguments: String,
}

/// One message of a chat request or response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: ChatRole,
    /// Text content (may be empty for an assistant message that only calls tools).
    pub content: String,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRequest>,
    /// For a tool message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    fn plain(role: ChatRole, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::plain(ChatRole::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::plain(ChatRole::User, content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::plain(ChatRole::Assistant, content)
    }
    /// A tool result answering call `id`.
    pub fn tool_result(id: impl Into<String>, content: impl Into<String>) -> Self {
        Self { tool_call_id: Some(id.into()), ..Self::plain(ChatRole::Tool, content) }
    }
}

/// How the model may use the offered tools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool must be called.
    Named(String),
}

/// Output format requested from the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// A JSON document matching `schema` (from `schemars::schema_for!`).
    JsonSchema {
        /// Schema name (`[A-Za-z0-9_-]{1,64}`).
        name: String,
        /// The JSON Schema.
        schema: serde_json::Value,
        /// Whether the provider must enforce the schema strictly.
        strict: bool,
    },
}

/// A chat request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Vec<ToolDefinition>,
    /// How it may call them.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Requested output format.
    #[serde(default)]
    pub response_format: ResponseFormat,
    /// Sampling temperature; `None` for the provider default.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Generation stops before any of these strings.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Seed for reproducible sampling where supported.
    pub seed: Option<u64>,
}

impl ChatRequest {
    /// A request with these messages and defaults otherwise.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self { messages, ..Self::default() }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    #[default]
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The provider filtered the content.
    ContentFilter,
}

/// Token accounting for one call, the basis of cost per turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

impl Usage {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(rhs.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(rhs.completion_tokens);
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The assistant message (content and/or tool calls).
    pub message: ChatMessage,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Tokens used.
    pub usage: Usage,
    /// The model that answered (providers may substitute).
    pub model: String,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// More text.
    Delta {
        /// The text fragment.
        text: String,
    },
    /// A complete tool call (providers stream fragments; implementations assemble them).
    ToolCall {
        /// The call.
        call: ToolCallRequest,
    },
    /// The end, with accounting.
    Done {
        /// Why generation ended.
        finish_reason: FinishReason,
        /// Tokens used.
        usage: Usage,
    },
}

/// A stream of answer events.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ModelError>> + Send>>;

/// What can go wrong calling a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// No answer in time.
    #[error("model call timed out after {0:?}")]
    Timeout(Duration),
    /// The provider asks us to slow down.
    #[error("rate limited{}", retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// The provider's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The provider answered with an error status.
    #[error("provider error {status}: {message}")]
    Provider {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The answer could not be understood (bad JSON, schema violation, truncated stream).
    #[error("invalid model response: {0}")]
    InvalidResponse(String),
    /// The request cannot be served (prompt too long, unsupported option).
    #[error("invalid model request: {0}")]
    InvalidRequest(String),
    /// The model is not available (not loaded, circuit open, connection refused).
    #[error("model unavailable: {0}")]
    Unavailable(String),
    /// The caller gave up.
    #[error("model call cancelled")]
    Cancelled,
}

impl ModelError {
    /// Whether trying again (after a pause) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::RateLimited { .. } | Self::Unavailable(_) => true,
            Self::Provider { status, .. } => *status >= 500,
            Self::InvalidResponse(_) | Self::InvalidRequest(_) | Self::Cancelled => false,
        }
    }
}

/// A chat model: hosted (OpenAI-compatible) or local (candle).
pub trait ChatModel: Send + Sync {
    /// Identifier, e.g. `openai:gpt-4o-mini` or `local:gemma-3-270m`.
    fn model_id(&self) -> &str;

    /// Generates a complete answer.
    fn chat(
        &self,
        request: ChatRequest,
    ) -> impl Future<Output = Result<ChatResponse, ModelError>> + Send;

    /// Streams an answer. The default generates the whole answer, then streams it as one delta.
    fn chat_stream(
        &self,
        request: ChatRequest,
    ) -> impl Future<Output = Result<ChatStream, ModelError>> + Send {
        async move {
            let response = self.chat(request).await?;
            let mut events = Vec::with_capacity(2 + response.message.tool_calls.len());
            if !response.message.content.is_empty() {
                events.push(Ok(StreamEvent::Delta { text: response.message.content }));
            }
            events.extend(
                response
                    .message
                    .tool_calls
                    .into_iter()
                    .map(|call| Ok(StreamEvent::ToolCall { call })),
            );
            events.push(Ok(StreamEvent::Done {
                finish_reason: response.finish_reason,
                usage: response.usage,
            }));
            Ok(Box::pin(IterStream(events.into_iter())) as ChatStream)
        }
    }
}

/// Object-safe twin of [`ChatModel`], what registries and agents hold.
pub trait DynChatModel: Send + Sync {
    /// See [`ChatModel::model_id`].
    fn model_id(&self) -> &str;
    /// See [`ChatModel::chat`].
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, ModelError>>;
    /// See [`ChatModel::chat_stream`].
    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream, ModelError>>;
}

impl<T: ChatModel> DynChatModel for T {
    fn model_id(&self) -> &str {
        ChatModel::model_id(self)
    }
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, ModelError>> {
        Box::pin(ChatModel::chat(self, request))
    }
    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream, ModelError>> {
        Box::pin(ChatModel::chat_stream(self, request))
    }
}

/// A stream over an iterator, so this crate needs no stream utility dependency.
struct IterStream<I>(I);

impl<I: Iterator + Unpin> Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

/// Parses a model's JSON answer, tolerating the code fences small models like to add.
pub fn parse_json_answer<T: serde::de::DeserializeOwned>(content: &str) -> Result<T, ModelError> {
    let trimmed = content.trim();
    let body = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    serde_json::from_str(body).map_err(|e| {
        let shown: String = body.chars().take(120).collect();
        ModelError::InvalidResponse(format!("{e} in {shown:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    struct Echo;
    impl ChatModel for Echo {
        fn model_id(&self) -> &str {
            "echo"
        }
        async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
            let last = request.messages.last().map(|m| m.content.clone()).unwrap_or_default();
            Ok(ChatResponse {
                message: ChatMessage::assistant(last),
                finish_reason: FinishReason::Stop,
                usage: Usage { prompt_tokens: 3, completion_tokens: 2 },
                model: "echo".into(),
            })
        }
    }

    #[test]
    fn default_stream_replays_the_answer() {
        let model: &dyn DynChatModel = &Echo;
        let events: Vec<_> = futures::executor::block_on(async {
            let stream =
                model.chat_stream(ChatRequest::new(vec![ChatMessage::user("hi")])).await.unwrap();
            stream.collect::<Vec<_>>().await
        });
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], Ok(StreamEvent::Delta { text: "hi".into() }));
        assert!(matches!(
            events[1],
            Ok(StreamEvent::Done { usage: Usage { prompt_tokens: 3, .. }, .. })
        ));
    }

    #[test]
    fn json_answers_tolerate_fences_and_reject_garbage() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct A {
            route: String,
        }
        let a: A = parse_json_answer("```json\n{\"route\":\"order\"}\n```").unwrap();
        assert_eq!(a.route, "order");
        assert!(parse_json_answer::<A>("sure! here you go").is_err());
        assert!(parse_json_answer::<A>("").is_err());
    }

    #[test]
    fn retryable_errors() {
        assert!(ModelError::Provider { status: 503, message: String::new() }.is_retryable());
        assert!(!ModelError::Provider { status: 400, message: String::new() }.is_retryable());
        assert!(ModelError::RateLimited { retry_after: None }.is_retryable());
        assert!(!ModelError::Cancelled.is_retryable());
    }
}
