//! The knowledge tools of fenliu: [`KbSearch`] (`kb_search`), tenant-scoped search over the
//! shop's policies, FAQ, catalogue and manuals, returning passages with citations.
//!
//! The tool depends on the [`Retriever`] contract only, so any knowledge base (the hybrid one in
//! `fenliu-knowledge-base`, or a test double) can stand behind it. The tenant comes from the
//! [`ToolContext`], never from the arguments, so a model cannot read another shop's documents.
//!
//! ```json
//! {"query": "how long do refunds take", "doc_type": "policy", "language": "en", "top_k": 3}
//! ```
//! answers
//! ```json
//! {"status": "hits", "hits": [{"text": "…", "score": 0.71, "doc_type": "policy", "language": "en",
//!   "citation": {"source": "returns-policy.en.md", "section": "… › Refunds", "chunk": 3, "version": "…"}}]}
//! ```
//! or `{"status": "no_answer", "best_score": 0.21}` when nothing is relevant enough.

use std::sync::Arc;

use fenliu_knowledge::{DynRetriever, KnowledgeError, Retrieval, RetrievalQuery};
use fenliu_tool::{Tool, ToolContext, ToolError};
use schemars::JsonSchema;
use serde::Deserialize;

/// Longest query accepted, in characters: a question, not a document.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Most hits a caller may ask for.
pub const MAX_TOP_K: usize = 20;
/// Hits returned when `top_k` is not given.
pub const DEFAULT_TOP_K: usize = 5;
/// Longest `doc_type` / `language` value accepted.
const MAX_LABEL_CHARS: usize = 32;

/// Arguments of `kb_search`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KbSearchArgs {
    /// The question or keywords to search for, in the customer's words.
    pub query: String,
    /// Only documents of this type: `policy`, `faq`, `product`, `manual`, `promotion`.
    #[serde(default)]
    pub doc_type: Option<String>,
    /// Only passages in this language: `en` or `zh`.
    #[serde(default)]
    pub language: Option<String>,
    /// How many passages to return (1–20, default 5).
    #[serde(default)]
    pub top_k: Option<u32>,
}

/// Why `kb_search` failed.
#[derive(Debug, thiserror::Error)]
pub enum KbSearchError {
    /// The arguments were well-formed JSON but unusable.
    #[error("{0}")]
    Invalid(String),
    /// The knowledge base failed.
    #[error("knowledge base failed: {0}")]
    Backend(#[from] KnowledgeError),
}

impl From<KbSearchError> for ToolError {
    fn from(err: KbSearchError) -> Self {
        match err {
            KbSearchError::Invalid(reason) => {
                ToolError::InvalidArguments { tool: KbSearch::NAME.into(), reason }
            }
            KbSearchError::Backend(e) => {
                // The details (paths, backend messages) are logged, not shown to a model.
                tracing::warn!(error = %e, "kb_search backend failure");
                ToolError::Unavailable { tool: KbSearch::NAME.into() }
            }
        }
    }
}

/// `kb_search`: searches the tenant's knowledge base.
#[derive(Clone)]
pub struct KbSearch {
    retriever: Arc<dyn DynRetriever>,
}

impl std::fmt::Debug for KbSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KbSearch").finish_non_exhaustive()
    }
}

impl KbSearch {
    /// The tool over `retriever`.
    pub fn new(retriever: Arc<dyn DynRetriever>) -> Self {
        Self { retriever }
    }

    /// Validates `args` into a query for the tenant in `ctx`.
    pub fn query(ctx: &ToolContext, args: KbSearchArgs) -> Result<RetrievalQuery, KbSearchError> {
        let query = args.query.trim();
        if query.is_empty() {
            return Err(KbSearchError::Invalid("query is empty".into()));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(KbSearchError::Invalid(format!(
                "query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let label = |name: &str, value: Option<String>| -> Result<Option<String>, KbSearchError> {
            match value.map(|v| v.trim().to_lowercase()) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v)
                    if v.len() <= MAX_LABEL_CHARS
                        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    Ok(Some(v))
                }
                Some(_) => Err(KbSearchError::Invalid(format!("{name} is not a known label"))),
            }
        };
        let top_k = match args.top_k {
            None => DEFAULT_TOP_K,
            Some(k) if (1..=MAX_TOP_K as u32).contains(&k) => k as usize,
            Some(_) => {
                return Err(KbSearchError::Invalid(format!("top_k must be 1..={MAX_TOP_K}")));
            }
        };
        Ok(RetrievalQuery {
            tenant: ctx.tenant.clone(),
            query: query.to_owned(),
            doc_type: label("doc_type", args.doc_type)?,
            language: label("language", args.language)?,
            top_k,
        })
    }
}

impl Tool for KbSearch {
    const NAME: &'static str = "kb_search";
    type Args = KbSearchArgs;
    type Output = Retrieval;
    type Error = KbSearchError;

    fn description(&self) -> &str {
        "Searches the shop's knowledge base (policies, FAQ, product catalogue, troubleshooting \
         manuals) and returns the most relevant passages with citations, or `no_answer` when \
         nothing relevant is found. Answer only from the returned passages."
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: KbSearchArgs,
    ) -> Result<Retrieval, KbSearchError> {
        let query = Self::query(ctx, args)?;
        Ok(self.retriever.retrieve(&query).await?)
    }
}
