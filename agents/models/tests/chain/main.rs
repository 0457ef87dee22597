//! Fallback chains, circuit breakers and model selection by configuration.
//!
//! Fast cases use the scripted chat model; the error paths that matter in production run the
//! real hosted client against an in-process server speaking the OpenAI wire protocol, and one
//! test sends the same conversation through a hosted provider and the real local Gemma by
//! changing nothing but the configuration string. Breakers run on a [`ManualClock`]: no test
//! sleeps through a cool-down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use fenliu_agent::test_utils::ScriptedChatModel;
use fenliu_agent::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, ModelError,
    StreamEvent, Usage,
};
use fenliu_models::{
    BreakerConfig, BreakerState, CircuitBreaker, FallbackChain, LocalGemma, ManualClock,
    ModelLoadError, ModelRegistry, ModelsSection, ProviderConfig,
};
use futures::StreamExt;
use serde_json::{Value, json};

const KEY: &str = "sk-chain-test-9d8e7f";

// ---------------------------------------------------------------------------------------------
// A small OpenAI-compatible provider
// ---------------------------------------------------------------------------------------------

/// What the fake provider answers.
#[derive(Clone, Debug)]
enum Reply {
    /// An error status with an OpenAI error body (which echoes the API key, like a careless
    /// gateway would).
    Status(u16),
    /// A chat completion with this text.
    Text(&'static str),
    /// A streamed answer: role chunk, these tokens, finish, `[DONE]`.
    Stream(&'static [&'static str]),
    /// A stream that sends its role chunk and then nothing, ever.
    StallBeforeFirstToken,
}

type Handler = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct FakeState {
    handler: Handler,
    bodies: Arc<Mutex<Vec<Value>>>,
}

struct Fake {
    base_url: String,
    state: FakeState,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Fake {
    async fn start(handler: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let state = FakeState { handler: Arc::new(handler), bodies: Arc::default() };
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

    async fn always(reply: Reply) -> Self {
        Self::start(move |_| reply.clone()).await
    }

    fn requests(&self) -> usize {
        self.state.bodies.lock().unwrap().len()
    }

    fn bodies(&self) -> Vec<Value> {
        self.state.bodies.lock().unwrap().clone()
    }

    /// The `[models.providers.NAME]` body for this server: short timeouts, `retries` retries.
    fn provider_toml(&self, retries: u32) -> String {
        format!(
            "kind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{KEY}\"\nmodel = \"gpt-4o-mini\"\n\
             timeout = 5\nidle_timeout = 0.4\nbackoff_base = 0.02\nbackoff_max = 0.05\n\
             max_retries = {retries}\n",
            self.base_url
        )
    }
}

async fn handle(State(state): State<FakeState>, body: Bytes) -> Response {
    let n = {
        let mut bodies = state.bodies.lock().unwrap();
        bodies.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        bodies.len() - 1
    };
    let json_response = |status: u16, body: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let sse = |body: Body| {
        Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .body(body)
            .unwrap()
    };
    match (state.handler)(n) {
        Reply::Status(status) => json_response(
            status,
            json!({"error": {"message": format!("upstream exploded (key {KEY})"),
                   "type": "server_error", "param": null, "code": null}}),
        ),
        Reply::Text(text) => json_response(200, completion(text)),
        Reply::Stream(tokens) => {
            let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
            events.extend(tokens.iter().map(|t| chunk(json!({"content": t}), None)));
            events.push(chunk(json!({}), Some("stop")));
            let mut body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
            body.push_str("data: [DONE]\n\n");
            sse(Body::from(body))
        }
        Reply::StallBeforeFirstToken => {
            let first = format!("data: {}\n\n", chunk(json!({"role": "assistant"}), None));
            let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) })
                .chain(futures::stream::pending());
            sse(Body::from_stream(stream))
        }
    }
}

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-chain",
        "object": "chat.completion",
        "created": 1_732_400_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
            "message": {"role": "assistant", "content": text, "refusal": null}}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}
    })
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-chain",
        "object": "chat.completion.chunk",
        "created": 1_732_400_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn conversation() -> ChatRequest {
    let mut request = ChatRequest::new(vec![
        ChatMessage::system("You are a shop assistant. Answer briefly."),
        ChatMessage::user("Where is my parcel?"),
    ]);
    request.max_tokens = Some(8);
    request.temperature = Some(0.0);
    request
}

