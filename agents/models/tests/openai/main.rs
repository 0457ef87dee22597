//! Protocol tests of the hosted OpenAI-compatible chat model and embedder.
//!
//! Each test starts an in-process axum server on 127.0.0.1:0 that speaks the OpenAI wire protocol
//! as OpenAI sends it (JSON bodies, `text/event-stream` chunks ending with `data: [DONE]`, error
//! objects, `Retry-After`), then drives the real client against it. Nothing of our own traits is
//! mocked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use fenliu_agent::test_utils::assert_chat_model_conformance;
use fenliu_agent::{
    ChatMessage, ChatModel, ChatRequest, FinishReason, ModelError, ResponseFormat, StreamEvent,
    ToolCallRequest, ToolChoice, Usage,
};
use fenliu_knowledge::Embedder;
use fenliu_knowledge::test_utils::assert_embedder_conformance;
use fenliu_models::{OpenAiCompatible, OpenAiConfig, OpenAiEmbedder, OpenAiEmbedderOptions};
use fenliu_tool::ToolDefinition;
use futures::StreamExt;
use serde_json::{Value, json};

const KEY: &str = "sk-test-4f9c2b7d1e8a";
const MODEL: &str = "gpt-4o-mini";

// ---------------------------------------------------------------------------------------------
// The fake provider
// ---------------------------------------------------------------------------------------------

/// How a streamed answer ends.
#[derive(Clone, Copy, Debug)]
enum End {
    /// `data: [DONE]`, as OpenAI ends every stream.
    Done,
    /// The connection stays open and silent.
    Stall,
    /// The body ends cleanly (final chunk) without `[DONE]`.
    Close,
    /// The connection is torn down mid-body.
    Abort,
}

/// What the fake provider answers to one request.
enum Reply {
    Json { status: u16, headers: Vec<(&'static str, String)>, body: String },
    Sse { events: Vec<String>, end: End, gap: Duration },
    After(Duration, Box<Reply>),
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self::Json { status: 200, headers: Vec::new(), body: body.to_string() }
    }
    fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Self {
        let body =
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
        Self::Json { status, headers: Vec::new(), body: body.to_string() }
    }
    fn sse(events: Vec<String>, end: End) -> Self {
        Self::Sse { events, end, gap: Duration::from_millis(5) }
    }
}

/// One request as the provider saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
    at: Instant,
}

type Handler = Box<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct ServerState {
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Set when the body of a stalled stream is dropped, i.e. the client went away.
    stream_dropped: Arc<AtomicBool>,
}

struct Fake {
    base_url: String,
    state: ServerState,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Fake {
    async fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let state = ServerState {
            handler: Arc::new(Box::new(handler)),
            seen: Arc::default(),
            stream_dropped: Arc::default(),
        };
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self { base_url: format!("http://{addr}/v1"), state, _shutdown: tx }
    }

    /// A fake that answers every request the same way.
    async fn always(reply: impl Fn() -> Reply + Send + Sync + 'static) -> Self {
        Self::start(move |_, _| reply()).await
    }

