//! The orchestrator of fenliu: one customer turn, from message to reply.
//!
//! This crate owns:
//! - [`AgentRegistry`]: the specialist agents, by route (the one place agents are registered);
//! - [`Supervisor`]: routing (rules, stickiness, semantic k-NN over training phrases);
//! - the turn loop, [`Orchestrator::handle_turn`]: conversation state and ownership, tool
//!   allow-lists per agent, hand-offs, clarifying questions and escalation packages;
//! - applying the operators' per-agent settings ([`LiveSettings`], read afresh every turn): a
//!   narrowed allow-list, confidence and clarification thresholds, the model-driven step limit,
//!   and template overrides handed to the agent in its [`AgentContext`];
//! - the use of [`ConversationStore`] (defined in `fenliu-agent`): where state lives between turns.
//!
//! # Layout
//! - `lib.rs`: errors, registry, the turn loop.
//! - `supervisor.rs`: the router.
//! - `builtin.rs`: the routes the orchestrator answers itself (`human`, `out_of_scope`).

pub mod builtin;
pub mod lexical;
pub mod supervisor;
pub mod training;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use fenliu_agent::policy::{ModelDrivenPolicy, run_model_driven};
use fenliu_agent::settings::{LiveSettings, SettingsSet};
use fenliu_agent::{
    AgentContext, AgentReply, Channel, CustomerRef, CustomerTier, DynAgent, DynChatModel,
    EscalationPackage, EscalationReason, Language, Priority, Route, RouteDecision, Sentiment,
    Speaker, TrainingPhrase, Turn,
};
use fenliu_knowledge::KnowledgeError;
use fenliu_tool::{ToolCallRecord, ToolSet};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

pub use fenliu_agent::state::{
    ConversationState, ConversationStore, MemoryConversationStore, StateError,
};
pub use supervisor::{RouterConfig, RouterEmbedder, Supervisor};

/// What can go wrong handling a turn.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The message cannot be processed (empty, too long).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The conversation id is unknown, or belongs to another customer.
    #[error("conversation {0} not found")]
    ConversationNotFound(String),
    /// Configuration or registration is inconsistent.
    #[error("configuration error: {0}")]
    Config(String),
    /// The embedder failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// Conversation state could not be loaded or saved.
    #[error(transparent)]
    Store(#[from] StateError),
}

/// The registered specialist agents. Registration is the single place an agent is added.
#[derive(Default, Clone)]
pub struct AgentRegistry {
    agents: BTreeMap<String, Arc<dyn DynAgent>>,
    routes: BTreeMap<Route, String>,
}

impl std::fmt::Debug for AgentRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRegistry").field("routes", &self.routes).finish()
    }
}

impl AgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an agent for the routes in its descriptor.
    pub fn register(&mut self, agent: Arc<dyn DynAgent>) -> Result<(), OrchestratorError> {
        let d = agent.descriptor();
        if self.agents.contains_key(&d.id) {
            return Err(OrchestratorError::Config(format!("agent `{}` registered twice", d.id)));
        }
        for route in &d.routes {
            if *route == Route::HUMAN || *route == Route::OUT_OF_SCOPE {
                return Err(OrchestratorError::Config(format!(
                    "agent `{}` claims the built-in route `{route}`",
                    d.id
                )));
            }
            if let Some(other) = self.routes.get(route) {
                return Err(OrchestratorError::Config(format!(
                    "route `{route}` claimed by both `{other}` and `{}`",
                    d.id
                )));
            }
        }
        for route in &d.routes {
            self.routes.insert(route.clone(), d.id.clone());
        }
        self.agents.insert(d.id, agent);
        Ok(())
    }

    /// The agent owning `route`.
    pub fn for_route(&self, route: &Route) -> Option<&Arc<dyn DynAgent>> {
        self.routes.get(route).and_then(|id| self.agents.get(id))
    }

    /// An agent by id.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn DynAgent>> {
        self.agents.get(id)
    }

    /// Every routable route with a description for the LLM stage: the agents' routes and the
    /// built-in `human` and `out_of_scope`.
    pub fn route_descriptions(&self) -> Vec<(Route, String)> {
        let mut out: Vec<(Route, String)> = self
            .agents
            .values()
            .flat_map(|a| {
                let d = a.descriptor();
                d.routes.into_iter().map(move |r| (r, d.description.clone()))
            })
            .collect();
        out.extend(builtin::descriptions());
        out
    }

    /// Training phrases of every agent, labelled with the agent's first route, plus the built-in
    /// routes' phrases.
    pub fn training_phrases(&self) -> Vec<(Route, TrainingPhrase)> {
        let mut phrases = builtin::phrases();
        for agent in self.agents.values() {
            let d = agent.descriptor();
            if let Some(route) = d.routes.first() {
                phrases.extend(d.training_phrases.into_iter().map(|p| (route.clone(), p)));
            }
        }
        phrases
    }

    /// [`AgentRegistry::training_phrases`] plus the extra phrases of the operators' settings
    /// files, labelled with their agent's first route.
    pub fn training_phrases_with(&self, settings: &SettingsSet) -> Vec<(Route, TrainingPhrase)> {
        let mut phrases = self.training_phrases();
        for (id, phrase) in settings.phrases() {
            if let Some(route) =
                self.agents.get(id).and_then(|a| a.descriptor().routes.first().cloned())
            {
                phrases.push((route, phrase.clone()));
            }
        }
        phrases
    }

    /// Every registered agent's descriptor (what settings files are validated against).
    pub fn descriptors(&self) -> Vec<fenliu_agent::AgentDescriptor> {
        self.agents.values().map(|a| a.descriptor()).collect()
    }
}