fn breaker(clock: &ManualClock, failures: u32) -> CircuitBreaker {
    CircuitBreaker::with_clock(
        BreakerConfig {
            failures,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
        },
        Arc::new(clock.clone()),
    )
}

fn scripted(answers: Vec<Result<ChatResponse, ModelError>>) -> Arc<ScriptedChatModel> {
    Arc::new(ScriptedChatModel::new(answers))
}

fn server_error() -> Result<ChatResponse, ModelError> {
    Err(ModelError::Provider { status: 500, message: "boom".into() })
}

/// Parses a whole `fenliu.toml`-style document and returns its `[models]` section.
fn section(toml_text: &str) -> Result<ModelsSection, String> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        models: ModelsSection,
    }
    toml::from_str::<File>(toml_text).map(|f| f.models).map_err(|e| e.to_string())
}

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn build(toml_text: &str) -> Result<ModelRegistry, String> {
    let section = section(toml_text)?;
    ModelRegistry::build(&section, &models_dir()).map_err(|e| e.to_string())
}

async fn collect(stream: ChatStream) -> Vec<Result<StreamEvent, ModelError>> {
    stream.collect().await
}

fn text_of(events: &[Result<StreamEvent, ModelError>]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Delta { text }) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Fallback
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn timeout_or_server_error_moves_to_the_next_provider() {
    let clock = ManualClock::new();
    for failure in [
        Err(ModelError::Timeout(Duration::from_secs(30))),
        server_error(),
        Err(ModelError::RateLimited { retry_after: Some(Duration::from_secs(600)) }),
        Err(ModelError::Unavailable("connection refused".into())),
    ] {
        let primary = scripted(vec![failure.clone()]);
        let backup = scripted(vec![ScriptedChatModel::text("Your parcel is on its way.")]);
        let chain = FallbackChain::new("main")
            .with_provider("hosted", primary.clone(), breaker(&clock, 3))
            .with_provider("local", backup.clone(), breaker(&clock, 3));
        let answer = chain.chat(conversation()).await.unwrap();
        assert_eq!(answer.message.content, "Your parcel is on its way.", "after {failure:?}");
        assert_eq!(answer.model, "local/scripted", "the answering provider is recorded");
        assert_eq!(primary.requests().len(), 1);
        assert_eq!(backup.requests(), vec![conversation()], "the same request goes on");
        let status = chain.status();
        assert_eq!(status[0].state, BreakerState::Closed { recent_failures: 1 });
        assert_eq!(status[1].state, BreakerState::Closed { recent_failures: 0 });
    }
}

#[tokio::test]
async fn a_rejected_request_is_not_tried_elsewhere() {
    let clock = ManualClock::new();
    for rejection in [
        ModelError::InvalidRequest("prompt too long".into()),
        ModelError::Provider { status: 400, message: "bad schema".into() },
        ModelError::Cancelled,
    ] {
        let primary = scripted(vec![Err(rejection.clone())]);
        let backup = scripted(vec![ScriptedChatModel::text("should not be asked")]);
        let chain = FallbackChain::new("main")
            .with_provider("hosted", primary, breaker(&clock, 1))
            .with_provider("local", backup.clone(), breaker(&clock, 1));
        assert_eq!(chain.chat(conversation()).await.unwrap_err(), rejection);
        assert!(backup.requests().is_empty(), "{rejection:?} was retried elsewhere");
        // The provider answered: its breaker stays closed even at failures = 1.
        assert!(matches!(chain.status()[0].state, BreakerState::Closed { recent_failures: 0 }));
    }
}

