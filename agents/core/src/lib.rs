//! The agent contract of fenliu.
//!
//! A *specialist agent* owns one kind of customer request (orders, repairs, complaints, …). The
//! supervisor routes a conversation to it; it reads the message and its own typed slots, calls
//! tools through the allow-listed [`ToolSet`](fenliu_tool::ToolSet) in its [`AgentContext`], and
//! returns an [`AgentReply`]: an answer, a question for a missing slot, a hand-off to another route,
//! or an escalation to a person with an [`EscalationPackage`].
//!
//! This crate owns:
//! - [`Agent`] (typed slots) and its object-safe twin [`DynAgent`];
//! - [`AgentDescriptor`]: what the supervisor and the LLM router know of an agent;
//! - [`AgentContext`], [`AgentReply`], [`EscalationPackage`];
//! - the conversation vocabulary in [`conversation`] ([`Route`], [`Language`], [`Channel`], …);
//! - the [`ChatModel`] contract in [`model`];
//! - the model-driven policy in [`policy`]: a chat model choosing among an agent's allow-listed
//!   tools by function calling, bounded, with writes confirmed by the customer;
//! - declarative per-agent settings in [`settings`] (`<agent id>.toml`: thresholds, a narrowed
//!   allow-list, extra training phrases, template overrides), validated against the descriptor
//!   and read by agents through [`AgentContext::template`].
//!
//! Agents never call the dispatcher or the orchestrator: they return [`AgentReply::Escalate`] and
//! the orchestrator acts on it. The `test-utils` feature adds a scripted chat model and the
//! conformance suites in `test_utils`.

pub mod conversation;
pub mod model;
pub mod policy;
pub mod settings;
pub mod state;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;
pub mod text;

use std::future::Future;
use std::sync::{Arc, Mutex};

use fenliu_tool::{BoxFuture, Tool, ToolCallRecord, ToolContext, ToolError, ToolSet};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use conversation::{Channel, CustomerRef, CustomerTier, Language, Route, Speaker, Turn};
pub use model::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, ChatRole, ChatStream, DynChatModel,
    FinishReason, ModelError, ResponseFormat, StreamEvent, ToolCallRequest, ToolChoice, Usage,
};
pub use settings::{AgentSettings, TemplateSpec};
pub use state::{ConversationState, ConversationStore, MemoryConversationStore, StateError};

/// An example message that should be routed to an agent, used to train the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingPhrase {
    /// The message.
    pub text: String,
    /// Its language.
    pub language: Language,
}

impl TrainingPhrase {
    /// A phrase whose language is detected from its text.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let language = Language::detect(&text);
        Self { text, language }
    }
}

/// What the supervisor knows of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDescriptor {
    /// Stable id (`order`, `after_sales`, …), used in config, audit and metrics.
    pub id: String,
    /// Routes this agent owns.
    pub routes: Vec<Route>,
    /// One paragraph for the LLM router: what the agent handles and what it does not.
    pub description: String,
    /// Example messages in English and Chinese.
    pub training_phrases: Vec<TrainingPhrase>,
    /// Tools the agent may call (its allow-list).
    pub tools: Vec<String>,
    /// Customer-facing texts operators may replace in the agent's settings file.
    #[serde(default)]
    pub templates: Vec<TemplateSpec>,
}

impl AgentDescriptor {
    /// Builds a descriptor from phrase lists; phrase languages are detected.
    pub fn new(
        id: &str,
        routes: Vec<Route>,
        description: &str,
        phrases: &[&str],
        tools: &[&str],
    ) -> Self {
        Self {
            id: id.to_owned(),
            routes,
            description: description.to_owned(),
            training_phrases: phrases.iter().map(|p| TrainingPhrase::new(*p)).collect(),
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            templates: Vec::new(),
        }
    }

    /// Declares the texts operators may replace (`[templates.en]` / `[templates.zh]`).
    pub fn with_templates(mut self, templates: Vec<TemplateSpec>) -> Self {
        self.templates = templates;
        self
    }
}

/// How sure the supervisor is, and how it decided; travels with every turn for audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDecision {
    /// The chosen route.
    pub route: Route,
    /// Calibrated confidence in `[0, 1]`.
    pub confidence: f32,
    /// Which stage decided (`sticky`, `lexical`, `semantic`, `llm`, `rule`, …).
    pub stage: String,
    /// Runner-up routes with their confidences, best first.
    pub alternatives: Vec<(Route, f32)>,
    /// A human-readable reason.
    pub reason: String,
}