/// Limits applied to every turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnLimits {
    /// Longest accepted message, in characters.
    pub max_message_chars: usize,
    /// Clarifying questions before a person takes over.
    pub max_clarifications: u8,
}

impl Default for TurnLimits {
    fn default() -> Self {
        Self { max_message_chars: 4_000, max_clarifications: 1 }
    }
}

/// One incoming customer message.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// Existing conversation, or `None` to start one.
    pub conversation_id: Option<String>,
    /// The authenticated customer.
    pub customer: CustomerRef,
    /// Channel.
    pub channel: Channel,
    /// The message.
    pub text: String,
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    /// An answer; the request is complete.
    Answer,
    /// A question; the agent waits for the customer.
    AskSlot,
    /// A clarifying question from the supervisor.
    Clarify,
    /// A polite refusal (out of scope).
    Refusal,
    /// Handed to a person.
    Escalated,
}

/// The result of one turn, returned to channels and recorded for evals.
#[derive(Debug, Clone, Serialize)]
pub struct TurnOutcome {
    /// Conversation id (new or existing).
    pub conversation_id: String,
    /// What the customer is told.
    pub reply: String,
    /// How the turn ended.
    pub kind: ReplyKind,
    /// Language of the reply.
    pub language: Language,
    /// The routing decision.
    pub decision: RouteDecision,
    /// The agent that handled the turn, if any.
    pub agent: Option<String>,
    /// Tool calls made in this turn.
    pub tool_calls: Vec<ToolCallRecord>,
    /// The escalation package, when the turn went to a person.
    pub escalation: Option<EscalationPackage>,
}

/// The language a message clearly signals: Chinese if it has Chinese, English if it has a few
/// Latin words, otherwise none (a bare order id or "ok" says nothing about language).
fn signalled_language(message: &str) -> Option<Language> {
    if Language::detect(message) == Language::Zh {
        Some(Language::Zh)
    } else if message.chars().filter(|c| c.is_ascii_alphabetic()).count() >= 4
        && message.split_whitespace().count() >= 2
    {
        Some(Language::En)
    } else {
        None
    }
}

/// Picks the reply language: the message's own signal, else the language of the customer's most
/// recent message that had one, else the customer's preference.
pub fn reply_language(message: &str, customer: &CustomerRef, history: &[Turn]) -> Language {
    signalled_language(message)
        .or_else(|| {
            history
                .iter()
                .rev()
                .filter(|t| t.speaker == Speaker::Customer)
                .find_map(|t| signalled_language(&t.text))
        })
        .unwrap_or(customer.language)
}

/// Hand-offs followed within one turn before the orchestrator stops and escalates.
const MAX_HANDOFFS: usize = 2;

