//! Running datasets through the real orchestrator, offline.
//!
//! Every conversation (and every trial of it) gets its own orchestrator over a fresh in-memory
//! copy of the shop, so tasks cannot see each other's writes and pass^k trials start from the
//! same state. Conversations run in parallel (`jobs`), results are ordered by dataset, position
//! and trial whatever finishes first, and the ticket tools' clock is fixed: two runs of the same
//! inputs give the same records apart from latencies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use fenliu_agent::policy::ModelDrivenPolicy;
use fenliu_agent::settings::{LiveSettings, SettingsSet};
use fenliu_agent::{CustomerRef, CustomerTier, DynAgent, DynChatModel, Language, Route};
use fenliu_knowledge::DynEmbedder;
use fenliu_orchestrator::training::RouterArtifact;
use fenliu_orchestrator::{
    AgentRegistry, ConversationStore, MemoryConversationStore, Orchestrator, ReplyKind,
    RouterConfig, Supervisor, TurnLimits, TurnRequest,
};
use fenliu_tool::{DynTool, ToolSet};
/// The in-memory shop store each conversation runs against.
pub use fenliu_tools_commerce::test_utils::MemoryShopStore;
use fenliu_tools_commerce::{Address, CancelReason, DynOrderStore, DynTicketStore, ShopData, Tier};
use serde::{Deserialize, Serialize};

use crate::format::{Conversation, Dataset, Expect};
use crate::models::{CachedEmbedder, Meter, Metered};
use crate::user::{LlmUser, Observation, ScriptedUser, UserSimulator};
use crate::{EvalError, RowError};

/// Builds the tools of one conversation over its shop store.
pub type ToolFactory = Arc<dyn Fn(Arc<MemoryShopStore>) -> Vec<Arc<dyn DynTool>> + Send + Sync>;

/// The system under evaluation: what the server would assemble, minus HTTP and the database.
pub struct System {
    /// Tenant name passed to agents.
    pub tenant: String,
    /// The specialist agents (the server's `runtime::agents()`).
    pub agents: Vec<Arc<dyn DynAgent>>,
    /// The sentence embedder of the semantic stage.
    pub embedder: Arc<dyn DynEmbedder>,
    /// The trained router, when configured.
    pub artifact: Option<RouterArtifact>,
    /// Router thresholds.
    pub router: RouterConfig,
    /// Turn limits.
    pub limits: TurnLimits,
    /// The router's LLM stage, when a model is configured.
    pub router_model: Option<Arc<dyn DynChatModel>>,
    /// Chat models per agent id.
    pub agent_models: BTreeMap<String, Arc<dyn DynChatModel>>,
    /// Agents (by id) that run the model-driven policy with their model in `agent_models`
    /// (the server's `[agents.<id>] policy`); the others run their deterministic code.
    pub agent_policies: BTreeMap<String, ModelDrivenPolicy>,
    /// The operators' per-agent settings files (thresholds, allow-lists, phrases, templates).
    pub agent_settings: SettingsSet,
    /// The shop every conversation starts from.
    pub shop: ShopData,
    /// The tools of a conversation; [`System::commerce_tools`] by default.
    pub tools: ToolFactory,
}

