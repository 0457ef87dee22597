//! The marketing specialist of fenliu.
//!
//! Owns the `marketing` route: product questions and recommendations from the shop's catalogue
//! (semantic search with budget and colour filters through `search_products`), current
//! promotions (from the knowledge base through `kb_search` with `doc_type = "promotion"`, when the
//! knowledge tools are deployed; otherwise the conversation is handed to the `faq` route), and the
//! newsletter: opt-in and opt-out only after the customer confirmed, status on request.
//!
//! The policy here is *deterministic*: the agent's code reads the message (English or Chinese) and
//! decides the tool calls, so it works without a language model.
//!
//! # Layout
//! - `lib.rs`: the agent, its slots and the turn logic.
//! - `query.rs`: rules reading the sub-intent, the product wanted, budget and colour (EN + ZH).
//! - `templates.rs`: the customer-facing texts in English and Chinese.
//! - `phrases.rs`: the training phrases the supervisor learns the route from.

mod phrases;
mod query;
mod templates;

use fenliu_agent::text::confirmation;
use fenliu_agent::{
    Agent, AgentContext, AgentDescriptor, AgentError, AgentReply, CustomerTier, EscalationPackage,
    EscalationReason, Language, Priority, Route, Sentiment,
};
use fenliu_tool::{Tool, ToolError};
use fenliu_tools_commerce::Preferences;
use fenliu_tools_commerce::marketing::{GetNewsletter, ProductHit, SearchProducts, SetNewsletter};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use query::MarketingIntent;
use templates::Texts;

/// The knowledge-base tool's name (`fenliu-tools-knowledge`); the agent calls it by name so it
/// does not depend on the knowledge crates.
pub const KB_SEARCH: &str = "kb_search";

/// What the marketing agent remembers between turns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarketingSlots {
    /// The current sub-intent.
    pub intent: Option<MarketingIntent>,
    /// A newsletter change waiting for the customer's "yes": `true` subscribe, `false`
    /// unsubscribe.
    pub pending_newsletter: Option<bool>,
    /// Turns in a row without progress.
    pub failed_turns: u8,
}

/// Turns without progress before a person takes over.
const MAX_FAILED_TURNS: u8 = 2;

/// The marketing agent.
#[derive(Debug, Default, Clone)]
pub struct MarketingAgent {
    /// Whether `kb_search` is deployed (and on the allow-list) for promotions.
    knowledge: bool,
}

impl MarketingAgent {
    /// The agent's id and route.
    pub const ID: &'static str = "marketing";

    /// A marketing agent without the knowledge base: promotion questions go to the `faq` route.
    pub fn new() -> Self {
        Self { knowledge: false }
    }

    /// A marketing agent that answers promotions from the knowledge base (`kb_search` must be
    /// registered).
    pub fn with_knowledge() -> Self {
        Self { knowledge: true }
    }
}

impl Agent for MarketingAgent {
    type Slots = MarketingSlots;

    fn descriptor(&self) -> AgentDescriptor {
        let mut tools = vec![SearchProducts::NAME, GetNewsletter::NAME, SetNewsletter::NAME];
        if self.knowledge {
            tools.push(KB_SEARCH);
        }
        AgentDescriptor::new(
            Self::ID,
            vec![Route::MARKETING],
            "Handles shopping before a purchase: questions about products in the catalogue, \
             recommendations by need and budget, prices, colours and availability, current \
             promotions and discount codes, and newsletter subscribe/unsubscribe. Not for \
             existing orders (order), faults or returns (after_sales), or complaints.",
            phrases::PHRASES,
            &tools,
        )
        .with_templates(templates::specs())
    }