#[tokio::test]
async fn an_invalid_response_moves_on_without_tripping_the_breaker() {
    let clock = ManualClock::new();
    let primary = scripted(vec![Err(ModelError::InvalidResponse("not JSON".into()))]);
    let backup = scripted(vec![ScriptedChatModel::text("{\"route\":\"order\"}")]);
    let chain = FallbackChain::new("router")
        .with_provider("local", primary, breaker(&clock, 1))
        .with_provider("hosted", backup, breaker(&clock, 1));
    let answer = chain.chat(conversation()).await.unwrap();
    assert_eq!(answer.model, "hosted/scripted");
    assert_eq!(chain.status()[0].state, BreakerState::Closed { recent_failures: 0 });
}

#[tokio::test]
async fn a_real_500_falls_back_after_the_providers_own_retries() {
    let fake = Fake::always(Reply::Status(500)).await;
    let backup = Fake::always(Reply::Text("Your parcel left the warehouse.")).await;
    let registry = build(&format!(
        "[models]\ndefault = \"main\"\n\
         [models.providers.hosted]\n{}\n\
         [models.providers.backup]\n{}\n\
         [models.chains.main]\nproviders = [\"hosted\", \"backup\"]\n",
        fake.provider_toml(1),
        backup.provider_toml(0),
    ))
    .unwrap();
    let model = registry.for_role("order").unwrap();
    assert_eq!(model.model_id(), "chain:main");
    let answer = model.chat(conversation()).await.unwrap();
    assert_eq!(answer.message.content, "Your parcel left the warehouse.");
    assert_eq!(answer.model, "backup/gpt-4o-mini-2024-07-18");
    assert_eq!(fake.requests(), 2, "one attempt and one retry inside the hosted client");
}

