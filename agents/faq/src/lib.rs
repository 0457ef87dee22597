//! The FAQ specialist of fenliu.
//!
//! Owns the `faq` route: general questions about the shop — returns, refunds, shipping,
//! warranty, payments, accounts, membership, promotions, products — answered from the knowledge
//! base through the `kb_search` tool, never from the agent's own words. Each turn it:
//!
//! 1. asks what the customer wants to know when the message carries no question;
//! 2. searches the knowledge base in the customer's language, and in every language when that
//!    finds nothing (the telecom manual, for example, exists in English only);
//! 3. answers with the best passage (the answer part of a FAQ entry, a policy section, a product
//!    record) and its citation, plus up to two further sources;
//! 4. when retrieval says "no answer", says so honestly and returns [`AgentReply::Escalate`]
//!    (the question goes to a person instead of being guessed); a failing knowledge base
//!    escalates the same way.
//!
//! The policy is deterministic: no chat model is needed. The allow-list is `[kb_search]`.
//!
//! # Layout
//! - `lib.rs`: the agent, its slots and the turn logic.
//! - `templates.rs`: the customer-facing texts in English and Chinese.
//! - `phrases.rs`: the training phrases the supervisor learns the route from.

mod phrases;
mod templates;

use fenliu_agent::{
    Agent, AgentContext, AgentDescriptor, AgentError, AgentReply, EscalationPackage,
    EscalationReason, Language, Priority, Route, Sentiment,
};
use fenliu_knowledge::{Citation, Hit, Retrieval};
use fenliu_tool::{Tool, ToolError};
use fenliu_tools_knowledge::KbSearch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use templates::Texts;

/// What the FAQ agent remembers between turns (and hands to a person on escalation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct FaqSlots {
    /// The last question asked.
    pub question: Option<String>,
    /// Citations of the last answer.
    pub citations: Vec<Citation>,
    /// Turns in a row without a usable question.
    pub failed_turns: u8,
}

/// Longest part of a message used as the search query, in characters.
const MAX_QUERY_CHARS: usize = 500;
/// Longest passage quoted in an answer, in characters.
const MAX_PASSAGE_CHARS: usize = 900;
/// Turns without a question before the customer is handed to a person.
const MAX_FAILED_TURNS: u8 = 2;
/// Passages retrieved per question.
const TOP_K: u32 = 4;

/// The FAQ agent.
#[derive(Debug, Default, Clone)]
pub struct FaqAgent;

impl FaqAgent {
    /// The agent's id.
    pub const ID: &'static str = "faq";

    /// A new FAQ agent.
    pub fn new() -> Self {
        Self
    }
}

