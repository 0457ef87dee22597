//! The after-sales specialist of fenliu.
//!
//! Owns the `after_sales` route: faults, repairs, warranty questions, returns and exchanges of
//! delivered items, and the status of the tickets opened for them. It follows the shop's warranty
//! and returns policies (`data/demo/docs/warranty.*.md`, `returns-policy.*.md`):
//!
//! 1. find the delivered order (offering the customer's delivered orders), the item and a
//!    description of the fault;
//! 2. `check_warranty` for that item;
//! 3. decide: within 30 days of delivery the customer may return, exchange or (under warranty)
//!    repair; later, an item under warranty is repaired; outside the warranty the agent explains
//!    that it cannot be repaired under warranty, points to the manufacturer's service and offers a
//!    review ticket, or hands the customer to a person if they insist;
//! 4. read the ticket back and wait for an explicit "yes";
//! 5. `create_ticket` (department, priority and SLA due time come from the tool) and answer with the
//!    ticket id and due time.
//!
//! "Status of T-000012" or "我的维修单进度" is answered with `get_ticket` / `list_tickets`.
//!
//! The policy is *deterministic*: the code decides the tool calls from the message and the
//! [`AfterSalesSlots`], so it works with no language model at all.
//!
//! # Layout
//! - `lib.rs`: the agent, its slots and the turn logic.
//! - `intent.rs`: rule-based extraction of ids, request kinds, faults, items and confirmations.
//! - `templates.rs`: the customer-facing texts in English and Chinese.
//! - `phrases.rs`: the training phrases the supervisor learns the route from.

mod intent;
mod phrases;
mod templates;

use chrono::{DateTime, Utc};
use fenliu_agent::{
    Agent, AgentContext, AgentDescriptor, AgentError, AgentReply, CustomerTier, EscalationPackage,
    EscalationReason, Priority, Route, Sentiment, Speaker,
};
use fenliu_tool::{Tool, ToolError};
use fenliu_tools_commerce::ticket_tools::{
    CheckWarranty, CreateTicket, GetTicket, ItemWarranty, ListTickets, TicketSummary,
    extract_ticket_id,
};
use fenliu_tools_commerce::tools::{GetOrder, ListOrders};
use fenliu_tools_commerce::{Order, OrderStatus, TicketKind, TicketPriority, TicketStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use intent::{RequestKind, extract_order_id};
use templates::Texts;

/// What the after-sales agent remembers between turns of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AfterSalesSlots {
    /// The order the item is from (normalised, e.g. `#W2611340`).
    pub order_id: Option<String>,
    /// The item (variant id) concerned.
    pub item_id: Option<String>,
    /// The item's product name, for texts.
    pub item_name: Option<String>,
    /// What is wrong with it, in the customer's words.
    pub fault: Option<String>,
    /// What the customer asked for, once known.
    pub request: Option<RequestKind>,
    /// The slot the agent asked for last.
    pub awaiting: Option<Awaiting>,
    /// A ticket read back to the customer, waiting for their explicit "yes".
    pub pending: Option<PendingTicket>,
    /// Turns in a row in which the agent asked for the same thing again.
    pub failed_turns: u8,
}

/// What the agent last asked the customer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Awaiting {
    /// The order number.
    OrderId,
    /// Which item of the order.
    Item,
    /// What is wrong.
    Fault,
    /// Return, exchange or repair.
    RequestKind,
    /// Yes or no to the ticket read back.
    Confirmation,
}

/// A ticket read back to the customer, awaiting confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PendingTicket {
    /// Kind of ticket to open.
    pub kind: TicketKind,
    /// Order.
    pub order_id: String,
    /// Item (variant id).
    pub item_id: String,
    /// Product name.
    pub item_name: String,
    /// The customer's description.
    pub fault: String,
    /// Priority the ticket will get.
    pub priority: TicketPriority,
    /// Whether the fault is a safety risk.
    pub safety_risk: bool,
    /// The item is out of warranty and out of the return window (a review ticket is offered).
    pub out_of_warranty: bool,
    /// The customer asked for a return or exchange after the window closed (a repair is offered).
    pub return_window_closed: bool,
    /// Warranty facts at the time of the check.
    pub warranty: ItemWarranty,
}

/// Turns without progress before the agent hands the customer to a person.
const MAX_FAILED_TURNS: u8 = 2;

/// Longest fault description kept from a message.
const MAX_FAULT_CHARS: usize = 500;

/// The after-sales agent.
#[derive(Debug, Default, Clone)]
pub struct AfterSalesAgent;

