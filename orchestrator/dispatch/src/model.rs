//! The dispatcher's vocabulary: human agents (skills, capacity, status, performance) and work
//! items (what an escalation becomes in the queue).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use fenliu_agent::{Channel, CustomerTier, EscalationPackage, Language, Priority, Route};
use serde::{Deserialize, Serialize};

/// A human agent's id (their login in the console).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(pub String);

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AgentId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A work item's id: the id of the conversation (or ticket) it routes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub String);

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ItemId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// How a person works a conversation; capacity is counted per medium, because a person can hold
/// several chats at once but only one call.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Medium {
    /// Written, synchronous: web, app, messaging, API.
    #[default]
    Chat,
    /// Voice.
    Call,
    /// Written, asynchronous.
    Email,
}

impl Medium {
    /// Every medium, in a fixed order.
    pub const ALL: [Medium; 3] = [Medium::Chat, Medium::Call, Medium::Email];

    /// The medium a channel is worked in.
    pub fn of(channel: Channel) -> Self {
        match channel {
            Channel::Phone => Self::Call,
            Channel::Email => Self::Email,
            Channel::Web | Channel::App | Channel::Messaging | Channel::Api => Self::Chat,
        }
    }

    /// `"chat"`, `"call"` or `"email"` (the stored form).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Call => "call",
            Self::Email => "email",
        }
    }

    /// Parses [`Medium::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Skill level, 1 (can help) to 5 (expert). Levels from [`PRIMARY_LEVEL`] up are primary skills;
/// lower ones are secondary, used only after a workflow step widens the target.
pub type Level = u8;

/// The lowest level of a primary skill.
pub const PRIMARY_LEVEL: Level = 3;

/// The highest level.
pub const MAX_LEVEL: Level = 5;

/// What a person can do: routes (order, after-sales, complaint, …), languages, products.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skills {
    /// Route skills with levels.
    pub routes: BTreeMap<Route, Level>,
    /// Languages with levels.
    pub languages: BTreeMap<Language, Level>,
    /// Product lines (e.g. `"laptops"`) with levels; optional refinements of a route skill.
    pub products: BTreeMap<String, Level>,
}

impl Skills {
    /// Adds a route skill.
    pub fn route(mut self, route: Route, level: Level) -> Self {
        self.routes.insert(route, level.min(MAX_LEVEL));
        self
    }

    /// Adds a language.
    pub fn language(mut self, language: Language, level: Level) -> Self {
        self.languages.insert(language, level.min(MAX_LEVEL));
        self
    }

    /// Adds a product line.
    pub fn product(mut self, product: impl Into<String>, level: Level) -> Self {
        self.products.insert(product.into(), level.min(MAX_LEVEL));
        self
    }

    /// The level of a route skill (0 when absent).
    pub fn route_level(&self, route: &Route) -> Level {
        self.routes.get(route).copied().unwrap_or(0)
    }

    /// The level of a language (0 when absent).
    pub fn language_level(&self, language: Language) -> Level {
        self.languages.get(&language).copied().unwrap_or(0)
    }
}

/// How many conversations of each medium a person can hold at once, e.g. 3 chats + 1 call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Concurrent chats.
    pub chat: u16,
    /// Concurrent calls (normally 0 or 1).
    pub call: u16,
    /// Open e-mails.
    pub email: u16,
}

impl Default for Capacity {
    /// 3 chats, 1 call, 5 e-mails: a common contact-centre set-up.
    fn default() -> Self {
        Self { chat: 3, call: 1, email: 5 }
    }
}

impl Capacity {
    /// The capacity of one medium.
    pub fn of(&self, medium: Medium) -> u16 {
        match medium {
            Medium::Chat => self.chat,
            Medium::Call => self.call,
            Medium::Email => self.email,
        }
    }

    fn slot(&mut self, medium: Medium) -> &mut u16 {
        match medium {
            Medium::Chat => &mut self.chat,
            Medium::Call => &mut self.call,
            Medium::Email => &mut self.email,
        }
    }
}

/// Conversations a person holds per medium (offers count: an offered slot is reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load(Capacity);

impl Default for Load {
    /// Nothing held (not `Capacity::default`, which is a typical capacity).
    fn default() -> Self {
        Self(Capacity { chat: 0, call: 0, email: 0 })
    }
}

impl Load {
    /// Held conversations of a medium.
    pub fn of(&self, medium: Medium) -> u16 {
        self.0.of(medium)
    }

    /// Total held conversations.
    pub fn total(&self) -> u32 {
        Medium::ALL.iter().map(|&m| u32::from(self.of(m))).sum()
    }

    pub(crate) fn add(&mut self, medium: Medium) {
        let slot = self.0.slot(medium);
        *slot = slot.saturating_add(1);
    }

    pub(crate) fn remove(&mut self, medium: Medium) {
        let slot = self.0.slot(medium);
        *slot = slot.saturating_sub(1);
    }
}