    /// A fake that answers from a script, in order.
    async fn script(replies: Vec<Reply>) -> Self {
        let replies = Mutex::new(VecDeque::from(replies));
        Self::start(move |_, _| {
            replies.lock().unwrap().pop_front().expect("more requests than scripted replies")
        })
        .await
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn config(&self) -> OpenAiConfig {
        let mut c = OpenAiConfig::new(&self.base_url, MODEL).with_api_key(KEY);
        c.timeout = Duration::from_secs(5);
        c.idle_timeout = Duration::from_millis(400);
        c.backoff_base = Duration::from_millis(20);
        c.backoff_max = Duration::from_millis(100);
        c.max_retries = 2;
        c.max_retry_after = Duration::from_secs(5);
        c
    }

    fn model(&self) -> OpenAiCompatible {
        OpenAiCompatible::new(self.config()).unwrap()
    }
}

async fn handle(
    State(state): State<ServerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    let n = {
        let mut all = state.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let reply = (state.handler)(&seen, n);
    respond(reply, state.stream_dropped.clone()).await
}

async fn respond(mut reply: Reply, dropped: Arc<AtomicBool>) -> Response {
    while let Reply::After(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Json { status, headers, body } => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "application/json");
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).unwrap()
        }
        Reply::Sse { events, end, gap } => {
            let events = futures::stream::iter(events).then(move |e| async move {
                tokio::time::sleep(gap).await;
                Ok::<_, std::io::Error>(Bytes::from(format!("data: {e}\n\n")))
            });
            let tail: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> = match end
            {
                End::Done => {
                    futures::stream::once(async { Ok(Bytes::from("data: [DONE]\n\n")) }).boxed()
                }
                End::Close => futures::stream::empty().boxed(),
                End::Abort => futures::stream::once(async {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "provider crashed",
                    ))
                })
                .boxed(),
                End::Stall => {
                    let guard = DropFlag(dropped);
                    futures::stream::once(async move {
                        let _guard = guard;
                        futures::future::pending::<()>().await;
                        Ok(Bytes::new())
                    })
                    .boxed()
                }
            };
            Response::builder()
                .status(200)
                .header("content-type", "text/event-stream; charset=utf-8")
                .header("cache-control", "no-cache")
                .body(Body::from_stream(events.chain(tail)))
                .unwrap()
        }
        Reply::After(..) => unreachable!(),
    }
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI's wire shapes
// ---------------------------------------------------------------------------------------------

fn usage_json(prompt: u32, completion: u32) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
        }
    })
}

fn completion(message: Value, finish: &str, prompt: u32, completion_tokens: u32) -> Value {
    json!({
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1_732_400_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage_json(prompt, completion_tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1"
    })
}

fn text_completion(text: &str) -> Value {
    completion(
        json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}),
        "stop",
        19,
        u32::try_from(text.split_whitespace().count()).unwrap(),
    )
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-AbC123",
        "object": "chat.completion.chunk",
        "created": 1_732_400_000,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        "usage": null,
        "obfuscation": "x9"
    })
    .to_string()
}

fn usage_chunk(prompt: u32, completion_tokens: u32) -> String {
    json!({
        "id": "chatcmpl-AbC123",
        "object": "chat.completion.chunk",
        "created": 1_732_400_000,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [],
        "usage": usage_json(prompt, completion_tokens),
        "obfuscation": "q"
    })
    .to_string()
}

/// A streamed text answer as OpenAI sends it: role first, one chunk per token, an empty delta
/// with the finish reason, then usage.
fn text_stream(tokens: &[&str]) -> Vec<String> {
    let mut events =
        vec![chunk(json!({"role": "assistant", "content": "", "refusal": null}), None)];
    events.extend(tokens.iter().map(|t| chunk(json!({"content": t}), None)));
    events.push(chunk(json!({}), Some("stop")));
    events.push(usage_chunk(12, u32::try_from(tokens.len()).unwrap()));
    events
}

async fn collect(stream: fenliu_agent::ChatStream) -> Vec<Result<StreamEvent, ModelError>> {
    stream.collect().await
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::system("Be brief."), ChatMessage::user("Say hello.")])
}