#[tokio::test]
async fn all_providers_down_is_unavailable_with_a_summary_per_provider() {
    let fake = Fake::always(Reply::Status(503)).await;
    let registry = build(&format!(
        "[models]\ndefault = \"main\"\n\
         [models.providers.hosted]\n{}\n\
         [models.chains.main]\nproviders = [\"hosted\"]\nfailures = 1\n",
        fake.provider_toml(0),
    ))
    .unwrap();
    let chain = registry.chain("main").unwrap();
    let err = chain.chat(conversation()).await.unwrap_err();
    let ModelError::Unavailable(summary) = &err else { panic!("{err:?}") };
    assert!(summary.contains("hosted: provider error 503"), "{summary}");
    assert!(!summary.contains(KEY), "the API key leaked: {summary}");

    // Now its breaker is open: the next call is refused without a request.
    let dummy = scripted(vec![Err(ModelError::Timeout(Duration::from_secs(1)))]);
    let clock = ManualClock::new();
    let two = FallbackChain::new("two")
        .with_provider("hosted", dummy, breaker(&clock, 1))
        .with_provider("local", scripted(vec![server_error()]), breaker(&clock, 1));
    let err = two.chat(conversation()).await.unwrap_err().to_string();
    assert!(err.contains("all 2 providers of chain:two failed"), "{err}");
    assert!(err.contains("hosted: model call timed out"), "{err}");
    assert!(err.contains("local: provider error 500: boom"), "{err}");
    let err = two.chat(conversation()).await.unwrap_err().to_string();
    assert!(err.contains("hosted: skipped, circuit open (30s of cool-down left)"), "{err}");
    assert!(err.contains("local: skipped, circuit open"), "{err}");

    let requests = fake.requests();
    assert!(chain.chat(conversation()).await.is_err());
    assert_eq!(fake.requests(), requests, "an open breaker sends nothing");
    assert!(FallbackChain::new("empty").chat(conversation()).await.is_err());
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker in a chain
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_breaker_skips_a_broken_provider_during_its_cool_down_then_probes() {
    // The hosted provider fails its first 4 requests, then recovers.
    let fake = Fake::start(|n| if n < 4 { Reply::Status(502) } else { Reply::Text("Back!") }).await;
    let backup = Fake::always(Reply::Text("From the backup.")).await;
    let toml_text = format!(
        "[models]\ndefault = \"main\"\n\
         [models.providers.hosted]\n{}\n\
         [models.providers.backup]\n{}\n\
         [models.chains.main]\nproviders = [\"hosted\", \"backup\"]\n\
         failures = 3\nwindow_secs = 60\ncool_down_secs = 30\n",
        fake.provider_toml(0),
        backup.provider_toml(0),
    );
    let clock = ManualClock::new();
    let registry = ModelRegistry::build_with_clock(&section(&toml_text).unwrap(), &models_dir(), {
        Arc::new(clock.clone())
    })
    .unwrap();
    let chain = registry.chain("main").unwrap();
    let ask = || async { chain.chat(conversation()).await.unwrap().message.content };

    for _ in 0..3 {
        assert_eq!(ask().await, "From the backup.");
    }
    assert_eq!(fake.requests(), 3);
    assert_eq!(
        chain.breaker("hosted").unwrap().state(),
        BreakerState::Open { remaining: Duration::from_secs(30) }
    );

    // During the cool-down the hosted provider gets no request at all.
    for _ in 0..5 {
        assert_eq!(ask().await, "From the backup.");
        clock.advance(Duration::from_secs(5));
    }
    assert_eq!(fake.requests(), 3, "called during its cool-down");

    // Half-open: one probe; it fails (request 4) → open for another cool-down.
    clock.advance(Duration::from_secs(5));
    assert_eq!(chain.status()[0].state, BreakerState::HalfOpen { probing: false });
    assert_eq!(ask().await, "From the backup.");
    assert_eq!(fake.requests(), 4);
    assert!(matches!(chain.status()[0].state, BreakerState::Open { .. }));
    assert_eq!(ask().await, "From the backup.");
    assert_eq!(fake.requests(), 4);

    // Next probe succeeds (request 5) → closed, the hosted provider answers again.
    clock.advance(Duration::from_secs(30));
    assert_eq!(ask().await, "Back!");
    assert_eq!(chain.status()[0].state, BreakerState::Closed { recent_failures: 0 });
    assert_eq!(ask().await, "Back!");
    assert_eq!(fake.requests(), 6);
}

#[tokio::test]
async fn only_one_probe_at_a_time_and_a_cancelled_probe_frees_the_slot() {
    struct Slow(AtomicUsize);
    impl ChatModel for Slow {
        fn model_id(&self) -> &str {
            "slow"
        }
        async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, ModelError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            futures::future::pending().await
        }
    }
    let clock = ManualClock::new();
    let slow = Arc::new(Slow(AtomicUsize::new(0)));
    let b = breaker(&clock, 1);
    b.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(30));
    let chain = FallbackChain::new("main")
        .with_provider("slow", slow.clone(), b.clone())
        .with_provider("backup", scripted(vec![ScriptedChatModel::text("ok")]), breaker(&clock, 1));

    // The probe hangs; a caller gives up on it (drops the future).
    let probe = tokio::time::timeout(Duration::from_millis(50), chain.chat(conversation())).await;
    assert!(probe.is_err());
    assert_eq!(slow.0.load(Ordering::SeqCst), 1);
    assert_eq!(b.state(), BreakerState::HalfOpen { probing: false }, "the slot is free again");

    // While a probe runs, other callers skip the provider.
    let permit = b.try_acquire().unwrap();
    assert!(permit.is_probe());
    assert_eq!(chain.chat(conversation()).await.unwrap().model, "backup/scripted");
    assert_eq!(slow.0.load(Ordering::SeqCst), 1);
    drop(permit);
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

/// Streams one delta, then fails.
struct BreaksMidStream;

