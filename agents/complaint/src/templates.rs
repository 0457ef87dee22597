//! Customer-facing texts of the complaint agent, in English and Chinese.
//!
//! The agent apologises and explains what happens next, following the shop's feedback policy
//! (`data/demo/docs/feedback.*.md`): a reference number right away, a reply within 1 business day
//! (VIP: 4 hours), resolution aimed within 5 business days. It never promises compensation, refunds
//! or any other outcome: a person decides those.

use chrono::{DateTime, Utc};
use fenliu_agent::settings::TemplateOverrides;
use fenliu_agent::{AgentContext, Language, TemplateSpec};
use fenliu_tools_commerce::{Ticket, TicketStatus};

/// The texts operators may replace in `config/agents/complaint.toml`.
pub(crate) fn specs() -> Vec<TemplateSpec> {
    vec![
        TemplateSpec::new("ask_details", &[], "asks what happened when the message has no details"),
        TemplateSpec::new(
            "filed",
            &["ticket_id", "order_id", "due", "reply_within"],
            "a complaint was filed and stays in the normal queue (`order_id` may be empty)",
        ),
        TemplateSpec::new(
            "escalated",
            &["ticket_id", "due"],
            "a filed complaint goes to a senior colleague (a safety notice and a missing-order \
             note are added around it)",
        ),
        TemplateSpec::new(
            "ticket_status",
            &["ticket_id", "subject", "status", "due", "updated"],
            "the status of one of the customer's complaints",
        ),
    ]
}

/// Texts in one language.
pub(crate) struct Texts {
    zh: bool,
    overrides: TemplateOverrides,
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

impl Texts {
    /// The texts of this turn: its language, and the operator's overrides.
    pub(crate) fn for_turn(ctx: &AgentContext<'_>) -> Self {
        Self { zh: ctx.language == Language::Zh, overrides: ctx.overrides() }
    }

    fn pick(&self, en: String, zh: String) -> String {
        if self.zh { zh } else { en }
    }

    fn status(&self, s: TicketStatus) -> &'static str {
        match (s, self.zh) {
            (TicketStatus::Open, false) => "open, waiting for a colleague",
            (TicketStatus::Assigned, false) => "assigned to a colleague",
            (TicketStatus::InProgress, false) => "being worked on",
            (TicketStatus::WaitingForCustomer, false) => "waiting for your reply",
            (TicketStatus::Resolved, false) => "resolved",
            (TicketStatus::Closed, false) => "closed",
            (TicketStatus::Open, true) => "已受理，等待处理",
            (TicketStatus::Assigned, true) => "已分配给专员",
            (TicketStatus::InProgress, true) => "处理中",
            (TicketStatus::WaitingForCustomer, true) => "等待您的回复",
            (TicketStatus::Resolved, true) => "已解决",
            (TicketStatus::Closed, true) => "已关闭",
        }
    }

    pub(crate) fn ask_details(&self) -> String {
        if let Some(text) = self.overrides.text("ask_details", &[]) {
            return text;
        }
        self.pick(
            "I'm sorry something went wrong. Please tell me what happened, the order number if it is about an order, \
             and what you would like us to do; I'll file your complaint right away."
                .into(),
            "很抱歉给您带来不好的体验。请告诉我发生了什么、相关的订单号（如与订单有关），以及您希望我们如何处理，我会立即为您登记投诉。"
                .into(),
        )
    }

    fn safety(&self) -> String {
        self.pick(
            "For your safety, please stop using the product and keep it away from children until we have looked into it. \
             If anyone is hurt, please seek medical help first. "
                .into(),
            "为了安全，请立即停止使用该产品并放在儿童接触不到的地方；如有人受伤，请先就医。".into(),
        )
    }

    fn order_note(&self, missing_order: Option<&str>) -> String {
        match missing_order {
            None => String::new(),
            Some(id) => self.pick(
                format!(" I couldn't find order {id} on your account, so it isn't attached to the complaint."),
                format!("您的账户下没有找到订单 {id}，因此该投诉未关联订单。"),
            ),
        }
    }

