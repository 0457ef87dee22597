//! Knowledge contracts of fenliu: turning text into vectors and finding the nearest ones.
//!
//! This crate owns the two traits the knowledge base is built from and the types they exchange:
//!
//! - [`Embedder`] (+ object-safe [`DynEmbedder`]): text → L2-normalised vectors. Implementations
//!   live in `fenliu-models` (local MiniLM on candle, OpenAI-compatible embeddings).
//! - [`VectorStore`] (+ object-safe [`DynVectorStore`]): collections of [`Point`]s with a JSON
//!   payload, searched by cosine similarity with payload [`Filter`]s.
//!
//! - [`Retriever`] (+ [`DynRetriever`]): a question in, cited passages ([`Hit`] with a
//!   [`Citation`]) or an explicit [`Retrieval::NoAnswer`] out. The knowledge base in
//!   `fenliu-knowledge-base` implements it; the `kb_search` tool and agents use it.
//!
//! With the `test-utils` feature it also ships [`test_utils::MemoryVectorStore`] (exact search),
//! [`test_utils::HashingEmbedder`] and the conformance suites every backend runs.
//!
//! No runtime, I/O or database dependency lives here.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

mod retrieval;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;

pub use retrieval::{Citation, DynRetriever, Hit, Retrieval, RetrievalQuery, Retriever};

/// A boxed, sendable future: what the object-safe twins return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Result alias for this crate.
pub type Result<T, E = KnowledgeError> = std::result::Result<T, E>;

/// What can go wrong embedding or searching.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KnowledgeError {
    /// The embedder could not embed the input.
    #[error("embedding failed: {reason}")]
    Embedding {
        /// Why.
        reason: String,
    },
    /// A vector does not have the collection's dimension.
    #[error("vector has {got} dimensions, collection `{collection}` expects {expected}")]
    DimensionMismatch {
        /// Collection name.
        collection: String,
        /// Its dimension.
        expected: usize,
        /// The vector's dimension.
        got: usize,
    },
    /// A vector contains NaN or infinity.
    #[error("vector for point {id} contains a non-finite value")]
    NonFiniteVector {
        /// Point id.
        id: u64,
    },
    /// The collection does not exist.
    #[error("collection `{0}` does not exist")]
    CollectionNotFound(String),
    /// The collection exists with another configuration.
    #[error("collection `{collection}` exists with dimension {existing}, requested {requested}")]
    CollectionMismatch {
        /// Collection name.
        collection: String,
        /// Its dimension.
        existing: usize,
        /// Requested dimension.
        requested: usize,
    },
    /// The request itself is invalid (empty collection name, zero limit, …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The backend failed.
    #[error("vector store backend failed: {0}")]
    Backend(String),
}

/// Turns texts into vectors of a fixed dimension, L2-normalised so that the dot product is the
/// cosine similarity.
pub trait Embedder: Send + Sync {
    /// Identifier of the model, stored with vectors so that a model change forces re-embedding.
    fn model_id(&self) -> &str;
    /// Vector dimension.
    fn dimensions(&self) -> usize;
    /// Embeds `texts` in order; the result has one vector per text.
    fn embed(&self, texts: &[String]) -> impl Future<Output = Result<Vec<Vec<f32>>>> + Send;
}

/// Object-safe twin of [`Embedder`].
pub trait DynEmbedder: Send + Sync {
    /// See [`Embedder::model_id`].
    fn model_id(&self) -> &str;
    /// See [`Embedder::dimensions`].
    fn dimensions(&self) -> usize;
    /// See [`Embedder::embed`].
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>>;
}

impl<T: Embedder> DynEmbedder for T {
    fn model_id(&self) -> &str {
        Embedder::model_id(self)
    }
    fn dimensions(&self) -> usize {
        Embedder::dimensions(self)
    }
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(Embedder::embed(self, texts))
    }
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

/// Scales `v` to unit length in place (leaves an all-zero vector alone).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// One stored vector with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Stable id (Qdrant accepts unsigned integers).
    pub id: u64,
    /// The vector.
    pub vector: Vec<f32>,
    /// Arbitrary JSON object: text, source, tenant, language, …
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// A payload condition; all conditions of a [`Filter`] must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Condition {
    /// `payload[key]` equals the string.
    Equals {
        /// Payload key.
        key: String,
        /// Required value.
        value: String,
    },
    /// `payload[key]` is one of the strings.
    AnyOf {
        /// Payload key.
        key: String,
        /// Accepted values.
        values: Vec<String>,
    },
}

impl Condition {
    /// Whether the payload satisfies this condition.
    pub fn matches(&self, payload: &serde_json::Map<String, serde_json::Value>) -> bool {
        let value = |key: &str| payload.get(key).and_then(serde_json::Value::as_str);
        match self {
            Self::Equals { key, value: want } => value(key) == Some(want.as_str()),
            Self::AnyOf { key, values } => {
                value(key).is_some_and(|v| values.iter().any(|w| w == v))
            }
        }
    }
}

/// A conjunction of payload conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Conditions that must all hold.
    pub must: Vec<Condition>,
}

impl Filter {
    /// Adds an equality condition.
    pub fn eq(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.must.push(Condition::Equals { key: key.into(), value: value.into() });
        self
    }