impl AfterSalesAgent {
    /// The agent's id.
    pub const ID: &'static str = "after_sales";

    /// A new after-sales agent.
    pub fn new() -> Self {
        Self
    }
}

impl Agent for AfterSalesAgent {
    type Slots = AfterSalesSlots;

    fn descriptor(&self) -> AgentDescriptor {
        AgentDescriptor::new(
            Self::ID,
            vec![Route::AFTER_SALES],
            "Handles problems with items the customer already received: faults, defects, broken or \
             not working products, troubleshooting, warranty questions, repairs, and returns or \
             exchanges of delivered items within 30 days; opens repair, return and exchange \
             tickets and reports their status. Not for tracking, cancelling or changing orders \
             that have not arrived (order), complaints about service or staff (complaint), or \
             buying new products (marketing).",
            phrases::PHRASES,
            &[
                ListOrders::NAME,
                GetOrder::NAME,
                CheckWarranty::NAME,
                CreateTicket::NAME,
                GetTicket::NAME,
                ListTickets::NAME,
            ],
        )
        .with_templates(templates::specs())
    }

    async fn handle(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
    ) -> Result<AgentReply, AgentError> {
        let t = Texts::for_turn(ctx);
        let message = ctx.message;

        if intent::is_formal_complaint(message) {
            // Legal threats, injuries, fraud or publicity are complaints first: the complaint
            // agent files them and hands them to a person.
            return Ok(AgentReply::Handoff {
                route: Route::COMPLAINT,
                reason: "the message threatens legal action or publicity, or reports an injury or \
                         fraud"
                    .into(),
            });
        }
        if let Some(ticket_id) = extract_ticket_id(message) {
            return Ok(self.ticket_status(ctx, slots, &ticket_id, &t).await);
        }
        if slots.pending.is_none() && intent::is_status_request(message) {
            return Ok(self.ticket_list(ctx, slots, extract_order_id(message), &t).await);
        }
        if let Some(pending) = slots.pending.take() {
            match intent::request_kind(message) {
                // The customer changes their mind ("rather an exchange"): decide again below.
                Some(kind) if !pending.out_of_warranty && ticket_kind(kind) != pending.kind => {
                    slots.request = Some(kind);
                }
                _ => return Ok(self.confirm(ctx, slots, pending, &t).await),
            }
        }
        self.read_message(slots, message);
        self.read_history(ctx, slots);

        let Some(order_id) = slots.order_id.clone() else {
            return Ok(self.ask_for_order(ctx, slots, &t).await);
        };
        let order = match ctx.call::<GetOrder>(json!({ "order_id": order_id })).await {
            Ok(order) => order,
            Err(e) => return Ok(self.tool_failed(ctx, slots, e, &order_id, &t)),
        };
        if order.delivered_at.is_none() || order.status == OrderStatus::Cancelled {
            *slots = AfterSalesSlots::default();
            return Ok(AgentReply::Answer { text: t.not_delivered(&order) });
        }
        if slots.item_id.is_none() && !self.choose_item(slots, &order, ctx) {
            let text = t.ask_item(&order);
            return Ok(self.ask(ctx, slots, Awaiting::Item, text, &t));
        }
        let item_name = slots.item_name.clone().unwrap_or_default();
        let Some(fault) = slots.fault.clone() else {
            let text = t.ask_fault(&item_name);
            return Ok(self.ask(ctx, slots, Awaiting::Fault, text, &t));
        };
        let args = json!({ "order_id": order.id, "item_id": slots.item_id });
        let warranty = match ctx.call::<CheckWarranty>(args).await {
            Ok(report) => report.items.into_iter().next(),
            Err(e) => return Ok(self.tool_failed(ctx, slots, e, &order_id, &t)),
        };
        let Some(warranty) = warranty else {
            return Ok(self.escalate(ctx, slots, EscalationReason::ToolFailure, &t));
        };
        Ok(self.decide(ctx, slots, &order, fault, warranty, &t).await)
    }
}

/// The ticket kind that carries out a request.
fn ticket_kind(kind: RequestKind) -> TicketKind {
    match kind {
        RequestKind::Repair => TicketKind::Repair,
        RequestKind::Return => TicketKind::Return,
        RequestKind::Exchange => TicketKind::Exchange,
    }
}