fn order_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_order_status".into(),
        description: "Looks up an order of the authenticated customer.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
            "additionalProperties": false
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Chat completions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_completion_maps_request_fields_answer_and_usage() {
    let fake = Fake::always(|| Reply::ok(text_completion("Hello there!"))).await;
    let mut request = hello();
    request.temperature = Some(0.2);
    request.top_p = Some(0.9);
    request.max_tokens = Some(32);
    request.seed = Some(7);
    request.stop = vec!["\n\n".into()];

    let response = fake.model().chat(request).await.unwrap();

    assert_eq!(response.message.content, "Hello there!");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage { prompt_tokens: 19, completion_tokens: 2 });
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    let body = &seen[0].body;
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(body["messages"][1], json!({"role": "user", "content": "Say hello."}));
    assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert!((body["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(body["max_tokens"], 32);
    assert_eq!(body["seed"], 7);
    assert_eq!(body["stop"], json!(["\n\n"]));
    assert!(body.get("stream").is_none() || body["stream"] == false);
    assert!(body.get("tools").is_none() && body.get("response_format").is_none());
}

#[tokio::test]
async fn max_completion_tokens_field_is_configurable() {
    let fake = Fake::always(|| Reply::ok(text_completion("ok"))).await;
    let mut config = fake.config();
    config.max_tokens_field = fenliu_models::openai::MaxTokensField::MaxCompletionTokens;
    let mut request = hello();
    request.max_tokens = Some(9);
    OpenAiCompatible::new(config).unwrap().chat(request).await.unwrap();
    let body = &fake.seen()[0].body;
    assert_eq!(body["max_completion_tokens"], 9);
    assert!(body.get("max_tokens").is_none());
}

#[tokio::test]
async fn streaming_text_arrives_as_deltas_then_done_with_usage() {
    let fake =
        Fake::always(|| Reply::sse(text_stream(&["Hel", "lo", " there", "!"]), End::Done)).await;
    let events = collect(fake.model().chat_stream(hello()).await.unwrap()).await;
    let events: Vec<StreamEvent> = events.into_iter().map(Result::unwrap).collect();
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Hello there!");
    assert_eq!(events.iter().filter(|e| matches!(e, StreamEvent::Delta { .. })).count(), 4);
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            finish_reason: FinishReason::Stop,
            usage: Usage { prompt_tokens: 12, completion_tokens: 4 }
        })
    );
    let body = &fake.seen()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled_from_fragments() {
    let events = vec![
        chunk(json!({"role": "assistant", "content": null, "refusal": null}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_A1", "type": "function",
                "function": {"name": "get_order_status", "arguments": ""}}]}),
            None,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ord"}}]}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "er_id\": \"#W12"}}]}),
            None,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "34567\"}"}}]}), None),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_B2", "type": "function",
                "function": {"name": "get_order_status", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"order_id\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": " \"#W7654321\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(80, 41),
    ];
    let fake = Fake::always(move || Reply::sse(events.clone(), End::Done)).await;
    let mut request = hello();
    request.tools = vec![order_tool()];
    let events = collect(fake.model().chat_stream(request).await.unwrap()).await;
    let events: Vec<StreamEvent> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        events,
        vec![
            StreamEvent::ToolCall {
                call: ToolCallRequest {
                    id: "call_A1".into(),
                    name: "get_order_status".into(),
                    arguments: r##"{"order_id": "#W1234567"}"##.into()
                }
            },
            StreamEvent::ToolCall {
                call: ToolCallRequest {
                    id: "call_B2".into(),
                    name: "get_order_status".into(),
                    arguments: r##"{"order_id": "#W7654321"}"##.into()
                }
            },
            StreamEvent::Done {
                finish_reason: FinishReason::ToolCalls,
                usage: Usage { prompt_tokens: 80, completion_tokens: 41 }
            },
        ]
    );
}