impl System {
    /// A system with the commerce tools (orders and tickets) and no models; the ticket tools'
    /// clock is fixed at `now` so SLA due times and warranty windows do not depend on the day.
    pub fn new(
        agents: Vec<Arc<dyn DynAgent>>,
        embedder: Arc<dyn DynEmbedder>,
        artifact: Option<RouterArtifact>,
        shop: ShopData,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant: "eval".into(),
            agents,
            embedder: Arc::new(CachedEmbedder::new(embedder)),
            artifact,
            router: RouterConfig::default(),
            limits: TurnLimits::default(),
            router_model: None,
            agent_models: BTreeMap::new(),
            agent_policies: BTreeMap::new(),
            agent_settings: SettingsSet::empty(),
            shop,
            tools: Self::commerce_tools(now),
        }
    }

    /// The order and ticket tools over a conversation's store, the clock fixed at `now`.
    pub fn commerce_tools(now: DateTime<Utc>) -> ToolFactory {
        Arc::new(move |store: Arc<MemoryShopStore>| {
            let orders: Arc<dyn DynOrderStore> = store.clone();
            let tickets: Arc<dyn DynTicketStore> = store;
            let mut tools = fenliu_tools_commerce::tools::order_tools(orders.clone());
            tools.extend(fenliu_tools_commerce::ticket_tools::ticket_tools_with_clock(
                orders,
                tickets,
                fenliu_tools_commerce::ticket_tools::fixed_clock(now),
            ));
            tools
        })
    }

    /// The routes labels may name: the taxonomy and every registered agent's routes.
    pub fn routes(&self) -> BTreeSet<Route> {
        let mut routes: BTreeSet<Route> = Route::TAXONOMY.into_iter().collect();
        for a in &self.agents {
            routes.extend(a.descriptor().routes);
        }
        routes
    }

    fn registry(&self) -> Result<AgentRegistry, EvalError> {
        let mut registry = AgentRegistry::new();
        for agent in &self.agents {
            registry.register(agent.clone()).map_err(|e| EvalError::System(e.to_string()))?;
        }
        Ok(registry)
    }

    /// One conversation's orchestrator over `store`, every model counted on `meter`.
    async fn orchestrator(
        &self,
        store: Arc<MemoryShopStore>,
        meter: &Arc<Meter>,
    ) -> Result<Orchestrator<MemoryConversationStore>, EvalError> {
        let sys = |e: fenliu_orchestrator::OrchestratorError| EvalError::System(e.to_string());
        let registry = self.registry()?;
        let mut supervisor = Supervisor::new(
            self.embedder.clone(),
            &registry.training_phrases_with(&self.agent_settings),
            registry.route_descriptions(),
            self.artifact.clone(),
            self.router.clone(),
        )
        .await
        .map_err(sys)?;
        if let Some(model) = &self.router_model {
            supervisor = supervisor.with_llm(Arc::new(Metered::new(model.clone(), meter.clone())));
        }
        let tools = ToolSet::new((self.tools)(store))
            .map_err(|e| EvalError::System(format!("tools: {e}")))?;
        for agent in &self.agents {
            let d = agent.descriptor();
            if let Err(e) = tools.restrict(&d.tools) {
                return Err(EvalError::System(format!(
                    "agent `{}`: {e}; give the eval the same tools as the server (the tool \
                     factory of `System`)",
                    d.id
                )));
            }
        }
        let mut orchestrator = Orchestrator::new(
            self.tenant.clone(),
            registry,
            supervisor,
            tools,
            MemoryConversationStore::new(),
            self.limits.clone(),
        )
        .map_err(sys)?;
        for (agent, model) in &self.agent_models {
            orchestrator = orchestrator
                .with_agent_model(agent, Arc::new(Metered::new(model.clone(), meter.clone())));
        }
        for (agent, policy) in &self.agent_policies {
            orchestrator = orchestrator.with_agent_policy(agent, policy.clone());
        }
        Ok(orchestrator.with_settings(Arc::new(LiveSettings::new(self.agent_settings.clone()))))
    }
}

/// Who plays the customer.
#[derive(Clone, Default)]
pub enum UserKind {
    /// The dataset's scripted turns.
    #[default]
    Scripted,
    /// A chat model role-playing τ-style tasks' instructions (other conversations stay
    /// scripted).
    Llm(Arc<dyn DynChatModel>),
}

/// Options of a run.
#[derive(Clone)]
pub struct RunOptions {
    /// Conversations run at once.
    pub jobs: usize,
    /// Runs of each conversation (k of pass^k).
    pub trials: u32,
    /// Seed of sampling (`limit`) and of the LLM user.
    pub seed: u64,
    /// At most this many conversations per dataset, a seeded sample in file order.
    pub limit: Option<usize>,
    /// The customer of conversations that name none.
    pub default_customer: String,
    /// Who plays the customer.
    pub user: UserKind,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Most user turns of one conversation.
    pub max_turns: usize,
    /// A label for the model configuration, recorded in the report.
    pub model_label: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            trials: 1,
            seed: 42,
            limit: None,
            default_customer: "james_li_5688".into(),
            user: UserKind::Scripted,
            progress: false,
            max_turns: 20,
            model_label: "none".into(),
        }
    }
}