/// Everything an agent sees for one customer turn.
///
/// Tool calls go through [`AgentContext::call_tool`] / [`AgentContext::call`], which enforce the
/// agent's allow-list, scope the call to the authenticated customer and record it for the reply.
pub struct AgentContext<'a> {
    /// The conversation id.
    pub conversation_id: &'a str,
    /// The authenticated customer.
    pub customer: &'a CustomerRef,
    /// The channel the message came on.
    pub channel: Channel,
    /// Language to answer in.
    pub language: Language,
    /// The customer's message for this turn.
    pub message: &'a str,
    /// Earlier turns, oldest first.
    pub history: &'a [Turn],
    /// Why the conversation is with this agent.
    pub decision: &'a RouteDecision,
    /// A chat model, when one is configured for this agent.
    pub model: Option<&'a dyn DynChatModel>,
    tools: ToolSet,
    tool_ctx: ToolContext,
    calls: Mutex<Vec<ToolCallRecord>>,
    settings: Option<Arc<AgentSettings>>,
}

impl<'a> AgentContext<'a> {
    /// Builds a context. `tools` must already be restricted to the agent's allow-list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tenant: &str,
        conversation_id: &'a str,
        customer: &'a CustomerRef,
        channel: Channel,
        language: Language,
        message: &'a str,
        history: &'a [Turn],
        decision: &'a RouteDecision,
        model: Option<&'a dyn DynChatModel>,
        tools: ToolSet,
    ) -> Self {
        let tool_ctx = ToolContext {
            tenant: tenant.to_owned(),
            customer_id: customer.id.clone(),
            conversation_id: conversation_id.to_owned(),
        };
        Self {
            conversation_id,
            customer,
            channel,
            language,
            message,
            history,
            decision,
            model,
            tools,
            tool_ctx,
            calls: Mutex::new(Vec::new()),
            settings: None,
        }
    }

    /// Gives the agent its operator settings for this turn (template overrides, thresholds).
    pub fn with_settings(mut self, settings: Option<Arc<AgentSettings>>) -> Self {
        self.settings = settings;
        self
    }

    /// The agent's operator settings, if its settings file has any.
    pub fn settings(&self) -> Option<&AgentSettings> {
        self.settings.as_deref()
    }

    /// The operator's replacement for the agent's template `name` in the reply language,
    /// rendered with `vars`; `None` when there is none (the agent uses its built-in text).
    ///
    /// `name` and the variable names are the ones the agent declares in
    /// [`AgentDescriptor::templates`]; settings files are checked against them when loaded.
    pub fn template(&self, name: &str, vars: &[(&str, &dyn std::fmt::Display)]) -> Option<String> {
        self.settings.as_ref()?.template(self.language, name)?.render(vars)
    }

    /// The template overrides of this turn as an owned value, for an agent's text builder.
    pub fn overrides(&self) -> settings::TemplateOverrides {
        settings::TemplateOverrides::new(self.language, self.settings.clone())
    }

    /// The tools this agent may call.
    pub fn tools(&self) -> &ToolSet {
        &self.tools
    }

    /// Calls a tool by name with JSON arguments (the model-driven path) and records the call.
    pub async fn call_tool(&self, name: &str, arguments: serde_json::Value) -> ToolCallRecord {
        let record = self.tools.call(&self.tool_ctx, name, arguments).await;
        self.record(record.clone());
        record
    }

    /// Calls a typed tool (the deterministic path) and records the call.
    pub async fn call<T: Tool>(&self, args: impl Serialize) -> Result<T::Output, ToolError>
    where
        T::Output: DeserializeOwned,
    {
        let (record, result) = self.tools.call_typed::<T>(&self.tool_ctx, args).await;
        self.record(record);
        result
    }

    fn record(&self, record: ToolCallRecord) {
        // A poisoned lock only means another call panicked mid-push; the records are still valid.
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(record);
    }

    /// The tool calls made so far in this turn.
    pub fn tool_calls(&self) -> Vec<ToolCallRecord> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Consumes the context, returning the recorded tool calls.
    pub fn into_tool_calls(self) -> Vec<ToolCallRecord> {
        self.calls.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a conversation goes to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// The customer asked for a person.
    CustomerRequest,
    /// The supervisor could not tell what the customer wants, even after asking.
    LowConfidence,
    /// The agent failed to help twice in a row.
    RepeatedFailure,
    /// A complaint severe enough for a person.
    HighSeverityComplaint,
    /// The customer's tier entitles them to a person.
    VipCustomer,
    /// A tool the agent needed failed.
    ToolFailure,
    /// The request is outside what policy lets an agent do alone.
    PolicyRequiresHuman,
}

/// Priority of escalated work in the human queue.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Can wait.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Ahead of normal work.
    High,
    /// Ahead of everything.
    Urgent,
}