    /// The answer for a complaint the agent filed and keeps in the normal queue. VIP customers are
    /// always handed to a person, so the reply time is the regular tier's.
    pub(crate) fn filed(&self, t: &Ticket, missing_order: Option<&str>) -> String {
        let reply_en = "within 1 business day";
        let reply_zh = "1 个工作日内";
        let note = self.order_note(missing_order);
        if let Some(text) = self.overrides.text(
            "filed",
            &[
                ("ticket_id", &t.id),
                ("order_id", &t.order_id.as_deref().unwrap_or_default()),
                ("due", &time(t.sla_due_at)),
                ("reply_within", &if self.zh { reply_zh } else { reply_en }),
            ],
        ) {
            return text + &note;
        }
        self.pick(
            format!(
                "I'm sorry about this; it is not the experience we want you to have. I've filed your complaint as {}{}.{note} \
                 Our quality team will reply {reply_en} and aims to resolve it by {}. If you are not happy with the answer, \
                 you can ask for the complaint to be escalated to a team lead.",
                t.id,
                t.order_id.as_deref().map(|o| format!(" (order {o})")).unwrap_or_default(),
                time(t.sla_due_at)
            ),
            format!(
                "非常抱歉给您带来了不好的体验。已为您登记投诉，投诉编号 {}{}。{note}质量部会在{reply_zh}回复您，并争取在 {} 前处理完毕。如果对处理结果不满意，可以要求升级，由组长复核。",
                t.id,
                t.order_id.as_deref().map(|o| format!("（订单 {o}）")).unwrap_or_default(),
                time(t.sla_due_at)
            ),
        )
    }

    /// What the customer is told when a person takes over.
    pub(crate) fn escalated(
        &self,
        ticket: Option<&Ticket>,
        safety: bool,
        missing_order: Option<&str>,
    ) -> String {
        let mut text = if safety { self.safety() } else { String::new() };
        let note = self.order_note(missing_order);
        let custom = ticket.and_then(|t| {
            self.overrides
                .text("escalated", &[("ticket_id", &t.id), ("due", &time(t.sla_due_at))])
                .map(|s| s + &note)
        });
        text.push_str(&match (ticket, custom) {
            (_, Some(custom)) => custom,
            (Some(t), None) => self.pick(
                format!(
                    "I'm very sorry, and I take this seriously. Your complaint is filed as {} and I'm passing it to a senior colleague \
                     right now; they will see everything you've told me and contact you by {}.{note}",
                    t.id,
                    time(t.sla_due_at)
                ),
                format!(
                    "非常抱歉，我们会认真对待这件事。您的投诉已登记，编号 {}，我现在就转交给资深同事处理；同事会看到您告诉我的全部内容，并在 {} 前联系您。{note}",
                    t.id,
                    time(t.sla_due_at)
                ),
            ),
            (None, None) => self.pick(
                format!(
                    "I'm very sorry, and I take this seriously. I'm passing your complaint to a colleague right now; they will see \
                     everything you've told me.{note}"
                ),
                format!("非常抱歉，我们会认真对待这件事。我现在就把您的投诉转交给同事，同事会看到您告诉我的全部内容。{note}"),
            ),
        });
        text
    }

    pub(crate) fn ticket_status(&self, t: &Ticket) -> String {
        if let Some(text) = self.overrides.text(
            "ticket_status",
            &[
                ("ticket_id", &t.id),
                ("subject", &t.subject),
                ("status", &self.status(t.status)),
                ("due", &time(t.sla_due_at)),
                ("updated", &time(t.updated_at)),
            ],
        ) {
            return text;
        }
        self.pick(
            format!(
                "Your complaint {} (\"{}\") is {}. Due by {}; last update {}.",
                t.id,
                t.subject,
                self.status(t.status),
                time(t.sla_due_at),
                time(t.updated_at)
            ),
            format!(
                "您的投诉 {}（{}）当前状态：{}。处理时限 {}，最近更新 {}。",
                t.id,
                t.subject,
                self.status(t.status),
                time(t.sla_due_at),
                time(t.updated_at)
            ),
        )
    }

    pub(crate) fn ticket_not_found(&self, id: &str) -> String {
        self.pick(
            format!("I can't find {id} on your account. Please check the number; I can only show your own complaints."),
            format!("您的账户下没有找到 {id}。请核对编号；我们只能查询您本人的投诉。"),
        )
    }
}