    async fn handle(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut MarketingSlots,
    ) -> Result<AgentReply, AgentError> {
        let t = Texts::for_turn(ctx);
        if let Some(subscribe) = slots.pending_newsletter.take() {
            return Ok(self.confirm_newsletter(ctx, slots, subscribe, &t).await);
        }
        if let Some(intent) = MarketingIntent::detect(ctx.message) {
            slots.intent = Some(intent);
        }
        Ok(match slots.intent.unwrap_or(MarketingIntent::Products) {
            MarketingIntent::Products => self.products(ctx, slots, &t).await,
            MarketingIntent::Promotions => self.promotions(ctx, slots, &t).await,
            MarketingIntent::Subscribe => self.offer_newsletter(ctx, slots, true, &t).await,
            MarketingIntent::Unsubscribe => self.offer_newsletter(ctx, slots, false, &t).await,
            MarketingIntent::NewsletterStatus => match self.newsletter(ctx).await {
                Ok(p) => {
                    *slots = MarketingSlots::default();
                    AgentReply::Answer { text: t.status(p.newsletter_subscribed()) }
                }
                Err(e) => self.tool_failed(ctx, slots, e, &t),
            },
        })
    }
}

impl MarketingAgent {
    async fn products(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut MarketingSlots,
        t: &Texts,
    ) -> AgentReply {
        let request = query::read_request(ctx.message);
        if !request.is_concrete() {
            slots.failed_turns = slots.failed_turns.saturating_add(1);
            if slots.failed_turns > MAX_FAILED_TURNS {
                return self.escalate(ctx, slots, EscalationReason::RepeatedFailure, t);
            }
            slots.intent = Some(MarketingIntent::Products);
            return AgentReply::AskSlot { slot: "product_need".into(), text: t.ask_need() };
        }
        let mut hits = match self.search(ctx, &request, true).await {
            Ok(hits) => hits,
            Err(e) => return self.tool_failed(ctx, slots, e, t),
        };
        // A colour nobody makes should not end the conversation: show the nearest products.
        let relaxed = hits.is_empty() && request.colour.is_some();
        if relaxed {
            hits = match self.search(ctx, &request, false).await {
                Ok(hits) => hits,
                Err(e) => return self.tool_failed(ctx, slots, e, t),
            };
        }
        *slots = MarketingSlots::default();
        if hits.is_empty() {
            let categories = self.categories(ctx).await;
            return AgentReply::Answer { text: t.nothing_found(&categories) };
        }
        AgentReply::Answer { text: t.recommendations(&hits, relaxed) }
    }

    async fn search(
        &self,
        ctx: &AgentContext<'_>,
        request: &query::ProductRequest,
        with_colour: bool,
    ) -> Result<Vec<ProductHit>, ToolError> {
        ctx.call::<SearchProducts>(request.to_query(with_colour)).await
    }

    /// The catalogue's categories, for "we don't carry that" answers.
    async fn categories(&self, ctx: &AgentContext<'_>) -> Vec<String> {
        let all = serde_json::json!({ "query": "", "limit": 10 });
        let hits: Vec<ProductHit> = ctx.call::<SearchProducts>(all).await.unwrap_or_default();
        let mut categories: Vec<String> = hits.into_iter().map(|h| h.category).collect();
        categories.sort();
        categories.dedup();
        categories
    }