    /// Whether the payload satisfies every condition.
    pub fn matches(&self, payload: &serde_json::Map<String, serde_json::Value>) -> bool {
        self.must.iter().all(|c| c.matches(payload))
    }
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Query vector.
    pub vector: Vec<f32>,
    /// Maximum number of hits.
    pub limit: usize,
    /// Payload filter.
    pub filter: Filter,
    /// Hits below this cosine similarity are dropped.
    pub score_threshold: Option<f32>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPoint {
    /// Point id.
    pub id: u64,
    /// Cosine similarity to the query.
    pub score: f32,
    /// The point's payload.
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// Collections of vectors searched by cosine similarity.
///
/// Backends are chosen by configuration (embedded qdrant-edge, a Qdrant server, or the in-memory
/// store for tests); all pass [`test_utils::assert_vector_store_conformance`].
pub trait VectorStore: Send + Sync {
    /// Creates the collection if missing; errors if it exists with another dimension.
    fn ensure_collection(
        &self,
        name: &str,
        dimensions: usize,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Inserts or replaces points by id.
    fn upsert(
        &self,
        collection: &str,
        points: Vec<Point>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes points by id; missing ids are ignored.
    fn delete(&self, collection: &str, ids: &[u64]) -> impl Future<Output = Result<()>> + Send;
    /// The nearest points, best first.
    fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> impl Future<Output = Result<Vec<ScoredPoint>>> + Send;
    /// Number of points matching `filter`.
    fn count(
        &self,
        collection: &str,
        filter: &Filter,
    ) -> impl Future<Output = Result<usize>> + Send;
}

/// Object-safe twin of [`VectorStore`].
#[allow(missing_docs)]
pub trait DynVectorStore: Send + Sync {
    fn ensure_collection<'a>(
        &'a self,
        name: &'a str,
        dimensions: usize,
    ) -> BoxFuture<'a, Result<()>>;
    fn upsert<'a>(&'a self, collection: &'a str, points: Vec<Point>) -> BoxFuture<'a, Result<()>>;
    fn delete<'a>(&'a self, collection: &'a str, ids: &'a [u64]) -> BoxFuture<'a, Result<()>>;
    fn search<'a>(
        &'a self,
        collection: &'a str,
        request: &'a SearchRequest,
    ) -> BoxFuture<'a, Result<Vec<ScoredPoint>>>;
    fn count<'a>(&'a self, collection: &'a str, filter: &'a Filter)
    -> BoxFuture<'a, Result<usize>>;
}

impl<T: VectorStore> DynVectorStore for T {
    fn ensure_collection<'a>(
        &'a self,
        name: &'a str,
        dimensions: usize,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(VectorStore::ensure_collection(self, name, dimensions))
    }
    fn upsert<'a>(&'a self, collection: &'a str, points: Vec<Point>) -> BoxFuture<'a, Result<()>> {
        Box::pin(VectorStore::upsert(self, collection, points))
    }
    fn delete<'a>(&'a self, collection: &'a str, ids: &'a [u64]) -> BoxFuture<'a, Result<()>> {
        Box::pin(VectorStore::delete(self, collection, ids))
    }
    fn search<'a>(
        &'a self,
        collection: &'a str,
        request: &'a SearchRequest,
    ) -> BoxFuture<'a, Result<Vec<ScoredPoint>>> {
        Box::pin(VectorStore::search(self, collection, request))
    }
    fn count<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<usize>> {
        Box::pin(VectorStore::count(self, collection, filter))
    }
}

/// Validation shared by backends: dimension and finiteness of incoming points.
pub fn validate_points(collection: &str, dimensions: usize, points: &[Point]) -> Result<()> {
    for p in points {
        if p.vector.len() != dimensions {
            return Err(KnowledgeError::DimensionMismatch {
                collection: collection.to_owned(),
                expected: dimensions,
                got: p.vector.len(),
            });
        }
        if p.vector.iter().any(|x| !x.is_finite()) {
            return Err(KnowledgeError::NonFiniteVector { id: p.id });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cosine_and_normalisation() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        let mut zero = vec![0.0, 0.0];
        l2_normalize(&mut zero);
        assert_eq!(zero, vec![0.0, 0.0]);
    }

    #[test]
    fn filters_match_string_payloads_only() {
        let payload = json!({"tenant": "demo", "lang": "zh", "n": 1});
        let payload = payload.as_object().unwrap();
        assert!(Filter::default().eq("tenant", "demo").eq("lang", "zh").matches(payload));
        assert!(!Filter::default().eq("tenant", "other").matches(payload));
        assert!(!Filter::default().eq("n", "1").matches(payload));
        let any = Filter {
            must: vec![Condition::AnyOf {
                key: "lang".into(),
                values: vec!["en".into(), "zh".into()],
            }],
        };
        assert!(any.matches(payload));
    }

    #[test]
    fn validation_rejects_bad_vectors() {
        let p = |v: Vec<f32>| Point { id: 7, vector: v, payload: Default::default() };
        assert!(validate_points("c", 2, &[p(vec![1.0, 0.0])]).is_ok());
        assert!(matches!(
            validate_points("c", 2, &[p(vec![1.0])]),
            Err(KnowledgeError::DimensionMismatch { got: 1, .. })
        ));
        assert_eq!(
            validate_points("c", 2, &[p(vec![f32::NAN, 0.0])]),
            Err(KnowledgeError::NonFiniteVector { id: 7 })
        );
    }
}
