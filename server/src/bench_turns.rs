//! `fenliu bench turns`: the orchestration cost of one customer turn in the model-driven policy.
//!
//! Each turn is the shape: the supervisor's LLM stage routes the message to the order
//! agent (model call 1), the agent's model calls `get_order` (model call 2 + the tool), and the
//! model answers from the tool result (model call 3). The model is either scripted in-process, or
//! the same script served by an OpenAI-compatible mock on loopback HTTP and reached through
//! [`OpenAiCompatible`] — so the figures are fenliu's own overhead (routing, allow-lists, schema
//! checks, state, JSON, HTTP), not a model's.
//!
//! What is replaced, and why: the embedder is a constant one (every message looks alike, so the
//! semantic stage never decides and the LLM stage runs, as the turn shape requires, without
//! MiniLM's milliseconds), and the order store is an in-memory map of the demo shop's orders
//! (read-only), so a database does not dominate the figure.
//!
//! CPU time is the process's user+system time from `/proc/self/stat` (the mock server runs in
//! the same process, so the HTTP figure includes the server side of every call); peak RSS is
//! `VmHWM` from `/proc/self/status`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use fenliu_agent::policy::ModelDrivenPolicy;
use fenliu_agent::{
    Channel, ChatMessage, ChatModel, ChatRequest, ChatResponse, CustomerRef, CustomerTier,
    FinishReason, Language, ModelError, ResponseFormat, Route, ToolCallRequest, TrainingPhrase,
    Usage,
};
use fenliu_knowledge::Embedder;
use fenliu_models::openai::{OpenAiCompatible, OpenAiConfig};
use fenliu_orchestrator::{
    AgentRegistry, MemoryConversationStore, Orchestrator, ReplyKind, RouterConfig, Supervisor,
    TurnLimits, TurnRequest,
};
use fenliu_tool::ToolSet;
use fenliu_tools_commerce::{
    Address, CancelReason, Customer, ImportStats, Order, OrderStore, Product, ShopData, StoreError,
    StoreResult,
};
use serde::Serialize;
use serde_json::{Value, json};

/// Options of `fenliu bench turns`.
#[derive(Debug, Clone)]
pub struct BenchTurnsArgs {
    /// The demo shop (its orders are looked up).
    pub shop: std::path::PathBuf,
    /// Concurrent conversations to measure.
    pub concurrency: Vec<usize>,
    /// Turns per measurement (spread over the conversations).
    pub turns: usize,
    /// Runs per figure; medians are reported.
    pub runs: usize,
    /// JSON instead of a table.
    pub json: bool,
}

/// Every message looks the same to it: the semantic stage splits its vote and defers to the LLM.
struct ConstantEmbedder;

impl Embedder for ConstantEmbedder {
    fn model_id(&self) -> &str {
        "constant"
    }
    fn dimensions(&self) -> usize {
        4
    }
    async fn embed(&self, texts: &[String]) -> fenliu_knowledge::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|_| vec![0.5, 0.5, 0.5, 0.5]).collect())
    }
}

/// The demo shop's orders in a map, read-only.
struct ReadOnlyShop {
    customers: BTreeMap<String, Customer>,
    orders: BTreeMap<String, Order>,
}

impl OrderStore for ReadOnlyShop {
    async fn import(&self, _: &ShopData) -> StoreResult<ImportStats> {
        Ok(ImportStats::default())
    }
    async fn customer(&self, id: &str) -> StoreResult<Option<Customer>> {
        Ok(self.customers.get(id).cloned())
    }
    async fn product(&self, _: &str) -> StoreResult<Option<Product>> {
        Ok(None)
    }
    async fn products(&self) -> StoreResult<Vec<Product>> {
        Ok(Vec::new())
    }
    async fn order(&self, id: &str) -> StoreResult<Option<Order>> {
        Ok(self.orders.get(id).cloned())
    }
    async fn orders_of(&self, customer_id: &str) -> StoreResult<Vec<Order>> {
        Ok(self.orders.values().filter(|o| o.customer_id == customer_id).cloned().collect())
    }
    async fn cancel_order(&self, _: &str, _: &str, _: CancelReason) -> StoreResult<Order> {
        Err(StoreError::InvalidInput("the benchmark shop is read-only".into()))
    }
    async fn update_order_address(&self, _: &str, _: &str, _: &Address) -> StoreResult<Order> {
        Err(StoreError::InvalidInput("the benchmark shop is read-only".into()))
    }
}

/// The answer to a `get_order` result: the order's status and its carriers' tracking numbers,
/// read from the tool result (so a test can tell the shop's data went through the model).
fn answer_from_tool(result: &str) -> String {
    let order: Value = serde_json::from_str(result).unwrap_or(Value::Null);
    let tracking: Vec<String> = order["fulfillments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| {
            let carrier = f["carrier"].as_str().unwrap_or_default().to_owned();
            f["tracking_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .map(move |t| format!("{carrier} {t}"))
        })
        .collect();
    match (order["id"].as_str(), order["status"].as_str()) {
        (Some(id), Some(status)) if !tracking.is_empty() => {
            format!("Order {id} is {status}; tracking: {}.", tracking.join(", "))
        }
        (Some(id), Some(status)) => format!("Order {id} is {status}."),
        _ => "I couldn't look that order up.".to_owned(),
    }
}

