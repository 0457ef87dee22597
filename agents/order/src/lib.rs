//! The order specialist of fenliu.
//!
//! Owns the `order` route: order status, tracking and delivery estimates, the customer's order
//! list, refund status, invoices, and cancelling a pending order after explicit confirmation, as
//! the retail policy in the demo shop requires. Every read and write goes through the allow-listed
//! order tools, which only ever see the authenticated customer's orders.
//!
//! The policy here is *deterministic*: the agent's code decides the tool calls from the message and
//! its [`OrderSlots`], so it works with no language model at all.
//!
//! # Layout
//! - `lib.rs`: the agent, its slots and the turn logic.
//! - `intent.rs`: rule-based extraction of the sub-intent, order ids and confirmations.
//! - `templates.rs`: the customer-facing texts in English and Chinese.
//! - `phrases.rs`: the training phrases the supervisor learns the route from.

mod intent;
mod phrases;
mod templates;

use fenliu_agent::{
    Agent, AgentContext, AgentDescriptor, AgentError, AgentReply, EscalationPackage,
    EscalationReason, Priority, Route, Sentiment,
};
use fenliu_tool::{Tool, ToolError};
use fenliu_tools_commerce::tools::{CancelOrder, GetOrder, ListOrders};
use fenliu_tools_commerce::{CancelReason, Order, OrderStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use intent::{OrderIntent, extract_order_id};
use templates::Texts;

/// What the order agent remembers between turns of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderSlots {
    /// What the customer wants done.
    pub intent: Option<OrderIntent>,
    /// The order it is about (normalised, e.g. `#W2611340`).
    pub order_id: Option<String>,
    /// A write waiting for the customer's explicit "yes".
    pub pending: Option<PendingAction>,
    /// Turns in a row in which the agent could not make progress.
    pub failed_turns: u8,
}

/// A consequential action awaiting confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PendingAction {
    /// Cancel this order for this reason.
    Cancel {
        /// Order id.
        order_id: String,
        /// Reason given.
        reason: CancelReason,
    },
}

/// Turns without progress before the agent hands the customer to a person.
const MAX_FAILED_TURNS: u8 = 2;

/// The order agent.
#[derive(Debug, Default, Clone)]
pub struct OrderAgent;

impl OrderAgent {
    /// The agent's id and route.
    pub const ID: &'static str = "order";

    /// A new order agent.
    pub fn new() -> Self {
        Self
    }
}

impl Agent for OrderAgent {
    type Slots = OrderSlots;

    fn descriptor(&self) -> AgentDescriptor {
        AgentDescriptor::new(
            Self::ID,
            vec![Route::ORDER],
            "Handles questions about the customer's existing orders: order status, tracking, \
             delivery dates, listing orders, refund status, invoices, cancelling a pending order \
             and changing the address of a pending order. Not for product faults, repairs, returns \
             of delivered items (after_sales), complaints, or buying new products (marketing).",
            phrases::PHRASES,
            &[GetOrder::NAME, ListOrders::NAME, CancelOrder::NAME],
        )
    }

    async fn handle(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut OrderSlots,
    ) -> Result<AgentReply, AgentError> {
        let t = Texts::new(ctx.language);
        let message = ctx.message;

        if let Some(id) = extract_order_id(message) {
            slots.order_id = Some(id);
        }
        if let Some(pending) = slots.pending.take() {
            return Ok(self.confirm(ctx, slots, pending, &t).await);
        }
        if let Some(intent) = OrderIntent::detect(message) {
            slots.intent = Some(intent);
        }
        let intent = slots.intent.unwrap_or(OrderIntent::Status);

        if intent == OrderIntent::List {
            return Ok(self.list(ctx, slots, &t).await);
        }
        let Some(order_id) = slots.order_id.clone() else {
            return Ok(self.ask_for_order(ctx, slots, &t).await);
        };
        let order = match ctx.call::<GetOrder>(serde_json::json!({ "order_id": order_id })).await {
            Ok(order) => order,
            Err(e) => return Ok(self.tool_failed(ctx, slots, e, &order_id, &t)),
        };
        slots.failed_turns = 0;
        Ok(match intent {
            OrderIntent::Cancel => self.offer_cancel(slots, &order, message, &t),
            OrderIntent::Refund => AgentReply::Answer { text: t.refund(&order) },
            OrderIntent::Invoice => AgentReply::Answer { text: t.invoice(&order) },
            OrderIntent::ChangeAddress => AgentReply::Answer { text: t.address_change(&order) },
            OrderIntent::Status | OrderIntent::List => {
                AgentReply::Answer { text: t.status(&order) }
            }
        })
    }
}

