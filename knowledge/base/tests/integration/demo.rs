//! The demo shop's knowledge with the real MiniLM model on qdrant-edge: grounded answers with
//! citations, "no answer" for uncovered questions, and hit@5 on the labelled question set.

use std::path::PathBuf;
use std::sync::Arc;

use fenliu_knowledge::{Retrieval, RetrievalQuery, Retriever};
use fenliu_knowledge_base::eval::{evaluate, load_questions};
use fenliu_knowledge_base::{FileStatus, IngestOptions, KbConfig, KnowledgeBase};
use fenliu_knowledge_edge::{EdgeOptions, EdgeStore};
use fenliu_models::{MiniLmEmbedder, MiniLmOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn demo_kb(dir: &std::path::Path) -> KnowledgeBase {
    let models = std::env::var_os("FENLIU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"));
    let embedder =
        MiniLmEmbedder::load(&models.join(MiniLmEmbedder::DIR_NAME), MiniLmOptions::default())
            .unwrap_or_else(|e| {
                panic!("{e} (the test suite runs scripts/setup.sh first: `make test`)")
            });
    let store = Arc::new(EdgeStore::open(dir.join("vectors"), EdgeOptions::default()).unwrap());
    let kb = KnowledgeBase::open(
        Arc::new(embedder),
        store,
        KbConfig::default(),
        Some(dir.join("catalog.json")),
    )
    .await
    .unwrap();
    let paths = [
        root().join("data/demo/docs"),
        root().join("data/demo/products.json"),
        root().join("data/knowledge/telecom"),
    ];
    let reports = kb.ingest(&paths, &IngestOptions::new("demo"), |_| {}).await.unwrap();
    let failed: Vec<_> =
        reports.iter().filter(|r| matches!(r.status, FileStatus::Failed(_))).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(reports.len(), 21, "18 policies, the FAQ, the catalogue and the manual");
    kb
}

#[tokio::test]
async fn demo_questions_are_answered_from_the_right_section_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let kb = demo_kb(dir.path()).await;

    let answer =
        kb.retrieve(&RetrievalQuery::new("demo", "What is your return policy?")).await.unwrap();
    let first = answer.hits().first().expect("an answer");
    assert!(
        first.citation.source.ends_with("returns-policy.en.md")
            || first.citation.source.ends_with("faq.csv"),
        "{first:?}"
    );
    assert!(answer.hits().iter().any(|h| h.citation.source.ends_with("returns-policy.en.md")
        && h.citation.section.starts_with("Returns, Exchanges and Refunds")));

    let zh = kb.retrieve(&RetrievalQuery::new("demo", "退货政策是什么？")).await.unwrap();
    assert!(
        zh.hits().iter().take(3).any(|h| h.citation.source.ends_with("returns-policy.zh.md")
            || (h.citation.source.ends_with("faq.csv") && h.language == "zh")),
        "{zh:?}"
    );

    let uncovered = kb
        .retrieve(&RetrievalQuery::new("demo", "What is the capital of Australia?"))
        .await
        .unwrap();
    assert!(matches!(uncovered, Retrieval::NoAnswer { .. }), "{uncovered:?}");

    let manual = kb
        .retrieve(&RetrievalQuery {
            doc_type: Some("manual".into()),
            ..RetrievalQuery::new("demo", "I cannot send picture messages")
        })
        .await
        .unwrap();
    assert!(manual.hits().iter().all(|h| h.doc_type == "manual"));
    assert!(
        manual.hits().iter().take(3).any(|h| h.citation.section.contains("Troubleshooting MMS")),
        "{:?}",
        manual.hits()
    );
}

#[tokio::test]
async fn labelled_questions_hit_at_5() {
    let dir = tempfile::tempdir().unwrap();
    let kb = demo_kb(dir.path()).await;
    let questions = load_questions(&root().join("data/knowledge/questions.jsonl")).unwrap();
    assert!(questions.iter().filter(|q| q.sources.is_some()).count() >= 50);
    let report = evaluate(&kb, "demo", &questions, 5).await.unwrap();
    for r in &report.results {
        eprintln!(
            "{} {:?} → first {:?} (dense {:?}, coverage {:?}, no answer {})",
            if r.correct() { "ok  " } else { "MISS" },
            r.question.question,
            r.first,
            r.best_dense,
            r.best_coverage,
            r.no_answer
        );
    }
    let (hits, n) = report.hits(None);
    let (na, un) = report.no_answers();
    eprintln!(
        "hit@5 {hits}/{n} = {:.3} (en {:.3}, zh {:.3}); no answer for uncovered {na}/{un}",
        report.hit_rate(None),
        report.hit_rate(Some("en")),
        report.hit_rate(Some("zh"))
    );
    assert!(report.hit_rate(None) >= 0.9, "hit@5 {:.3}", report.hit_rate(None));
    assert!(na * 4 >= un * 3, "uncovered questions answered: {na}/{un}");
}