impl ChatModel for BreaksMidStream {
    fn model_id(&self) -> &str {
        "breaks"
    }
    async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, ModelError> {
        Err(ModelError::Unavailable("use the stream".into()))
    }
    async fn chat_stream(&self, _: ChatRequest) -> Result<ChatStream, ModelError> {
        Ok(Box::pin(futures::stream::iter([
            Ok(StreamEvent::Delta { text: "Your par".into() }),
            Err(ModelError::Timeout(Duration::from_millis(400))),
        ])))
    }
}

/// A stream that ends without a single event.
struct Silent;

impl ChatModel for Silent {
    fn model_id(&self) -> &str {
        "silent"
    }
    async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, ModelError> {
        Err(ModelError::Unavailable("use the stream".into()))
    }
    async fn chat_stream(&self, _: ChatRequest) -> Result<ChatStream, ModelError> {
        Ok(Box::pin(futures::stream::empty()))
    }
}

#[tokio::test]
async fn a_stream_falls_back_only_before_its_first_event() {
    let clock = ManualClock::new();
    // Fails before the stream: fallback.
    let chain = FallbackChain::new("main")
        .with_provider("hosted", scripted(vec![server_error()]), breaker(&clock, 3))
        .with_provider("silent", Arc::new(Silent), breaker(&clock, 3))
        .with_provider("local", scripted(vec![ScriptedChatModel::text("On its way.")]), {
            breaker(&clock, 3)
        });
    let events = collect(chain.chat_stream(conversation()).await.unwrap()).await;
    assert_eq!(text_of(&events), "On its way.");
    assert!(matches!(events.last(), Some(Ok(StreamEvent::Done { .. }))));

    // Fails after its first event: the caller sees the error; nobody else is asked.
    let backup = scripted(vec![ScriptedChatModel::text("never")]);
    let breaks = breaker(&clock, 3);
    let chain = FallbackChain::new("main")
        .with_provider("hosted", Arc::new(BreaksMidStream), breaks.clone())
        .with_provider("local", backup.clone(), breaker(&clock, 3));
    let events = collect(chain.chat_stream(conversation()).await.unwrap()).await;
    assert_eq!(events[0], Ok(StreamEvent::Delta { text: "Your par".into() }));
    assert_eq!(events[1], Err(ModelError::Timeout(Duration::from_millis(400))));
    assert_eq!(events.len(), 2);
    assert!(backup.requests().is_empty());
    assert_eq!(breaks.state(), BreakerState::Closed { recent_failures: 1 }, "recorded late");
}