#[tokio::test]
async fn whole_tool_calls_numbered_zero_are_kept_apart() {
    // Some OpenAI-compatible servers send each call whole, every one at index 0.
    let call = |id: &str, order: &str| {
        chunk(
            json!({"tool_calls": [{"index": 0, "id": id, "type": "function",
                "function": {"name": "get_order_status", "arguments": format!("{{\"order_id\":\"{order}\"}}")}}]}),
            None,
        )
    };
    let events = vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        call("call_1", "#W1"),
        call("call_2", "#W2"),
        chunk(json!({}), Some("tool_calls")),
    ];
    let fake = Fake::always(move || Reply::sse(events.clone(), End::Done)).await;
    let mut request = hello();
    request.tools = vec![order_tool()];
    let events = collect(fake.model().chat_stream(request).await.unwrap()).await;
    let calls: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::ToolCall { call }) => Some((call.id.clone(), call.arguments.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("call_1".to_owned(), r##"{"order_id":"#W1"}"##.to_owned()),
            ("call_2".to_owned(), r##"{"order_id":"#W2"}"##.to_owned())
        ]
    );
    assert!(matches!(
        events.last(),
        Some(Ok(StreamEvent::Done {
            finish_reason: FinishReason::ToolCalls,
            usage: Usage { prompt_tokens: 0, .. }
        }))
    ));
}

#[tokio::test]
async fn a_failed_stream_opening_is_retried() {
    let fake = Fake::script(vec![
        Reply::error(503, "overloaded", "server_error", None),
        Reply::sse(text_stream(&["Hi"]), End::Done),
    ])
    .await;
    let events = collect(fake.model().chat_stream(hello()).await.unwrap()).await;
    assert_eq!(events[0], Ok(StreamEvent::Delta { text: "Hi".into() }));
    assert!(matches!(events.last(), Some(Ok(StreamEvent::Done { .. }))));
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn streamed_refusals_end_with_content_filter() {
    let events = vec![
        chunk(json!({"role": "assistant", "content": null, "refusal": ""}), None),
        chunk(json!({"refusal": "I can't "}), None),
        chunk(json!({"refusal": "help with that."}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(10, 6),
    ];
    let fake = Fake::always(move || Reply::sse(events.clone(), End::Done)).await;
    let events = collect(fake.model().chat_stream(route_request()).await.unwrap()).await;
    assert_eq!(events[0], Ok(StreamEvent::Delta { text: "I can't ".into() }));
    assert!(matches!(
        events.last(),
        Some(Ok(StreamEvent::Done { finish_reason: FinishReason::ContentFilter, .. }))
    ));
}

#[tokio::test]
async fn tools_tool_choice_and_tool_turns_go_over_the_wire() {
    let answer = completion(
        json!({"role": "assistant", "content": null, "refusal": null, "annotations": [],
            "tool_calls": [{"id": "call_Z9", "type": "function",
                "function": {"name": "get_order_status", "arguments": "{\"order_id\":\"#W1\"}"}}]}),
        "tool_calls",
        60,
        12,
    );
    let fake = Fake::always(move || Reply::ok(answer.clone())).await;
    let mut earlier = ChatMessage::assistant("");
    earlier.tool_calls.push(ToolCallRequest {
        id: "call_Y8".into(),
        name: "get_order_status".into(),
        arguments: "{\"order_id\":\"#W0\"}".into(),
    });
    let mut request = ChatRequest::new(vec![
        ChatMessage::user("Where are my orders?"),
        earlier,
        ChatMessage::tool_result("call_Y8", "{\"status\":\"delivered\"}"),
    ]);
    request.tools = vec![order_tool()];
    request.tool_choice = ToolChoice::Named("get_order_status".into());

    let response = fake.model().chat(request).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.message.content, "");
    assert_eq!(
        response.message.tool_calls,
        vec![ToolCallRequest {
            id: "call_Z9".into(),
            name: "get_order_status".into(),
            arguments: "{\"order_id\":\"#W1\"}".into()
        }]
    );

    let body = &fake.seen()[0].body;
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {
            "name": "get_order_status",
            "description": "Looks up an order of the authenticated customer.",
            "parameters": order_tool().parameters
        }}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "get_order_status"}})
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "tool_calls": [{"id": "call_Y8", "type": "function",
            "function": {"name": "get_order_status", "arguments": "{\"order_id\":\"#W0\"}"}}]})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "tool", "content": "{\"status\":\"delivered\"}", "tool_call_id": "call_Y8"})
    );
}