/// Whether a person takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Takes new work.
    Online,
    /// At the desk but not taking new work (break, meeting); keeps what they hold.
    Away,
    /// Logged out.
    #[default]
    Offline,
    /// Finishing notes after a conversation; takes new work again when wrap-up ends.
    WrapUp,
}

impl AgentStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Offline => "offline",
            Self::WrapUp => "wrap_up",
        }
    }
}

/// Performance measured from closed conversations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// Closed conversations measured.
    pub closed: u32,
    /// First-contact resolution rate, 0–1.
    pub fcr: f64,
    /// Mean customer satisfaction, 1–5 (over rated conversations).
    pub csat: f64,
    /// Rated conversations.
    pub rated: u32,
    /// Average handle time in seconds.
    pub aht_seconds: f64,
}

impl Default for Performance {
    /// A newcomer's prior: middling on every measure, so they are neither favoured nor starved.
    fn default() -> Self {
        Self { closed: 0, fcr: 0.7, csat: 4.0, rated: 0, aht_seconds: 600.0 }
    }
}

/// How a closed conversation went, for [`Performance`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Resolved without another contact.
    pub resolved_first_contact: bool,
    /// The customer's rating 1–5, if they gave one.
    pub csat: Option<u8>,
}

impl Performance {
    /// Folds one closed conversation in (a running mean; the prior counts as one observation so
    /// a single bad first conversation does not bury a newcomer).
    pub fn record(&mut self, outcome: Outcome, handle_seconds: f64) {
        let n = f64::from(self.closed) + 1.0;
        let fcr = if outcome.resolved_first_contact { 1.0 } else { 0.0 };
        self.fcr += (fcr - self.fcr) / (n + 1.0);
        self.aht_seconds += (handle_seconds.max(0.0) - self.aht_seconds) / (n + 1.0);
        if let Some(csat) = outcome.csat {
            let r = f64::from(self.rated) + 1.0;
            self.csat += (f64::from(csat.clamp(1, 5)) - self.csat) / (r + 1.0);
            self.rated += 1;
        }
        self.closed += 1;
    }

    /// A score in 0–1: resolution and satisfaction weigh most; a handle time under the target
    /// helps a little (fast but unresolved is not rewarded, because FCR dominates).
    pub fn score(&self, target_aht_seconds: f64) -> f64 {
        let csat = ((self.csat - 1.0) / 4.0).clamp(0.0, 1.0);
        let speed = if self.aht_seconds > 0.0 {
            (target_aht_seconds / self.aht_seconds).clamp(0.0, 1.0)
        } else {
            1.0
        };
        0.4 * self.fcr.clamp(0.0, 1.0) + 0.4 * csat + 0.2 * speed
    }
}

/// A person who takes escalated conversations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanAgent {
    /// Login.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Skills.
    pub skills: Skills,
    /// Per-medium capacity.
    pub capacity: Capacity,
    /// Status.
    pub status: AgentStatus,
    /// Members of the overflow team are generalists reached only by the last workflow step.
    pub overflow: bool,
    /// Measured performance.
    pub performance: Performance,
    /// Conversations held (offered or accepted), per medium.
    pub load: Load,
    /// When the person was last offered work: fairness among equals prefers the longest idle.
    pub last_offered_at: Option<DateTime<Utc>>,
    /// When wrap-up ends (status [`AgentStatus::WrapUp`]).
    pub wrap_up_until: Option<DateTime<Utc>>,
}

impl HumanAgent {
    /// A person, offline, with default capacity (3 chats, 1 call, 5 e-mails).
    pub fn new(id: impl Into<String>, name: impl Into<String>, skills: Skills) -> Self {
        Self {
            id: AgentId(id.into()),
            name: name.into(),
            skills,
            capacity: Capacity::default(),
            status: AgentStatus::Offline,
            overflow: false,
            performance: Performance::default(),
            load: Load::default(),
            last_offered_at: None,
            wrap_up_until: None,
        }
    }

    /// Sets the capacity.
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the status.
    pub fn with_status(mut self, status: AgentStatus) -> Self {
        self.status = status;
        self
    }

    /// Puts the person in the overflow team.
    pub fn in_overflow_team(mut self) -> Self {
        self.overflow = true;
        self
    }

    /// Free slots of a medium.
    pub fn free(&self, medium: Medium) -> u16 {
        self.capacity.of(medium).saturating_sub(self.load.of(medium))
    }

    /// Whether the person takes new work of a medium now.
    pub fn available(&self, medium: Medium) -> bool {
        self.status == AgentStatus::Online && self.free(medium) > 0
    }
}

