//! The complaint specialist of fenliu.
//!
//! Owns the `complaint` route: complaints about service, staff, delays and quality, and formal
//! claims. For every complaint it:
//!
//! 1. asks what happened if the message only says "I want to complain";
//! 2. assesses severity and sentiment with keyword rules in English and Chinese (legal threats,
//!    safety risks and injuries, fraud, regulators and the media are *high*; repeated problems and
//!    rudeness *medium*; anything else *low*);
//! 3. checks a named order with `get_order` (only the customer's own orders are attached);
//! 4. files a complaint ticket with `create_ticket` (priority from severity, VIP customers at least
//!    high; the quality department and the SLA due time come from the tool);
//! 5. apologises without promising any compensation, and either answers with the reference number
//!    and the SLA, or — for high severity, VIP customers, complaints about staff and requests to
//!    escalate (the feedback policy hands those to a person) — returns
//!    [`AgentReply::Escalate`] with the ticket id in the package's slots.
//!
//! "Status of T-000012" is answered with `get_ticket`.
//!
//! # Layout
//! - `lib.rs`: the agent, its slots and the turn logic.
//! - `intent.rs`: severity, sentiment and detail rules, order ids.
//! - `templates.rs`: the customer-facing texts in English and Chinese.
//! - `phrases.rs`: the training phrases the supervisor learns the route from.

mod intent;
mod phrases;
mod templates;

use fenliu_agent::{
    Agent, AgentContext, AgentDescriptor, AgentError, AgentReply, CustomerTier, EscalationPackage,
    EscalationReason, Priority, Route, Sentiment,
};
use fenliu_tool::{Tool, ToolError};
use fenliu_tools_commerce::ticket_tools::{CreateTicket, GetTicket, extract_ticket_id};
use fenliu_tools_commerce::tools::{GetOrder, ListOrders};
use fenliu_tools_commerce::{Ticket, TicketKind, TicketPriority};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use intent::{Assessment, Severity, Trigger, assess};
use templates::Texts;

/// What the complaint agent remembers between turns (and hands to a person on escalation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ComplaintSlots {
    /// What the customer said so far about the complaint.
    pub details: Option<String>,
    /// The customer's order the complaint is about, once checked.
    pub order_id: Option<String>,
    /// The complaint ticket, once filed.
    pub ticket_id: Option<String>,
    /// The assessment, once made.
    pub assessment: Option<Assessment>,
    /// Turns in a row in which the customer gave no details.
    pub failed_turns: u8,
}

/// Turns without details before the agent hands the customer to a person.
const MAX_FAILED_TURNS: u8 = 2;

/// Longest complaint text kept.
const MAX_DETAILS_CHARS: usize = 3_000;

/// The complaint agent.
#[derive(Debug, Default, Clone)]
pub struct ComplaintAgent;

impl ComplaintAgent {
    /// The agent's id.
    pub const ID: &'static str = "complaint";

    /// A new complaint agent.
    pub fn new() -> Self {
        Self
    }
}

impl Agent for ComplaintAgent {
    type Slots = ComplaintSlots;

    fn descriptor(&self) -> AgentDescriptor {
        AgentDescriptor::new(
            Self::ID,
            vec![Route::COMPLAINT],
            "Handles complaints: dissatisfaction with service, staff, couriers, delays or product \
             quality, formal claims, threats of legal action or of going to regulators or the \
             media, and reports of dangerous products or injuries. Files a complaint ticket, \
             apologises and escalates serious cases to a person. Not for tracking or cancelling \
             orders (order), repairs, returns or exchanges of a faulty item (after_sales), or \
             policy questions (faq).",
            phrases::PHRASES,
            &[CreateTicket::NAME, GetTicket::NAME, ListOrders::NAME, GetOrder::NAME],
        )
        .with_templates(templates::specs())
    }

