#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The FAQ agent against the `kb_search` tool: the contract suite, grounded answers with
//! citations in English and Chinese, and escalation when the knowledge base has no answer.

use std::sync::Arc;

use fenliu_agent::test_utils::{AgentHarness, TurnResult, assert_agent_conformance, run_turn};
use fenliu_agent::{AgentReply, CustomerRef, CustomerTier, EscalationReason, Language, Route};
use fenliu_agent_faq::FaqAgent;
use fenliu_knowledge::test_utils::{RecordingRetriever, hit};
use fenliu_knowledge::{DynRetriever, Hit};
use fenliu_tool::{DynTool, ToolSet};
use fenliu_tools_knowledge::KbSearch;

fn customer() -> CustomerRef {
    CustomerRef {
        id: "noah_brown_6181".into(),
        name: "Noah Brown".into(),
        tier: CustomerTier::Regular,
        language: Language::En,
    }
}

fn tools(retriever: Arc<dyn DynRetriever>) -> ToolSet {
    let tool: Arc<dyn DynTool> = Arc::new(KbSearch::new(retriever));
    ToolSet::new(vec![tool]).unwrap()
}

fn zh_hit(text: &str, source: &str, section: &str) -> Hit {
    Hit { language: "zh".into(), ..hit(text, source, section, 0.6) }
}

fn demo_hits() -> Vec<Hit> {
    vec![
        hit(
            "Q: How long do I have to return an item?\nA: 30 days from the delivery date.",
            "data/demo/docs/faq.csv",
            "returns-policy › How long do I have to return an item?",
            0.8,
        ),
        hit(
            "You can return items within 30 days.",
            "data/demo/docs/returns-policy.en.md",
            "Returns, Exchanges and Refunds › Returning items",
            0.7,
        ),
        hit(
            "Exchanges follow the same rules.",
            "data/demo/docs/returns-policy.en.md",
            "Returns, Exchanges and Refunds › Exchanging items",
            0.6,
        ),
        hit(
            "Members get free express shipping.",
            "data/demo/docs/membership.en.md",
            "Membership Tiers › VIP benefits",
            0.5,
        ),
    ]
}

async fn turn(tools: &ToolSet, message: &str) -> TurnResult {
    run_turn(&FaqAgent::new(), tools, &customer(), message, &[], serde_json::Value::Null)
        .await
        .unwrap()
}

#[tokio::test]
async fn conforms_to_the_agent_contract() {
    let harness = AgentHarness {
        tools: tools(Arc::new(RecordingRetriever::with_hits(demo_hits()))),
        customer: customer(),
        forbidden_in_replies: vec!["system prompt:".into(), "#W2000001".into()],
        foreign_ids: vec!["#W2000001".into()],
    };
    assert_agent_conformance(&FaqAgent::new(), &harness).await;
    let empty =
        AgentHarness { tools: tools(Arc::new(RecordingRetriever::with_hits(vec![]))), ..harness };
    assert_agent_conformance(&FaqAgent::new(), &empty).await;
}

#[tokio::test]
async fn answers_quote_the_best_passage_and_cite_it() {
    let retriever = Arc::new(RecordingRetriever::with_hits(demo_hits()));
    let tools = tools(retriever.clone());
    let (reply, slots, calls) =
        turn(&tools, "How many days do I have to send something back?").await;
    assert_eq!(calls, vec!["kb_search"]);
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.starts_with("30 days from the delivery date."), "{text}");
    assert!(
        text.contains("(Source: faq.csv › returns-policy › How long do I have to return an item?)"),
        "{text}"
    );
    assert!(text.contains("See also: returns-policy.en.md › Returns, Exchanges and Refunds › Returning items; membership.en.md"), "{text}");
    assert!(!text.contains("data/demo"), "storage paths shown to the customer: {text}");
    assert_eq!(slots["citations"].as_array().unwrap().len(), 3);
    let q = &retriever.queries()[0];
    assert_eq!((q.language.as_deref(), q.top_k, q.tenant.as_str()), (Some("en"), 4, "test"));
}