/// The turn loop.
pub struct Orchestrator<S> {
    tenant: String,
    registry: AgentRegistry,
    supervisor: Supervisor,
    tools: ToolSet,
    conversations: S,
    /// Chat model per agent id (configuration picks one per role; absent: the agent runs its
    /// deterministic policy without a model).
    models: BTreeMap<String, Arc<dyn DynChatModel>>,
    /// Agents (by id) that run the model-driven policy when they have a model; the others run
    /// their own deterministic code.
    policies: BTreeMap<String, ModelDrivenPolicy>,
    /// Operators' per-agent settings, swapped as a whole on reload.
    settings: Arc<LiveSettings>,
    limits: TurnLimits,
}

impl<S: ConversationStore> Orchestrator<S> {
    /// Builds the loop; every agent's allow-list must name registered tools.
    pub fn new(
        tenant: impl Into<String>,
        registry: AgentRegistry,
        supervisor: Supervisor,
        tools: ToolSet,
        conversations: S,
        limits: TurnLimits,
    ) -> Result<Self, OrchestratorError> {
        for id in registry.agents.keys() {
            if let Some(agent) = registry.get(id) {
                tools
                    .restrict(&agent.descriptor().tools)
                    .map_err(|e| OrchestratorError::Config(format!("agent `{id}`: {e}")))?;
            }
        }
        Ok(Self {
            tenant: tenant.into(),
            registry,
            supervisor,
            tools,
            conversations,
            models: BTreeMap::new(),
            policies: BTreeMap::new(),
            settings: Arc::new(LiveSettings::default()),
            limits,
        })
    }

    /// Reads per-agent settings from `settings` on every turn; whoever holds the same cell can
    /// swap in a new [`SettingsSet`] and the next turn uses it. Each set must have been
    /// validated against the registered agents (`fenliu_agent::settings::load_dir`).
    pub fn with_settings(mut self, settings: Arc<LiveSettings>) -> Self {
        self.settings = settings;
        self
    }

    /// The live settings cell.
    pub fn settings(&self) -> &Arc<LiveSettings> {
        &self.settings
    }

    /// Gives one agent (by id) a chat model.
    pub fn with_agent_model(mut self, agent: &str, model: Arc<dyn DynChatModel>) -> Self {
        self.models.insert(agent.to_owned(), model);
        self
    }

    /// Makes one agent (by id) run the model-driven policy: its chat model (see
    /// [`Orchestrator::with_agent_model`]) chooses among its allow-listed tools. Without a model
    /// the agent keeps its deterministic policy.
    pub fn with_agent_policy(mut self, agent: &str, policy: ModelDrivenPolicy) -> Self {
        self.policies.insert(agent.to_owned(), policy);
        self
    }

    /// The registry.
    pub fn registry(&self) -> &AgentRegistry {
        &self.registry
    }

    /// The supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The conversation store.
    pub fn conversations(&self) -> &S {
        &self.conversations
    }

    /// Handles one customer message end to end.
    #[instrument(skip_all, fields(customer = %request.customer.id, channel = ?request.channel))]
    pub async fn handle_turn(
        &self,
        request: TurnRequest,
    ) -> Result<TurnOutcome, OrchestratorError> {
        let text = request.text.trim();
        if text.is_empty() {
            return Err(OrchestratorError::InvalidMessage("the message is empty".into()));
        }
        let chars = text.chars().count();
        if chars > self.limits.max_message_chars {
            return Err(OrchestratorError::InvalidMessage(format!(
                "the message has {chars} characters; the limit is {}",
                self.limits.max_message_chars
            )));
        }
        let mut state = self.load_state(&request).await?;
        let language = reply_language(text, &request.customer, &state.turns);
        state.push_turn(Turn {
            speaker: Speaker::Customer,
            text: text.to_owned(),
            at: Utc::now(),
            agent: None,
        });

        let mut decision = self.supervisor.route(text, state.route.as_ref()).await?;
        let mut outcome = self.dispatch(&mut state, &request, text, language, &mut decision).await;
        outcome.conversation_id = state.id.clone();
        outcome.decision = decision;

        state.push_turn(Turn {
            speaker: Speaker::Agent,
            text: outcome.reply.clone(),
            at: Utc::now(),
            agent: outcome.agent.clone(),
        });
        state.updated_at = Utc::now();
        self.conversations.save(&state).await?;
        info!(
            conversation = %state.id,
            route = %outcome.decision.route,
            stage = %outcome.decision.stage,
            confidence = outcome.decision.confidence,
            kind = ?outcome.kind,
            tools = outcome.tool_calls.len(),
            "turn handled"
        );
        Ok(outcome)
    }