    async fn handle(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut ComplaintSlots,
    ) -> Result<AgentReply, AgentError> {
        let t = Texts::for_turn(ctx);
        let message = intent::clean_text(ctx.message, MAX_DETAILS_CHARS);

        if let Some(ticket_id) = extract_ticket_id(&message)
            && (intent::is_status_request(&message) || message.chars().count() <= 24)
        {
            return Ok(self.ticket_status(ctx, slots, &ticket_id, &t).await);
        }
        let details = match slots.details.take() {
            Some(before) if !message.is_empty() => format!("{before} {message}"),
            Some(before) => before,
            None => message,
        };
        let details: String = details.chars().take(MAX_DETAILS_CHARS).collect();
        let assessment = intent::assess(&details);
        if !intent::has_details(&details) || !intent::is_complaint(&details, &assessment) {
            slots.failed_turns = slots.failed_turns.saturating_add(1);
            if !details.is_empty() {
                slots.details = Some(details);
            }
            if slots.failed_turns > MAX_FAILED_TURNS {
                return Ok(self.escalate(
                    ctx,
                    slots,
                    None,
                    None,
                    EscalationReason::RepeatedFailure,
                    &t,
                ));
            }
            return Ok(AgentReply::AskSlot {
                slot: "complaint_details".into(),
                text: t.ask_details(),
            });
        }
        slots.failed_turns = 0;

        // Attach the order only if it is the customer's own.
        let mut missing_order = None;
        if let Some(id) = intent::extract_order_id(&details) {
            match ctx.call::<GetOrder>(json!({ "order_id": id })).await {
                Ok(order) => slots.order_id = Some(order.id),
                Err(ToolError::Denied { .. } | ToolError::NotFound { .. }) => {
                    missing_order = Some(id);
                }
                Err(_) => {}
            }
        }

        let vip = ctx.customer.tier == CustomerTier::Vip;
        let priority = ticket_priority(&assessment, vip);
        let subject: String = details.chars().take(80).collect();
        let description = format!(
            "{details}\n\nAssessment: severity {:?}, sentiment {:?}, triggers {:?}{}{}.",
            assessment.severity,
            assessment.sentiment,
            assessment.triggers,
            if assessment.about_staff { ", about staff" } else { "" },
            if assessment.wants_escalation { ", escalation requested" } else { "" },
        );
        let args = json!({
            "kind": TicketKind::Complaint,
            "order_id": slots.order_id,
            "subject": format!("Complaint: {subject}"),
            "description": description,
            "priority": priority,
        });
        slots.details = Some(details);
        slots.assessment = Some(assessment.clone());
        let ticket = match ctx.call::<CreateTicket>(args).await {
            Ok(ticket) => ticket,
            Err(_) => {
                // The complaint must reach a person even when the ticket could not be filed.
                return Ok(self.escalate(
                    ctx,
                    slots,
                    None,
                    missing_order.as_deref(),
                    EscalationReason::ToolFailure,
                    &t,
                ));
            }
        };
        slots.ticket_id = Some(ticket.id.clone());

        let reason = if assessment.severity == Severity::High {
            Some(EscalationReason::HighSeverityComplaint)
        } else if vip {
            Some(EscalationReason::VipCustomer)
        } else if assessment.about_staff || assessment.wants_escalation {
            Some(EscalationReason::PolicyRequiresHuman)
        } else {
            None
        };
        Ok(match reason {
            Some(reason) => {
                self.escalate(ctx, slots, Some(&ticket), missing_order.as_deref(), reason, &t)
            }
            None => {
                let text = t.filed(&ticket, missing_order.as_deref());
                *slots = ComplaintSlots::default();
                AgentReply::Answer { text }
            }
        })
    }
}

/// Ticket priority: severity decides, a safety risk is urgent, VIP customers get at least high.
pub fn ticket_priority(assessment: &Assessment, vip: bool) -> TicketPriority {
    let by_severity = match assessment.severity {
        Severity::High if assessment.safety() => TicketPriority::Urgent,
        Severity::High => TicketPriority::High,
        Severity::Medium => TicketPriority::Normal,
        Severity::Low => TicketPriority::Low,
    };
    if vip { by_severity.max(TicketPriority::High) } else { by_severity }
}

impl ComplaintAgent {
    async fn ticket_status(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut ComplaintSlots,
        ticket_id: &str,
        t: &Texts,
    ) -> AgentReply {
        match ctx.call::<GetTicket>(json!({ "ticket_id": ticket_id })).await {
            Ok(ticket) => {
                *slots = ComplaintSlots::default();
                AgentReply::Answer { text: t.ticket_status(&ticket) }
            }
            // The same answer for "not yours" and "does not exist".
            Err(ToolError::Denied { .. } | ToolError::NotFound { .. }) => {
                *slots = ComplaintSlots::default();
                AgentReply::Answer { text: t.ticket_not_found(ticket_id) }
            }
            Err(_) => self.escalate(ctx, slots, None, None, EscalationReason::ToolFailure, t),
        }
    }

    fn escalate(
        &self,
        ctx: &AgentContext<'_>,
        slots: &ComplaintSlots,
        ticket: Option<&Ticket>,
        missing_order: Option<&str>,
        reason: EscalationReason,
        t: &Texts,
    ) -> AgentReply {
        let assessment = slots.assessment.clone().unwrap_or_else(|| intent::assess(""));
        let vip = ctx.customer.tier == CustomerTier::Vip;
        let priority = match (ticket.map(|t| t.priority), reason) {
            (Some(TicketPriority::Urgent), _) => Priority::Urgent,
            (_, EscalationReason::HighSeverityComplaint | EscalationReason::VipCustomer) => {
                Priority::High
            }
            _ if vip || assessment.severity == Severity::High => Priority::High,
            _ => Priority::Normal,
        };
        let sentiment = match slots.assessment {
            Some(ref a) => a.sentiment,
            None => Sentiment::Negative,
        };
        AgentReply::Escalate(Box::new(EscalationPackage {
            reason,
            priority,
            route: Route::COMPLAINT,
            language: ctx.language,
            agent: Self::ID.into(),
            summary: format!(
                "Complaint ({:?} severity, triggers {:?}{}) filed as {}{}: {}",
                assessment.severity,
                assessment.triggers,
                if vip { ", VIP customer" } else { "" },
                ticket.map_or("(no ticket)", |t| t.id.as_str()),
                slots.order_id.as_deref().map(|o| format!(" about order {o}")).unwrap_or_default(),
                slots
                    .details
                    .as_deref()
                    .map(|d| d.chars().take(300).collect::<String>())
                    .unwrap_or_default(),
            ),
            slots: serde_json::to_value(slots).unwrap_or_default(),
            sentiment,
            tools_tried: ctx.tool_calls(),
            message_to_customer: t.escalated(ticket, assessment.safety(), missing_order),
        }))
    }
}

/// The agent's training phrases (EN + ZH), for tools that train the supervisor.
pub fn training_phrases() -> &'static [&'static str] {
    phrases::PHRASES
}
