//! Ingestion semantics: updates, removals, deduplication, hostile files, tenants, restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fenliu_knowledge::test_utils::{HashingEmbedder, MemoryVectorStore};
use fenliu_knowledge::{Retrieval, RetrievalQuery, Retriever};
use fenliu_knowledge_base::{FileStatus, IngestError, IngestOptions, KbConfig, KnowledgeBase};
use fenliu_knowledge_edge::{EdgeOptions, EdgeStore};

async fn kb_in(
    store: Arc<dyn fenliu_knowledge::DynVectorStore>,
    catalog: Option<PathBuf>,
) -> KnowledgeBase {
    let config = KbConfig { min_similarity: 0.3, ..KbConfig::default() };
    KnowledgeBase::open(Arc::new(HashingEmbedder::new(256)), store, config, catalog).await.unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn top(kb: &KnowledgeBase, tenant: &str, q: &str) -> Retrieval {
    kb.retrieve(&RetrievalQuery::new(tenant, q)).await.unwrap()
}

fn status_of<'a>(reports: &'a [fenliu_knowledge_base::FileReport], name: &str) -> &'a FileStatus {
    &reports
        .iter()
        .find(|r| r.source.ends_with(name))
        .unwrap_or_else(|| panic!("no report for {name}"))
        .status
}

#[tokio::test]
async fn reingest_replaces_edited_documents_and_removes_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    write(
        &docs.join("returns.en.md"),
        "# Returns\n\n## Window\n\nYou can return items within 30 days of delivery.\n\n## Refunds\n\nRefunds take 5 to 7 business days.\n",
    );
    write(&docs.join("shipping.en.md"), "# Shipping\n\nStandard shipping takes 3 to 7 days.\n");
    let kb = kb_in(Arc::new(MemoryVectorStore::new()), None).await;
    let opts = IngestOptions::new("demo");
    let mut seen = 0;
    let reports = kb.ingest(std::slice::from_ref(&docs), &opts, |_| seen += 1).await.unwrap();
    assert_eq!(seen, 2);
    assert!(reports.iter().all(|r| r.status == FileStatus::Added), "{reports:?}");
    let hits = top(&kb, "demo", "return items within 30 days of delivery").await;
    let first = &hits.hits()[0];
    assert!(first.citation.source.ends_with("returns.en.md"));
    assert_eq!(first.citation.section, "Returns › Window");
    assert_eq!(first.language, "en");

    // Unchanged documents are skipped.
    let reports = kb.ingest(std::slice::from_ref(&docs), &opts, |_| {}).await.unwrap();
    assert!(reports.iter().all(|r| r.status == FileStatus::Unchanged && r.embedded == 0));

    // Edit one section: its old chunk goes, the new one is found; the untouched one is kept.
    write(
        &docs.join("returns.en.md"),
        "# Returns\n\n## Window\n\nYou can return items within 60 days of delivery, no questions asked.\n\n## Refunds\n\nRefunds take 5 to 7 business days.\n",
    );
    std::fs::remove_file(docs.join("shipping.en.md")).unwrap();
    let reports = kb.ingest(std::slice::from_ref(&docs), &opts, |_| {}).await.unwrap();
    assert_eq!(status_of(&reports, "returns.en.md"), &FileStatus::Updated);
    let updated = reports.iter().find(|r| r.source.ends_with("returns.en.md")).unwrap();
    assert_eq!((updated.embedded, updated.removed), (1, 1), "{updated:?}");
    assert_eq!(status_of(&reports, "shipping.en.md"), &FileStatus::Removed);

    let chunks =
        kb.chunks_of("demo", &fenliu_knowledge_base::source_name(&docs.join("returns.en.md")));
    assert!(chunks.iter().any(|c| c.text.contains("60 days")));
    assert!(!chunks.iter().any(|c| c.text.contains("30 days")), "old chunk kept");
    let hits = top(&kb, "demo", "return items within 60 days of delivery").await;
    assert!(hits.hits()[0].text.contains("60 days"));
    assert!(
        !kb.retrieve(&RetrievalQuery {
            top_k: 50,
            ..RetrievalQuery::new("demo", "standard shipping 3 to 7 days")
        })
        .await
        .unwrap()
        .hits()
        .iter()
        .any(|h| h.citation.source.ends_with("shipping.en.md")),
        "removed document still searchable"
    );
    let stats = kb.stats().await.unwrap();
    assert_eq!((stats.documents, stats.chunks, stats.vectors), (1, 2, 2));
}