/// A tool call as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallLog {
    /// Tool name.
    pub name: String,
    /// Arguments.
    pub args: serde_json::Value,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything recorded about one turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// What the user said.
    pub text: String,
    /// The labels of the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// The route chosen.
    pub route: Route,
    /// Its confidence.
    pub confidence: f32,
    /// The stage that decided (`rule`, `sticky`, `lexical`, `semantic`, `llm`, `handoff`, …).
    pub stage: String,
    /// How the turn ended.
    pub kind: ReplyKind,
    /// The agent that handled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The reply.
    pub reply: String,
    /// Tool calls.
    pub tools: Vec<ToolCallLog>,
    /// Whether the turn went to a person.
    pub escalated: bool,
    /// Why, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_reason: Option<String>,
    /// The conversation's slots after the turn.
    #[serde(default)]
    pub slots: serde_json::Value,
    /// Wall time of the turn in milliseconds.
    pub latency_ms: f64,
    /// Model calls in the turn.
    pub llm_calls: u64,
    /// Prompt tokens in the turn.
    pub prompt_tokens: u64,
    /// Completion tokens in the turn.
    pub completion_tokens: u64,
}

/// The shop as a task judges it: a customer's orders and tickets, without ids and times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShopState {
    /// Order id → status, shipping address and refunded amount (cents).
    pub orders: BTreeMap<String, String>,
    /// Tickets as `kind order` (sorted, duplicates removed).
    pub tickets: Vec<String>,
    /// Whether the conversation was handed to a person.
    pub escalated: bool,
}

impl ShopState {
    /// The differences from `expected`, in words.
    pub fn diff(&self, expected: &ShopState) -> Vec<String> {
        let mut out = Vec::new();
        for (id, want) in &expected.orders {
            match self.orders.get(id) {
                Some(got) if got == want => {}
                Some(got) => out.push(format!("order {id}: expected {want}, got {got}")),
                None => out.push(format!("order {id}: missing")),
            }
        }
        for t in expected.tickets.iter().filter(|t| !self.tickets.contains(t)) {
            out.push(format!("missing ticket: {t}"));
        }
        for t in self.tickets.iter().filter(|t| !expected.tickets.contains(t)) {
            out.push(format!("unexpected ticket: {t}"));
        }
        if self.escalated != expected.escalated {
            out.push(format!(
                "escalation: expected {}, got {}",
                expected.escalated, self.escalated
            ));
        }
        out
    }
}

/// A τ-style task's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Final state equals the expected one.
    pub passed: bool,
    /// What differs.
    pub diff: Vec<String>,
}

/// Everything recorded about one conversation (one trial).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    /// Dataset name.
    pub dataset: String,
    /// Conversation id.
    pub id: String,
    /// Trial number (0-based).
    pub trial: u32,
    /// Tags.
    pub tags: Vec<String>,
    /// Customer id.
    pub customer: String,
    /// The turns played.
    pub turns: Vec<TurnRecord>,
    /// The task verdict, for τ-style tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskResult>,
    /// Why the conversation could not be run to the end (unknown customer, a turn refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a run was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// When it started.
    pub started_at: String,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Seed.
    pub seed: u64,
    /// Trials per conversation.
    pub trials: u32,
    /// Parallel jobs.
    pub jobs: usize,
    /// Model configuration.
    pub model: String,
    /// Who played the user.
    pub user: String,
    /// Dataset name → conversations run (before trials).
    pub datasets: BTreeMap<String, usize>,
}

/// The raw result of a run: records and bad rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalRun {
    /// How the run was made.
    pub info: RunInfo,
    /// Records in dataset, file and trial order.
    pub conversations: Vec<ConversationRecord>,
    /// Rows the loaders skipped.
    pub bad_rows: Vec<RowError>,
}

fn mix(seed: u64, text: &str) -> u64 {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finaliser
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A seeded sample of `n` conversations, kept in file order.
pub fn sample(conversations: &[Conversation], n: usize, seed: u64) -> Vec<Conversation> {
    if conversations.len() <= n {
        return conversations.to_vec();
    }
    let mut order: Vec<(u64, usize)> =
        conversations.iter().enumerate().map(|(i, c)| (mix(seed, &c.id), i)).collect();
    order.sort_unstable();
    let mut keep: Vec<usize> = order.into_iter().take(n).map(|(_, i)| i).collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| conversations[i].clone()).collect()
}

