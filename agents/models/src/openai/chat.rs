//! [`OpenAiCompatible`]: a [`ChatModel`] over `/chat/completions`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_openai::types::chat::{
    ChatChoice, ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionNamedToolChoice, ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestToolMessage, ChatCompletionRequestToolMessageContent,
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    ChatCompletionResponseStream, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CompletionUsage,
    CreateChatCompletionRequest, CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
    FinishReason as WireFinish, FunctionCall, FunctionName, FunctionObject,
    ResponseFormat as WireFormat, ResponseFormatJsonSchema, StopConfiguration, ToolChoiceOptions,
};
use fenliu_agent::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, ChatRole, ChatStream, FinishReason,
    ModelError, ResponseFormat, StreamEvent, ToolCallRequest, ToolChoice, Usage,
    model::parse_json_answer,
};
use futures::StreamExt;
use tokio::time::Instant;

use super::{Client, MaxTokensField, OpenAiConfig, Resilience, build_client, map_error};
use crate::ModelLoadError;

/// A chat model behind any OpenAI-compatible `/chat/completions` endpoint: OpenAI, DeepSeek,
/// vLLM, Ollama, or another fenliu instance.
///
/// - Tools are offered as functions; `tool_choice` is sent only when it is not `auto` (the
///   provider default, and an option some vLLM deployments reject).
/// - `ResponseFormat::JsonSchema` becomes `response_format: {type: json_schema}`; the answer must
///   then parse as JSON (fences tolerated) or the call fails with
///   [`ModelError::InvalidResponse`]. Schema conformance itself is the provider's job (`strict`).
/// - A refusal becomes the message text with [`FinishReason::ContentFilter`].
/// - Streams ask for usage (`stream_options.include_usage`), assemble tool-call fragments into
///   whole [`StreamEvent::ToolCall`]s and end with [`StreamEvent::Done`].
/// - Timeouts, retries and cancellation: see [`OpenAiConfig`] and the module documentation.
///   Only the opening request of a stream is retried: once tokens flowed, a retry would repeat
///   them.
///
/// Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct OpenAiCompatible {
    client: Client,
    config: Arc<OpenAiConfig>,
    model_id: String,
    resilience: Resilience,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("model_id", &self.model_id)
            .field("config", &self.config)
            .finish()
    }
}

impl OpenAiCompatible {
    /// A model from its configuration; nothing is sent until the first call.
    pub fn new(config: OpenAiConfig) -> Result<Self, ModelLoadError> {
        let client = build_client(&config)?;
        Ok(Self {
            client,
            model_id: config.model_id(),
            resilience: Resilience::new(&config),
            config: Arc::new(config),
        })
    }

