#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedded store against the shared contract, across restarts, and with HNSW built.

use fenliu_knowledge::test_utils::{MemoryVectorStore, assert_vector_store_conformance};
use fenliu_knowledge::{Filter, KnowledgeError, Point, SearchRequest, VectorStore, l2_normalize};
use fenliu_knowledge_edge::{EdgeOptions, EdgeStore};

fn point(id: u64, seed: u64, dims: usize, tenant: &str) -> Point {
    // A deterministic pseudo-random unit vector (xorshift).
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    l2_normalize(&mut v);
    let payload = serde_json::json!({"tenant": tenant, "text": format!("p{id}")});
    Point { id, vector: v, payload: payload.as_object().cloned().unwrap() }
}

#[tokio::test]
async fn conforms_to_the_vector_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(dir.path(), EdgeOptions::default()).unwrap();
    assert_vector_store_conformance(&store, "").await;
}

#[tokio::test]
async fn data_survives_a_restart_and_backups_restore() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vectors");
    {
        let store = EdgeStore::open(&root, EdgeOptions::default()).unwrap();
        store.ensure_collection("kb", 8).await.unwrap();
        let points = (0..50).map(|i| point(i, i, 8, if i % 2 == 0 { "a" } else { "b" })).collect();
        store.upsert("kb", points).await.unwrap();
        store.delete("kb", &[0, 1]).await.unwrap();
        store.backup(&dir.path().join("backup")).unwrap();
        assert!(store.backup(&dir.path().join("backup")).is_err(), "backup overwrote a target");
    }
    for path in [root, dir.path().join("backup")] {
        let store = EdgeStore::open(&path, EdgeOptions::default()).unwrap();
        // No ensure_collection: collections on disk open on first use.
        assert_eq!(store.count("kb", &Filter::default()).await.unwrap(), 48);
        assert_eq!(store.count("kb", &Filter::default().eq("tenant", "a")).await.unwrap(), 24);
        let q = point(7, 7, 8, "b");
        let hits = store
            .search(
                "kb",
                &SearchRequest {
                    vector: q.vector,
                    limit: 1,
                    filter: Filter::default(),
                    score_threshold: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(hits[0].id, 7);
        assert!((hits[0].score - 1.0).abs() < 1e-4);
        assert!(matches!(
            store.ensure_collection("kb", 9).await,
            Err(KnowledgeError::CollectionMismatch { existing: 8, .. })
        ));
    }
}

#[tokio::test]
async fn hnsw_search_agrees_with_exact_search() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny indexing threshold so that HNSW really is built for 3,000 points.
    let options =
        EdgeOptions { indexing_threshold_kb: 10, optimize_after: 0, ..EdgeOptions::default() };
    let store = EdgeStore::open(dir.path(), options).unwrap();
    let reference = MemoryVectorStore::new();
    let dims = 32;
    store.ensure_collection("kb", dims).await.unwrap();
    reference.ensure_collection("kb", dims).await.unwrap();
    let points: Vec<Point> =
        (0..3_000).map(|i| point(i, i + 1, dims, if i % 3 == 0 { "a" } else { "b" })).collect();
    store.upsert("kb", points.clone()).await.unwrap();
    reference.upsert("kb", points).await.unwrap();
    assert!(store.optimize("kb").unwrap(), "nothing optimised");
    let (count, indexed) = store.info("kb").unwrap();
    assert_eq!(count, 3_000);
    assert!(indexed > 0, "no HNSW index was built");
    let (mut found, mut total) = (0, 0);
    for q in 0..30u64 {
        for filter in [Filter::default(), Filter::default().eq("tenant", "a")] {
            let request = SearchRequest {
                vector: point(0, 10_000 + q, dims, "").vector,
                limit: 10,
                filter,
                score_threshold: None,
            };
            let exact: Vec<u64> =
                reference.search("kb", &request).await.unwrap().iter().map(|h| h.id).collect();
            let got: Vec<u64> =
                store.search("kb", &request).await.unwrap().iter().map(|h| h.id).collect();
            let exact_edge: Vec<u64> =
                store.search_exact("kb", &request).unwrap().iter().map(|h| h.id).collect();
            assert_eq!(exact_edge, exact, "exact search differs from the reference");
            found += got.iter().filter(|id| exact.contains(id)).count();
            total += exact.len();
        }
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.95, "recall@10 {recall:.3}");
}