/// Runs `datasets` through `system`.
pub async fn run(
    system: Arc<System>,
    datasets: &[Dataset],
    options: &RunOptions,
) -> Result<EvalRun, EvalError> {
    let started = Instant::now();
    let started_at = Utc::now().to_rfc3339();
    // One orchestrator up front: configuration errors stop the run before any work.
    system.orchestrator(Arc::new(MemoryShopStore::new()), &Arc::new(Meter::default())).await?;
    let mut jobs = Vec::new();
    let mut info = RunInfo {
        started_at,
        seed: options.seed,
        trials: options.trials.max(1),
        jobs: options.jobs.max(1),
        model: options.model_label.clone(),
        user: match options.user {
            UserKind::Scripted => "scripted".into(),
            UserKind::Llm(ref m) => format!("llm:{}", m.model_id()),
        },
        ..RunInfo::default()
    };
    let mut bad_rows = Vec::new();
    for d in datasets {
        let chosen = match options.limit {
            Some(n) => sample(&d.conversations, n, options.seed),
            None => d.conversations.clone(),
        };
        info.datasets.insert(d.name.clone(), chosen.len());
        bad_rows.extend(d.errors.iter().cloned());
        for c in chosen {
            for trial in 0..info.trials {
                jobs.push((d.name.clone(), c.clone(), trial));
            }
        }
    }
    let bar = if options.progress {
        indicatif::ProgressBar::new(jobs.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "eval {bar:40} {pos}/{len} conversations [{elapsed_precise}, eta {eta}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let semaphore = Arc::new(tokio::sync::Semaphore::new(info.jobs));
    let mut handles = Vec::with_capacity(jobs.len());
    for (dataset, conversation, trial) in jobs {
        let system = system.clone();
        let semaphore = semaphore.clone();
        let options = options.clone();
        let bar = bar.clone();
        handles.push(tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let record = run_conversation(&system, &dataset, &conversation, trial, &options).await;
            bar.inc(1);
            record
        }));
    }
    let mut conversations = Vec::with_capacity(handles.len());
    for h in handles {
        conversations.push(h.await.map_err(|e| EvalError::System(format!("a run panicked: {e}")))?);
    }
    bar.finish_and_clear();
    info.seconds = started.elapsed().as_secs_f64();
    Ok(EvalRun { info, conversations, bad_rows })
}

async fn customer_ref(
    store: &MemoryShopStore,
    c: &Conversation,
    default: &str,
) -> Result<CustomerRef, String> {
    let id = c.customer.id.clone().unwrap_or_else(|| default.to_owned());
    let found = fenliu_tools_commerce::OrderStore::customer(store, &id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("customer `{id}` is not in the shop"))?;
    Ok(CustomerRef {
        name: format!("{} {}", found.name.first, found.name.last),
        tier: c.customer.tier.unwrap_or(match found.tier {
            Tier::Vip => CustomerTier::Vip,
            Tier::Regular => CustomerTier::Regular,
        }),
        language: c.customer.language.unwrap_or(if found.language == "zh" {
            Language::Zh
        } else {
            Language::En
        }),
        id: found.id,
    })
}

/// Runs one conversation; failures are recorded in the record, never returned.
async fn run_conversation(
    system: &System,
    dataset: &str,
    c: &Conversation,
    trial: u32,
    options: &RunOptions,
) -> ConversationRecord {
    let mut record = ConversationRecord {
        dataset: dataset.to_owned(),
        id: c.id.clone(),
        trial,
        tags: c.tags.clone(),
        customer: c.customer.id.clone().unwrap_or_else(|| options.default_customer.clone()),
        turns: Vec::new(),
        task: None,
        error: None,
    };
    if let Err(e) = play(system, c, trial, options, &mut record).await {
        record.error = Some(e);
    }
    record
}

async fn fresh_store(shop: &ShopData) -> Result<Arc<MemoryShopStore>, String> {
    let store = Arc::new(MemoryShopStore::new());
    fenliu_tools_commerce::OrderStore::import(store.as_ref(), shop)
        .await
        .map_err(|e| format!("importing the shop: {e}"))?;
    Ok(store)
}

