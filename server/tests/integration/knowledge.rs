//! The knowledge base through the HTTP API: FAQ questions answered with citations in English and
//! Chinese, "no answer" handed to a person, and the knowledge base kept across a restart.

use fenliu_server::config::Config;
use fenliu_server::runtime::Runtime;

use super::{Server, test_config, workspace};

fn seeded(config: &mut Config) {
    config.knowledge.seed = vec![
        workspace().join("data/demo/docs"),
        workspace().join("data/demo/products.json"),
        workspace().join("data/knowledge/telecom"),
    ];
}

#[tokio::test]
async fn faq_questions_get_grounded_answers_with_citations() {
    let s = Server::start_with(seeded).await;
    let r = s.say("james_li_5688", "What is your return policy?", None).await;
    assert_eq!(r.route, "faq", "{:?}", r.decision);
    assert_eq!(r.agent.as_deref(), Some("faq"));
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].name, "kb_search");
    assert!(r.reply.contains("30 days"), "{}", r.reply);
    assert!(r.reply.contains("(Source: "), "{}", r.reply);
    assert!(r.reply.contains("returns-policy") || r.reply.contains("faq.csv"), "{}", r.reply);

    let r = s.say("james_li_5688", "退货政策是什么？", None).await;
    assert_eq!(r.route, "faq", "{:?}", r.decision);
    assert!(r.reply.contains("（来源："), "{}", r.reply);
    assert!(r.reply.contains("30 天"), "{}", r.reply);
}

#[tokio::test]
async fn the_knowledge_base_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    seeded(&mut config);
    let first = Runtime::build(&config).await.unwrap();
    let stats = first.knowledge.stats().await.unwrap();
    assert_eq!(stats.documents, 21);
    assert!(stats.chunks > 100 && stats.vectors == stats.chunks, "{stats:?}");
    drop(first);
    // Without a seed: everything must come from disk.
    config.knowledge.seed = Vec::new();
    let second = Runtime::build(&config).await.unwrap();
    assert_eq!(second.knowledge.stats().await.unwrap(), stats);
}