    async fn load_state(
        &self,
        request: &TurnRequest,
    ) -> Result<ConversationState, OrchestratorError> {
        match &request.conversation_id {
            None => Ok(ConversationState::new(
                uuid::Uuid::new_v4().to_string(),
                request.customer.id.clone(),
            )),
            Some(id) => match self.conversations.load(id).await? {
                Some(state) if state.customer_id == request.customer.id => Ok(state),
                Some(_) => {
                    warn!(conversation = %id, "conversation requested by another customer");
                    Err(OrchestratorError::ConversationNotFound(id.clone()))
                }
                None => Err(OrchestratorError::ConversationNotFound(id.clone())),
            },
        }
    }

    async fn dispatch(
        &self,
        state: &mut ConversationState,
        request: &TurnRequest,
        text: &str,
        language: Language,
        decision: &mut RouteDecision,
    ) -> TurnOutcome {
        let mut outcome = TurnOutcome {
            conversation_id: String::new(),
            reply: String::new(),
            kind: ReplyKind::Answer,
            language,
            decision: decision.clone(),
            agent: None,
            tool_calls: Vec::new(),
            escalation: None,
        };
        // One snapshot for the whole turn: a reload mid-turn applies from the next turn.
        let settings = self.settings.current();
        let route_thresholds = self
            .registry
            .routes
            .get(&decision.route)
            .and_then(|id| settings.get(id))
            .map(|s| s.thresholds.clone())
            .unwrap_or_default();
        let abstains = match route_thresholds.min_confidence {
            Some(min) => decision.confidence < min,
            None => self.supervisor.abstains(decision),
        };
        if abstains {
            let max_clarifications =
                route_thresholds.max_clarifications.unwrap_or(self.limits.max_clarifications);
            if state.clarifications >= max_clarifications {
                self.escalate(
                    state,
                    request,
                    &mut outcome,
                    decision.route.clone(),
                    EscalationReason::LowConfidence,
                );
            } else {
                state.clarifications += 1;
                outcome.kind = ReplyKind::Clarify;
                outcome.reply = builtin::clarify(language);
            }
            return outcome;
        }
        state.clarifications = 0;
        if decision.route == Route::HUMAN {
            self.escalate(
                state,
                request,
                &mut outcome,
                Route::HUMAN,
                EscalationReason::CustomerRequest,
            );
            return outcome;
        }

        for _ in 0..=MAX_HANDOFFS {
            let route = decision.route.clone();
            if route == Route::OUT_OF_SCOPE {
                release(state);
                outcome.kind = ReplyKind::Refusal;
                outcome.reply = builtin::out_of_scope(language);
                return outcome;
            }
            let Some(agent) = self.registry.for_route(&route).cloned() else {
                // No specialist is deployed for this route: a person takes it.
                self.escalate(
                    state,
                    request,
                    &mut outcome,
                    route,
                    EscalationReason::PolicyRequiresHuman,
                );
                return outcome;
            };
            let descriptor = agent.descriptor();
            if state.owner.as_deref() != Some(descriptor.id.as_str()) {
                // A new owner starts with fresh slots; the old owner's context stays in the turns.
                state.slots = serde_json::Value::Null;
            }
            let agent_settings = settings.get(&descriptor.id).cloned();
            let allow_list = agent_settings
                .as_ref()
                .and_then(|s| s.tools.as_deref())
                .unwrap_or(&descriptor.tools);
            let tools = match self.tools.restrict(allow_list) {
                Ok(tools) => tools,
                Err(e) => {
                    warn!(agent = %descriptor.id, error = %e, "allow-list no longer valid");
                    self.escalate(
                        state,
                        request,
                        &mut outcome,
                        route,
                        EscalationReason::ToolFailure,
                    );
                    return outcome;
                }
            };
            let history = state.turns.clone();
            let ctx = AgentContext::new(
                &self.tenant,
                &state.id,
                &request.customer,
                request.channel,
                language,
                text,
                &history,
                decision,
                self.models.get(&descriptor.id).map(|m| m.as_ref()),
                tools,
            )
            .with_settings(agent_settings.clone());
            let slots = state.slots.take();
            let driven = match (self.policies.get(&descriptor.id), self.models.get(&descriptor.id))
            {
                (Some(policy), Some(model)) => {
                    let mut policy = policy.clone();
                    if let Some(steps) =
                        agent_settings.as_ref().and_then(|s| s.thresholds.max_steps)
                    {
                        policy.max_steps = steps;
                    }
                    Some(
                        run_model_driven(&ctx, &descriptor, model.as_ref(), &policy, slots.clone())
                            .await,
                    )
                }
                _ => None,
            };
            let result = match driven {
                Some(Ok(d)) => Ok((d.reply, d.slots)),
                Some(Err(e)) => {
                    // The model failed: the agent's own code handles the turn instead.
                    warn!(agent = %descriptor.id, error = %e, "model-driven policy failed; deterministic fallback");
                    agent.handle(&ctx, serde_json::Value::Null).await
                }
                None => agent.handle(&ctx, slots).await,
            };
            outcome.tool_calls.extend(ctx.into_tool_calls());
            outcome.agent = Some(descriptor.id.clone());
            match result {
                Ok((AgentReply::Handoff { route: next, reason }, _)) => {
                    info!(from = %descriptor.id, to = %next, %reason, "hand-off");
                    release(state);
                    decision.alternatives.insert(0, (decision.route.clone(), decision.confidence));
                    decision.route = next;
                    decision.stage = "handoff".into();
                    decision.reason = reason;
                    continue;
                }
                Ok((reply, slots)) => {
                    if reply.keeps_ownership() {
                        state.owner = Some(descriptor.id.clone());
                        state.route = Some(route);
                        state.slots = slots;
                    } else {
                        release(state);
                    }
                    outcome.reply = reply.customer_text().unwrap_or_default().to_owned();
                    outcome.kind = match &reply {
                        AgentReply::Answer { .. } => ReplyKind::Answer,
                        AgentReply::AskSlot { .. } => ReplyKind::AskSlot,
                        AgentReply::Escalate(_) | AgentReply::Handoff { .. } => {
                            ReplyKind::Escalated
                        }
                    };
                    if let AgentReply::Escalate(package) = reply {
                        state.escalated = true;
                        outcome.escalation = Some(*package);
                    }
                    return outcome;
                }
                Err(e) => {
                    warn!(agent = %descriptor.id, error = %e, "agent failed");
                    self.escalate(
                        state,
                        request,
                        &mut outcome,
                        route,
                        EscalationReason::ToolFailure,
                    );
                    return outcome;
                }
            }
        }
        self.escalate(
            state,
            request,
            &mut outcome,
            decision.route.clone(),
            EscalationReason::RepeatedFailure,
        );
        outcome
    }