async fn play(
    system: &System,
    c: &Conversation,
    trial: u32,
    options: &RunOptions,
    record: &mut ConversationRecord,
) -> Result<(), String> {
    let store = fresh_store(&system.shop).await?;
    let meter = Arc::new(Meter::default());
    let orchestrator =
        system.orchestrator(store.clone(), &meter).await.map_err(|e| e.to_string())?;
    let customer = customer_ref(&store, c, &options.default_customer).await?;
    let mut user: Box<dyn UserSimulator> = match (&options.user, &c.task) {
        (UserKind::Llm(model), Some(task)) if !task.instruction.is_empty() => {
            let seed = mix(options.seed, &format!("{}:{trial}", c.id));
            Box::new(LlmUser::new(
                model.clone(),
                task.instruction.clone(),
                task.max_turns.unwrap_or(12),
                seed,
            ))
        }
        _ => Box::new(ScriptedUser::new(c)),
    };
    let mut conversation_id = None;
    let mut last: Option<Observation> = None;
    for _ in 0..options.max_turns {
        let Some(message) = user.next(last.as_ref()).await.map_err(|e| e.to_string())? else {
            break;
        };
        let before = meter.read();
        let t = Instant::now();
        let outcome = orchestrator
            .handle_turn(TurnRequest {
                conversation_id: conversation_id.clone(),
                customer: customer.clone(),
                channel: c.channel,
                text: message.text.clone(),
            })
            .await
            .map_err(|e| format!("turn {}: {e}", record.turns.len() + 1))?;
        let latency_ms = t.elapsed().as_secs_f64() * 1e3;
        let used = meter.read().since(before);
        let slots = match orchestrator.conversations().load(&outcome.conversation_id).await {
            Ok(Some(state)) => state.slots,
            _ => serde_json::Value::Null,
        };
        conversation_id = Some(outcome.conversation_id.clone());
        record.turns.push(TurnRecord {
            text: message.text,
            expect: message.expect,
            route: outcome.decision.route.clone(),
            confidence: outcome.decision.confidence,
            stage: outcome.decision.stage.clone(),
            kind: outcome.kind,
            agent: outcome.agent.clone(),
            reply: outcome.reply.clone(),
            tools: outcome
                .tool_calls
                .iter()
                .map(|call| ToolCallLog {
                    name: call.name.clone(),
                    args: call.arguments.clone(),
                    ok: call.output().is_some(),
                    error: match &call.outcome {
                        fenliu_tool::ToolOutcome::Err { error } => Some(error.to_string()),
                        fenliu_tool::ToolOutcome::Ok { .. } => None,
                    },
                })
                .collect(),
            escalated: outcome.escalation.is_some(),
            escalation_reason: outcome
                .escalation
                .as_ref()
                .map(|p| serde_json::to_value(p.reason).map(|v| v.to_string()).unwrap_or_default()),
            slots,
            latency_ms,
            llm_calls: used.calls,
            prompt_tokens: used.prompt_tokens,
            completion_tokens: used.completion_tokens,
        });
        last = Some(Observation { reply: outcome.reply, kind: outcome.kind });
    }
    if let Some(task) = &c.task {
        let escalated = record.turns.iter().any(|t| t.escalated);
        let actual = snapshot(&store, &customer.id, escalated).await?;
        let expected = expected_state(&system.shop, &customer.id, &task.actions).await?;
        let diff = actual.diff(&expected);
        record.task = Some(TaskResult { passed: diff.is_empty(), diff });
    }
    Ok(())
}