impl AfterSalesAgent {
    /// Takes what the message says into the slots.
    fn read_message(&self, slots: &mut AfterSalesSlots, message: &str) {
        if let Some(id) = extract_order_id(message)
            && slots.order_id.as_deref() != Some(id.as_str())
        {
            // Another order: the item chosen before does not belong to it.
            slots.order_id = Some(id);
            slots.item_id = None;
            slots.item_name = None;
        }
        if let Some(kind) = intent::request_kind(message) {
            slots.request = Some(kind);
        }
        let answers_fault =
            slots.awaiting == Some(Awaiting::Fault) && intent::is_substantive(message);
        if slots.fault.is_none()
            && (answers_fault
                || intent::describes_fault(message)
                || intent::is_detailed_request(message))
        {
            slots.fault = Some(intent::clean_description(message, MAX_FAULT_CHARS));
        }
    }

    /// Fills the order and the fault from the customer's recent turns when the message and the
    /// slots have none: the conversation may have started with another agent ("我的鼠标坏了" went
    /// to `order`, "维修" came here), whose slots this agent does not get. Ownership is still
    /// checked by the tools.
    fn read_history(&self, ctx: &AgentContext<'_>, slots: &mut AfterSalesSlots) {
        for text in recent_customer_turns(ctx) {
            if slots.order_id.is_none()
                && let Some(id) = extract_order_id(text)
            {
                slots.order_id = Some(id);
            }
            if slots.fault.is_none() && intent::describes_fault(text) {
                slots.fault = Some(intent::clean_description(text, MAX_FAULT_CHARS));
            }
        }
    }

    /// Picks the item the customer means (from this message, else from their recent turns);
    /// `false` if it is not clear yet.
    fn choose_item(
        &self,
        slots: &mut AfterSalesSlots,
        order: &Order,
        ctx: &AgentContext<'_>,
    ) -> bool {
        let choice = if order.items.len() == 1 {
            Some(0)
        } else {
            let items: Vec<(&str, &str)> =
                order.items.iter().map(|i| (i.item_id.as_str(), i.name.as_str())).collect();
            std::iter::once(ctx.message)
                .chain(recent_customer_turns(ctx))
                .find_map(|text| intent::pick_item(text, &items))
        };
        match choice.and_then(|i| order.items.get(i)) {
            Some(item) => {
                slots.item_id = Some(item.item_id.clone());
                slots.item_name = Some(item.name.clone());
                true
            }
            None => false,
        }
    }

    /// Asks for a slot, escalating when the same question was asked too often in a row.
    fn ask(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
        slot: Awaiting,
        text: String,
        t: &Texts,
    ) -> AgentReply {
        if slots.awaiting == Some(slot) {
            slots.failed_turns = slots.failed_turns.saturating_add(1);
        } else {
            slots.failed_turns = 1;
        }
        if slots.failed_turns > MAX_FAILED_TURNS {
            return self.escalate(ctx, slots, EscalationReason::RepeatedFailure, t);
        }
        slots.awaiting = Some(slot);
        let name = match slot {
            Awaiting::OrderId => "order_id",
            Awaiting::Item => "item",
            Awaiting::Fault => "fault_description",
            Awaiting::RequestKind => "request_kind",
            Awaiting::Confirmation => "confirmation",
        };
        AgentReply::AskSlot { slot: name.into(), text }
    }

    async fn ask_for_order(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
        t: &Texts,
    ) -> AgentReply {
        let delivered = ctx
            .call::<ListOrders>(json!({ "status": OrderStatus::Delivered }))
            .await
            .unwrap_or_default();
        let text = t.ask_order_id(&delivered);
        self.ask(ctx, slots, Awaiting::OrderId, text, t)
    }

    /// An unfinished ticket of this kind for this item, so the customer is not given a duplicate.
    async fn open_ticket_for(
        &self,
        ctx: &AgentContext<'_>,
        kind: TicketKind,
        order_id: &str,
        item_name: &str,
    ) -> Option<TicketSummary> {
        let tickets = ctx.call::<ListTickets>(json!({})).await.ok()?;
        tickets.into_iter().find(|t| {
            t.kind == kind
                && t.order_id.as_deref() == Some(order_id)
                && t.subject.contains(item_name)
                && !matches!(t.status, TicketStatus::Resolved | TicketStatus::Closed)
        })
    }