    async fn promotions(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut MarketingSlots,
        t: &Texts,
    ) -> AgentReply {
        *slots = MarketingSlots::default();
        if !ctx.tools().names().contains(&KB_SEARCH) {
            return AgentReply::Handoff {
                route: Route::FAQ,
                reason: "promotions are answered from the knowledge base".into(),
            };
        }
        let language = if ctx.language == Language::Zh { "zh" } else { "en" };
        let query: String = ctx.message.chars().take(500).collect();
        let args = serde_json::json!({
            "query": query,
            "doc_type": "promotion",
            "language": language,
            "top_k": 2,
        });
        let record = ctx.call_tool(KB_SEARCH, args).await;
        let Some(output) = record.output() else {
            return AgentReply::Answer { text: t.no_promotion_found() };
        };
        let passages: Vec<(String, String)> = output["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .filter_map(|h| {
                        let text = h["text"].as_str()?.trim().to_owned();
                        let c = &h["citation"];
                        let source = match (c["source"].as_str(), c["section"].as_str()) {
                            (Some(s), Some(sec)) if !sec.is_empty() => format!("{s}, {sec}"),
                            (Some(s), _) => s.to_owned(),
                            _ => "knowledge base".to_owned(),
                        };
                        (!text.is_empty()).then_some((text, source))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if passages.is_empty() {
            return AgentReply::Answer { text: t.no_promotion_found() };
        }
        AgentReply::Answer { text: t.promotions(&passages) }
    }

    async fn newsletter(&self, ctx: &AgentContext<'_>) -> Result<Preferences, ToolError> {
        ctx.call::<GetNewsletter>(serde_json::json!({})).await
    }

    async fn offer_newsletter(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut MarketingSlots,
        subscribe: bool,
        t: &Texts,
    ) -> AgentReply {
        let current = match self.newsletter(ctx).await {
            Ok(p) => p,
            Err(e) => return self.tool_failed(ctx, slots, e, t),
        };
        if current.newsletter_subscribed() == subscribe {
            *slots = MarketingSlots::default();
            return AgentReply::Answer { text: t.already(subscribe) };
        }
        slots.pending_newsletter = Some(subscribe);
        let text = if subscribe { t.confirm_subscribe() } else { t.confirm_unsubscribe() };
        AgentReply::AskSlot { slot: "confirmation".into(), text }
    }

    async fn confirm_newsletter(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut MarketingSlots,
        subscribe: bool,
        t: &Texts,
    ) -> AgentReply {
        match confirmation(ctx.message) {
            Some(true) => {
                let args = serde_json::json!({ "subscribed": subscribe });
                match ctx.call::<SetNewsletter>(args).await {
                    Ok(_) => {
                        *slots = MarketingSlots::default();
                        AgentReply::Answer {
                            text: if subscribe { t.subscribed() } else { t.unsubscribed() },
                        }
                    }
                    Err(e) => self.tool_failed(ctx, slots, e, t),
                }
            }
            Some(false) => {
                *slots = MarketingSlots::default();
                AgentReply::Answer { text: t.unchanged() }
            }
            None => {
                slots.failed_turns = slots.failed_turns.saturating_add(1);
                if slots.failed_turns > MAX_FAILED_TURNS {
                    return self.escalate(ctx, slots, EscalationReason::RepeatedFailure, t);
                }
                slots.pending_newsletter = Some(subscribe);
                AgentReply::AskSlot {
                    slot: "confirmation".into(),
                    text: t.confirm_again(subscribe),
                }
            }
        }
    }

    fn tool_failed(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut MarketingSlots,
        error: ToolError,
        t: &Texts,
    ) -> AgentReply {
        match error {
            ToolError::InvalidArguments { .. } => {
                slots.intent = Some(MarketingIntent::Products);
                AgentReply::AskSlot { slot: "product_need".into(), text: t.ask_need() }
            }
            _ => self.escalate(ctx, slots, EscalationReason::ToolFailure, t),
        }
    }

    fn escalate(
        &self,
        ctx: &AgentContext<'_>,
        slots: &MarketingSlots,
        reason: EscalationReason,
        t: &Texts,
    ) -> AgentReply {
        let priority = match ctx.customer.tier {
            CustomerTier::Vip => Priority::High,
            CustomerTier::Regular => Priority::Low,
        };
        AgentReply::Escalate(Box::new(EscalationPackage {
            reason,
            priority,
            route: Route::MARKETING,
            language: ctx.language,
            agent: Self::ID.into(),
            summary: format!(
                "Marketing request ({:?}) the agent could not complete: {reason:?}.",
                slots.intent.unwrap_or(MarketingIntent::Products)
            ),
            slots: serde_json::to_value(slots).unwrap_or_default(),
            sentiment: Sentiment::Neutral,
            tools_tried: ctx.tool_calls(),
            message_to_customer: t.escalating(),
        }))
    }
}

/// The agent's training phrases (EN + ZH), for tools that train the supervisor.
pub fn training_phrases() -> &'static [&'static str] {
    phrases::PHRASES
}
