//! Customer-facing texts of the order agent, in English and Chinese.
//!
//! Every fact in a text comes from a tool result; nothing is invented here.

use fenliu_agent::settings::TemplateOverrides;
use fenliu_agent::{AgentContext, Language, TemplateSpec};
use fenliu_tools_commerce::tools::OrderSummary;
use fenliu_tools_commerce::{Address, Order, OrderStatus, PaymentEventKind};

/// The texts operators may replace in `config/agents/order.toml`.
pub(crate) fn specs() -> Vec<TemplateSpec> {
    vec![
        TemplateSpec::new(
            "ask_order_id",
            &["recent"],
            "asks for the order number (`recent`: the customer's recent orders, may be empty)",
        ),
        TemplateSpec::new(
            "status",
            &["order_id", "items", "status", "tracking", "estimated_delivery"],
            "an order's status (`tracking` and `estimated_delivery` may be empty)",
        ),
        TemplateSpec::new("not_found", &["order_id"], "the order is not on the customer's account"),
        TemplateSpec::new("cancelled", &["order_id", "refunded"], "a pending order was cancelled"),
        TemplateSpec::new("escalating", &[], "a person takes over"),
    ]
}

/// Texts in one language.
pub(crate) struct Texts {
    zh: bool,
    overrides: TemplateOverrides,
}

fn money(amount: f64) -> String {
    format!("${amount:.2}")
}

impl Texts {
    /// The texts of this turn: its language, and the operator's overrides.
    pub(crate) fn for_turn(ctx: &AgentContext<'_>) -> Self {
        Self { zh: ctx.language == Language::Zh, overrides: ctx.overrides() }
    }

    fn pick(&self, en: String, zh: String) -> String {
        if self.zh { zh } else { en }
    }