    /// Chooses what to offer from the warranty facts and the customer's request.
    async fn decide(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
        order: &Order,
        fault: String,
        w: ItemWarranty,
        t: &Texts,
    ) -> AgentReply {
        let within = w.within_return_window;
        let covered = w.in_warranty;
        let (kind, return_window_closed) = match (slots.request, within, covered) {
            (Some(RequestKind::Return | RequestKind::Exchange), true, _) => {
                (slots.request.map(ticket_kind), false)
            }
            (Some(RequestKind::Return | RequestKind::Exchange), false, true) => {
                (Some(TicketKind::Repair), true)
            }
            (Some(RequestKind::Repair), _, true) | (None, false, true) => {
                (Some(TicketKind::Repair), false)
            }
            (Some(RequestKind::Repair), true, false) => {
                // No warranty to repair under, but the return window is open.
                slots.request = None;
                let text = t.choose_request(&w, false);
                return self.ask(ctx, slots, Awaiting::RequestKind, text, t);
            }
            (None, true, _) => {
                let text = t.choose_request(&w, covered);
                return self.ask(ctx, slots, Awaiting::RequestKind, text, t);
            }
            (_, false, false) => (None, false),
        };
        if let Some(kind) = kind
            && let Some(existing) = self.open_ticket_for(ctx, kind, &order.id, &w.name).await
        {
            *slots = AfterSalesSlots::default();
            return AgentReply::Answer { text: t.already_open(&existing) };
        }
        let safety_risk = intent::is_safety_risk(&fault);
        let mut priority = match ctx.customer.tier {
            CustomerTier::Vip => TicketPriority::High,
            CustomerTier::Regular => TicketPriority::Normal,
        };
        if safety_risk {
            priority = TicketPriority::Urgent;
        }
        let pending = PendingTicket {
            kind: kind.unwrap_or(TicketKind::Inquiry),
            order_id: order.id.clone(),
            item_id: w.item_id.clone(),
            item_name: w.name.clone(),
            fault,
            priority,
            safety_risk,
            out_of_warranty: kind.is_none(),
            return_window_closed,
            warranty: w,
        };
        let text = t.confirm(&pending, &pending.warranty);
        slots.pending = Some(pending);
        self.ask(ctx, slots, Awaiting::Confirmation, text, t)
    }

    async fn confirm(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
        pending: PendingTicket,
        t: &Texts,
    ) -> AgentReply {
        if pending.out_of_warranty && intent::insists(ctx.message) {
            slots.pending = Some(pending);
            return self.escalate(ctx, slots, EscalationReason::PolicyRequiresHuman, t);
        }
        match intent::confirmation(ctx.message) {
            Some(true) => self.open_ticket(ctx, slots, pending, t).await,
            Some(false) => {
                *slots = AfterSalesSlots::default();
                AgentReply::Answer { text: t.aborted(&pending) }
            }
            None => {
                let text = t.confirm_again(&pending);
                slots.pending = Some(pending);
                self.ask(ctx, slots, Awaiting::Confirmation, text, t)
            }
        }
    }

    async fn open_ticket(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
        p: PendingTicket,
        t: &Texts,
    ) -> AgentReply {
        let w = &p.warranty;
        let subject = match p.kind {
            TicketKind::Repair => format!("Repair: {} ({})", p.item_name, p.order_id),
            TicketKind::Return => format!("Return: {} ({})", p.item_name, p.order_id),
            TicketKind::Exchange => format!("Exchange: {} ({})", p.item_name, p.order_id),
            TicketKind::Inquiry | TicketKind::Complaint => {
                format!("Out-of-warranty review: {} ({})", p.item_name, p.order_id)
            }
        };
        let warranty = match w.warranty_ends_at {
            Some(end) => format!("{} months, until {}", w.warranty_months, day(end)),
            None => "none".to_owned(),
        };
        let description = format!(
            "Item {} ({}) of order {}, delivered {}. Warranty: {warranty}; in warranty: {}. \
             Return window until {}; open: {}.{}{}\nCustomer's description: {}",
            p.item_name,
            p.item_id,
            p.order_id,
            day(w.delivered_at),
            w.in_warranty,
            day(w.return_window_ends_at),
            w.within_return_window,
            if p.safety_risk { " SAFETY RISK reported." } else { "" },
            if p.return_window_closed {
                " The customer asked for a return or exchange after the window closed."
            } else {
                ""
            },
            p.fault
        );
        let args = json!({
            "kind": p.kind,
            "order_id": p.order_id,
            "subject": subject,
            "description": description,
            "priority": p.priority,
        });
        match ctx.call::<CreateTicket>(args).await {
            Ok(ticket) => {
                *slots = AfterSalesSlots::default();
                AgentReply::Answer { text: t.created(&ticket) }
            }
            Err(e) => {
                let order_id = p.order_id.clone();
                slots.pending = Some(p);
                self.tool_failed(ctx, slots, e, &order_id, t)
            }
        }
    }

