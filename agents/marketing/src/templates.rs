//! Customer-facing texts of the marketing agent, in English and Chinese.
//!
//! Every product, price and option in a text comes from a `search_products` result, and every
//! promotion from a `kb_search` passage: nothing is invented here.

use fenliu_agent::settings::TemplateOverrides;
use fenliu_agent::{AgentContext, Language, TemplateSpec};
use fenliu_tools_commerce::marketing::ProductHit;

use crate::query::chinese_name;

/// The texts operators may replace in `config/agents/marketing.toml`.
pub(crate) fn specs() -> Vec<TemplateSpec> {
    vec![
        TemplateSpec::new("ask_need", &[], "asks what the customer is looking for"),
        TemplateSpec::new(
            "nothing_found",
            &["categories"],
            "no product matches the request (`categories`: what the shop carries)",
        ),
        TemplateSpec::new("no_promotion_found", &[], "no current promotion matches"),
        TemplateSpec::new("subscribed", &[], "the newsletter subscription was turned on"),
        TemplateSpec::new("unsubscribed", &[], "the newsletter subscription was turned off"),
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

fn price_range(hit: &ProductHit) -> String {
    if (hit.price_to - hit.price_from).abs() < 0.005 {
        money(hit.price_from)
    } else {
        format!("{}–{}", money(hit.price_from), money(hit.price_to))
    }
}

fn options(hit: &ProductHit) -> String {
    hit.variants
        .first()
        .map(|v| v.options.values().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

impl Texts {
    /// The texts of this turn: its language, and the operator's overrides.
    pub(crate) fn for_turn(ctx: &AgentContext<'_>) -> Self {
        Self { zh: ctx.language == Language::Zh, overrides: ctx.overrides() }
    }

    fn pick(&self, en: String, zh: String) -> String {
        if self.zh { zh } else { en }
    }

    pub(crate) fn recommendations(&self, hits: &[ProductHit], relaxed_colour: bool) -> String {
        let mut en = String::from("Here is what I'd suggest from our catalogue:\n");
        let mut zh = String::from("根据我们的商品目录，为您推荐：\n");
        for (i, h) in hits.iter().enumerate() {
            let n = i + 1;
            let example = options(h);
            en.push_str(&format!(
                "{n}. {} — {} ({} option{} available){}. {}\n",
                h.name,
                price_range(h),
                h.matching_variants,
                if h.matching_variants == 1 { "" } else { "s" },
                if example.is_empty() { String::new() } else { format!(", e.g. {example}") },
                h.description,
            ));
            let name = match chinese_name(&h.name) {
                Some(zh_name) => format!("{zh_name}（{}）", h.name),
                None => h.name.clone(),
            };
            zh.push_str(&format!(
                "{n}. {name} — {}，共 {} 个可选款式{}。\n",
                price_range(h),
                h.matching_variants,
                if example.is_empty() { String::new() } else { format!("，例如 {example}") },
            ));
        }
        if relaxed_colour {
            en.push_str(
                "None came in the colour you asked for, so these are the closest matches.\n",
            );
            zh.push_str("没有您要的颜色，以上是最接近的商品。\n");
        }
        en.push_str("Would you like details on any of them?");
        zh.push_str("需要了解哪一款的详细信息吗？");
        self.pick(en, zh)
    }

    pub(crate) fn nothing_found(&self, categories: &[String]) -> String {
        let list = categories.join(", ");
        if let Some(text) = self.overrides.text("nothing_found", &[("categories", &list)]) {
            return text;
        }
        self.pick(
            format!(
                "I couldn't find anything in our catalogue that matches. We carry products in \
                 these categories: {list}. What are you looking for?"
            ),
            format!("目录里没有找到符合的商品。我们的商品类别有：{list}。请问您想找什么？"),
        )
    }

    pub(crate) fn ask_need(&self) -> String {
        if let Some(text) = self.overrides.text("ask_need", &[]) {
            return text;
        }
        self.pick(
            "Happy to help you choose! What kind of product are you looking for, and do you have \
             a budget? (For example: \"headphones under $400\".)"
                .into(),
            "很乐意为您挑选！请问您想买哪类商品，预算大概多少？（例如：“400美元以内的耳机”）"
                .into(),
        )
    }

    pub(crate) fn promotions(&self, passages: &[(String, String)]) -> String {
        let mut en = String::from("Here is what our promotions page says:\n");
        let mut zh = String::from("以下是我们的促销说明：\n");
        for (text, source) in passages {
            en.push_str(&format!("{text}\n(Source: {source})\n"));
            zh.push_str(&format!("{text}\n（来源：{source}）\n"));
        }
        self.pick(en.trim_end().to_owned(), zh.trim_end().to_owned())
    }

    pub(crate) fn no_promotion_found(&self) -> String {
        if let Some(text) = self.overrides.text("no_promotion_found", &[]) {
            return text;
        }
        self.pick(
            "I couldn't find a current promotion that answers this. Anything running is listed \
             in our newsletter and on the promotions page."
                .into(),
            "没有找到能回答这个问题的当前促销信息。正在进行的活动都会在会员通讯和促销页面公布。"
                .into(),
        )
    }

    pub(crate) fn confirm_subscribe(&self) -> String {
        self.pick(
            "Shall I subscribe you to our weekly newsletter (new products, tips and current \
             promotions)? Please reply \"yes\" to confirm."
                .into(),
            "要为您订阅每周会员通讯（新品、使用小贴士和当前促销）吗？请回复“确认”。".into(),
        )
    }

    pub(crate) fn confirm_unsubscribe(&self) -> String {
        self.pick(
            "Shall I unsubscribe you from our newsletter? Order and delivery e-mails will still \
             arrive. Please reply \"yes\" to confirm."
                .into(),
            "要为您退订会员通讯吗？订单和物流相关的邮件仍会照常发送。请回复“确认”。".into(),
        )
    }

    pub(crate) fn confirm_again(&self, subscribe: bool) -> String {
        let (en, zh) = if subscribe { ("subscribe", "订阅") } else { ("unsubscribe", "退订") };
        self.pick(
            format!("Sorry, I didn't catch that. Should I {en} you? Please answer yes or no."),
            format!("抱歉，我没明白。要为您{zh}吗？请回复“是”或“不”。"),
        )
    }

    pub(crate) fn subscribed(&self) -> String {
        if let Some(text) = self.overrides.text("subscribed", &[]) {
            return text;
        }
        self.pick(
            "Done: you're subscribed to our newsletter. You can unsubscribe at any time.".into(),
            "已为您订阅会员通讯，可随时退订。".into(),
        )
    }

    pub(crate) fn unsubscribed(&self) -> String {
        if let Some(text) = self.overrides.text("unsubscribed", &[]) {
            return text;
        }
        self.pick(
            "Done: you're unsubscribed from our newsletter. It takes effect within 2 business \
             days; order and delivery e-mails still arrive."
                .into(),
            "已为您退订会员通讯，2 个工作日内生效；订单和物流邮件仍会照常发送。".into(),
        )
    }

    pub(crate) fn unchanged(&self) -> String {
        self.pick(
            "Okay, I've left your newsletter setting as it is.".into(),
            "好的，您的通讯设置保持不变。".into(),
        )
    }

    pub(crate) fn already(&self, subscribed: bool) -> String {
        if subscribed {
            self.pick(
                "You're already subscribed to our newsletter.".into(),
                "您已经订阅了会员通讯。".into(),
            )
        } else {
            self.pick(
                "You're not subscribed to our newsletter, so you won't receive it.".into(),
                "您没有订阅会员通讯，不会收到通讯邮件。".into(),
            )
        }
    }

    pub(crate) fn status(&self, subscribed: bool) -> String {
        if subscribed {
            self.pick(
                "Yes, you're subscribed to our newsletter.".into(),
                "是的，您已订阅会员通讯。".into(),
            )
        } else {
            self.already(false)
        }
    }

    pub(crate) fn escalating(&self) -> String {
        if let Some(text) = self.overrides.text("escalating", &[]) {
            return text;
        }
        self.pick(
            "I'm passing this to a colleague who can help further; they'll reply here shortly."
                .into(),
            "我将为您转接同事进一步处理，他们很快会在这里回复您。".into(),
        )
    }
}