    /// The configuration (its `Debug` is redacted).
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    // OpenAI marks `max_tokens` and `seed` deprecated, but DeepSeek, vLLM and Ollama read exactly
    // these fields (and `seed` is what makes their sampling reproducible).
    #[allow(deprecated)]
    fn wire_request(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<CreateChatCompletionRequest, ModelError> {
        let messages = request.messages.iter().map(wire_message).collect::<Result<Vec<_>, _>>()?;
        if messages.is_empty() {
            return Err(ModelError::InvalidRequest("a chat request needs messages".into()));
        }
        let mut wire = CreateChatCompletionRequest {
            model: self.config.model.clone(),
            messages,
            temperature: request.temperature,
            top_p: request.top_p,
            seed: request
                .seed
                .map(|s| {
                    i64::try_from(s)
                        .map_err(|_| ModelError::InvalidRequest(format!("seed {s} exceeds i64")))
                })
                .transpose()?,
            stop: (!request.stop.is_empty())
                .then(|| StopConfiguration::StringArray(request.stop.clone())),
            ..CreateChatCompletionRequest::default()
        };
        match self.config.max_tokens_field {
            MaxTokensField::MaxTokens => wire.max_tokens = request.max_tokens,
            MaxTokensField::MaxCompletionTokens => wire.max_completion_tokens = request.max_tokens,
        }
        if !request.tools.is_empty() {
            wire.tools = Some(
                request
                    .tools
                    .iter()
                    .map(|t| {
                        ChatCompletionTools::Function(ChatCompletionTool {
                            function: FunctionObject {
                                name: t.name.clone(),
                                description: (!t.description.is_empty())
                                    .then(|| t.description.clone()),
                                parameters: Some(t.parameters.clone()),
                                strict: None,
                            },
                        })
                    })
                    .collect(),
            );
        }
        wire.tool_choice = match &request.tool_choice {
            ToolChoice::Auto => None,
            ToolChoice::None if request.tools.is_empty() => None,
            ToolChoice::None => Some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::None)),
            ToolChoice::Required if request.tools.is_empty() => {
                return Err(ModelError::InvalidRequest(
                    "tool_choice `required` without tools".into(),
                ));
            }
            ToolChoice::Required => {
                Some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Required))
            }
            ToolChoice::Named(name) => {
                if !request.tools.iter().any(|t| &t.name == name) {
                    return Err(ModelError::InvalidRequest(format!(
                        "tool_choice names `{name}`, which is not among the offered tools"
                    )));
                }
                Some(ChatCompletionToolChoiceOption::Function(ChatCompletionNamedToolChoice {
                    function: FunctionName { name: name.clone() },
                }))
            }
        };
        if let ResponseFormat::JsonSchema { name, schema, strict } = &request.response_format {
            wire.response_format = Some(WireFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: name.clone(),
                    schema: schema.clone(),
                    strict: Some(*strict),
                },
            });
        }
        if stream {
            wire.stream = Some(true);
            wire.stream_options = Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            });
        }
        Ok(wire)
    }
}

fn wire_message(message: &ChatMessage) -> Result<ChatCompletionRequestMessage, ModelError> {
    let text = message.content.clone();
    Ok(match message.role {
        ChatRole::System => {
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(text),
                name: None,
            })
        }
        ChatRole::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(text),
            name: None,
        }),
        ChatRole::Assistant => {
            let tool_calls: Vec<_> = message
                .tool_calls
                .iter()
                .map(|c| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: c.id.clone(),
                        function: FunctionCall {
                            name: c.name.clone(),
                            arguments: c.arguments.clone(),
                        },
                    })
                })
                .collect();
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                // An assistant turn that only called tools has `content: null` on the wire.
                content: (!text.is_empty() || tool_calls.is_empty())
                    .then_some(ChatCompletionRequestAssistantMessageContent::Text(text)),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                ..ChatCompletionRequestAssistantMessage::default()
            })
        }
        ChatRole::Tool => {
            let Some(id) = message.tool_call_id.clone() else {
                return Err(ModelError::InvalidRequest(
                    "a tool message needs the id of the call it answers".into(),
                ));
            };
            ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(text),
                tool_call_id: id,
            })
        }
    })
}

fn finish_reason(reason: Option<WireFinish>, has_tool_calls: bool) -> FinishReason {
    match reason {
        Some(WireFinish::Stop) => FinishReason::Stop,
        Some(WireFinish::Length) => FinishReason::Length,
        Some(WireFinish::ToolCalls | WireFinish::FunctionCall) => FinishReason::ToolCalls,
        Some(WireFinish::ContentFilter) => FinishReason::ContentFilter,
        None if has_tool_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    }
}

fn usage(usage: Option<&CompletionUsage>) -> Usage {
    usage
        .map(|u| Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens })
        .unwrap_or_default()
}