#[tokio::test]
async fn bad_files_fail_alone_and_duplicates_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("good.md"), "# Good\n\nGift cards never expire.\n");
    write(&d.join("copy-of-good.md"), "# Good\n\nGift cards never expire.\n");
    write(&d.join("empty.md"), "");
    write(&d.join("faq.csv"), "question,answer\n\"unterminated,x\n");
    write(&d.join("catalogue.json"), "{\"not\": [\"a catalogue\"]}");
    std::fs::write(d.join("garbage.txt"), [0x89u8, 0x50, 0x4e, 0x47, 0, 0, 0xff, 0xfe]).unwrap();
    std::fs::write(d.join("latin1.txt"), b"caf\xe9 au lait").unwrap();
    // 50 MB of text: refused by size before it is read.
    let big = d.join("big.txt");
    std::fs::write(&big, "lorem ipsum dolor sit amet. ".repeat(50 * 1024 * 1024 / 28)).unwrap();
    let kb = kb_in(Arc::new(MemoryVectorStore::new()), None).await;
    let reports = kb
        .ingest(
            &[d.to_owned(), d.join("missing.md"), d.join("notes.pdf")],
            &IngestOptions::new("demo"),
            |_| {},
        )
        .await
        .unwrap();
    // Walked in name order: the copy comes first, the original is its duplicate.
    assert_eq!(status_of(&reports, "copy-of-good.md"), &FileStatus::Added);
    assert!(
        matches!(status_of(&reports, "/good.md"), FileStatus::Duplicate { of } if of.ends_with("copy-of-good.md"))
    );
    assert_eq!(status_of(&reports, "empty.md"), &FileStatus::Failed(IngestError::Empty));
    assert!(matches!(
        status_of(&reports, "faq.csv"),
        FileStatus::Failed(IngestError::Malformed(_))
    ));
    assert!(matches!(
        status_of(&reports, "catalogue.json"),
        FileStatus::Failed(IngestError::Malformed(_))
    ));
    assert_eq!(status_of(&reports, "garbage.txt"), &FileStatus::Failed(IngestError::Binary));
    assert!(matches!(
        status_of(&reports, "latin1.txt"),
        FileStatus::Failed(IngestError::NotUtf8 { offset: 3 })
    ));
    assert!(matches!(
        status_of(&reports, "big.txt"),
        FileStatus::Failed(IngestError::TooLarge { .. })
    ));
    assert!(matches!(status_of(&reports, "missing.md"), FileStatus::Failed(IngestError::Io(_))));
    assert_eq!(
        status_of(&reports, "notes.pdf"),
        &FileStatus::Failed(IngestError::Io("no such file or directory".into()))
    );
    assert_eq!(kb.stats().await.unwrap().documents, 1);

    // A document that breaks later keeps its previous version.
    write(&d.join("copy-of-good.md"), "");
    let reports =
        kb.ingest(&[d.join("copy-of-good.md")], &IngestOptions::new("demo"), |_| {}).await.unwrap();
    assert_eq!(status_of(&reports, "copy-of-good.md"), &FileStatus::Failed(IngestError::Empty));
    assert_eq!(top(&kb, "demo", "gift cards never expire").await.hits().len(), 1);
}