/// Where a work item stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ItemState {
    /// Waiting in the queue.
    Queued,
    /// Offered to a person, who must accept before `expires_at`.
    Offered {
        /// To whom.
        agent: AgentId,
        /// When the offer lapses and the item returns to the queue.
        expires_at: DateTime<Utc>,
    },
    /// A person works it.
    Assigned {
        /// Who.
        agent: AgentId,
        /// When they accepted: the first response.
        accepted_at: DateTime<Utc>,
    },
    /// Closed.
    Completed {
        /// Who closed it.
        agent: AgentId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The customer left before a person answered.
    Abandoned {
        /// When.
        at: DateTime<Utc>,
    },
}

impl ItemState {
    /// The stored name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Offered { .. } => "offered",
            Self::Assigned { .. } => "assigned",
            Self::Completed { .. } => "completed",
            Self::Abandoned { .. } => "abandoned",
        }
    }

    /// The person holding the item, if any.
    pub fn holder(&self) -> Option<&AgentId> {
        match self {
            Self::Offered { agent, .. } | Self::Assigned { agent, .. } => Some(agent),
            _ => None,
        }
    }
}

/// A note carried with an item across transfers, so nobody asks the customer again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferNote {
    /// Who transferred.
    pub from: AgentId,
    /// When.
    pub at: DateTime<Utc>,
    /// The route it was on before.
    pub from_route: Route,
    /// Why, for the next person.
    pub note: String,
}

/// What is needed to route an escalation: the package plus what the turn loop knows about the
/// conversation (the package itself is channel- and customer-agnostic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewWorkItem {
    /// The conversation id.
    pub id: ItemId,
    /// Skill needed.
    pub route: Route,
    /// Language needed.
    pub language: Language,
    /// Product line, when known (a finer skill).
    pub product: Option<String>,
    /// Priority from the agent or policy.
    pub priority: Priority,
    /// The customer's tier.
    pub tier: CustomerTier,
    /// Where the customer is.
    pub channel: Channel,
    /// The escalation package, shown to the person who takes it.
    pub package: Option<EscalationPackage>,
}

impl NewWorkItem {
    /// A work item from an escalation of conversation `id`.
    pub fn from_escalation(
        id: impl Into<String>,
        package: EscalationPackage,
        tier: CustomerTier,
        channel: Channel,
    ) -> Self {
        Self {
            id: ItemId(id.into()),
            route: package.route.clone(),
            language: package.language,
            product: None,
            priority: package.priority,
            tier,
            channel,
            package: Some(package),
        }
    }

    /// A bare work item (simulations, benchmarks, tests).
    pub fn new(id: impl Into<String>, route: Route, language: Language, channel: Channel) -> Self {
        Self {
            id: ItemId(id.into()),
            route,
            language,
            product: None,
            priority: Priority::Normal,
            tier: CustomerTier::Regular,
            channel,
            package: None,
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the tier.
    pub fn with_tier(mut self, tier: CustomerTier) -> Self {
        self.tier = tier;
        self
    }
}

/// One conversation (or ticket) waiting for or held by a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Id.
    pub id: ItemId,
    /// Skill needed (changes on transfer).
    pub route: Route,
    /// Language needed.
    pub language: Language,
    /// Product line.
    pub product: Option<String>,
    /// Priority.
    pub priority: Priority,
    /// Tier.
    pub tier: CustomerTier,
    /// Channel.
    pub channel: Channel,
    /// Medium of the channel (capacity is counted per medium).
    pub medium: Medium,
    /// When it entered the queue (first time; transfers keep it, so SLA clocks keep running).
    pub enqueued_at: DateTime<Utc>,
    /// When it last (re-)entered the queue: workflow steps count from here.
    pub queued_since: DateTime<Utc>,
    /// Arrival order, the last tie-breaker.
    pub seq: u64,
    /// First response due.
    pub first_response_due: DateTime<Utc>,
    /// Resolution due.
    pub resolution_due: DateTime<Utc>,
    /// State.
    pub state: ItemState,
    /// People who declined it or let an offer lapse: not offered to them again.
    pub declined: Vec<AgentId>,
    /// Promoted into the bypass class after waiting too long (anti-starvation).
    pub promoted: bool,
    /// Predicted to breach its first-response target.
    pub at_risk: bool,
    /// Reminder already sent.
    pub reminded: bool,
    /// First-response breach already reported.
    pub breached_first_response: bool,
    /// Resolution breach already reported.
    pub breached_resolution: bool,
    /// The workflow step the item is at (reported once per widening).
    pub step: usize,
    /// Transfers so far, oldest first.
    pub transfers: Vec<TransferNote>,
    /// The escalation package.
    pub package: Option<EscalationPackage>,
}

impl WorkItem {
    /// VIP customers and urgent work bypass the regular order.
    pub fn bypass(&self) -> bool {
        self.tier == CustomerTier::Vip || self.priority == Priority::Urgent || self.promoted
    }

    /// The priority used for SLA targets: VIPs get at least `High`.
    pub fn sla_priority(&self) -> Priority {
        if self.tier == CustomerTier::Vip {
            self.priority.max(Priority::High)
        } else {
            self.priority
        }
    }
}
