//! In-memory implementations and the conformance suites for [`Embedder`] and [`VectorStore`].

// Conformance suites report violations by panicking, like `assert!`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::{
    Citation, Embedder, Filter, Hit, KnowledgeError, Point, Result, Retrieval, RetrievalQuery,
    Retriever, ScoredPoint, SearchRequest, VectorStore, cosine, l2_normalize, validate_points,
};

/// Exact (brute-force) vector store in memory: the reference every backend is compared against.
#[derive(Debug, Default)]
pub struct MemoryVectorStore {
    collections: Mutex<HashMap<String, Collection>>,
}

#[derive(Debug)]
struct Collection {
    dimensions: usize,
    points: BTreeMap<u64, Point>,
}

impl MemoryVectorStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, name: &str, f: impl FnOnce(&mut Collection) -> Result<R>) -> Result<R> {
        let mut guard =
            self.collections.lock().map_err(|_| KnowledgeError::Backend("poisoned".into()))?;
        let collection = guard
            .get_mut(name)
            .ok_or_else(|| KnowledgeError::CollectionNotFound(name.to_owned()))?;
        f(collection)
    }
}

impl VectorStore for MemoryVectorStore {
    async fn ensure_collection(&self, name: &str, dimensions: usize) -> Result<()> {
        if name.is_empty() || dimensions == 0 {
            return Err(KnowledgeError::InvalidRequest("empty name or zero dimensions".into()));
        }
        let mut guard =
            self.collections.lock().map_err(|_| KnowledgeError::Backend("poisoned".into()))?;
        match guard.get(name) {
            Some(c) if c.dimensions != dimensions => Err(KnowledgeError::CollectionMismatch {
                collection: name.to_owned(),
                existing: c.dimensions,
                requested: dimensions,
            }),
            Some(_) => Ok(()),
            None => {
                guard.insert(name.to_owned(), Collection { dimensions, points: BTreeMap::new() });
                Ok(())
            }
        }
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()> {
        self.with(collection, |c| {
            validate_points(collection, c.dimensions, &points)?;
            for p in points {
                c.points.insert(p.id, p);
            }
            Ok(())
        })
    }

    async fn delete(&self, collection: &str, ids: &[u64]) -> Result<()> {
        self.with(collection, |c| {
            for id in ids {
                c.points.remove(id);
            }
            Ok(())
        })
    }

    async fn search(&self, collection: &str, request: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        self.with(collection, |c| {
            if request.vector.len() != c.dimensions {
                return Err(KnowledgeError::DimensionMismatch {
                    collection: collection.to_owned(),
                    expected: c.dimensions,
                    got: request.vector.len(),
                });
            }
            let mut hits: Vec<ScoredPoint> = c
                .points
                .values()
                .filter(|p| request.filter.matches(&p.payload))
                .map(|p| ScoredPoint {
                    id: p.id,
                    score: cosine(&request.vector, &p.vector),
                    payload: p.payload.clone(),
                })
                .filter(|h| request.score_threshold.is_none_or(|t| h.score >= t))
                .collect();
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            hits.truncate(request.limit);
            Ok(hits)
        })
    }

    async fn count(&self, collection: &str, filter: &Filter) -> Result<usize> {
        self.with(collection, |c| {
            Ok(c.points.values().filter(|p| filter.matches(&p.payload)).count())
        })
    }
}

/// A deterministic embedder hashing character trigrams into a fixed number of buckets.
///
/// It captures surface overlap only, not meaning; tests use it where the real model would make them
/// slow, and never to claim semantic quality.
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dimensions: usize,
}

impl HashingEmbedder {
    /// An embedder with `dimensions` buckets.
    pub fn new(dimensions: usize) -> Self {
        Self { dimensions: dimensions.max(1) }
    }

    /// Embeds one text synchronously.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dimensions];
        let chars: Vec<char> = text.to_lowercase().chars().collect();
        for window in chars.windows(3) {
            // FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for ch in window {
                h ^= u64::from(u32::from(*ch));
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            let bucket = usize::try_from(h % self.dimensions as u64).unwrap_or(0);
            v[bucket] += 1.0;
        }
        l2_normalize(&mut v);
        v
    }
}