#[tokio::test]
async fn tenants_and_filters_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("a/policy.en.md"),
        "# Policy\n\nShop A ships parcels on Mondays only.\n",
    );
    write(&dir.path().join("b/policy.zh.md"), "# 政策\n\n乙店只在周一发货。\n");
    let kb = kb_in(Arc::new(MemoryVectorStore::new()), None).await;
    kb.ingest(&[dir.path().join("a")], &IngestOptions::new("shop-a"), |_| {}).await.unwrap();
    kb.ingest(&[dir.path().join("b")], &IngestOptions::new("shop-b"), |_| {}).await.unwrap();
    for q in ["ships parcels on Mondays", "周一发货"] {
        for hit in top(&kb, "shop-a", q).await.hits() {
            assert!(hit.citation.source.contains("/a/"), "shop-b leaked into shop-a: {hit:?}");
        }
    }
    assert!(matches!(
        top(&kb, "shop-c", "ships parcels on Mondays").await,
        Retrieval::NoAnswer { .. }
    ));
    let zh = kb
        .retrieve(&RetrievalQuery {
            language: Some("en".into()),
            ..RetrievalQuery::new("shop-b", "周一发货")
        })
        .await
        .unwrap();
    assert!(zh.hits().is_empty(), "language filter ignored");
    let hits = top(&kb, "shop-b", "周一发货").await;
    assert_eq!(hits.hits()[0].language, "zh");
    // Hostile queries are refused with a typed error.
    for bad in [
        RetrievalQuery::new("shop-a", "  "),
        RetrievalQuery::new("shop-a", "x".repeat(10_000)),
        RetrievalQuery { top_k: 0, ..RetrievalQuery::new("shop-a", "q") },
        RetrievalQuery::new("", "q"),
    ] {
        assert!(kb.retrieve(&bad).await.is_err());
    }
}

#[tokio::test]
async fn the_knowledge_base_survives_a_restart_on_qdrant_edge() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    write(
        &docs.join("warranty.en.md"),
        "# Warranty\n\n## Electronics\n\nLaptops have a 24 month warranty.\n",
    );
    let catalog = dir.path().join("kb/catalog.json");
    let vectors = dir.path().join("kb/vectors");
    {
        let store = Arc::new(EdgeStore::open(&vectors, EdgeOptions::default()).unwrap());
        let kb = kb_in(store, Some(catalog.clone())).await;
        kb.ingest(std::slice::from_ref(&docs), &IngestOptions::new("demo"), |_| {}).await.unwrap();
    }
    {
        let store = Arc::new(EdgeStore::open(&vectors, EdgeOptions::default()).unwrap());
        // One process at a time: a second open of the same directory is refused.
        let kb = kb_in(store, Some(catalog.clone())).await;
        let again = EdgeStore::open(&vectors, EdgeOptions::default()).unwrap();
        let err = fenliu_knowledge::VectorStore::count(&again, "kb", &Default::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("in use by another process"), "{err}");
        let hits = top(&kb, "demo", "laptop 24 month warranty").await;
        assert_eq!(hits.hits()[0].citation.section, "Warranty › Electronics");
        let reports = kb
            .ingest(std::slice::from_ref(&docs), &IngestOptions::new("demo"), |_| {})
            .await
            .unwrap();
        assert_eq!(reports[0].status, FileStatus::Unchanged);
    }

    // Vectors lost (a new backend directory): the next ingest re-embeds instead of trusting the
    // catalogue.
    {
        let store =
            Arc::new(EdgeStore::open(dir.path().join("kb/other"), EdgeOptions::default()).unwrap());
        let kb = kb_in(store, Some(catalog.clone())).await;
        let reports = kb.ingest(&[docs], &IngestOptions::new("demo"), |_| {}).await.unwrap();
        assert_eq!((reports[0].status.clone(), reports[0].embedded), (FileStatus::Updated, 1));
        assert_eq!(kb.stats().await.unwrap().vectors, 1);
    }

    // A corrupt catalogue is a clear error, not an empty knowledge base.
    std::fs::write(&catalog, b"{not json").unwrap();
    let store = Arc::new(EdgeStore::open(&vectors, EdgeOptions::default()).unwrap());
    let err = KnowledgeBase::open(
        Arc::new(HashingEmbedder::new(256)),
        store,
        KbConfig::default(),
        Some(catalog),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("catalog"), "{err}");
}
