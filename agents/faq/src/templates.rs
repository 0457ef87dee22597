//! Customer-facing texts of the FAQ agent, in English and Chinese.
//!
//! Answers quote the knowledge base and name their source; the agent never adds facts of its own.

use fenliu_agent::settings::TemplateOverrides;
use fenliu_agent::{AgentContext, Language, TemplateSpec};
use fenliu_knowledge::Citation;

/// The texts operators may replace in `config/agents/faq.toml`.
pub(crate) fn specs() -> Vec<TemplateSpec> {
    vec![
        TemplateSpec::new("ask_question", &[], "asks what the customer wants to know"),
        TemplateSpec::new(
            "answer",
            &["passage", "source", "see_also"],
            "an answer quoted from the knowledge base with its source (`see_also` may be empty)",
        ),
        TemplateSpec::new("no_answer", &[], "the documents do not cover the question"),
        TemplateSpec::new("unavailable", &[], "the knowledge base cannot be searched"),
    ]
}

/// Texts in one language.
pub(crate) struct Texts {
    zh: bool,
    overrides: TemplateOverrides,
}

/// The citation as customers see it: file name and section, without the storage path.
pub(crate) fn shown(c: &Citation) -> String {
    let file = c.source.rsplit('/').next().unwrap_or(&c.source);
    if c.section.is_empty() { file.to_owned() } else { format!("{file} › {}", c.section) }
}

impl Texts {
    /// The texts of this turn: its language, and the operator's overrides.
    pub(crate) fn for_turn(ctx: &AgentContext<'_>) -> Self {
        Self { zh: ctx.language == Language::Zh, overrides: ctx.overrides() }
    }

    pub(crate) fn ask_question(&self) -> String {
        if let Some(text) = self.overrides.text("ask_question", &[]) {
            return text;
        }
        if self.zh {
            "请问您想了解哪方面的信息？例如退货、配送、保修或支付。".into()
        } else {
            "What would you like to know? For example about returns, delivery, warranty or payments."
                .into()
        }
    }

    /// The answer: the passage, then where it comes from (and where else to read on).
    pub(crate) fn answer(
        &self,
        passage: &str,
        source: &Citation,
        see_also: &[Citation],
        translated_from_en: bool,
    ) -> String {
        let mut out = String::new();
        if translated_from_en && self.zh {
            out.push_str("以下内容摘自我们的英文资料：\n");
        }
        let more: Vec<String> = see_also.iter().map(shown).collect();
        if let Some(text) = self.overrides.text(
            "answer",
            &[
                ("passage", &passage),
                ("source", &shown(source)),
                ("see_also", &more.join(if self.zh { "；" } else { "; " })),
            ],
        ) {
            return out + &text;
        }
        out.push_str(passage);
        if self.zh {
            out.push_str(&format!("\n\n（来源：{}）", shown(source)));
            if !more.is_empty() {
                out.push_str(&format!("\n另见：{}", more.join("；")));
            }
        } else {
            out.push_str(&format!("\n\n(Source: {})", shown(source)));
            if !more.is_empty() {
                out.push_str(&format!("\nSee also: {}", more.join("; ")));
            }
        }
        out
    }

    pub(crate) fn no_answer(&self) -> String {
        if let Some(text) = self.overrides.text("no_answer", &[]) {
            return text;
        }
        if self.zh {
            "抱歉，我们的资料里没有这个问题的可靠答案，我不想给您不准确的信息。已将您的问题转给同事，他们会尽快答复您。"
                .into()
        } else {
            "I'm sorry, our documents don't cover that, and I'd rather not guess. I've passed your \
             question to a colleague, who will get back to you."
                .into()
        }
    }

    pub(crate) fn unavailable(&self) -> String {
        if let Some(text) = self.overrides.text("unavailable", &[]) {
            return text;
        }
        if self.zh {
            "抱歉，我暂时无法查询资料库。已将您的问题转给同事，他们会尽快答复您。".into()
        } else {
            "I'm sorry, I can't look this up right now. I've passed your question to a colleague, \
             who will get back to you."
                .into()
        }
    }
}