    fn status_name(&self, status: OrderStatus) -> &'static str {
        status_name(status, self.zh)
    }

    fn items(&self, order: &Order) -> String {
        let sep = if self.zh { "、" } else { ", " };
        order.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(sep)
    }

    pub(crate) fn status(&self, order: &Order) -> String {
        let mut en = format!(
            "Order {} ({}) is {}.",
            order.id,
            self.items(order),
            status_name(order.status, false)
        );
        let mut zh = format!(
            "订单 {}（{}）当前状态：{}。",
            order.id,
            self.items(order),
            self.status_name(order.status)
        );
        let tracking: Vec<String> = order
            .fulfillments
            .iter()
            .flat_map(|f| f.tracking_ids.iter().map(move |t| format!("{} {t}", f.carrier)))
            .collect();
        let shown_tracking = if order.status == OrderStatus::Cancelled {
            String::new()
        } else {
            tracking.join(if self.zh { "，" } else { ", " })
        };
        if let Some(text) = self.overrides.text(
            "status",
            &[
                ("order_id", &order.id),
                ("items", &self.items(order)),
                ("status", &self.status_name(order.status)),
                ("tracking", &shown_tracking),
                (
                    "estimated_delivery",
                    &order.estimated_delivery.map(|d| d.to_string()).unwrap_or_default(),
                ),
            ],
        ) {
            return text;
        }
        if !tracking.is_empty() && order.status != OrderStatus::Cancelled {
            en.push_str(&format!(" Tracking: {}.", tracking.join(", ")));
            zh.push_str(&format!("物流单号：{}。", tracking.join("，")));
        }
        match (order.status, order.delivered_at, order.estimated_delivery) {
            (_, Some(at), _) => {
                en.push_str(&format!(" It was delivered on {}.", at.format("%Y-%m-%d")));
                zh.push_str(&format!("已于 {} 送达。", at.format("%Y-%m-%d")));
            }
            (
                OrderStatus::Pending | OrderStatus::Processed | OrderStatus::Shipped,
                None,
                Some(eta),
            ) => {
                en.push_str(&format!(" Estimated delivery: {eta}."));
                zh.push_str(&format!("预计送达日期：{eta}。"));
            }
            _ => {}
        }
        if order.status == OrderStatus::Pending {
            en.push_str(" You can still cancel it or change its address.");
            zh.push_str("该订单尚未发货，仍可取消或修改收货地址。");
        }
        self.pick(en, zh)
    }

    pub(crate) fn refund(&self, order: &Order) -> String {
        let refunds: Vec<String> = order
            .payments
            .iter()
            .filter(|p| p.kind == PaymentEventKind::Refund)
            .map(|p| format!("{} → {}", money(p.amount), p.payment_method_id))
            .collect();
        if refunds.is_empty() {
            self.pick(
                format!(
                    "There is no refund on order {} yet; it is {}.",
                    order.id,
                    status_name(order.status, false)
                ),
                format!(
                    "订单 {} 目前没有退款记录，订单状态：{}。",
                    order.id,
                    self.status_name(order.status)
                ),
            )
        } else {
            self.pick(
                format!(
                    "Refunds on order {}: {}. Gift-card refunds arrive immediately; other methods take 5-7 business days.",
                    order.id,
                    refunds.join(", ")
                ),
                format!(
                    "订单 {} 的退款：{}。礼品卡退款即时到账，其他支付方式需 5-7 个工作日。",
                    order.id,
                    refunds.join("，")
                ),
            )
        }
    }

    pub(crate) fn invoice(&self, order: &Order) -> String {
        let lines: Vec<String> =
            order.items.iter().map(|i| format!("{} {}", i.name, money(i.price))).collect();
        let paid: f64 = order
            .payments
            .iter()
            .filter(|p| p.kind == PaymentEventKind::Payment)
            .map(|p| p.amount)
            .sum();
        self.pick(
            format!(
                "Invoice for order {} (placed {}): {}. Total {}, paid {}, refunded {}.",
                order.id,
                order.placed_at.format("%Y-%m-%d"),
                lines.join("; "),
                money(order.total()),
                money(paid),
                money(order.refunded())
            ),
            format!(
                "订单 {}（下单日期 {}）的账单：{}。合计 {}，已付 {}，已退 {}。",
                order.id,
                order.placed_at.format("%Y-%m-%d"),
                lines.join("；"),
                money(order.total()),
                money(paid),
                money(order.refunded())
            ),
        )
    }

    pub(crate) fn address_change(&self, order: &Order) -> String {
        if order.status == OrderStatus::Pending {
            self.pick(
                format!(
                    "Order {} is still pending, so its address can be changed. It currently ships to {}. \
                     Please send the full new address (street, city, state, postal code, country).",
                    order.id,
                    order.address.one_line()
                ),
                format!(
                    "订单 {} 尚未发货，可以修改地址。当前收货地址：{}。请提供完整的新地址（街道、城市、省/州、邮编、国家）。",
                    order.id,
                    order.address.one_line()
                ),
            )
        } else {
            self.pick(
                format!(
                    "Order {} is {}, so its address can no longer be changed.",
                    order.id,
                    status_name(order.status, false)
                ),
                format!(
                    "订单 {} 状态为{}，已无法修改地址。",
                    order.id,
                    self.status_name(order.status)
                ),
            )
        }
    }

    pub(crate) fn confirm_address(&self, order: &Order, address: &Address) -> String {
        self.pick(
            format!(
                "Order {} is pending and currently ships to {}. Shall I change the shipping address to {}? Please reply \"yes\" to confirm or \"no\" to keep the current one.",
                order.id,
                order.address.one_line(),
                address.one_line()
            ),
            format!(
                "订单 {} 尚未发货，当前收货地址：{}。确认将收货地址改为：{} 吗？请回复“确认”或“不要”。",
                order.id,
                order.address.one_line(),
                address.one_line()
            ),
        )
    }

    pub(crate) fn confirm_address_again(&self, order_id: &str, address: &Address) -> String {
        self.pick(
            format!(
                "Please reply \"yes\" to ship order {order_id} to {}, or \"no\" to keep the current address.",
                address.one_line()
            ),
            format!(
                "请回复“确认”将订单 {order_id} 改寄到：{}，或回复“不要”保留原地址。",
                address.one_line()
            ),
        )
    }

    pub(crate) fn address_changed(&self, order: &Order) -> String {
        self.pick(
            format!("Done: order {} will ship to {}.", order.id, order.address.one_line()),
            format!("已修改：订单 {} 将寄往 {}。", order.id, order.address.one_line()),
        )
    }

    pub(crate) fn address_unchanged(&self, order: &Order) -> String {
        self.pick(
            format!(
                "Order {} already ships to {}; nothing to change.",
                order.id,
                order.address.one_line()
            ),
            format!("订单 {} 的收货地址已经是 {}，无需修改。", order.id, order.address.one_line()),
        )
    }

    pub(crate) fn ask_order_id(&self, recent: &[OrderSummary]) -> String {
        let listed: Vec<String> = recent
            .iter()
            .take(5)
            .map(|o| format!("{} ({})", o.id, self.status_name(o.status)))
            .collect();
        let recent = listed.join(if self.zh { "，" } else { ", " });
        if let Some(text) = self.overrides.text("ask_order_id", &[("recent", &recent)]) {
            return text;
        }
        match (listed.is_empty(), self.zh) {
            (true, false) => {
                "Which order is it about? Please give the order number, e.g. #W1234567.".into()
            }
            (true, true) => "请问是哪个订单？请提供订单号，例如 #W1234567。".into(),
            (false, false) => {
                format!("Which order is it about? Your recent orders: {}.", listed.join(", "))
            }
            (false, true) => format!("请问是哪个订单？您最近的订单：{}。", listed.join("，")),
        }
    }

    pub(crate) fn order_list(&self, orders: &[OrderSummary]) -> String {
        if orders.is_empty() {
            return self
                .pick("You have no orders with us yet.".into(), "您目前还没有订单。".into());
        }
        let listed: Vec<String> = orders
            .iter()
            .take(10)
            .map(|o| {
                format!(
                    "{} {} ({}, {})",
                    o.id,
                    o.items.join("/"),
                    self.status_name(o.status),
                    money(o.total)
                )
            })
            .collect();
        self.pick(
            format!("Your orders, newest first: {}.", listed.join("; ")),
            format!("您的订单（按时间倒序）：{}。", listed.join("；")),
        )
    }

    pub(crate) fn cannot_cancel(&self, order: &Order) -> String {
        let delivered = matches!(order.status, OrderStatus::Delivered);
        self.pick(
            format!(
                "Order {} is {}, so it can no longer be cancelled.{}",
                order.id,
                status_name(order.status, false),
                if delivered {
                    " Delivered items can be returned within 30 days instead."
                } else {
                    ""
                }
            ),
            format!(
                "订单 {} 状态为{}，已无法取消。{}",
                order.id,
                self.status_name(order.status),
                if delivered { "已签收的商品可在 30 天内申请退货。" } else { "" }
            ),
        )
    }

    pub(crate) fn confirm_cancel(&self, order: &Order) -> String {
        self.pick(
            format!(
                "Order {} ({}, total {}) is pending. Shall I cancel it and refund {} to the original payment method? Please reply \"yes\" to confirm or \"no\" to keep it.",
                order.id,
                self.items(order),
                money(order.total()),
                money(order.total())
            ),
            format!(
                "订单 {}（{}，合计 {}）尚未发货。确认取消并将 {} 退回原支付方式吗？请回复“确认”或“不要”。",
                order.id,
                self.items(order),
                money(order.total()),
                money(order.total())
            ),
        )
    }

    pub(crate) fn confirm_again(&self, order_id: &str) -> String {
        self.pick(
            format!("Please reply \"yes\" to cancel order {order_id}, or \"no\" to keep it."),
            format!("请回复“确认”取消订单 {order_id}，或回复“不要”保留订单。"),
        )
    }

    pub(crate) fn cancelled(&self, order: &Order) -> String {
        if let Some(text) = self
            .overrides
            .text("cancelled", &[("order_id", &order.id), ("refunded", &money(order.refunded()))])
        {
            return text;
        }
        self.pick(
            format!(
                "Done: order {} is cancelled and {} is being refunded to the original payment method (gift cards immediately, other methods within 5-7 business days).",
                order.id,
                money(order.refunded())
            ),
            format!(
                "已为您取消订单 {}，{} 将退回原支付方式（礼品卡即时到账，其他方式 5-7 个工作日）。",
                order.id,
                money(order.refunded())
            ),
        )
    }

    pub(crate) fn change_aborted(&self, order_id: &str) -> String {
        self.pick(
            format!("All right, order {order_id} stays as it is."),
            format!("好的，订单 {order_id} 保持不变。"),
        )
    }

    pub(crate) fn not_found(&self, order_id: &str) -> String {
        let id = if order_id.is_empty() { "that order" } else { order_id };
        if let Some(text) = self.overrides.text("not_found", &[("order_id", &id)]) {
            return text;
        }
        self.pick(
            format!(
                "I can't find {id} on your account, so I can't share any details about it or change it. \
                 Please check the order number; I can only help with orders placed from your own account."
            ),
            format!("您的账户下没有找到订单 {id}，因此无法提供或修改该订单的信息。请核对订单号；我们只能处理您本人账户下的订单。"),
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

/// English (`zh == false`) or Chinese name of an order status.
fn status_name(status: OrderStatus, zh: bool) -> &'static str {
    match (status, zh) {
        (OrderStatus::Pending, false) => "pending (not yet processed)",
        (OrderStatus::Processed, false) => "processed and handed to the carrier",
        (OrderStatus::Shipped, false) => "shipped and on its way",
        (OrderStatus::Delivered, false) => "delivered",
        (OrderStatus::Cancelled, false) => "cancelled",
        (OrderStatus::ReturnRequested, false) => "awaiting a return",
        (OrderStatus::ExchangeRequested, false) => "awaiting an exchange",
        (OrderStatus::Pending, true) => "待处理（尚未发货）",
        (OrderStatus::Processed, true) => "已处理，已交给承运商",
        (OrderStatus::Shipped, true) => "运输中",
        (OrderStatus::Delivered, true) => "已签收",
        (OrderStatus::Cancelled, true) => "已取消",
        (OrderStatus::ReturnRequested, true) => "退货处理中",
        (OrderStatus::ExchangeRequested, true) => "换货处理中",
    }
}