/// The script of one turn, decided from the request alone (so any number of conversations can
/// share one model): a routing request gets `order`, a request whose last message is a tool
/// result gets the answer from it, anything else gets a `get_order` call for the order id in the
/// message.
fn scripted_answer(structured: bool, tool_result: Option<&str>, user_text: &str) -> (Value, bool) {
    if structured {
        return (json!({"content": "{\"route\":\"order\",\"confidence\":0.93}"}), false);
    }
    if let Some(result) = tool_result {
        return (json!({"content": answer_from_tool(result)}), false);
    }
    let id = fenliu_tools_commerce::find_order_id(user_text).unwrap_or_default();
    (json!({"tool": "get_order", "arguments": json!({"order_id": id}).to_string()}), true)
}

/// The in-process scripted model.
struct ScriptModel;

impl ChatModel for ScriptModel {
    fn model_id(&self) -> &str {
        "bench-script"
    }
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        let structured = matches!(request.response_format, ResponseFormat::JsonSchema { .. });
        let tool_result = request
            .messages
            .last()
            .filter(|m| m.role == fenliu_agent::ChatRole::Tool)
            .map(|m| m.content.as_str());
        let user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == fenliu_agent::ChatRole::User)
            .map(|m| m.content.as_str())
            .unwrap_or_default();
        let (answer, tool) = scripted_answer(structured, tool_result, user);
        let mut message = ChatMessage::assistant(answer["content"].as_str().unwrap_or_default());
        if tool {
            message.tool_calls.push(ToolCallRequest {
                id: "call_1".into(),
                name: "get_order".into(),
                arguments: answer["arguments"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(ChatResponse {
            message,
            finish_reason: if tool { FinishReason::ToolCalls } else { FinishReason::Stop },
            usage: Usage { prompt_tokens: 100, completion_tokens: 10 },
            model: "bench-script".into(),
        })
    }
}

/// What the mock OpenAI-compatible server has answered.
#[derive(Debug, Default)]
pub struct MockStats {
    /// Chat completion requests.
    pub requests: AtomicUsize,
    /// Requests that offered tools (an agent's model-driven policy, not the router).
    pub with_tools: AtomicUsize,
}

/// The OpenAI-compatible mock of the benchmark (`POST /v1/chat/completions`), counting on
/// `stats`: routes every message to `order`, calls `get_order` for the order id in the customer's
/// message, and answers with the status and tracking numbers from the tool result. Tests use it
/// as a hosted model over loopback HTTP.
pub fn mock_openai(stats: Arc<MockStats>) -> Router {
    Router::new().route("/v1/chat/completions", post(mock_completions)).with_state(stats)
}

/// The same script behind `POST /v1/chat/completions`, in OpenAI's wire format.
async fn mock_completions(
    State(stats): State<Arc<MockStats>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    if body["tools"].as_array().is_some_and(|t| !t.is_empty()) {
        stats.with_tools.fetch_add(1, Ordering::Relaxed);
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let structured = body.get("response_format").is_some_and(|f| f["type"] == "json_schema");
    let tool_result = messages
        .last()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned());
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let (answer, tool) = scripted_answer(structured, tool_result.as_deref(), &user);
    let message = if tool {
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_order", "arguments": answer["arguments"]}
        }]})
    } else {
        json!({"role": "assistant", "content": answer["content"]})
    };
    Json(json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
        "choices": [{"index": 0, "message": message,
                     "finish_reason": if tool { "tool_calls" } else { "stop" }}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    }))
}

fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat: utime and stime in clock ticks (100 per second on
    // Linux). The command name (field 2) may hold spaces, so count from its closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    model: &'static str,
    concurrency: usize,
    turns: usize,
    turns_per_second: f64,
    cpu_ms_per_turn: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss_mb: f64,
}

async fn orchestrator(
    shop: Arc<ReadOnlyShop>,
    model: Arc<dyn fenliu_agent::DynChatModel>,
) -> anyhow::Result<Orchestrator<MemoryConversationStore>> {
    let mut registry = AgentRegistry::new();
    registry.register(Arc::new(fenliu_agent_order::OrderAgent::new()))?;
    let descriptions = registry.route_descriptions();
    // Two routes in every neighbourhood: the constant embedder's vote is split, the LLM decides.
    let phrases = vec![
        (Route::ORDER, TrainingPhrase::new("where is my order")),
        (Route::OUT_OF_SCOPE, TrainingPhrase::new("what's the weather")),
    ];
    let config = RouterConfig { model: None, semantic_threshold: 1.0, ..RouterConfig::default() };
    let supervisor =
        Supervisor::new(Arc::new(ConstantEmbedder), &phrases, descriptions, None, config)
            .await?
            .with_llm(model.clone());
    let tools = ToolSet::new(fenliu_tools_commerce::tools::order_tools(shop))?;
    Ok(Orchestrator::new(
        "bench",
        registry,
        supervisor,
        tools,
        MemoryConversationStore::new(),
        TurnLimits::default(),
    )?
    .with_agent_model("order", model)
    .with_agent_policy("order", ModelDrivenPolicy::default()))
}