#[tokio::test]
async fn a_hosted_stream_that_stalls_before_its_first_token_falls_back() {
    let stalled = Fake::always(Reply::StallBeforeFirstToken).await;
    let good = Fake::always(Reply::Stream(&["Your ", "parcel ", "is ", "here."])).await;
    let registry = build(&format!(
        "[models]\n[models.roles]\nsummariser = \"main\"\n\
         [models.providers.hosted]\n{}\n\
         [models.providers.other]\n{}\n\
         [models.chains.main]\nproviders = [\"hosted\", \"other\"]\n",
        stalled.provider_toml(0),
        good.provider_toml(0),
    ))
    .unwrap();
    assert!(registry.for_role("order").is_none(), "no default: other roles have no model");
    let model = registry.for_role(ModelRegistry::SUMMARISER).unwrap();
    let started = std::time::Instant::now();
    let events = collect(model.chat_stream(conversation()).await.unwrap()).await;
    assert_eq!(text_of(&events), "Your parcel is here.");
    assert!(started.elapsed() < Duration::from_secs(3), "the idle timeout, not the deadline");
    assert_eq!((stalled.requests(), good.requests()), (1, 1));
    assert_eq!(
        registry.chain("main").unwrap().status()[0].state,
        BreakerState::Closed { recent_failures: 1 }
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn configuration_parses_defaults_and_roles() {
    let s = section(
        r#"
        [models]
        default = "main"

        [models.roles]
        router = "hosted"
        order = "main"

        [models.providers.hosted]
        kind = "openai"
        base_url = "https://api.example.com/v1"
        api_key = "sk-parse-secret"
        model = "gpt-4o-mini"
        timeout = 12.5

        [models.providers.local]
        kind = "local"
        threads = 2
        prompt_format = "transcript"

        [models.chains.main]
        providers = ["hosted", "local"]
        failures = 5
        "#,
    )
    .unwrap();
    assert_eq!(s.default.as_deref(), Some("main"));
    assert_eq!(s.roles["router"], "hosted");
    let ProviderConfig::OpenAi(hosted) = &s.providers["hosted"] else { panic!() };
    assert_eq!(hosted.timeout, Duration::from_millis(12_500));
    assert!(!format!("{s:?}").contains("sk-parse-secret"), "Debug shows the API key");
    let ProviderConfig::Local(local) = &s.providers["local"] else { panic!() };
    assert_eq!(local.threads, 2);
    assert_eq!(local.context_tokens, 2048);
    assert_eq!(local.path, Path::new(LocalGemma::FILE));
    let chain = &s.chains["main"];
    assert_eq!((chain.failures, chain.window_secs, chain.cool_down_secs), (5, 60.0, 30.0));

    // No [models] at all, or an empty one: nothing configured.
    for text in ["", "[models]\n"] {
        let registry = build(text).unwrap();
        assert!(registry.is_empty());
        assert!(registry.for_role(ModelRegistry::ROUTER).is_none());
    }
}

/// The example in `registry.rs`'s documentation, as the server will read it.
const DOCUMENTED_EXAMPLE: &str = r#"
[models]
default = "main"

[models.roles]
router = "local"
summariser = "hosted"
order = "main"

[models.providers.hosted]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key = "sk-example"
model = "gpt-4o-mini"
max_retries = 1

[models.providers.local]
kind = "local"
path = "gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
threads = 1
context_tokens = 2048

[models.chains.main]
providers = ["hosted", "local"]
failures = 3
window_secs = 60
cool_down_secs = 30
"#;

#[test]
fn the_documented_example_parses() {
    let s = section(DOCUMENTED_EXAMPLE).unwrap();
    assert_eq!(s.roles.len(), 3);
    assert_eq!(s.chains["main"].providers, ["hosted", "local"]);
    let ProviderConfig::OpenAi(hosted) = &s.providers["hosted"] else { panic!() };
    assert_eq!(hosted.max_retries, 1);
    assert_eq!(s.providers["local"], ProviderConfig::Local(Default::default()));
}

#[test]
fn roles_resolve_to_overrides_then_the_default() {
    let registry = build(
        r#"
        [models]
        default = "a"
        [models.roles]
        router = "b"
        [models.providers.a]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1"
        model = "model-a"
        [models.providers.b]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1"
        model = "model-b"
        [models.providers.c]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1"
        model = "unused"
        "#,
    )
    .unwrap();
    assert_eq!(registry.for_role("router").unwrap().model_id(), "openai:model-b");
    assert_eq!(registry.for_role("order").unwrap().model_id(), "openai:model-a");
    assert_eq!(registry.target_of("summariser"), Some("a"));
    assert!(registry.provider("c").is_none(), "unused providers are not built");
    assert!(registry.check_roles(&["router", "summariser", "order"]).is_ok());
    let err = registry.check_roles(&["summariser", "order"]).unwrap_err().to_string();
    assert!(err.contains("models.roles.router: unknown role"), "{err}");
}

#[test]
fn providers_are_built_once_and_shared() {
    let registry = build(
        r#"
        [models]
        default = "one"
        [models.roles]
        router = "shared"
        [models.providers.shared]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1"
        model = "m"
        [models.chains.one]
        providers = ["shared"]
        [models.chains.two]
        providers = ["shared"]
        "#,
    )
    .unwrap();
    let shared = registry.provider("shared").unwrap();
    // The registry, the router role and both chains hold the same instance.
    assert_eq!(Arc::strong_count(&shared), 5);
    assert!(Arc::ptr_eq(&registry.for_role("router").unwrap(), &shared));
    assert_eq!(registry.chains().count(), 2);
}

#[test]
fn hostile_configurations_fail_with_the_key_named() {
    let openai = "kind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            "[models.providers.x]\nkind = \"llamafile\"\n".into(),
            "unknown variant `llamafile`, expected `openai` or `local`",
        ),
        ("[models.providers.x]\nmodel = \"m\"\n".into(), "missing field `kind`"),
        (format!("[models.providers.x]\n{openai}bogus = 1\n"), "unknown field `bogus`"),
        ("[models.providers.x]\nkind = \"local\"\nthreds = 2\n".into(), "unknown field `threds`"),
        ("[models]\nfallback = \"x\"\n".into(), "unknown field `fallback`"),
        (
            format!(
                "[models.providers.x]\n{openai}[models.chains.c]\nproviders = [\"x\"]\nretries = 3\n"
            ),
            "unknown field `retries`",
        ),
        (
            format!("[models]\ndefault = \"nowhere\"\n[models.providers.x]\n{openai}"),
            "models.default: `nowhere` is neither a provider nor a chain (providers: x; chains: none)",
        ),
        (
            format!("[models.roles]\nrouter = \"gpt\"\n[models.providers.x]\n{openai}"),
            "models.roles.router: `gpt` is neither a provider nor a chain",
        ),
        (
            format!(
                "[models.providers.x]\n{openai}[models.chains.c]\nproviders = [\"x\", \"y\"]\n"
            ),
            "models.chains.c.providers: unknown provider `y` (providers: x)",
        ),
        (
            format!(
                "[models.providers.x]\n{openai}[models.chains.a]\nproviders = [\"b\"]\n\
                 [models.chains.b]\nproviders = [\"a\"]\n"
            ),
            "models.chains.a.providers: `b` is a chain; chains cannot nest",
        ),
        (
            format!("[models.providers.x]\n{openai}[models.chains.a]\nproviders = [\"a\"]\n"),
            "models.chains.a.providers: `a` is a chain; chains cannot nest",
        ),
        (
            format!("[models.providers.x]\n{openai}[models.chains.c]\nproviders = []\n"),
            "models.chains.c.providers is empty",
        ),
        (
            format!(
                "[models.providers.x]\n{openai}[models.chains.c]\nproviders = [\"x\", \"x\"]\n"
            ),
            "models.chains.c.providers: `x` is listed twice",
        ),
        (
            format!(
                "[models.providers.x]\n{openai}[models.chains.c]\nproviders = [\"x\"]\nfailures = 0\n"
            ),
            "models.chains.c.failures must be at least 1",
        ),
        (
            format!(
                "[models.providers.x]\n{openai}[models.chains.c]\nproviders = [\"x\"]\ncool_down_secs = -1\n"
            ),
            "models.chains.c.cool_down_secs must be a positive number of seconds",
        ),
        (
            format!("[models.providers.x]\n{openai}[models.chains.x]\nproviders = [\"x\"]\n"),
            "models: `x` is both a provider and a chain",
        ),
        (
            format!("[models.providers.\"a b\"]\n{openai}"),
            "models.providers: name \"a b\" must be letters",
        ),
        (
            "[models]\ndefault = \"x\"\n[models.providers.x]\nkind = \"openai\"\n\
             base_url = \"localhost:8000\"\nmodel = \"m\"\n"
                .into(),
            "invalid model configuration: models.providers.x: base_url \"localhost:8000\" must start",
        ),
        (
            "[models]\ndefault = \"x\"\n[models.providers.x]\nkind = \"local\"\nthreads = 0\n"
                .into(),
            "models.providers.x: threads, context_tokens and max_tokens must be at least 1",
        ),
        (
            "[models]\ndefault = \"x\"\n[models.providers.x]\nkind = \"local\"\n\
             path = \"missing/model.gguf\"\n"
                .into(),
            "missing/model.gguf is missing",
        ),
    ];
    for (text, expected) in cases {
        let err = build(&text).map(|_| ()).unwrap_err();
        assert!(err.contains(expected), "config:\n{text}\nexpected {expected:?}, got:\n{err}");
    }
    // A secret in a rejected configuration does not end up in the error.
    let err = build(
        "[models]\ndefault = \"x\"\n[models.providers.x]\nkind = \"openai\"\n\
         base_url = \"http://h/v1\"\nmodel = \"m\"\napi_key = \"sk-bad\nkey\"\n",
    )
    .map(|_| ())
    .unwrap_err();
    assert!(!err.contains("sk-bad"), "{err}");
    assert!(matches!(
        ModelRegistry::build(
            &section("[models]\ndefault = \"l\"\n[models.providers.l]\nkind = \"local\"\n")
                .unwrap(),
            Path::new("/nonexistent"),
        ),
        Err(ModelLoadError::Missing { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Hosted and local, switched by configuration alone
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_conversation_runs_hosted_or_local_by_configuration_alone() {
    let fake = Fake::always(Reply::Text("It ships tomorrow.")).await;
    let config = |provider: &str| {
        format!(
            "[models]\ndefault = \"assistant\"\n[models.roles]\nrouter = \"assistant\"\n\
             [models.providers.assistant]\n{provider}"
        )
    };
    let local = "kind = \"local\"\nthreads = 1\ncontext_tokens = 256\nmax_tokens = 8\n\
                 prompt_format = \"transcript\"\n";

    // Hosted.
    let hosted = build(&config(&fake.provider_toml(0))).unwrap();
    let answer = hosted.for_role("order").unwrap().chat(conversation()).await.unwrap();
    assert_eq!(answer.message.content, "It ships tomorrow.");
    assert_eq!(answer.model, "gpt-4o-mini-2024-07-18");
    let body = &fake.bodies()[0];
    assert_eq!(body["messages"][1]["content"], "Where is my parcel?");
    assert_eq!(body["max_tokens"], 8);

    // Local: only the provider's table changed.
    let registry = tokio::task::spawn_blocking(move || build(&config(local)))
        .await
        .unwrap()
        .expect("run scripts/setup.sh to fetch the gemma model");
    let model = registry.for_role("order").unwrap();
    assert_eq!(model.model_id(), LocalGemma::MODEL_ID);
    assert!(Arc::ptr_eq(&model, &registry.for_role(ModelRegistry::ROUTER).unwrap()));
    let answer = model.chat(conversation()).await.unwrap();
    assert_eq!(answer.model, LocalGemma::MODEL_ID);
    assert!(answer.usage.prompt_tokens > 10);
    assert!((1..=8).contains(&answer.usage.completion_tokens), "{answer:?}");
    assert!(
        !answer.message.content.trim().is_empty() || answer.finish_reason == FinishReason::Stop,
        "{answer:?}"
    );
    drop((model, registry));

    // hosted → local: a failing hosted provider falls back to the local model, streaming too.
    let down = Fake::always(Reply::Status(500)).await;
    let chained = format!(
        "[models]\ndefault = \"main\"\n\
         [models.providers.hosted]\n{}\n[models.providers.local]\n{local}\n\
         [models.chains.main]\nproviders = [\"hosted\", \"local\"]\n",
        down.provider_toml(0)
    );
    let registry = tokio::task::spawn_blocking(move || build(&chained)).await.unwrap().unwrap();
    let model = registry.for_role("complaint").unwrap();
    let answer = model.chat(conversation()).await.unwrap();
    assert_eq!(answer.model, format!("local/{}", LocalGemma::MODEL_ID));
    let events = collect(model.chat_stream(conversation()).await.unwrap()).await;
    assert!(
        matches!(
            events.last(),
            Some(Ok(StreamEvent::Done { usage: Usage { completion_tokens: 1..=8, .. }, .. }))
        ),
        "{events:?}"
    );
    assert_eq!(text_of(&events), answer.message.content, "greedy: the same answer streamed");
    assert_eq!(down.requests(), 2);
}
