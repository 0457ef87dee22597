//! The supervisor: decides which route a customer message belongs to.
//!
//! This first supervisor has three stages, each recorded in the [`RouteDecision`]:
//! 1. `rule`: explicit requests for a person ("agent please", "转人工") go to `human`.
//! 2. `sticky`: while an agent owns the conversation, slot answers (an order id, a yes/no, a short
//!    reply) stay with it; only a confident different route counts as a topic switch.
//! 3. `semantic`: k-nearest-neighbour vote over the embedded training phrases of every registered
//!    agent plus the built-in `human` and `out_of_scope` phrases.
//!
//! Below `min_confidence` the decision is marked as an abstention; the turn loop then asks a
//! clarifying question.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use fenliu_agent::{Route, RouteDecision, TrainingPhrase};
use fenliu_knowledge::DynEmbedder;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::OrchestratorError;

/// Thresholds of the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Below this confidence the supervisor abstains and a clarifying question is asked.
    pub min_confidence: f32,
    /// An owned conversation switches topic only when another route is at least this confident.
    pub switch_confidence: f32,
    /// Softmax temperature turning similarities into confidences (smaller: sharper).
    pub temperature: f32,
    /// Neighbours that vote.
    pub k: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self { min_confidence: 0.45, switch_confidence: 0.75, temperature: 0.05, k: 7 }
    }
}

impl RouterConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("router.{name} must be in [0, 1], got {v}"))
            }
        };
        unit("min_confidence", self.min_confidence)?;
        unit("switch_confidence", self.switch_confidence)?;
        if !(self.temperature > 0.0 && self.temperature <= 1.0) {
            return Err(format!("router.temperature must be in (0, 1], got {}", self.temperature));
        }
        if self.k == 0 || self.k > 100 {
            return Err(format!("router.k must be in 1..=100, got {}", self.k));
        }
        Ok(())
    }
}

struct Example {
    route: Route,
    vector: Vec<f32>,
}

/// The supervisor. Built once at start-up from the registry's descriptors; cheap to share.
pub struct Supervisor {
    embedder: Arc<dyn DynEmbedder>,
    examples: Vec<Example>,
    config: RouterConfig,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("embedder", &self.embedder.model_id())
            .field("examples", &self.examples.len())
            .field("config", &self.config)
            .finish()
    }
}

static HUMAN_REQUEST: LazyLock<Regex> = LazyLock::new(|| {
    // A fixed pattern, covered by tests: it cannot fail to compile.
    #[allow(clippy::expect_used)]
    Regex::new(
        r"(?ix)
        \b(?:speak|talk|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|the\s+|your\s+)?(?:real\s+|live\s+)?(?:human|person|agent|representative|operator|someone|manager)\b
        | \b(?:real|live)\s+(?:human|person|agent)\b
        | ^\s*(?:human|agent|operator|representative)(?:\s+please)?[\s!.?]*$
        | \b(?:agent|human)\s+please\b
        | 转人工 | 人工客服 | 人工服务 | 找人工 | 真人客服 | 接人工",
    )
    .expect("human request regex")
});

/// Whether the message explicitly asks for a person.
pub fn asks_for_human(message: &str) -> bool {
    let head: String = message.chars().take(1_000).collect();
    HUMAN_REQUEST.is_match(&head)
}

/// Whether a message reads like an answer to the owning agent's question rather than a new
/// request: it names an order or ticket, says yes or no, or is very short.
pub fn looks_like_slot_answer(message: &str) -> bool {
    static SLOT: LazyLock<Regex> = LazyLock::new(|| {
        #[allow(clippy::expect_used)]
        Regex::new(r"(?i)(?:^|[^a-z0-9])#?w\s?\d{5,12}|\bT-\d+\b|^\s*(?:yes|no|yeah|nope|ok|okay|sure|confirm|是|否|好|好的|确认|不要|不用|可以|算了)[\s!.。！]*$")
            .expect("slot answer regex")
    });
    let trimmed = message.trim();
    SLOT.is_match(trimmed)
        || trimmed.split_whitespace().count() <= 2 && trimmed.chars().count() <= 12
}