#[tokio::test]
async fn tool_choice_must_name_an_offered_tool() {
    let fake = Fake::always(|| Reply::ok(text_completion("unused"))).await;
    let mut request = hello();
    request.tool_choice = ToolChoice::Named("drop_tables".into());
    let err = fake.model().chat(request).await.unwrap_err();
    assert!(matches!(err, ModelError::InvalidRequest(_)), "{err:?}");
    assert!(fake.seen().is_empty(), "an invalid request is never sent");
}

fn route_request() -> ChatRequest {
    let mut request = ChatRequest::new(vec![ChatMessage::user("Where is my parcel?")]);
    request.response_format = ResponseFormat::JsonSchema {
        name: "route".into(),
        schema: json!({
            "type": "object",
            "properties": {"route": {"type": "string"}},
            "required": ["route"],
            "additionalProperties": false
        }),
        strict: true,
    };
    request
}

#[tokio::test]
async fn json_schema_output_is_requested_and_checked() {
    let fake = Fake::script(vec![
        Reply::ok(text_completion("{\"route\":\"order\"}")),
        Reply::ok(text_completion("Sure! The route is order.")),
    ])
    .await;
    let model = fake.model();

    let response = model.chat(route_request()).await.unwrap();
    let value: Value = serde_json::from_str(&response.message.content).unwrap();
    assert_eq!(value["route"], "order");
    let body = &fake.seen()[0].body;
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {
            "name": "route",
            "schema": {
                "type": "object",
                "properties": {"route": {"type": "string"}},
                "required": ["route"],
                "additionalProperties": false
            },
            "strict": true
        }})
    );

    let err = model.chat(route_request()).await.unwrap_err();
    assert!(matches!(err, ModelError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn refusals_surface_as_content_filter() {
    let answer = completion(
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that.", "annotations": []}),
        "stop",
        10,
        6,
    );
    let fake = Fake::always(move || Reply::ok(answer.clone())).await;
    let response = fake.model().chat(route_request()).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::ContentFilter);
    assert_eq!(response.message.content, "I can't help with that.");
}

// ---------------------------------------------------------------------------------------------
// Failures, retries, timeouts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let fake = Fake::script(vec![
        Reply::error(
            500,
            "The server had an error while processing your request.",
            "server_error",
            None,
        ),
        Reply::Json { status: 502, headers: Vec::new(), body: "<html>Bad gateway</html>".into() },
        Reply::ok(text_completion("Hello after all")),
    ])
    .await;
    let response = fake.model().chat(hello()).await.unwrap();
    assert_eq!(response.message.content, "Hello after all");
    assert_eq!(fake.seen().len(), 3);
}

