//! The order specialist of fenliu.
//!
//! Owns the `order` route: order status, tracking and delivery estimates, the customer's order
//! list, refund status, invoices, and cancelling a pending order or changing its shipping address
//! after explicit confirmation, as the retail policy in the demo shop requires. Every read and write goes through the allow-listed
//! order tools, which only ever see the authenticated customer's orders.
//!
//! The policy here is *deterministic*: the agent's code decides the tool calls from the message and
//! its [`OrderSlots`], so it works with no language model at all.
//!
//! # Layout
//! - `lib.rs`: the agent, its slots and the turn logic.
//! - `intent.rs`: rule-based extraction of the sub-intent, order ids and confirmations.
//! - `address.rs`: rule-based reading of a new shipping address (the chat model, when the agent
//!   has one, only where the rules find none).
//! - `templates.rs`: the customer-facing texts in English and Chinese.
//! - `phrases.rs`: the training phrases the supervisor learns the route from.

mod address;
mod intent;
mod phrases;
mod templates;

use fenliu_agent::{
    Agent, AgentContext, AgentDescriptor, AgentError, AgentReply, EscalationPackage,
    EscalationReason, Priority, Route, Sentiment,
};
use fenliu_agent::{ChatMessage, ChatRequest, ResponseFormat};
use fenliu_tool::{Tool, ToolError};
use fenliu_tools_commerce::tools::{CancelOrder, ChangeOrderAddress, GetOrder, ListOrders};
use fenliu_tools_commerce::{Address, CancelReason, Order, OrderStatus};
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
    /// The agent has asked for the new shipping address.
    #[serde(default)]
    pub asked_address: bool,
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
    /// Ship this pending order to this address instead.
    ChangeAddress {
        /// Order id.
        order_id: String,
        /// The new address, as read from the customer's message and shown back to them.
        address: Address,
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
            &[GetOrder::NAME, ListOrders::NAME, CancelOrder::NAME, ChangeOrderAddress::NAME],
        )
        .with_templates(templates::specs())
    }

    async fn handle(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut OrderSlots,
    ) -> Result<AgentReply, AgentError> {
        let t = Texts::for_turn(ctx);
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
        if !slots.asked_address {
            // Finding the order is progress; while the agent waits for an address it is not.
            slots.failed_turns = 0;
        }
        Ok(match intent {
            OrderIntent::Cancel => self.offer_cancel(slots, &order, message, &t),
            OrderIntent::Refund => AgentReply::Answer { text: t.refund(&order) },
            OrderIntent::Invoice => AgentReply::Answer { text: t.invoice(&order) },
            OrderIntent::ChangeAddress => self.offer_address_change(ctx, slots, &order, &t).await,
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
        let order_id = match &pending {
            PendingAction::Cancel { order_id, .. }
            | PendingAction::ChangeAddress { order_id, .. } => order_id.clone(),
        };
        match intent::confirmation(ctx.message) {
            Some(true) => {
                let done = match &pending {
                    PendingAction::Cancel { reason, .. } => {
                        let args = serde_json::json!({ "order_id": order_id, "reason": reason });
                        ctx.call::<CancelOrder>(args).await.map(|order| t.cancelled(&order))
                    }
                    PendingAction::ChangeAddress { address, .. } => {
                        let args = serde_json::json!({ "order_id": order_id, "address": address });
                        ctx.call::<ChangeOrderAddress>(args)
                            .await
                            .map(|order| t.address_changed(&order))
                    }
                };
                match done {
                    Ok(text) => {
                        *slots = OrderSlots::default();
                        AgentReply::Answer { text }
                    }
                    Err(e) => self.tool_failed(ctx, slots, e, &order_id, t),
                }
            }
            Some(false) => {
                *slots = OrderSlots::default();
                AgentReply::Answer { text: t.change_aborted(&order_id) }
            }
            None => {
                slots.failed_turns = slots.failed_turns.saturating_add(1);
                if slots.failed_turns > MAX_FAILED_TURNS {
                    return self.escalate(ctx, slots, EscalationReason::RepeatedFailure, t);
                }
                let text = match &pending {
                    PendingAction::Cancel { .. } => t.confirm_again(&order_id),
                    PendingAction::ChangeAddress { address, .. } => {
                        t.confirm_address_again(&order_id, address)
                    }
                };
                slots.pending = Some(pending);
                AgentReply::AskSlot { slot: "confirmation".into(), text }
            }
        }
    }

    /// A pending order's address change: the new address from this message (rules first, then
    /// the chat model when there is one) goes back to the customer for confirmation; without one
    /// the agent asks for it.
    async fn offer_address_change(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut OrderSlots,
        order: &Order,
        t: &Texts,
    ) -> AgentReply {
        if order.status != OrderStatus::Pending {
            slots.intent = None;
            return AgentReply::Answer { text: t.address_change(order) };
        }
        let address = match address::parse_address(ctx.message, &order.address) {
            Some(a) => Some(a),
            None => extract_address_with_model(ctx, &order.address).await,
        };
        match address {
            Some(address) if address != order.address => {
                let text = t.confirm_address(order, &address);
                slots.pending =
                    Some(PendingAction::ChangeAddress { order_id: order.id.clone(), address });
                AgentReply::AskSlot { slot: "confirmation".into(), text }
            }
            Some(_) => {
                slots.intent = None;
                AgentReply::Answer { text: t.address_unchanged(order) }
            }
            None => {
                if slots.asked_address {
                    slots.failed_turns = slots.failed_turns.saturating_add(1);
                    if slots.failed_turns > MAX_FAILED_TURNS {
                        return self.escalate(ctx, slots, EscalationReason::RepeatedFailure, t);
                    }
                }
                slots.asked_address = true;
                AgentReply::AskSlot { slot: "address".into(), text: t.address_change(order) }
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

/// Asks the agent's chat model, if it has one, for the address in the message as JSON matching
/// [`Address`]; the answer counts only if it parses and validates, and it is still shown to the
/// customer for confirmation. Model failures mean "no address" (the agent asks again).
async fn extract_address_with_model(ctx: &AgentContext<'_>, current: &Address) -> Option<Address> {
    let model = ctx.model?;
    let schema = serde_json::to_value(schemars::schema_for!(Address)).ok()?;
    let mut request = ChatRequest::new(vec![
        ChatMessage::system(format!(
            "Extract the new shipping address from the customer's message. Answer with JSON only. \
             If the message contains no complete address (street, city, postal code), answer \
             {{\"line1\": \"\", \"city\": \"\", \"state\": \"\", \"country\": \"\", \"zip\": \"\"}}. \
             If the country is missing, use \"{}\".",
            current.country
        )),
        ChatMessage::user(ctx.message),
    ]);
    request.response_format =
        ResponseFormat::JsonSchema { name: "address".into(), schema, strict: true };
    request.temperature = Some(0.0);
    request.max_tokens = Some(200);
    let response = match model.chat(request).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "address extraction by the chat model failed");
            return None;
        }
    };
    let address: Address = serde_json::from_str(response.message.content.trim()).ok()?;
    address.validate().ok().map(|()| address)
}

/// The agent's training phrases (EN + ZH), for tools that train the supervisor.
pub fn training_phrases() -> &'static [&'static str] {
    phrases::PHRASES
}