/// The query: the message without control characters, whitespace collapsed, cut to
/// [`MAX_QUERY_CHARS`].
fn clean(message: &str) -> String {
    let text: String = message
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .filter(|c| !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{feff}'))
        .collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(MAX_QUERY_CHARS).collect()
}

/// Whether the message has something to search for (a couple of words or Chinese characters).
fn has_question(text: &str) -> bool {
    let letters = text.chars().filter(|c| c.is_alphanumeric()).count();
    // Two Chinese characters already make a word ("退货"); Latin script needs a few letters.
    letters >= 3 || (letters >= 2 && Language::detect(text) == Language::Zh)
}

/// The part of a hit worth quoting: the answer of a Q&A pair, otherwise the passage, cut at a
/// line or sentence end.
fn passage(hit: &Hit) -> String {
    let text = match hit.text.split_once("\nA: ") {
        Some((_, answer)) if hit.text.starts_with("Q: ") => answer,
        _ => hit.text.as_str(),
    };
    if text.chars().count() <= MAX_PASSAGE_CHARS {
        return text.trim().to_owned();
    }
    let cut: String = text.chars().take(MAX_PASSAGE_CHARS).collect();
    let end = cut
        .rfind(['\n', '.', '。', '！', '？'])
        .map_or(cut.len(), |i| i + cut[i..].chars().next().map_or(1, char::len_utf8));
    format!("{} …", cut[..end].trim_end())
}

impl Agent for FaqAgent {
    type Slots = FaqSlots;

    fn descriptor(&self) -> AgentDescriptor {
        AgentDescriptor::new(
            Self::ID,
            vec![Route::FAQ],
            "Answers general questions about the shop from its documents, with the source: \
             return, exchange and refund rules, shipping options and costs, warranty coverage, \
             payment methods and gift cards, accounts and passwords, membership tiers, the \
             newsletter and current promotions, contact details and opening hours. Not for \
             actions on a specific order (order), repairs or returns of a faulty item \
             (after_sales), or complaints (complaint).",
            phrases::PHRASES,
            &[KbSearch::NAME],
        )
        .with_templates(templates::specs())
    }

    async fn handle(
        &self,
        ctx: &AgentContext<'_>,
        slots: &mut FaqSlots,
    ) -> Result<AgentReply, AgentError> {
        let t = Texts::for_turn(ctx);
        let question = clean(ctx.message);
        if !has_question(&question) {
            slots.failed_turns = slots.failed_turns.saturating_add(1);
            if slots.failed_turns > MAX_FAILED_TURNS {
                return Ok(self.escalate(
                    ctx,
                    slots,
                    EscalationReason::RepeatedFailure,
                    t.no_answer(),
                ));
            }
            return Ok(AgentReply::AskSlot { slot: "question".into(), text: t.ask_question() });
        }
        slots.failed_turns = 0;
        slots.question = Some(question.clone());
        slots.citations.clear();

        let language = Language::detect(&question);
        let search = |language: Option<&str>| {
            ctx.call::<KbSearch>(json!({
                "query": question,
                "language": language,
                "top_k": TOP_K,
            }))
        };
        let mut retrieval = search(Some(language.code())).await;
        if matches!(retrieval, Ok(Retrieval::NoAnswer { .. })) {
            retrieval = search(None).await;
        }
        let hits = match retrieval {
            Ok(Retrieval::Hits { hits }) if !hits.is_empty() => hits,
            Ok(_) => {
                return Ok(self.escalate(
                    ctx,
                    slots,
                    EscalationReason::PolicyRequiresHuman,
                    t.no_answer(),
                ));
            }
            Err(ToolError::InvalidArguments { .. }) => {
                slots.failed_turns = 1;
                return Ok(AgentReply::AskSlot { slot: "question".into(), text: t.ask_question() });
            }
            Err(_) => {
                return Ok(self.escalate(
                    ctx,
                    slots,
                    EscalationReason::ToolFailure,
                    t.unavailable(),
                ));
            }
        };
        let best = &hits[0];
        let mut see_also: Vec<Citation> = Vec::new();
        for h in &hits[1..] {
            let c = &h.citation;
            // One further passage per document: "see also" points to other documents.
            let new_place =
                c.source != best.citation.source && !see_also.iter().any(|s| s.source == c.source);
            if new_place && see_also.len() < 2 {
                see_also.push(c.clone());
            }
        }
        let translated = ctx.language == Language::Zh && best.language != "zh";
        let text = t.answer(&passage(best), &best.citation, &see_also, translated);
        slots.citations = std::iter::once(best.citation.clone()).chain(see_also).collect();
        Ok(AgentReply::Answer { text })
    }
}

impl FaqAgent {
    fn escalate(
        &self,
        ctx: &AgentContext<'_>,
        slots: &FaqSlots,
        reason: EscalationReason,
        message: String,
    ) -> AgentReply {
        let question = slots.question.clone().unwrap_or_default();
        AgentReply::Escalate(Box::new(EscalationPackage {
            reason,
            priority: Priority::Normal,
            route: Route::FAQ,
            language: ctx.language,
            agent: Self::ID.into(),
            // The question itself travels in the slots; the summary never echoes customer text,
            // which may carry injected instructions or other people's data.
            summary: format!(
                "{} ({} characters, in the slots): the knowledge base has no relevant passage.",
                if question.is_empty() { "No question asked" } else { "Customer question" },
                question.chars().count()
            ),
            slots: serde_json::to_value(slots).unwrap_or_default(),
            sentiment: Sentiment::Neutral,
            tools_tried: ctx.tool_calls(),
            message_to_customer: message,
        }))
    }
}

/// The agent's training phrases (EN + ZH), for tools that train the supervisor.
pub fn training_phrases() -> &'static [&'static str] {
    phrases::PHRASES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str) -> Hit {
        fenliu_knowledge::test_utils::hit(text, "data/demo/docs/faq.csv", "s", 0.5)
    }

    #[test]
    fn passages_quote_the_answer_and_stay_short() {
        assert_eq!(passage(&hit("Q: Can I cancel?\nA: Yes, if pending.")), "Yes, if pending.");
        assert_eq!(passage(&hit("Refunds take 5 days.")), "Refunds take 5 days.");
        let long = "Sentence one is here. ".repeat(100);
        let p = passage(&hit(&long));
        assert!(p.chars().count() <= MAX_PASSAGE_CHARS + 2 && p.ends_with(". …"), "{p}");
        let zh = "退款会在五到七个工作日内到账。".repeat(100);
        assert!(passage(&hit(&zh)).ends_with("。 …"));
    }

    #[test]
    fn queries_are_cleaned_and_bounded() {
        assert_eq!(clean("  what\u{202e} is\n\tthis?\u{0} "), "what is this?");
        assert_eq!(clean(&"a".repeat(10_000)).len(), MAX_QUERY_CHARS);
        assert!(!has_question(" ?! "));
        assert!(has_question("退货？"));
    }
}