#[tokio::test]
async fn server_errors_beyond_max_retries_fail_with_the_status() {
    let fake = Fake::always(|| {
        Reply::error(503, "The engine is currently overloaded.", "server_error", None)
    })
    .await;
    let err = fake.model().chat(hello()).await.unwrap_err();
    assert_eq!(
        err,
        ModelError::Provider { status: 503, message: "The engine is currently overloaded.".into() }
    );
    assert!(err.is_retryable());
    assert_eq!(fake.seen().len(), 3, "first attempt + max_retries (2)");
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let fake = Fake::script(vec![
        Reply::Json {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: json!({"error": {"message": "Rate limit reached for gpt-4o-mini on requests per min (RPM)",
                "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
            .to_string(),
        },
        Reply::ok(text_completion("Hello")),
    ])
    .await;
    let started = Instant::now();
    let response = fake.model().chat(hello()).await.unwrap();
    assert_eq!(response.message.content, "Hello");
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn rate_limit_beyond_the_cap_is_returned_at_once() {
    let fake = Fake::always(|| Reply::Json {
        status: 429,
        headers: vec![("retry-after", httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600)))],
        body: json!({"error": {"message": "slow down", "type": "tokens", "param": null, "code": "rate_limit_exceeded"}})
            .to_string(),
    })
    .await;
    let started = Instant::now();
    let err = fake.model().chat(hello()).await.unwrap_err();
    let ModelError::RateLimited { retry_after: Some(after) } = err else { panic!("{err:?}") };
    assert!(after > Duration::from_secs(3500), "{after:?}");
    assert_eq!(fake.seen().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn exhausted_quota_is_not_retried() {
    let fake = Fake::always(|| {
        Reply::error(
            429,
            "You exceeded your current quota.",
            "insufficient_quota",
            Some("insufficient_quota"),
        )
    })
    .await;
    let err = fake.model().chat(hello()).await.unwrap_err();
    assert!(matches!(err, ModelError::Provider { status: 429, .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fake = Fake::always(|| {
        Reply::error(
            400,
            "Invalid schema for response_format 'route': 'additionalProperties' is required.",
            "invalid_request_error",
            None,
        )
    })
    .await;
    let err = fake.model().chat(hello()).await.unwrap_err();
    let ModelError::Provider { status: 400, message } = &err else { panic!("{err:?}") };
    assert!(message.contains("additionalProperties"), "{message}");
    assert!(!err.is_retryable());
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn stalled_stream_times_out_within_the_idle_timeout() {
    let events = text_stream(&["Hel", "lo"])[..2].to_vec();
    let fake = Fake::always(move || Reply::sse(events.clone(), End::Stall)).await;
    let model = fake.model();
    let mut stream = model.chat_stream(hello()).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(StreamEvent::Delta { text: "Hel".into() })));
    let started = Instant::now();
    let next = stream.next().await;
    let waited = started.elapsed();
    assert_eq!(next, Some(Err(ModelError::Timeout(Duration::from_millis(400)))));
    assert!(
        waited >= Duration::from_millis(390) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    assert_eq!(stream.next().await, None, "a failed stream ends");
}

#[tokio::test]
async fn the_whole_call_deadline_covers_slow_answers() {
    let fake = Fake::always(|| {
        Reply::After(Duration::from_secs(2), Box::new(Reply::ok(text_completion("late"))))
    })
    .await;
    let mut config = fake.config();
    config.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = OpenAiCompatible::new(config).unwrap().chat(hello()).await.unwrap_err();
    assert_eq!(err, ModelError::Timeout(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn truncated_stream_is_an_invalid_response() {
    // The body ends cleanly, but before the finish reason and `[DONE]`.
    let events = text_stream(&["Hel", "lo"])[..3].to_vec();
    let fake = Fake::always(move || Reply::sse(events.clone(), End::Close)).await;
    let events = collect(fake.model().chat_stream(hello()).await.unwrap()).await;
    assert_eq!(events[0], Ok(StreamEvent::Delta { text: "Hel".into() }));
    assert_eq!(events[1], Ok(StreamEvent::Delta { text: "lo".into() }));
    assert!(matches!(events[2], Err(ModelError::InvalidResponse(_))), "{events:?}");
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn stream_closed_after_finish_but_before_done_is_an_invalid_response() {
    // Everything but `[DONE]`: async-openai alone would end this stream as if it were complete.
    let events = text_stream(&["Hi"]);
    let fake = Fake::always(move || Reply::sse(events.clone(), End::Close)).await;
    let events = collect(fake.model().chat_stream(hello()).await.unwrap()).await;
    assert!(matches!(events.last(), Some(Err(ModelError::InvalidResponse(_)))), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Ok(StreamEvent::Done { .. }))));
}

#[tokio::test]
async fn aborted_stream_is_an_invalid_response() {
    let events = text_stream(&["Hel", "lo"])[..2].to_vec();
    let fake = Fake::always(move || Reply::sse(events.clone(), End::Abort)).await;
    let events = collect(fake.model().chat_stream(hello()).await.unwrap()).await;
    assert!(matches!(events.last(), Some(Err(ModelError::InvalidResponse(_)))), "{events:?}");
}

#[tokio::test]
async fn invalid_json_body_is_an_invalid_response_and_not_retried() {
    let fake = Fake::always(|| Reply::Json {
        status: 200,
        headers: Vec::new(),
        body: "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"message\":".into(),
    })
    .await;
    let err = fake.model().chat(hello()).await.unwrap_err();
    assert!(matches!(err, ModelError::InvalidResponse(_)), "{err:?}");
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn refused_connections_are_unavailable() {
    // Bind and drop a listener: nothing listens on that port any more.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let mut config =
        OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"), MODEL).with_api_key(KEY);
    config.backoff_base = Duration::from_millis(10);
    let err = OpenAiCompatible::new(config).unwrap().chat(hello()).await.unwrap_err();
    assert!(matches!(err, ModelError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn dropping_a_stream_closes_the_connection() {
    let events = text_stream(&["Hel", "lo"])[..2].to_vec();
    let fake = Fake::always(move || Reply::sse(events.clone(), End::Stall)).await;
    let mut config = fake.config();
    config.idle_timeout = Duration::from_secs(30);
    let model = OpenAiCompatible::new(config).unwrap();
    let mut stream = model.chat_stream(hello()).await.unwrap();
    assert!(stream.next().await.is_some());
    assert!(!fake.state.stream_dropped.load(Ordering::SeqCst));
    drop(stream);
    let started = Instant::now();
    while !fake.state.stream_dropped.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the provider never saw the client leave"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials and headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn api_key_goes_as_bearer_and_never_into_debug_or_errors() {
    let fake = Fake::always(|| {
        Reply::error(
            401,
            &format!(
                "Incorrect API key provided: {KEY}. You can find your API key at the dashboard."
            ),
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    })
    .await;
    let model = fake.model();
    let err = model.chat(hello()).await.unwrap_err();
    assert_eq!(fake.seen()[0].headers["authorization"], format!("Bearer {KEY}"));
    assert!(matches!(err, ModelError::Provider { status: 401, .. }), "{err:?}");
    for shown in
        [format!("{err}"), format!("{err:?}"), format!("{model:?}"), format!("{:?}", fake.config())]
    {
        assert!(!shown.contains(KEY), "key leaked in {shown}");
    }
    assert!(format!("{err}").contains("[REDACTED]"));
}

#[tokio::test]
async fn extra_headers_are_sent_and_no_key_means_no_authorization() {
    let fake = Fake::always(|| Reply::ok(text_completion("hi"))).await;
    let mut config = OpenAiConfig::new(&fake.base_url, "qwen2.5:0.5b")
        .with_header("X-Gateway-Tenant", "acme")
        .with_header("OpenAI-Organization", "org-42");
    config.timeout = Duration::from_secs(5);
    let model = OpenAiCompatible::new(config).unwrap();
    model.chat(hello()).await.unwrap();
    let headers = &fake.seen()[0].headers;
    assert_eq!(headers["x-gateway-tenant"], "acme");
    assert_eq!(headers["openai-organization"], "org-42");
    assert!(headers.get("authorization").is_none());
    assert_eq!(ChatModel::model_id(&model), "openai:qwen2.5:0.5b");
    assert!(!format!("{model:?}").contains("acme"), "header values are redacted in Debug");
}

// ---------------------------------------------------------------------------------------------
// The shared conformance suite, against the fake provider
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn chat_model_conformance_passes_against_the_fake_provider() {
    let fake = Fake::start(|seen, _| {
        if seen.body.get("response_format").is_some() {
            Reply::ok(text_completion("{\"route\": \"order\"}"))
        } else {
            Reply::ok(text_completion("Hello!"))
        }
    })
    .await;
    assert_chat_model_conformance(&fake.model()).await;
    assert_eq!(fake.seen().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------

const DIMS: usize = 8;

/// A deterministic, unnormalised vector per text, as a provider would compute it.
fn fake_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.5f32; DIMS];
    for (i, b) in text.bytes().take(4096).enumerate() {
        v[i % DIMS] += f32::from(b) / 16.0;
    }
    v
}

/// Answers `/v1/embeddings` like OpenAI, listing the items in reverse order (clients must use
/// `index`).
fn embeddings_reply(seen: &Seen, dims: usize) -> Reply {
    let inputs: Vec<String> = match &seen.body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
        other => panic!("unexpected input {other}"),
    };
    if inputs.iter().any(String::is_empty) {
        return Reply::error(400, "'$.input' is invalid.", "invalid_request_error", None);
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| {
            let mut v = fake_vector(t);
            v.truncate(dims);
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    Reply::ok(json!({
        "object": "list",
        "data": data,
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8}
    }))
}

fn embedder(fake: &Fake, batch_size: usize) -> OpenAiEmbedder {
    let mut config = fake.config();
    config.model = "text-embedding-3-small".into();
    let mut options = OpenAiEmbedderOptions::new(DIMS);
    options.batch_size = batch_size;
    OpenAiEmbedder::new(config, options).unwrap()
}

#[tokio::test]
async fn embeddings_are_batched_ordered_and_normalised() {
    let fake = Fake::start(|seen, _| embeddings_reply(seen, DIMS)).await;
    let embedder = embedder(&fake, 2);
    let texts: Vec<String> =
        ["Where is my package?", "", "我的订单什么时候到？", "refund please", "cancel"]
            .map(String::from)
            .to_vec();
    let vectors = embedder.embed(&texts).await.unwrap();

    assert_eq!(vectors.len(), 5);
    assert!(vectors[1].iter().all(|x| *x == 0.0), "an empty text is the zero vector, never sent");
    for (text, v) in texts.iter().zip(&vectors).filter(|(t, _)| !t.is_empty()) {
        let mut expected = fake_vector(text);
        fenliu_knowledge::l2_normalize(&mut expected);
        let cos = fenliu_knowledge::cosine(v, &expected);
        assert!(cos > 0.9999, "{text}: vector out of order ({cos})");
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "4 non-empty texts in batches of 2");
    assert!(seen.iter().all(|s| s.path == "/v1/embeddings"));
    assert_eq!(seen[0].body["model"], "text-embedding-3-small");
    assert_eq!(seen[0].body["input"], json!(["Where is my package?", "我的订单什么时候到？"]));
    assert_eq!(seen[0].body["encoding_format"], "float");
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {KEY}"));
}

#[tokio::test]
async fn embedding_dimension_mismatch_is_an_error() {
    let fake = Fake::start(|seen, _| embeddings_reply(seen, DIMS - 2)).await;
    let err = embedder(&fake, 16).embed(&["hello".to_owned()]).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("6 dimensions") && message.contains("8 configured"), "{message}");
}

#[tokio::test]
async fn embedder_conformance_passes_against_the_fake_provider() {
    let fake = Fake::start(|seen, _| embeddings_reply(seen, DIMS)).await;
    let embedder = embedder(&fake, 3);
    assert_eq!(Embedder::model_id(&embedder), "openai:text-embedding-3-small");
    assert_embedder_conformance(&embedder).await;
    let longest = fake
        .seen()
        .iter()
        .flat_map(|s| s.body["input"].as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap().chars().count())
        .max()
        .unwrap();
    assert!(longest <= 8_000, "long inputs are cut before sending ({longest} chars)");
}

#[tokio::test]
async fn embedding_server_errors_are_retried() {
    let fake = Fake::start(|seen, n| {
        if n == 0 {
            Reply::error(500, "boom", "server_error", None)
        } else {
            embeddings_reply(seen, DIMS)
        }
    })
    .await;
    let vectors = embedder(&fake, 8).embed(&["a".to_owned(), "b".to_owned()]).await.unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(fake.seen().len(), 2);
}