impl Supervisor {
    /// Embeds the training phrases of every route and builds the supervisor.
    pub async fn train(
        embedder: Arc<dyn DynEmbedder>,
        phrases: &[(Route, TrainingPhrase)],
        config: RouterConfig,
    ) -> Result<Self, OrchestratorError> {
        config.validate().map_err(OrchestratorError::Config)?;
        if phrases.is_empty() {
            return Err(OrchestratorError::Config("the supervisor needs training phrases".into()));
        }
        let texts: Vec<String> = phrases.iter().map(|(_, p)| p.text.clone()).collect();
        let vectors = embedder.embed(&texts).await?;
        let examples = phrases
            .iter()
            .zip(vectors)
            .map(|((route, _), vector)| Example { route: route.clone(), vector })
            .collect();
        Ok(Self { embedder, examples, config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Decides the route of `message`. `owner` is the route of the agent that owns the
    /// conversation, if any.
    pub async fn route(
        &self,
        message: &str,
        owner: Option<&Route>,
    ) -> Result<RouteDecision, OrchestratorError> {
        if asks_for_human(message) {
            return Ok(RouteDecision {
                route: Route::HUMAN,
                confidence: 1.0,
                stage: "rule".into(),
                alternatives: Vec::new(),
                reason: "the customer asked for a person".into(),
            });
        }
        if let Some(owner) = owner
            && looks_like_slot_answer(message)
        {
            return Ok(RouteDecision {
                route: owner.clone(),
                confidence: 1.0,
                stage: "sticky".into(),
                alternatives: Vec::new(),
                reason: "answer to the owning agent's question".into(),
            });
        }
        let mut decision = self.semantic(message).await?;
        if let Some(owner) = owner
            && decision.route != *owner
            && decision.confidence < self.config.switch_confidence
        {
            decision.reason = format!(
                "kept with the owning agent: {} at {:.2} is below the topic-switch threshold",
                decision.route, decision.confidence
            );
            decision.alternatives.insert(0, (decision.route.clone(), decision.confidence));
            decision.route = owner.clone();
            decision.stage = "sticky".into();
        }
        Ok(decision)
    }

    /// Whether a decision is too unsure to act on.
    pub fn abstains(&self, decision: &RouteDecision) -> bool {
        decision.confidence < self.config.min_confidence
    }

    async fn semantic(&self, message: &str) -> Result<RouteDecision, OrchestratorError> {
        let query = self.embedder.embed(&[message.to_owned()]).await?;
        let query = query.into_iter().next().unwrap_or_default();
        let mut sims: Vec<(f32, &Route)> = self
            .examples
            .iter()
            .map(|e| (fenliu_knowledge::cosine(&query, &e.vector), &e.route))
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));

        // Soft k-NN vote: each of the k nearest phrases votes for its route with weight
        // exp(similarity / temperature); the route's share of the votes is its confidence.
        let top = sims.first().map_or(0.0, |s| s.0);
        let mut votes: BTreeMap<&Route, f32> = BTreeMap::new();
        for (sim, route) in sims.iter().take(self.config.k) {
            *votes.entry(route).or_default() += ((sim - top) / self.config.temperature).exp();
        }
        let total: f32 = votes.values().sum();
        let mut ranked: Vec<(Route, f32)> = votes
            .into_iter()
            .map(|(r, v)| (r.clone(), if total > 0.0 { v / total } else { 0.0 }))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (route, confidence) = ranked.first().cloned().unwrap_or((Route::OUT_OF_SCOPE, 0.0));
        // A message far from every phrase is not confidently anything, whatever the vote says.
        let confidence = if top < 0.3 { confidence * top / 0.3 } else { confidence };
        Ok(RouteDecision {
            reason: format!("nearest training phrase at cosine {top:.2}"),
            route,
            confidence,
            stage: "semantic".into(),
            alternatives: ranked.into_iter().skip(1).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_requests() {
        for yes in [
            "agent please",
            "I want to speak to a real person",
            "Can I talk to a human?",
            "human",
            "转人工",
            "我要人工客服",
            "let me chat with your manager",
        ] {
            assert!(asks_for_human(yes), "{yes}");
        }
        for no in ["where is my order", "the agent was rude", "human resources jobs", ""] {
            assert!(!asks_for_human(no), "{no}");
        }
    }

    #[test]
    fn slot_answers() {
        for yes in ["it's W2611340", "yes", "确认", "#W1234567", "ok", "T-000012"] {
            assert!(looks_like_slot_answer(yes), "{yes}");
        }
        for no in ["I want to cancel my other order and get a refund", "我想投诉你们的客服态度很差"]
        {
            assert!(!looks_like_slot_answer(no), "{no}");
        }
    }

    #[test]
    fn config_validation() {
        assert!(RouterConfig::default().validate().is_ok());
        let bad = RouterConfig { min_confidence: 1.5, ..RouterConfig::default() };
        assert!(bad.validate().unwrap_err().contains("min_confidence"));
        let bad = RouterConfig { temperature: 0.0, ..RouterConfig::default() };
        assert!(bad.validate().is_err());
    }
}
