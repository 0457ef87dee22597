//! Customer-facing texts of the after-sales agent, in English and Chinese.
//!
//! Every fact in a text (dates, warranty lengths, ticket ids, SLA due times) comes from a tool
//! result; the process descriptions follow the shop's warranty and returns policies in
//! `data/demo/docs/`.

use chrono::{DateTime, Utc};
use fenliu_agent::settings::TemplateOverrides;
use fenliu_agent::{AgentContext, Language, TemplateSpec};
use fenliu_tools_commerce::ticket_tools::{ItemWarranty, TicketSummary};
use fenliu_tools_commerce::tools::OrderSummary;
use fenliu_tools_commerce::{
    Department, Order, OrderStatus, Ticket, TicketKind, TicketPriority, TicketStatus,
};

use crate::PendingTicket;

/// The texts operators may replace in `config/agents/after_sales.toml`.
pub(crate) fn specs() -> Vec<TemplateSpec> {
    vec![
        TemplateSpec::new("ask_fault", &["item"], "asks what is wrong with the item"),
        TemplateSpec::new(
            "created",
            &["kind", "ticket_id", "department", "priority", "due", "next_step"],
            "a repair, return or exchange ticket was created",
        ),
        TemplateSpec::new(
            "ticket_status",
            &[
                "ticket_id",
                "kind",
                "order_id",
                "subject",
                "status",
                "department",
                "priority",
                "due",
                "updated",
            ],
            "the status of one of the customer's tickets",
        ),
        TemplateSpec::new("escalating", &[], "a person takes over the conversation"),
    ]
}

/// Texts in one language.
pub(crate) struct Texts {
    zh: bool,
    overrides: TemplateOverrides,
}

fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
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

    fn department(&self, d: Department) -> &'static str {
        match (d, self.zh) {
            (Department::AfterSales, false) => "after-sales",
            (Department::Logistics, false) => "logistics (returns)",
            (Department::Quality, false) => "quality",
            (Department::Finance, false) => "finance",
            (Department::CustomerCare, false) => "customer care",
            (Department::AfterSales, true) => "售后部",
            (Department::Logistics, true) => "物流退换货部",
            (Department::Quality, true) => "质量部",
            (Department::Finance, true) => "财务部",
            (Department::CustomerCare, true) => "客户关怀部",
        }
    }

    fn priority(&self, p: TicketPriority) -> &'static str {
        match (p, self.zh) {
            (TicketPriority::Low, false) => "low",
            (TicketPriority::Normal, false) => "normal",
            (TicketPriority::High, false) => "high",
            (TicketPriority::Urgent, false) => "urgent",
            (TicketPriority::Low, true) => "低",
            (TicketPriority::Normal, true) => "普通",
            (TicketPriority::High, true) => "高",
            (TicketPriority::Urgent, true) => "紧急",
        }
    }

    fn kind(&self, k: TicketKind) -> &'static str {
        match (k, self.zh) {
            (TicketKind::Repair, false) => "repair",
            (TicketKind::Return, false) => "return",
            (TicketKind::Exchange, false) => "exchange",
            (TicketKind::Complaint, false) => "complaint",
            (TicketKind::Inquiry, false) => "warranty review",
            (TicketKind::Repair, true) => "维修",
            (TicketKind::Return, true) => "退货",
            (TicketKind::Exchange, true) => "换货",
            (TicketKind::Complaint, true) => "投诉",
            (TicketKind::Inquiry, true) => "保修复核",
        }
    }

    fn status(&self, s: TicketStatus) -> &'static str {
        match (s, self.zh) {
            (TicketStatus::Open, false) => "open, waiting for a colleague",
            (TicketStatus::Assigned, false) => "assigned to a colleague",
            (TicketStatus::InProgress, false) => "in progress",
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

    fn warranty_line(&self, w: &ItemWarranty) -> String {
        match (w.warranty_ends_at, self.zh) {
            (Some(end), false) => format!(
                "{} has a {}-month warranty from delivery ({}), until {}.",
                w.name,
                w.warranty_months,
                date(w.delivered_at),
                date(end)
            ),
            (Some(end), true) => format!(
                "{} 自签收日（{}）起享受 {} 个月保修，至 {} 止。",
                w.name,
                date(w.delivered_at),
                w.warranty_months,
                date(end)
            ),
            (None, false) => format!(
                "{} has no warranty beyond the 30-day return window (delivered {}).",
                w.name,
                date(w.delivered_at)
            ),
            (None, true) => format!(
                "{} 没有保修，只适用 30 天退换货政策（签收日 {}）。",
                w.name,
                date(w.delivered_at)
            ),
        }
    }

    pub(crate) fn ask_order_id(&self, delivered: &[OrderSummary]) -> String {
        let listed: Vec<String> =
            delivered.iter().take(5).map(|o| format!("{} ({})", o.id, o.items.join("/"))).collect();
        match (listed.is_empty(), self.zh) {
            (true, false) => {
                "Which order is the item from? Please give the order number, e.g. #W1234567.".into()
            }
            (true, true) => "请问商品来自哪个订单？请提供订单号，例如 #W1234567。".into(),
            (false, false) => format!(
                "Which order is the item from? Your delivered orders: {}.",
                listed.join(", ")
            ),
            (false, true) => {
                format!("请问商品来自哪个订单？您已签收的订单：{}。", listed.join("，"))
            }
        }
    }

    pub(crate) fn not_found(&self, order_id: &str) -> String {
        let id = if order_id.is_empty() { "that order" } else { order_id };
        self.pick(
            format!(
                "I can't find {id} on your account, so I can't share any details about it or open a request for it. \
                 Please check the order number; I can only help with orders placed from your own account."
            ),
            format!("您的账户下没有找到订单 {id}，因此无法提供该订单的信息或为其提交申请。请核对订单号；我们只能处理您本人账户下的订单。"),
        )
    }

    pub(crate) fn not_delivered(&self, order: &Order) -> String {
        let status = order.status.as_str().replace('_', " ");
        if order.status == OrderStatus::Cancelled {
            return self.pick(
                format!(
                    "Order {} was cancelled, so there is nothing to repair, return or exchange.",
                    order.id
                ),
                format!("订单 {} 已取消，无需维修或退换货。", order.id),
            );
        }
        self.pick(
            format!(
                "Order {} is {} and has not been delivered yet. Repairs, returns and exchanges start once it is delivered; \
                 for delivery questions just ask where your order is.",
                order.id, status
            ),
            format!(
                "订单 {} 还未签收（当前状态：{}）。维修和退换货需在签收后办理；如需查询物流，请直接问我订单到哪了。",
                order.id, status
            ),
        )
    }

    pub(crate) fn ask_item(&self, order: &Order) -> String {
        let listed: Vec<String> = order
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let options: Vec<&str> = item.options.values().map(String::as_str).collect();
                if options.is_empty() {
                    format!("{}. {}", i + 1, item.name)
                } else {
                    format!("{}. {} ({})", i + 1, item.name, options.join(", "))
                }
            })
            .collect();
        self.pick(
            format!("Which item of order {} is it about? {}", order.id, listed.join("; ")),
            format!("请问是订单 {} 中的哪件商品？{}", order.id, listed.join("；")),
        )
    }

    pub(crate) fn ask_fault(&self, item: &str) -> String {
        if let Some(text) = self.overrides.text("ask_fault", &[("item", &item)]) {
            return text;
        }
        self.pick(
            format!(
                "What is wrong with the {item}? A short description helps, e.g. \"it no longer turns on\" or \"the size is too small\"."
            ),
            format!("请简单描述一下 {item} 出了什么问题，例如“无法开机”或“尺码太小”。"),
        )
    }

    pub(crate) fn choose_request(&self, w: &ItemWarranty, repair_possible: bool) -> String {
        let ends = date(w.return_window_ends_at);
        match (repair_possible, self.zh) {
            (true, false) => format!(
                "{} Your order was delivered less than 30 days ago, so you can return the item for a refund (until {ends}), \
                 exchange it for another variant of the same product, or send it for repair under warranty. \
                 Which would you like: return, exchange or repair?",
                self.warranty_line(w)
            ),
            (true, true) => format!(
                "{}订单签收未满 30 天，您可以在 {ends} 前申请退货退款、换成同款其他规格，或者按保修送修。请问您想要退货、换货还是维修？",
                self.warranty_line(w)
            ),
            (false, false) => format!(
                "{} It cannot be repaired under warranty, but it was delivered less than 30 days ago, so you can return it \
                 for a refund or exchange it for another variant of the same product until {ends}. Would you like a return or an exchange?",
                self.warranty_line(w)
            ),
            (false, true) => format!(
                "{}该商品无法保修维修，但签收未满 30 天，您可以在 {ends} 前申请退货或换成同款其他规格。请问您想退货还是换货？",
                self.warranty_line(w)
            ),
        }
    }

    pub(crate) fn confirm(&self, p: &PendingTicket, w: &ItemWarranty) -> String {
        let mut en = String::new();
        let mut zh = String::new();
        if p.safety_risk {
            en.push_str("For your safety, please stop using the item and unplug it. ");
            zh.push_str("为了您的安全，请立即停止使用并断开电源。");
        }
        match p.kind {
            TicketKind::Repair => {
                if p.return_window_closed {
                    en.push_str(&format!(
                        "The 30-day return window for order {} closed on {}, so a return or exchange is no longer possible. ",
                        p.order_id,
                        date(w.return_window_ends_at)
                    ));
                    zh.push_str(&format!(
                        "订单 {} 的 30 天退换货期已于 {} 结束，无法再退换货。",
                        p.order_id,
                        date(w.return_window_ends_at)
                    ));
                }
                en.push_str(&format!(
                    "{} I can open a repair ticket for the {} (order {}) with our after-sales team, priority {}: \
                     you'll get a prepaid shipping label by email within 1 business day, and the repair takes 10-15 business days \
                     once the item reaches the service centre. Shall I open it? Please reply \"yes\" or \"no\".",
                    self.warranty_line(w),
                    p.item_name,
                    p.order_id,
                    self.priority(p.priority)
                ));
                zh.push_str(&format!(
                    "{}我可以为订单 {} 的 {} 提交维修工单（售后部，优先级{}）：1 个工作日内您会收到预付费寄送面单的邮件，商品到达维修中心后需 10 至 15 个工作日修好并免费寄回。确认提交吗？请回复“确认”或“不要”。",
                    self.warranty_line(w),
                    p.order_id,
                    p.item_name,
                    self.priority(p.priority)
                ));
            }
            TicketKind::Return | TicketKind::Exchange => {
                let exchange = p.kind == TicketKind::Exchange;
                en.push_str(&format!(
                    "I can open {} ticket for the {} of order {} (delivered {}, return window open until {}) with our logistics team, priority {}. \
                     You'll receive a prepaid return label and packing instructions by email; please ship the item within 14 days. {} \
                     Shall I open it? Please reply \"yes\" or \"no\".",
                    if exchange { "an exchange" } else { "a return" },
                    p.item_name,
                    p.order_id,
                    date(w.delivered_at),
                    date(w.return_window_ends_at),
                    self.priority(p.priority),
                    if exchange {
                        "An exchange is for another available variant of the same product; we ship the replacement when the original arrives."
                    } else {
                        "The refund is issued once the item reaches our warehouse (gift cards immediately, other methods within 5-7 business days)."
                    }
                ));
                zh.push_str(&format!(
                    "我可以为订单 {} 的 {}（签收日 {}，退换货期至 {}）提交{}工单（物流退换货部，优先级{}）。您会收到附有预付费退货面单和包装说明的邮件，请在 14 天内寄出。{}确认提交吗？请回复“确认”或“不要”。",
                    p.order_id,
                    p.item_name,
                    date(w.delivered_at),
                    date(w.return_window_ends_at),
                    if exchange { "换货" } else { "退货" },
                    self.priority(p.priority),
                    if exchange {
                        "换货只能换同一商品的其他有货规格，我们收到原商品后寄出新商品。"
                    } else {
                        "商品寄回仓库后退款（礼品卡即时到账，其他方式 5-7 个工作日）。"
                    }
                ));
            }
            TicketKind::Inquiry | TicketKind::Complaint => {
                en.push_str(&format!(
                    "{} Its warranty has ended, so we can't repair it under warranty, and the 30-day return window closed on {}. \
                     The manufacturer's own service can usually still help. If you believe the item should still be covered, \
                     I can open a review ticket for our customer care team. Shall I open it? Please reply \"yes\" or \"no\".",
                    self.warranty_line(w),
                    date(w.return_window_ends_at)
                ));
                zh.push_str(&format!(
                    "{}该商品已过保修期，我们无法提供保修维修，30 天退换货期也已于 {} 结束。厂家的售后服务通常仍可提供帮助。如果您认为该商品仍应在保修范围内，我可以为您提交一张由客户关怀部处理的复核工单。需要提交吗？请回复“确认”或“不要”。",
                    self.warranty_line(w),
                    date(w.return_window_ends_at)
                ));
            }
        }
        self.pick(en, zh)
    }

    pub(crate) fn confirm_again(&self, p: &PendingTicket) -> String {
        self.pick(
            format!(
                "Please reply \"yes\" to open the {} ticket for the {} (order {}), or \"no\" to leave it.",
                self.kind(p.kind),
                p.item_name,
                p.order_id
            ),
            format!(
                "请回复“确认”为订单 {} 的 {} 提交{}工单，或回复“不要”取消。",
                p.order_id,
                p.item_name,
                self.kind(p.kind)
            ),
        )
    }

    pub(crate) fn aborted(&self, p: &PendingTicket) -> String {
        if p.out_of_warranty {
            return self.pick(
                "All right, I haven't opened anything. For a paid repair, the manufacturer's own service is the best place to ask.".into(),
                "好的，没有提交任何工单。如需付费维修，建议联系厂家的售后服务。".into(),
            );
        }
        self.pick(
            format!("All right, I haven't opened a {} ticket. Just write again if you change your mind.", self.kind(p.kind)),
            format!("好的，没有提交{}工单。如果改变主意，随时告诉我。", self.kind(p.kind)),
        )
    }

    pub(crate) fn created(&self, t: &Ticket) -> String {
        let next_en = match t.kind {
            TicketKind::Repair => {
                "You'll receive a prepaid shipping label by email within 1 business day."
            }
            TicketKind::Return | TicketKind::Exchange => {
                "You'll receive a prepaid return label and packing instructions by email."
            }
            _ => "A colleague will review it and reply to you.",
        };
        let next_zh = match t.kind {
            TicketKind::Repair => "1 个工作日内您会收到预付费寄送面单的邮件。",
            TicketKind::Return | TicketKind::Exchange => {
                "您会收到附有预付费退货面单和包装说明的邮件。"
            }
            _ => "同事会进行复核并答复您。",
        };
        if let Some(text) = self.overrides.text(
            "created",
            &[
                ("kind", &self.kind(t.kind)),
                ("ticket_id", &t.id),
                ("department", &self.department(t.department)),
                ("priority", &self.priority(t.priority)),
                ("due", &time(t.sla_due_at)),
                ("next_step", &if self.zh { next_zh } else { next_en }),
            ],
        ) {
            return text;
        }
        self.pick(
            format!(
                "Done: {} ticket {} is open with our {} team (priority {}); it will be handled by {}. {next_en} \
                 You can ask me for its status any time with the ticket number.",
                self.kind(t.kind),
                t.id,
                self.department(t.department),
                self.priority(t.priority),
                time(t.sla_due_at)
            ),
            format!(
                "已为您提交{}工单 {}（{}，优先级{}），将在 {} 前处理。{next_zh}之后可随时凭工单号向我查询进度。",
                self.kind(t.kind),
                t.id,
                self.department(t.department),
                self.priority(t.priority),
                time(t.sla_due_at)
            ),
        )
    }

    pub(crate) fn ticket_status(&self, t: &Ticket) -> String {
        let order = t.order_id.as_deref().unwrap_or("-");
        if let Some(text) = self.overrides.text(
            "ticket_status",
            &[
                ("ticket_id", &t.id),
                ("kind", &self.kind(t.kind)),
                ("order_id", &order),
                ("subject", &t.subject),
                ("status", &self.status(t.status)),
                ("department", &self.department(t.department)),
                ("priority", &self.priority(t.priority)),
                ("due", &time(t.sla_due_at)),
                ("updated", &time(t.updated_at)),
            ],
        ) {
            return text;
        }
        self.pick(
            format!(
                "Ticket {} ({}, order {}: {}) is {}. It is with our {} team, priority {}, due by {}. Last update: {}.",
                t.id,
                self.kind(t.kind),
                order,
                t.subject,
                self.status(t.status),
                self.department(t.department),
                self.priority(t.priority),
                time(t.sla_due_at),
                time(t.updated_at)
            ),
            format!(
                "工单 {}（{}，订单 {}：{}）当前状态：{}。负责部门：{}，优先级{}，处理时限 {}。最近更新：{}。",
                t.id,
                self.kind(t.kind),
                order,
                t.subject,
                self.status(t.status),
                self.department(t.department),
                self.priority(t.priority),
                time(t.sla_due_at),
                time(t.updated_at)
            ),
        )
    }

    pub(crate) fn ticket_list(&self, tickets: &[TicketSummary]) -> String {
        if tickets.is_empty() {
            return self.pick(
                "You have no repair, return or exchange tickets with us. If something is wrong with an item, tell me the order number and what happened.".into(),
                "您目前没有维修或退换货工单。如果商品有问题，请告诉我订单号和具体情况。".into(),
            );
        }
        let listed: Vec<String> = tickets
            .iter()
            .take(5)
            .map(|t| {
                let order = t.order_id.as_deref().map(|o| format!(" {o}")).unwrap_or_default();
                if self.zh {
                    format!(
                        "{} {}（{}{order}，{}，处理时限 {}）",
                        t.id,
                        t.subject,
                        self.kind(t.kind),
                        self.status(t.status),
                        time(t.sla_due_at)
                    )
                } else {
                    format!(
                        "{} {} ({}{order}, {}, due {})",
                        t.id,
                        t.subject,
                        self.kind(t.kind),
                        self.status(t.status),
                        time(t.sla_due_at)
                    )
                }
            })
            .collect();
        self.pick(
            format!("Your tickets, newest first: {}.", listed.join("; ")),
            format!("您的工单（按时间倒序）：{}。", listed.join("；")),
        )
    }

    pub(crate) fn already_open(&self, t: &TicketSummary) -> String {
        self.pick(
            format!(
                "You already have {} ticket {} for this item ({}), due by {}; I haven't opened a second one. \
                 Ask me about {} any time for its status.",
                self.kind(t.kind),
                t.id,
                self.status(t.status),
                time(t.sla_due_at),
                t.id
            ),
            format!(
                "该商品已有{}工单 {}（{}，处理时限 {}），无需重复提交。可随时凭 {} 查询进度。",
                self.kind(t.kind),
                t.id,
                self.status(t.status),
                time(t.sla_due_at),
                t.id
            ),
        )
    }

    pub(crate) fn ticket_not_found(&self, id: &str) -> String {
        self.pick(
            format!("I can't find ticket {id} on your account. Please check the number; I can only show tickets of your own account."),
            format!("您的账户下没有找到工单 {id}。请核对工单号；我们只能查询您本人账户下的工单。"),
        )
    }

    pub(crate) fn conflict(&self, reason: &str) -> String {
        self.pick(format!("That can't be done: {reason}."), format!("无法完成该操作：{reason}。"))
    }

    pub(crate) fn escalating(&self) -> String {
        if let Some(text) = self.overrides.text("escalating", &[]) {
            return text;
        }
        self.pick(
            "I'm passing this to a colleague who can help further; they will see everything we've discussed.".into(),
            "我将为您转接人工客服，同事会看到我们之前的全部沟通内容。".into(),
        )
    }
}
