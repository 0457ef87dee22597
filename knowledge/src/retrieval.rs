//! The retrieval contract: a question in, cited passages (or an explicit "no answer") out.
//!
//! Agents and tools depend on [`Retriever`] only; the knowledge base that implements it (hybrid
//! dense + lexical search over ingested documents) lives in `fenliu-knowledge-base`.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{BoxFuture, Result};

/// Where a passage comes from, returned with every hit so answers can cite it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Citation {
    /// Source document, as ingested (a path relative to the ingest root, or a catalogue id).
    pub source: String,
    /// Section heading path inside the document ("Returns, Exchanges and Refunds › Refunds").
    pub section: String,
    /// Index of the chunk inside the document, from 0.
    pub chunk: u32,
    /// Document version (content hash prefix) the passage was taken from.
    pub version: String,
}

impl std::fmt::Display for Citation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.section.is_empty() {
            write!(f, "{} #{}", self.source, self.chunk)
        } else {
            write!(f, "{} › {} #{}", self.source, self.section, self.chunk)
        }
    }
}

/// One retrieved passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hit {
    /// The passage text.
    pub text: String,
    /// Relevance: the dense cosine similarity of the passage to the question (0..1 for
    /// normalised embeddings); hits are ordered by the fused rank, not by this number alone.
    pub score: f32,
    /// Kind of document: `policy`, `faq`, `product`, `manual`, …
    pub doc_type: String,
    /// Language of the passage (`en`, `zh`, …).
    pub language: String,
    /// Where the passage comes from.
    pub citation: Citation,
}

/// A question for the knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalQuery {
    /// Tenant whose documents are searched; never taken from model output.
    pub tenant: String,
    /// The question, as the customer asked it.
    pub query: String,
    /// Only documents of this type, if set.
    pub doc_type: Option<String>,
    /// Only passages in this language, if set.
    pub language: Option<String>,
    /// Maximum number of hits.
    pub top_k: usize,
}

impl RetrievalQuery {
    /// A query for `tenant` with five hits and no filters.
    pub fn new(tenant: impl Into<String>, query: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            query: query.into(),
            doc_type: None,
            language: None,
            top_k: 5,
        }
    }
}

/// The answer of a [`Retriever`]: hits, or an explicit "no answer" so callers escalate instead of
/// guessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Retrieval {
    /// Relevant passages, best first (at least one).
    Hits {
        /// The passages.
        hits: Vec<Hit>,
    },
    /// Nothing relevant enough: the best candidate scored below the relevance threshold.
    NoAnswer {
        /// Score of the best candidate, when there was one.
        best_score: Option<f32>,
    },
}

impl Retrieval {
    /// The hits (empty for [`Retrieval::NoAnswer`]).
    pub fn hits(&self) -> &[Hit] {
        match self {
            Self::Hits { hits } => hits,
            Self::NoAnswer { .. } => &[],
        }
    }
}

/// Finds cited passages answering a question.
pub trait Retriever: Send + Sync {
    /// Searches the tenant's documents.
    fn retrieve(&self, query: &RetrievalQuery) -> impl Future<Output = Result<Retrieval>> + Send;
}

/// Object-safe twin of [`Retriever`].
pub trait DynRetriever: Send + Sync {
    /// See [`Retriever::retrieve`].
    fn retrieve<'a>(&'a self, query: &'a RetrievalQuery) -> BoxFuture<'a, Result<Retrieval>>;
}

impl<T: Retriever> DynRetriever for T {
    fn retrieve<'a>(&'a self, query: &'a RetrievalQuery) -> BoxFuture<'a, Result<Retrieval>> {
        Box::pin(Retriever::retrieve(self, query))
    }
}