fn response_from_wire(wire: CreateChatCompletionResponse) -> Result<ChatResponse, ModelError> {
    let Some(ChatChoice { message, finish_reason: reason, .. }) = wire.choices.into_iter().next()
    else {
        return Err(ModelError::InvalidResponse("the answer has no choices".into()));
    };
    let mut tool_calls = Vec::new();
    for call in message.tool_calls.unwrap_or_default() {
        match call {
            ChatCompletionMessageToolCalls::Function(f) => tool_calls.push(ToolCallRequest {
                id: f.id,
                name: f.function.name,
                arguments: f.function.arguments,
            }),
            ChatCompletionMessageToolCalls::Custom(c) => {
                return Err(ModelError::InvalidResponse(format!(
                    "custom tool call `{}` was never offered",
                    c.custom_tool.name
                )));
            }
        }
    }
    let mut finish = finish_reason(reason, !tool_calls.is_empty());
    let mut content = message.content.unwrap_or_default();
    if content.is_empty()
        && let Some(refusal) = message.refusal.filter(|r| !r.is_empty())
    {
        content = refusal;
        finish = FinishReason::ContentFilter;
    }
    let mut reply = ChatMessage::assistant(content);
    reply.tool_calls = tool_calls;
    Ok(ChatResponse {
        message: reply,
        finish_reason: finish,
        usage: usage(wire.usage.as_ref()),
        model: wire.model,
    })
}

/// With a JSON-schema request, an answer that is not JSON is a broken answer.
fn check_structured(request: &ChatRequest, response: &ChatResponse) -> Result<(), ModelError> {
    if matches!(request.response_format, ResponseFormat::JsonSchema { .. })
        && response.message.tool_calls.is_empty()
        && response.finish_reason != FinishReason::ContentFilter
    {
        parse_json_answer::<serde_json::Value>(&response.message.content).map_err(|e| {
            let cut = if response.finish_reason == FinishReason::Length {
                " (cut at max_tokens)"
            } else {
                ""
            };
            ModelError::InvalidResponse(format!("structured answer is not JSON{cut}: {e}"))
        })?;
    }
    Ok(())
}

impl ChatModel for OpenAiCompatible {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    #[tracing::instrument(name = "openai.chat", skip_all, fields(model = %self.model_id))]
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        let deadline = Instant::now() + self.config.timeout;
        let wire = self.wire_request(&request, false)?;
        let key = &self.config.api_key;
        let response = self
            .resilience
            .run(deadline, || async {
                let answer =
                    self.client.chat().create(wire.clone()).await.map_err(|e| map_error(e, key))?;
                response_from_wire(answer).map_err(Into::into)
            })
            .await?;
        check_structured(&request, &response)?;
        Ok(response)
    }

    #[tracing::instrument(name = "openai.chat_stream", skip_all, fields(model = %self.model_id))]
    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ModelError> {
        let deadline = Instant::now() + self.config.timeout;
        let wire = self.wire_request(&request, true)?;
        let key = &self.config.api_key;
        let inner = self
            .resilience
            .run(deadline, || async {
                self.client.chat().create_stream(wire.clone()).await.map_err(|e| map_error(e, key))
            })
            .await?;
        let state = StreamState {
            inner: Some(inner),
            key: self.config.api_key.clone(),
            deadline,
            timeout: self.config.timeout,
            idle_timeout: self.config.idle_timeout,
            pending: VecDeque::new(),
            calls: BTreeMap::new(),
            finish: None,
            usage: Usage::default(),
            refused: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, StreamState::next)))
    }
}

/// A tool call being assembled from stream fragments.
#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

impl PartialCall {
    fn finish(self, index: u32) -> Result<ToolCallRequest, ModelError> {
        if self.name.is_empty() {
            return Err(ModelError::InvalidResponse(format!(
                "streamed tool call {index} has no name"
            )));
        }
        // Some servers omit ids; the id only has to be unique within the answer.
        let id = if self.id.is_empty() { format!("call_{index}") } else { self.id };
        Ok(ToolCallRequest { id, name: self.name, arguments: self.arguments })
    }
}