/// A customer's orders and tickets as a task compares them.
pub async fn snapshot(
    store: &MemoryShopStore,
    customer: &str,
    escalated: bool,
) -> Result<ShopState, String> {
    use fenliu_tools_commerce::{OrderStore, TicketStore};
    let orders = OrderStore::orders_of(store, customer).await.map_err(|e| e.to_string())?;
    let tickets = TicketStore::tickets_of(store, customer).await.map_err(|e| e.to_string())?;
    let mut state = ShopState { escalated, ..ShopState::default() };
    for o in orders {
        let refunded_cents = (o.refunded() * 100.0).round() as i64;
        state.orders.insert(
            o.id.clone(),
            format!("{} | {} | refunded {refunded_cents}", o.status.as_str(), o.address.one_line()),
        );
    }
    state.tickets = tickets
        .iter()
        .map(|t| {
            let kind = serde_json::to_value(t.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("{kind} {}", t.order_id.as_deref().unwrap_or("-"))
        })
        .collect();
    state.tickets.sort();
    state.tickets.dedup();
    Ok(state)
}

/// The state a task's expected actions lead to, applied to a fresh copy of the shop.
pub async fn expected_state(
    shop: &ShopData,
    customer: &str,
    actions: &[crate::format::ExpectedAction],
) -> Result<ShopState, String> {
    use fenliu_tools_commerce::OrderStore;
    let store = fresh_store(shop).await?;
    let mut tickets = Vec::new();
    let mut escalated = false;
    for a in actions {
        let arg = |k: &str| a.args.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let order_id = arg("order_id");
        let fail = |e: fenliu_tools_commerce::StoreError| {
            format!("the expected action {} cannot be applied: {e}", a.name)
        };
        match a.name.as_str() {
            "cancel_pending_order" => {
                let reason = if arg("reason").contains("mistake") {
                    CancelReason::OrderedByMistake
                } else {
                    CancelReason::NoLongerNeeded
                };
                OrderStore::cancel_order(store.as_ref(), customer, &order_id, reason)
                    .await
                    .map_err(fail)?;
            }
            "modify_pending_order_address" => {
                let address = Address {
                    line1: arg("address1"),
                    line2: arg("address2"),
                    city: arg("city"),
                    state: arg("state"),
                    country: arg("country"),
                    zip: arg("zip"),
                };
                OrderStore::update_order_address(store.as_ref(), customer, &order_id, &address)
                    .await
                    .map_err(fail)?;
            }
            "return_delivered_order_items" => tickets.push(format!("return {order_id}")),
            "exchange_delivered_order_items" => tickets.push(format!("exchange {order_id}")),
            "transfer_to_human_agents" => escalated = true,
            // fenliu's own: a ticket of `kind` (repair, return, exchange, complaint, inquiry).
            "open_ticket" => tickets.push(format!("{} {order_id}", arg("kind"))),
            other => return Err(format!("unsupported expected action `{other}`")),
        }
    }
    let mut state = snapshot(&store, customer, escalated).await?;
    state.tickets.extend(tickets);
    state.tickets.sort();
    state.tickets.dedup();
    Ok(state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn samples_are_seeded_and_keep_file_order() {
        let cs: Vec<Conversation> = (0..50)
            .map(|i| Conversation::single(format!("c{i}"), "hi".into(), Route::ORDER, vec![]))
            .collect();
        let a = sample(&cs, 10, 1);
        assert_eq!(a, sample(&cs, 10, 1));
        assert_ne!(a, sample(&cs, 10, 2));
        let idx: Vec<usize> = a.iter().map(|c| c.id[1..].parse::<usize>().unwrap()).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample(&cs, 100, 1).len(), 50);
    }

    #[tokio::test]
    async fn expected_state_applies_actions_and_diffs_name_the_difference() {
        let shop = fenliu_tools_commerce::test_utils::fixture_shop();
        let pending = shop.orders.iter().find(|o| o.status.as_str() == "pending").unwrap();
        let who = pending.customer_id.clone();
        let actions = vec![crate::format::ExpectedAction {
            name: "cancel_pending_order".into(),
            args: serde_json::json!({"order_id": pending.id, "reason": "no longer needed"}),
        }];
        let expected = expected_state(&shop, &who, &actions).await.unwrap();
        let store = fresh_store(&shop).await.unwrap();
        let untouched = snapshot(&store, &who, false).await.unwrap();
        let diff = untouched.diff(&expected);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(diff[0].contains(&pending.id) && diff[0].contains("cancelled"), "{diff:?}");
        let bad = vec![crate::format::ExpectedAction {
            name: "cancel_pending_order".into(),
            args: serde_json::json!({"order_id": "#W0"}),
        }];
        assert!(expected_state(&shop, &who, &bad).await.is_err());
    }
}
