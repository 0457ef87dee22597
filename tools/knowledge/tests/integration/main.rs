#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kb_search` against the tool contract: conformance, tenant scoping, validation, failures.

use std::sync::Arc;

use fenliu_knowledge::test_utils::{RecordingRetriever, hit};
use fenliu_tool::test_utils::assert_tool_conformance;
use fenliu_tool::{DynTool, ToolContext, ToolError};
use fenliu_tools_knowledge::KbSearch;
use serde_json::json;

fn ctx(tenant: &str) -> ToolContext {
    ToolContext {
        tenant: tenant.into(),
        customer_id: "noah_brown_6181".into(),
        conversation_id: "c-1".into(),
    }
}

fn retriever() -> Arc<RecordingRetriever> {
    Arc::new(RecordingRetriever::with_hits(vec![
        hit("Refunds take 5 to 7 business days.", "returns-policy.en.md", "Refunds", 0.72),
        hit("Returns within 30 days.", "returns-policy.en.md", "Returning items", 0.65),
    ]))
}

#[tokio::test]
async fn conforms_to_the_tool_contract() {
    let tool = KbSearch::new(retriever());
    assert_tool_conformance(
        &tool,
        &ctx("demo"),
        &[
            json!({"query": "refund"}),
            json!({"query": "退货政策", "language": "zh", "doc_type": "policy", "top_k": 3}),
            json!({"query": "refund", "doc_type": null, "language": null, "top_k": null}),
        ],
    )
    .await;
}

#[tokio::test]
async fn hits_carry_citations_and_respect_top_k() {
    let tool = KbSearch::new(retriever());
    let out = tool.call_json(&ctx("demo"), json!({"query": "refund", "top_k": 1})).await.unwrap();
    assert_eq!(out["status"], "hits");
    assert_eq!(out["hits"].as_array().unwrap().len(), 1);
    assert_eq!(out["hits"][0]["citation"]["source"], "returns-policy.en.md");
    assert_eq!(out["hits"][0]["citation"]["section"], "Refunds");
}

#[tokio::test]
async fn the_tenant_comes_from_the_context_never_the_arguments() {
    let r = retriever();
    let tool = KbSearch::new(r.clone());
    tool.call_json(&ctx("shop-a"), json!({"query": "refund", "language": " ZH "})).await.unwrap();
    let err = tool
        .call_json(&ctx("shop-a"), json!({"query": "refund", "tenant": "shop-b"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::InvalidArguments { .. }), "{err:?}");
    let seen = r.queries();
    assert_eq!(seen.len(), 1, "the hostile call must not reach the retriever");
    assert_eq!(seen[0].tenant, "shop-a");
    assert_eq!(seen[0].language.as_deref(), Some("zh"));
    assert_eq!(seen[0].top_k, 5);
}

#[tokio::test]
async fn hostile_arguments_are_refused_before_searching() {
    let r = retriever();
    let tool = KbSearch::new(r.clone());
    for args in [
        json!({"query": ""}),
        json!({"query": "   "}),
        json!({"query": "x".repeat(100_000)}),
        json!({"query": "refund", "top_k": 0}),
        json!({"query": "refund", "top_k": 1000}),
        json!({"query": "refund", "top_k": -1}),
        json!({"query": "refund", "doc_type": "policy\"; drop table"}),
        json!({"query": "refund", "language": "x".repeat(500)}),
        json!({"query": 42}),
        json!("refund"),
    ] {
        let shown: String = args.to_string().chars().take(60).collect();
        let err = tool.call_json(&ctx("demo"), args).await.unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments { .. }), "{shown}: {err:?}");
    }
    assert!(r.queries().is_empty(), "invalid calls reached the retriever");
}

#[tokio::test]
async fn no_answer_and_backend_failures_are_distinct() {
    let empty = KbSearch::new(Arc::new(RecordingRetriever::with_hits(vec![])));
    let out = empty.call_json(&ctx("demo"), json!({"query": "quantum physics"})).await.unwrap();
    assert_eq!(out["status"], "no_answer");

    let failing = KbSearch::new(Arc::new(RecordingRetriever::failing()));
    let err = failing.call_json(&ctx("demo"), json!({"query": "refund"})).await.unwrap_err();
    assert!(matches!(err, ToolError::Unavailable { .. }), "{err:?}");
    assert!(err.needs_escalation());
    assert!(!err.to_string().contains("scripted"), "backend details leaked: {err}");
}