#[tokio::test]
async fn chinese_questions_search_chinese_first_and_answer_in_chinese() {
    let retriever = Arc::new(RecordingRetriever::with_hits(vec![zh_hit(
        "Q: 退货期限是多久？\nA: 签收后 30 天内。",
        "data/demo/docs/faq.csv",
        "returns-policy › 退货期限是多久？",
    )]));
    let (reply, _, _) = turn(&tools(retriever.clone()), "退货政策是什么？").await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.starts_with("签收后 30 天内。"), "{text}");
    assert!(text.contains("（来源：faq.csv › returns-policy › 退货期限是多久？）"), "{text}");
    assert_eq!(retriever.queries()[0].language.as_deref(), Some("zh"));

    // Only an English passage exists: it is quoted, marked as such.
    let english_only = Arc::new(RecordingRetriever::with_hits(vec![hit(
        "Toggle airplane mode off.",
        "data/knowledge/telecom/tech_support_manual.md",
        "Airplane Mode",
        0.6,
    )]));
    let (reply, _, _) = turn(&tools(english_only), "手机没有信号怎么办").await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.starts_with("以下内容摘自我们的英文资料"), "{text}");
}

#[tokio::test]
async fn no_answer_escalates_instead_of_guessing() {
    let retriever = Arc::new(RecordingRetriever::with_hits(vec![]));
    let (reply, _, calls) = turn(&tools(retriever.clone()), "Do you sell used cars?").await;
    let AgentReply::Escalate(p) = reply else { panic!("{reply:?}") };
    assert_eq!(p.reason, EscalationReason::PolicyRequiresHuman);
    assert_eq!(p.route, Route::FAQ);
    assert!(p.message_to_customer.contains("don't cover that"), "{}", p.message_to_customer);
    assert!(!p.summary.contains("used cars"), "customer text echoed: {}", p.summary);
    assert_eq!(p.slots["question"], "Do you sell used cars?");
    // Searched in English, then in every language.
    assert_eq!(calls, vec!["kb_search", "kb_search"]);
    let langs: Vec<Option<String>> = retriever.queries().into_iter().map(|q| q.language).collect();
    assert_eq!(langs, vec![Some("en".into()), None]);

    let (reply, _, _) =
        turn(&tools(Arc::new(RecordingRetriever::failing())), "How long do refunds take?").await;
    let AgentReply::Escalate(p) = reply else { panic!("{reply:?}") };
    assert_eq!(p.reason, EscalationReason::ToolFailure);
}

#[tokio::test]
async fn empty_messages_ask_for_the_question_then_hand_over() {
    let tools = tools(Arc::new(RecordingRetriever::with_hits(demo_hits())));
    let agent = FaqAgent::new();
    let mut slots = serde_json::Value::Null;
    for _ in 0..2 {
        let (reply, s, calls) =
            run_turn(&agent, &tools, &customer(), " ?! ", &[], slots).await.unwrap();
        assert!(matches!(reply, AgentReply::AskSlot { .. }), "{reply:?}");
        assert!(calls.is_empty());
        slots = s;
    }
    let (reply, _, _) = run_turn(&agent, &tools, &customer(), "??", &[], slots).await.unwrap();
    assert!(
        matches!(reply, AgentReply::Escalate(ref p) if p.reason == EscalationReason::RepeatedFailure),
        "{reply:?}"
    );
}

#[tokio::test]
async fn operator_templates_replace_the_answer_and_no_answer_texts() {
    let settings = r#"
        [templates.en]
        answer = "{passage} [from {source}] [more: {see_also}]"
        no_answer = "We don't know that one yet; a colleague will follow up."
    "#;
    let run = |tools: ToolSet, message: &'static str| async move {
        fenliu_agent::test_utils::run_turn_with_settings(
            &FaqAgent::new(),
            &tools,
            &customer(),
            message,
            &[],
            serde_json::Value::Null,
            settings,
        )
        .await
        .unwrap()
    };
    let with_hits = tools(Arc::new(RecordingRetriever::with_hits(demo_hits())));
    let (reply, _, _) = run(with_hits, "How many days do I have to send something back?").await;
    let text = reply.customer_text().unwrap();
    assert!(
        text.starts_with("30 days from the delivery date. [from faq.csv › returns-policy"),
        "{text}"
    );
    assert!(text.contains("[more: returns-policy.en.md › "), "{text}");
    let empty = tools(Arc::new(RecordingRetriever::with_hits(vec![])));
    let (reply, _, _) = run(empty, "What is the airspeed of a swallow?").await;
    let AgentReply::Escalate(package) = reply else { panic!("{reply:?}") };
    assert_eq!(
        package.message_to_customer,
        "We don't know that one yet; a colleague will follow up."
    );
}