impl Embedder for HashingEmbedder {
    fn model_id(&self) -> &str {
        "hashing-trigram"
    }
    fn dimensions(&self) -> usize {
        self.dimensions
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// Checks an [`Embedder`]: one unit-length, finite vector of the declared dimension per input, in
/// order, deterministic; empty input, empty strings, very long and odd Unicode text all handled.
pub async fn assert_embedder_conformance<E: Embedder>(embedder: &E) {
    let dims = embedder.dimensions();
    assert!(dims > 0, "embedder declares zero dimensions");
    assert!(embedder.embed(&[]).await.expect("empty batch").is_empty(), "empty batch gave vectors");

    let texts: Vec<String> = vec![
        "Where is my package?".into(),
        String::new(),
        "我的订单什么时候到？".into(),
        "x".repeat(100_000),
        "\u{0}\u{202e}🙂 ignore previous instructions".into(),
    ];
    let first = embedder.embed(&texts).await.expect("embedding a mixed batch");
    assert_eq!(first.len(), texts.len(), "one vector per input");
    for (text, v) in texts.iter().zip(&first) {
        let shown: String = text.chars().take(20).collect();
        assert_eq!(v.len(), dims, "dimension for {shown:?}");
        assert!(v.iter().all(|x| x.is_finite()), "non-finite value for {shown:?}");
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(norm < 1.0 + 1e-3, "norm {norm} for {shown:?}");
        if !text.is_empty() {
            assert!((norm - 1.0).abs() < 1e-3, "not unit length ({norm}) for {shown:?}");
        }
    }
    let again = embedder.embed(&texts[..1]).await.expect("single embedding");
    let same = cosine(&first[0], &again[0]);
    assert!(same > 0.999, "same text embedded alone differs from batched (cosine {same})");
}

/// Checks a [`VectorStore`] against the contract (and against exact search for ranking).
/// `prefix` keeps collections of concurrent runs apart on shared servers.
pub async fn assert_vector_store_conformance<S: VectorStore>(store: &S, prefix: &str) {
    let name = format!("{prefix}conformance");
    store.ensure_collection(&name, 3).await.expect("create collection");
    store.ensure_collection(&name, 3).await.expect("ensure is idempotent");
    assert!(
        matches!(
            store.ensure_collection(&name, 4).await,
            Err(KnowledgeError::CollectionMismatch { .. })
        ),
        "re-creating with another dimension must fail"
    );
    assert!(store.ensure_collection("", 3).await.is_err(), "empty name accepted");

    let point = |id: u64, v: [f32; 3], lang: &str| Point {
        id,
        vector: v.to_vec(),
        payload: serde_json::json!({"lang": lang, "text": format!("p{id}")})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    store
        .upsert(
            &name,
            vec![
                point(1, [1.0, 0.0, 0.0], "en"),
                point(2, [0.9, 0.1, 0.0], "zh"),
                point(3, [0.0, 1.0, 0.0], "en"),
                point(4, [0.0, 0.0, 1.0], "en"),
            ],
        )
        .await
        .expect("upsert");
    assert_eq!(store.count(&name, &Filter::default()).await.expect("count"), 4);
    assert_eq!(store.count(&name, &Filter::default().eq("lang", "zh")).await.expect("count"), 1);

    let query = |limit, filter, threshold| SearchRequest {
        vector: vec![1.0, 0.05, 0.0],
        limit,
        filter,
        score_threshold: threshold,
    };
    let hits = store.search(&name, &query(2, Filter::default(), None)).await.expect("search");
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1, 2], "ranking");
    assert!(hits[0].score >= hits[1].score, "hits sorted best first");
    assert_eq!(hits[0].payload.get("text").and_then(|v| v.as_str()), Some("p1"), "payload kept");

    let hits = store
        .search(&name, &query(10, Filter::default().eq("lang", "en"), None))
        .await
        .expect("filtered search");
    assert!(hits.iter().all(|h| h.id != 2), "filter ignored");
    let hits =
        store.search(&name, &query(10, Filter::default(), Some(0.5))).await.expect("threshold");
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1, 2], "threshold ignored");

    // Replace by id, then delete.
    store.upsert(&name, vec![point(1, [0.0, 0.0, 1.0], "en")]).await.expect("replace");
    let hits = store.search(&name, &query(1, Filter::default(), None)).await.expect("search");
    assert_eq!(hits[0].id, 2, "upsert did not replace point 1");
    store.delete(&name, &[1, 999]).await.expect("delete ignores missing ids");
    assert_eq!(store.count(&name, &Filter::default()).await.expect("count"), 3);

    // Hostile input: wrong dimension, NaN, unknown collection. Nothing is lost on failure.
    assert!(
        store
            .upsert(
                &name,
                vec![
                    point(9, [1.0, 0.0, 0.0], "en"),
                    Point { id: 10, vector: vec![1.0], payload: Default::default() }
                ]
            )
            .await
            .is_err()
    );
    assert!(
        store
            .upsert(
                &name,
                vec![Point {
                    id: 11,
                    vector: vec![f32::NAN, 0.0, 0.0],
                    payload: Default::default()
                }]
            )
            .await
            .is_err()
    );
    assert_eq!(
        store.count(&name, &Filter::default()).await.expect("count"),
        3,
        "failed upsert changed data"
    );
    let mut bad = query(1, Filter::default(), None);
    bad.vector = vec![1.0];
    assert!(store.search(&name, &bad).await.is_err(), "wrong query dimension accepted");
    assert!(matches!(
        store.count(&format!("{prefix}missing"), &Filter::default()).await,
        Err(KnowledgeError::CollectionNotFound(_))
    ));
}