/// Customer sentiment estimated from the conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sentiment {
    /// Unhappy or angry.
    Negative,
    /// Neither.
    #[default]
    Neutral,
    /// Pleased.
    Positive,
}

/// Everything a person needs to take over without asking the customer again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationPackage {
    /// Why.
    pub reason: EscalationReason,
    /// Queue priority.
    pub priority: Priority,
    /// The route the conversation was on (the skill needed).
    pub route: Route,
    /// Language the customer writes in (a skill too).
    pub language: Language,
    /// The agent that escalated.
    pub agent: String,
    /// A short summary for the human agent.
    pub summary: String,
    /// The agent's slots as JSON (order ids, fault description, …).
    pub slots: serde_json::Value,
    /// Estimated sentiment.
    pub sentiment: Sentiment,
    /// Tool calls made in this conversation, so nobody repeats them.
    pub tools_tried: Vec<ToolCallRecord>,
    /// What the customer is told while they wait.
    pub message_to_customer: String,
}

/// What an agent does with a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentReply {
    /// An answer that completes the request; the agent releases the conversation.
    Answer {
        /// Text for the customer.
        text: String,
    },
    /// A question for missing information or a confirmation; the agent keeps the conversation.
    AskSlot {
        /// The slot asked for (`order_id`, `confirmation`, …).
        slot: String,
        /// Text for the customer.
        text: String,
    },
    /// This belongs to another route; the supervisor passes it on with the context.
    Handoff {
        /// Target route.
        route: Route,
        /// Why, for the audit log.
        reason: String,
    },
    /// A person must take over.
    Escalate(Box<EscalationPackage>),
}

impl AgentReply {
    /// The text shown to the customer, if this reply has one.
    pub fn customer_text(&self) -> Option<&str> {
        match self {
            Self::Answer { text } | Self::AskSlot { text, .. } => Some(text),
            Self::Escalate(p) => Some(&p.message_to_customer),
            Self::Handoff { .. } => None,
        }
    }

    /// Whether the agent keeps ownership of the conversation for the next turn.
    pub fn keeps_ownership(&self) -> bool {
        matches!(self, Self::AskSlot { .. })
    }
}

/// What can go wrong inside an agent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// A model call failed and the agent had no fallback.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The agent's stored slots could not be read or written.
    #[error("agent state error: {0}")]
    State(String),
    /// Anything else; the text is logged, not shown to customers.
    #[error("agent failed: {0}")]
    Internal(String),
}

/// A specialist agent with typed slots.
///
/// The orchestrator stores `Slots` as JSON between turns (SQLite/PostgreSQL), hands them back on the
/// next turn the agent owns, and resets them when the agent releases the conversation.
pub trait Agent: Send + Sync + 'static {
    /// What the agent collects across turns (order id, confirmation, …).
    type Slots: Serialize + DeserializeOwned + JsonSchema + Default + Send + Sync;

    /// What the supervisor knows of this agent.
    fn descriptor(&self) -> AgentDescriptor;

    /// Handles one customer turn.
    fn handle(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut Self::Slots,
    ) -> impl Future<Output = Result<AgentReply, AgentError>> + Send;
}

/// Object-safe twin of [`Agent`]: slots travel as JSON.
pub trait DynAgent: Send + Sync {
    /// See [`Agent::descriptor`].
    fn descriptor(&self) -> AgentDescriptor;
    /// JSON Schema of the agent's slots.
    fn slots_schema(&self) -> serde_json::Value;
    /// Handles a turn with JSON slots, returning the reply and the updated slots.
    ///
    /// Slots that no longer parse (a schema change across a deploy) are replaced by defaults rather
    /// than failing the turn.
    fn handle<'a>(
        &'a self,
        ctx: &'a AgentContext<'a>,
        slots: serde_json::Value,
    ) -> BoxFuture<'a, Result<(AgentReply, serde_json::Value), AgentError>>;
}

impl<T: Agent> DynAgent for T {
    fn descriptor(&self) -> AgentDescriptor {
        Agent::descriptor(self)
    }

    fn slots_schema(&self) -> serde_json::Value {
        schemars::schema_for!(T::Slots).to_value()
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a AgentContext<'a>,
        slots: serde_json::Value,
    ) -> BoxFuture<'a, Result<(AgentReply, serde_json::Value), AgentError>> {
        Box::pin(async move {
            let mut typed: T::Slots = if slots.is_null() {
                T::Slots::default()
            } else {
                serde_json::from_value(slots).unwrap_or_default()
            };
            let reply = Agent::handle(self, ctx, &mut typed).await?;
            let slots =
                serde_json::to_value(&typed).map_err(|e| AgentError::State(e.to_string()))?;
            Ok((reply, slots))
        })
    }
}