    fn escalate(
        &self,
        state: &mut ConversationState,
        request: &TurnRequest,
        outcome: &mut TurnOutcome,
        route: Route,
        reason: EscalationReason,
    ) {
        let priority = match (request.customer.tier, reason) {
            (CustomerTier::Vip, _) => Priority::High,
            (_, EscalationReason::HighSeverityComplaint) => Priority::High,
            _ => Priority::Normal,
        };
        let recent: Vec<String> = state
            .turns
            .iter()
            .rev()
            .take(6)
            .rev()
            .map(|t| format!("{:?}: {}", t.speaker, t.text.chars().take(200).collect::<String>()))
            .collect();
        let package = EscalationPackage {
            reason,
            priority,
            route,
            language: outcome.language,
            agent: state.owner.clone().unwrap_or_else(|| "supervisor".into()),
            summary: recent.join("\n"),
            slots: state.slots.clone(),
            sentiment: Sentiment::Neutral,
            tools_tried: outcome.tool_calls.clone(),
            message_to_customer: builtin::handing_to_human(outcome.language),
        };
        release(state);
        state.escalated = true;
        outcome.kind = ReplyKind::Escalated;
        outcome.reply = package.message_to_customer.clone();
        outcome.escalation = Some(package);
    }
}

fn release(state: &mut ConversationState) {
    state.owner = None;
    state.route = None;
    state.slots = serde_json::Value::Null;
}
