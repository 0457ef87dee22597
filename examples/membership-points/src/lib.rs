//! An example external agent for fenliu: membership points.
//!
//! This crate shows the extension story: it depends only on the public contracts
//! (`fenliu-agent` for [`Agent`], `fenliu-tool` for [`Tool`](fenliu_tool::Tool), and the shop's
//! [`DynOrderStore`] from `fenliu-tools-commerce`), and the server adds it with one line in
//! `runtime::agents()` plus its tool where the server builds its tool set.
//!
//! It owns:
//! - the `membership_points` route and its EN+ZH training phrases;
//! - [`GetPointsBalance`] (`get_points_balance`), a read-only typed tool: one point per whole
//!   currency unit of the customer's delivered orders, net of refunds, plus the points still to
//!   come from orders on their way. The customer comes from the tool context, never from the
//!   message, so nobody can read another customer's balance;
//! - [`MembershipPointsAgent`], which answers with the balance in the customer's language, says it
//!   cannot redeem or transfer points when asked, and hands the customer to a person when the
//!   balance cannot be read.
//!
//! The points rule is this example's own: the demo shop's documents describe tiers, not points.

mod phrases;
mod templates;
mod tool;

use std::sync::Arc;

use fenliu_agent::text::{Match, contains_keyword, head_lower};
use fenliu_agent::{
    Agent, AgentContext, AgentDescriptor, AgentError, AgentReply, CustomerTier, EscalationPackage,
    EscalationReason, Priority, Route, Sentiment,
};
use fenliu_tool::{DynTool, Tool};
use fenliu_tools_commerce::DynOrderStore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use templates::Texts;
pub use tool::{GetPointsBalance, NoArgs, PointsBalance, balance, order_points};

/// The route this agent owns.
pub const ROUTE: &str = "membership_points";

/// The route as a [`Route`].
pub fn route() -> Route {
    // A literal checked by a unit test: it is a valid route name.
    #[allow(clippy::expect_used)]
    Route::new(ROUTE).expect("membership_points is a valid route name")
}

/// The tools this agent needs the server to register, over the shop's order store.
pub fn tools(orders: Arc<dyn DynOrderStore>) -> Vec<Arc<dyn DynTool>> {
    vec![Arc::new(GetPointsBalance::new(orders))]
}

/// What the agent remembers between turns: nothing yet, as every turn is answered at once. The
/// struct exists so the agent can add slots (say, a redemption confirmation) without a schema
/// change of its stored state breaking a turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct MembershipSlots {}

/// The membership points agent.
#[derive(Debug, Default, Clone)]
pub struct MembershipPointsAgent;

impl MembershipPointsAgent {
    /// The agent's id.
    pub const ID: &'static str = "membership_points";

    /// A new agent.
    pub fn new() -> Self {
        Self
    }
}

/// Whether the customer asks to spend or move points, which this agent cannot do.
fn asks_to_redeem(message: &str) -> bool {
    let lower = head_lower(message);
    ["redeem", "transfer", "convert", "cash out", "spend my points", "use my points"]
        .iter()
        .any(|k| contains_keyword(&lower, k, Match::Prefix))
        || ["兑换", "转让", "转给", "抵扣", "提现"].iter().any(|k| lower.contains(k))
}

impl Agent for MembershipPointsAgent {
    type Slots = MembershipSlots;

    fn descriptor(&self) -> AgentDescriptor {
        AgentDescriptor::new(
            Self::ID,
            vec![route()],
            "Answers questions about the customer's membership points: the balance, how points \
             are earned from delivered orders, and the points still to come from orders on their \
             way. Cannot redeem or transfer points. Not for VIP tier rules and benefits (faq), \
             order tracking (order) or promotions (marketing).",
            phrases::PHRASES,
            &[GetPointsBalance::NAME],
        )
        .with_templates(templates::specs())
    }

    async fn handle(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut MembershipSlots,
    ) -> Result<AgentReply, AgentError> {
        let t = Texts::for_turn(ctx);
        *slots = MembershipSlots::default();
        match ctx.call::<GetPointsBalance>(NoArgs {}).await {
            Ok(b) => Ok(AgentReply::Answer {
                text: t.balance(&b, ctx.customer.tier, asks_to_redeem(ctx.message)),
            }),
            Err(_) => Ok(AgentReply::Escalate(Box::new(EscalationPackage {
                reason: EscalationReason::ToolFailure,
                priority: if ctx.customer.tier == CustomerTier::Vip {
                    Priority::High
                } else {
                    Priority::Normal
                },
                route: route(),
                language: ctx.language,
                agent: Self::ID.into(),
                summary: format!(
                    "The points balance could not be read. Customer asked: {}",
                    ctx.message.chars().take(300).collect::<String>()
                ),
                slots: serde_json::json!({}),
                sentiment: Sentiment::Neutral,
                tools_tried: ctx.tool_calls(),
                message_to_customer: t.unavailable(),
            }))),
        }
    }
}

/// The agent's training phrases (EN + ZH), for tools that train the supervisor.
pub fn training_phrases() -> &'static [&'static str] {
    phrases::PHRASES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_literal_is_valid() {
        assert_eq!(route().as_str(), ROUTE);
        assert!(!Route::TAXONOMY.contains(&route()), "an extension route, not a built-in one");
    }

    #[test]
    fn redeem_requests() {
        for yes in ["Can I redeem my points?", "transfer points to my wife", "积分可以兑换吗"]
        {
            assert!(asks_to_redeem(yes), "{yes}");
        }
        for no in ["How many points do I have?", "我有多少积分", ""] {
            assert!(!asks_to_redeem(no), "{no}");
        }
    }
}
