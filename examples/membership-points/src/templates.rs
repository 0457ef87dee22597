//! Customer-facing texts of the membership points agent, in English and Chinese.

use fenliu_agent::settings::TemplateOverrides;
use fenliu_agent::{AgentContext, CustomerTier, Language, TemplateSpec};

use crate::tool::PointsBalance;

/// The texts operators may replace in `config/agents/membership_points.toml`.
pub(crate) fn specs() -> Vec<TemplateSpec> {
    vec![
        TemplateSpec::new(
            "balance",
            &["points", "delivered_orders", "qualifying_spend"],
            "the points balance (notes on orders on the way, VIP benefits and redemption follow)",
        ),
        TemplateSpec::new("unavailable", &[], "the balance cannot be read; a person takes over"),
    ]
}

/// Texts in one language.
pub(crate) struct Texts {
    zh: bool,
    overrides: TemplateOverrides,
}

impl Texts {
    /// The texts of this turn: its language, and the operator's overrides.
    pub(crate) fn for_turn(ctx: &AgentContext<'_>) -> Self {
        Self { zh: ctx.language == Language::Zh, overrides: ctx.overrides() }
    }

    fn pick(&self, en: String, zh: String) -> String {
        if self.zh { zh } else { en }
    }

    /// The balance, how it was earned, what is still to come, and the tier.
    pub(crate) fn balance(&self, b: &PointsBalance, tier: CustomerTier, redeem: bool) -> String {
        let spend = format!("{:.2}", b.qualifying_spend);
        let custom = self.overrides.text(
            "balance",
            &[
                ("points", &b.points),
                ("delivered_orders", &b.delivered_orders),
                ("qualifying_spend", &spend),
            ],
        );
        let mut text = custom.unwrap_or_else(|| {
            self.pick(
            format!(
                "You have {} membership points, earned on {} delivered order(s) worth {:.2} after \
                 refunds (1 point per whole unit spent).",
                b.points, b.delivered_orders, b.qualifying_spend
            ),
            format!(
                "您目前有 {} 会员积分，来自 {} 笔已签收订单（扣除退款后共 {:.2}，每消费 1 元积 1 分）。",
                b.points, b.delivered_orders, b.qualifying_spend
            ),
        )
        });
        if b.orders_on_the_way > 0 {
            text.push_str(&self.pick(
                format!(
                    " {} more point(s) will be added when your {} order(s) on the way are delivered.",
                    b.pending_points, b.orders_on_the_way
                ),
                format!(
                    "另有 {} 笔订单正在处理或配送中，签收后将再获得 {} 积分。",
                    b.orders_on_the_way, b.pending_points
                ),
            ));
        }
        if tier == CustomerTier::Vip {
            text.push_str(&self.pick(
                " As a VIP member you also keep priority support and free express shipping.".into(),
                "作为 VIP 会员，您同时享有优先客服和免费加急配送。".into(),
            ));
        }
        if redeem {
            text.push_str(&self.pick(
                " I can only show your balance here; I cannot redeem or transfer points.".into(),
                "我在这里只能查询积分余额，无法兑换或转让积分。".into(),
            ));
        }
        text
    }

    /// What the customer is told when the balance cannot be read and a person takes over.
    pub(crate) fn unavailable(&self) -> String {
        if let Some(text) = self.overrides.text("unavailable", &[]) {
            return text;
        }
        self.pick(
            "I'm sorry, I can't read your points balance right now. I'm passing your question to a \
             colleague, who will get back to you."
                .into(),
            "抱歉，暂时无法查询您的积分余额。我已把您的问题转交给同事，同事会尽快回复您。".into(),
        )
    }
}