/// Turns the provider's chunks into [`StreamEvent`]s, enforcing the idle timeout and deadline.
struct StreamState {
    /// `None` once the stream is over (ended, failed or timed out): dropping it closes the
    /// connection.
    inner: Option<ChatCompletionResponseStream>,
    key: super::Secret,
    deadline: Instant,
    timeout: Duration,
    idle_timeout: Duration,
    pending: VecDeque<Result<StreamEvent, ModelError>>,
    calls: BTreeMap<u32, PartialCall>,
    finish: Option<FinishReason>,
    usage: Usage,
    /// The model refused (its refusal was streamed as text).
    refused: bool,
}

impl StreamState {
    async fn next(mut self) -> Option<(Result<StreamEvent, ModelError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if event.is_err() {
                    self.inner = None;
                    self.pending.clear();
                }
                return Some((event, self));
            }
            let inner = self.inner.as_mut()?;
            let idle_deadline = Instant::now() + self.idle_timeout;
            let (wait_until, on_timeout) = if idle_deadline < self.deadline {
                (idle_deadline, self.idle_timeout)
            } else {
                (self.deadline, self.timeout)
            };
            match tokio::time::timeout_at(wait_until, inner.next()).await {
                Err(_) => self.pending.push_back(Err(ModelError::Timeout(on_timeout))),
                Ok(Some(Ok(chunk))) => self.absorb(chunk),
                Ok(Some(Err(e))) => self.pending.push_back(Err(map_error(e, &self.key).error)),
                Ok(None) => {
                    self.inner = None;
                    self.end();
                }
            }
        }
    }

    fn absorb(&mut self, chunk: CreateChatCompletionStreamResponse) {
        if let Some(u) = chunk.usage.as_ref() {
            self.usage = usage(Some(u));
        }
        // `n` is never set, so only choice 0 exists.
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let delta = choice.delta;
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.pending.push_back(Ok(StreamEvent::Delta { text }));
        }
        // As in a complete answer: the refusal is the text, and the finish is `ContentFilter`.
        if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
            self.refused = true;
            self.pending.push_back(Ok(StreamEvent::Delta { text }));
        }
        for fragment in delta.tool_calls.unwrap_or_default() {
            let index = fragment.index;
            let id = fragment.id.filter(|id| !id.is_empty());
            // A new id at a used index means the server numbers every call 0 (seen with some
            // OpenAI-compatible servers): the previous call is complete.
            if let Some(id) = &id
                && self.calls.get(&index).is_some_and(|c| !c.id.is_empty() && &c.id != id)
                && let Some(done) = self.calls.remove(&index)
            {
                self.pending
                    .push_back(done.finish(index).map(|call| StreamEvent::ToolCall { call }));
            }
            let call = self.calls.entry(index).or_default();
            if let Some(id) = id {
                call.id = id;
            }
            if let Some(function) = fragment.function {
                if let Some(name) = function.name {
                    call.name.push_str(&name);
                }
                if let Some(arguments) = function.arguments {
                    call.arguments.push_str(&arguments);
                }
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(finish_reason(Some(reason), !self.calls.is_empty()));
            // As in a complete answer, calls cut by `length` are still reported (with that
            // finish reason), for the caller to judge.
            self.flush_calls();
        }
    }

    fn flush_calls(&mut self) {
        for (index, call) in std::mem::take(&mut self.calls) {
            self.pending.push_back(call.finish(index).map(|call| StreamEvent::ToolCall { call }));
        }
    }

    fn end(&mut self) {
        let Some(finish) = self.finish else {
            self.pending.push_back(Err(ModelError::InvalidResponse(
                "the stream ended before the model finished".into(),
            )));
            return;
        };
        self.flush_calls();
        let finish_reason = if self.refused { FinishReason::ContentFilter } else { finish };
        self.pending.push_back(Ok(StreamEvent::Done { finish_reason, usage: self.usage }));
    }
}