    async fn ticket_status(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
        ticket_id: &str,
        t: &Texts,
    ) -> AgentReply {
        match ctx.call::<GetTicket>(json!({ "ticket_id": ticket_id })).await {
            Ok(ticket) => {
                *slots = AfterSalesSlots::default();
                AgentReply::Answer { text: t.ticket_status(&ticket) }
            }
            // The same answer for "not yours" and "does not exist".
            Err(ToolError::Denied { .. } | ToolError::NotFound { .. }) => {
                *slots = AfterSalesSlots::default();
                AgentReply::Answer { text: t.ticket_not_found(ticket_id) }
            }
            Err(e) => self.tool_failed(ctx, slots, e, "", t),
        }
    }

    async fn ticket_list(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
        order_id: Option<String>,
        t: &Texts,
    ) -> AgentReply {
        match ctx.call::<ListTickets>(json!({})).await {
            Ok(tickets) => {
                *slots = AfterSalesSlots::default();
                let tickets: Vec<_> = tickets
                    .into_iter()
                    .filter(|tk| tk.kind != TicketKind::Complaint)
                    .filter(|tk| order_id.is_none() || tk.order_id == order_id)
                    .collect();
                AgentReply::Answer { text: t.ticket_list(&tickets) }
            }
            Err(e) => self.tool_failed(ctx, slots, e, "", t),
        }
    }

    fn tool_failed(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut AfterSalesSlots,
        error: ToolError,
        order_id: &str,
        t: &Texts,
    ) -> AgentReply {
        match error {
            // The same answer for "not yours" and "does not exist": nobody can probe which order
            // ids exist by asking.
            ToolError::Denied { .. } | ToolError::NotFound { .. } => {
                *slots = AfterSalesSlots::default();
                AgentReply::Answer { text: t.not_found(order_id) }
            }
            ToolError::Conflict { reason, .. } => {
                *slots = AfterSalesSlots::default();
                AgentReply::Answer { text: t.conflict(&reason) }
            }
            ToolError::InvalidArguments { .. } => {
                slots.order_id = None;
                slots.item_id = None;
                slots.item_name = None;
                let text = t.ask_order_id(&[]);
                self.ask(ctx, slots, Awaiting::OrderId, text, t)
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
        slots: &AfterSalesSlots,
        reason: EscalationReason,
        t: &Texts,
    ) -> AgentReply {
        let safety = slots.pending.as_ref().is_some_and(|p| p.safety_risk)
            || slots.fault.as_deref().is_some_and(intent::is_safety_risk);
        let priority = match (safety, ctx.customer.tier) {
            (true, _) => Priority::Urgent,
            (false, CustomerTier::Vip) => Priority::High,
            (false, CustomerTier::Regular) => Priority::Normal,
        };
        let sentiment = if reason == EscalationReason::PolicyRequiresHuman {
            Sentiment::Negative
        } else {
            Sentiment::Neutral
        };
        AgentReply::Escalate(Box::new(EscalationPackage {
            reason,
            priority,
            route: Route::AFTER_SALES,
            language: ctx.language,
            agent: Self::ID.into(),
            summary: format!(
                "After-sales request ({}) for item {} of order {} could not be completed by the \
                 agent: {reason:?}. Fault: {}",
                slots
                    .pending
                    .as_ref()
                    .map(|p| format!("{:?}", p.kind))
                    .or_else(|| slots.request.map(|r| format!("{r:?}")))
                    .unwrap_or_else(|| "undecided".into()),
                slots.item_name.as_deref().unwrap_or("(not chosen)"),
                slots.order_id.as_deref().unwrap_or("(not given)"),
                slots.fault.as_deref().unwrap_or("(not described)"),
            ),
            slots: serde_json::to_value(slots).unwrap_or_default(),
            sentiment,
            tools_tried: ctx.tool_calls(),
            message_to_customer: t.escalating(),
        }))
    }
}

/// How many of the customer's latest turns are read for context.
const HISTORY_TURNS: usize = 6;

/// The customer's latest turns, newest first.
fn recent_customer_turns<'a>(ctx: &'a AgentContext<'_>) -> impl Iterator<Item = &'a str> {
    ctx.history
        .iter()
        .rev()
        .filter(|turn| turn.speaker == Speaker::Customer)
        .take(HISTORY_TURNS)
        .map(|turn| turn.text.as_str())
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// The agent's training phrases (EN + ZH), for tools that train the supervisor.
pub fn training_phrases() -> &'static [&'static str] {
    phrases::PHRASES
}