/// One measurement: `turns` turns spread over `concurrency` conversations at once.
async fn measure(
    o: Arc<Orchestrator<MemoryConversationStore>>,
    who: &[(CustomerRef, String)],
    concurrency: usize,
    turns: usize,
) -> anyhow::Result<(f64, f64, Vec<f64>)> {
    let per_task = turns.div_ceil(concurrency.max(1));
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for c in 0..concurrency {
        let o = o.clone();
        let (customer, order) = who[c % who.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = Instant::now();
                let out = o
                    .handle_turn(TurnRequest {
                        conversation_id: None,
                        customer: customer.clone(),
                        channel: Channel::Web,
                        text: format!("Where is my order {order}?"),
                    })
                    .await?;
                anyhow::ensure!(
                    out.kind == ReplyKind::Answer
                        && out.decision.stage == "llm"
                        && out.tool_calls.len() == 1,
                    "unexpected turn: {:?} via {} with {} tool calls",
                    out.kind,
                    out.decision.stage,
                    out.tool_calls.len()
                );
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(per_task * concurrency);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    Ok((wall, cpu, latencies))
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len().saturating_sub(1)) as f64 * p).round() as usize;
    v.get(i).copied().unwrap_or(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    percentile(&mut v, 0.5)
}

/// Runs the benchmark and prints the table.
pub async fn bench_turns(args: &BenchTurnsArgs) -> anyhow::Result<()> {
    let data = ShopData::load_dir(&args.shop)
        .with_context(|| format!("loading the shop in {}", args.shop.display()))?;
    let shop = Arc::new(ReadOnlyShop {
        customers: data.customers.iter().map(|c| (c.id.clone(), c.clone())).collect(),
        orders: data.orders.iter().map(|o| (o.id.clone(), o.clone())).collect(),
    });
    let who: Vec<(CustomerRef, String)> = data
        .orders
        .iter()
        .take(500)
        .map(|o| {
            let customer = CustomerRef {
                id: o.customer_id.clone(),
                name: o.customer_id.clone(),
                tier: CustomerTier::Regular,
                language: Language::En,
            };
            (customer, o.id.clone())
        })
        .collect();
    anyhow::ensure!(!who.is_empty(), "the shop has no orders");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = mock_openai(Arc::new(MockStats::default()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut http_config = OpenAiConfig::new(format!("http://{addr}/v1"), "bench");
    http_config.timeout = Duration::from_secs(60);
    http_config.max_retries = 0;
    let http: Arc<dyn fenliu_agent::DynChatModel> = Arc::new(OpenAiCompatible::new(http_config)?);

    let mut rows = Vec::new();
    for (name, model) in [
        ("in-process", Arc::new(ScriptModel) as Arc<dyn fenliu_agent::DynChatModel>),
        ("http", http),
    ] {
        let o = Arc::new(orchestrator(shop.clone(), model).await?);
        // Warm-up: connection pools, lazy statics.
        measure(o.clone(), &who, 4, 40).await?;
        for &concurrency in &args.concurrency {
            let turns = args.turns.max(concurrency);
            let (mut tps, mut cpu, mut p50, mut p99) = (vec![], vec![], vec![], vec![]);
            for _ in 0..args.runs.max(1) {
                let (wall, cpu_s, mut lat) = measure(o.clone(), &who, concurrency, turns).await?;
                let n = lat.len() as f64;
                tps.push(n / wall);
                cpu.push(cpu_s * 1e3 / n);
                p50.push(percentile(&mut lat, 0.5));
                p99.push(percentile(&mut lat, 0.99));
            }
            rows.push(Row {
                model: name,
                concurrency,
                turns,
                turns_per_second: median(tps),
                cpu_ms_per_turn: median(cpu),
                p50_ms: median(p50),
                p99_ms: median(p99),
                peak_rss_mb: peak_rss_mb(),
            });
        }
    }
    server.abort();

    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        println!(
            "{:<11} {:>11} {:>7} {:>10} {:>12} {:>9} {:>9} {:>9}",
            "model", "concurrent", "turns", "turns/s", "CPU ms/turn", "p50 ms", "p99 ms", "RSS MB"
        );
        for r in &rows {
            println!(
                "{:<11} {:>11} {:>7} {:>10.0} {:>12.3} {:>9.2} {:>9.2} {:>9.0}",
                r.model,
                r.concurrency,
                r.turns,
                r.turns_per_second,
                r.cpu_ms_per_turn,
                r.p50_ms,
                r.p99_ms,
                r.peak_rss_mb
            );
        }
        println!(
            "each turn: LLM routing call + agent tool call (get_order) + answer = 3 model calls; \
             medians of {} runs",
            args.runs.max(1)
        );
    }
    Ok(())
}