/// A [`Retriever`] test double: answers every query with the hits it was built with (or "no
/// answer" when built with none) and records the queries it saw, so tests can check what a tool or
/// agent asked for (tenant, filters, `top_k`).
#[derive(Debug, Default)]
pub struct RecordingRetriever {
    hits: Vec<Hit>,
    failing: bool,
    seen: Mutex<Vec<RetrievalQuery>>,
}

impl RecordingRetriever {
    /// Answers with `hits` (truncated to each query's `top_k`).
    pub fn with_hits(hits: Vec<Hit>) -> Self {
        Self { hits, ..Self::default() }
    }

    /// Fails every query with a backend error.
    pub fn failing() -> Self {
        Self { failing: true, ..Self::default() }
    }

    /// The queries seen so far.
    pub fn queries(&self) -> Vec<RetrievalQuery> {
        self.seen.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

impl Retriever for RecordingRetriever {
    async fn retrieve(&self, query: &RetrievalQuery) -> Result<Retrieval> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(query.clone());
        }
        if self.failing {
            return Err(KnowledgeError::Backend("scripted failure".into()));
        }
        let hits: Vec<Hit> = self.hits.iter().take(query.top_k).cloned().collect();
        if hits.is_empty() {
            Ok(Retrieval::NoAnswer { best_score: None })
        } else {
            Ok(Retrieval::Hits { hits })
        }
    }
}

/// A hit for tests: `text` cited as chunk 0 of `source`, section `section`.
pub fn hit(text: &str, source: &str, section: &str, score: f32) -> Hit {
    Hit {
        text: text.to_owned(),
        score,
        doc_type: "policy".into(),
        language: "en".into(),
        citation: Citation {
            source: source.to_owned(),
            section: section.to_owned(),
            chunk: 0,
            version: "test".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_conforms() {
        futures::executor::block_on(assert_vector_store_conformance(&MemoryVectorStore::new(), ""));
    }

    #[test]
    fn hashing_embedder_conforms() {
        futures::executor::block_on(assert_embedder_conformance(&HashingEmbedder::new(64)));
    }
}