impl OrderAgent {
    async fn ask_for_order(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut OrderSlots,
        t: &Texts,
    ) -> AgentReply {
        let recent = ctx.call::<ListOrders>(serde_json::json!({})).await.unwrap_or_default();
        slots.failed_turns = slots.failed_turns.saturating_add(1);
        if slots.failed_turns > MAX_FAILED_TURNS {
            return self.escalate(ctx, slots, EscalationReason::RepeatedFailure, t);
        }
        AgentReply::AskSlot { slot: "order_id".into(), text: t.ask_order_id(&recent) }
    }

    async fn list(&self, ctx: &AgentContext<'_>, slots: &mut OrderSlots, t: &Texts) -> AgentReply {
        match ctx.call::<ListOrders>(serde_json::json!({})).await {
            Ok(orders) => {
                slots.intent = None;
                AgentReply::Answer { text: t.order_list(&orders) }
            }
            Err(e) => self.tool_failed(ctx, slots, e, "", t),
        }
    }

    fn offer_cancel(
        &self,
        slots: &mut OrderSlots,
        order: &Order,
        message: &str,
        t: &Texts,
    ) -> AgentReply {
        if order.status != OrderStatus::Pending {
            return AgentReply::Answer { text: t.cannot_cancel(order) };
        }
        let reason = intent::cancel_reason(message);
        slots.pending = Some(PendingAction::Cancel { order_id: order.id.clone(), reason });
        AgentReply::AskSlot { slot: "confirmation".into(), text: t.confirm_cancel(order) }
    }

    async fn confirm(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut OrderSlots,
        pending: PendingAction,
        t: &Texts,
    ) -> AgentReply {
        let PendingAction::Cancel { order_id, reason } = pending;
        match intent::confirmation(ctx.message) {
            Some(true) => {
                let args = serde_json::json!({ "order_id": order_id, "reason": reason });
                match ctx.call::<CancelOrder>(args).await {
                    Ok(order) => {
                        *slots = OrderSlots::default();
                        AgentReply::Answer { text: t.cancelled(&order) }
                    }
                    Err(e) => self.tool_failed(ctx, slots, e, &order_id, t),
                }
            }
            Some(false) => {
                *slots = OrderSlots::default();
                AgentReply::Answer { text: t.cancel_aborted(&order_id) }
            }
            None => {
                slots.failed_turns = slots.failed_turns.saturating_add(1);
                if slots.failed_turns > MAX_FAILED_TURNS {
                    return self.escalate(ctx, slots, EscalationReason::RepeatedFailure, t);
                }
                slots.pending = Some(PendingAction::Cancel { order_id: order_id.clone(), reason });
                AgentReply::AskSlot {
                    slot: "confirmation".into(),
                    text: t.confirm_again(&order_id),
                }
            }
        }
    }

    fn tool_failed(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut OrderSlots,
        error: ToolError,
        order_id: &str,
        t: &Texts,
    ) -> AgentReply {
        match error {
            // The same answer for "not yours" and "does not exist": nobody can probe which order
            // ids exist by asking.
            ToolError::Denied { .. } | ToolError::NotFound { .. } => {
                slots.order_id = None;
                slots.intent = None;
                AgentReply::Answer { text: t.not_found(order_id) }
            }
            ToolError::Conflict { reason, .. } => AgentReply::Answer { text: t.conflict(&reason) },
            ToolError::InvalidArguments { .. } => {
                slots.order_id = None;
                AgentReply::AskSlot { slot: "order_id".into(), text: t.ask_order_id(&[]) }
            }
            ToolError::Unavailable { .. }
            | ToolError::UnknownTool { .. }
            | ToolError::NotAllowed { .. } => {
                self.escalate(ctx, slots, EscalationReason::ToolFailure, t)
            }
        }
    }

    fn escalate(
        &self,
        ctx: &AgentContext<'_>,
        slots: &OrderSlots,
        reason: EscalationReason,
        t: &Texts,
    ) -> AgentReply {
        let priority = match ctx.customer.tier {
            fenliu_agent::CustomerTier::Vip => Priority::High,
            fenliu_agent::CustomerTier::Regular => Priority::Normal,
        };
        AgentReply::Escalate(Box::new(EscalationPackage {
            reason,
            priority,
            route: Route::ORDER,
            language: ctx.language,
            agent: Self::ID.into(),
            summary: format!(
                "Order request ({:?}) for order {} could not be completed by the agent: {reason:?}.",
                slots.intent.unwrap_or(OrderIntent::Status),
                slots.order_id.as_deref().unwrap_or("(not given)"),
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
