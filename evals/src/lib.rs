//! Offline evals for fenliu: does a change to prompts, thresholds, training phrases or models make
//! the whole multi-agent path better or worse, before it is deployed?
//!
//! This crate owns:
//! - [`format`]: the versioned JSONL transcript dataset format (conversations, turns, per-turn
//!   labels, τ-style tasks) and its loader (documented in `docs/evals.md`);
//! - [`loaders`]: readers of public datasets in their own formats (Bitext, CLINC150, Banking77,
//!   CrossWOZ as single-turn routing sets; τ-bench retail tasks as multi-turn tasks with
//!   expected actions);
//! - [`user`]: the user simulator interface (scripted users; an LLM user over any chat model);
//! - [`models`]: metering, replay caching of model answers, and an embedding cache;
//! - [`runner`]: running conversations through the real orchestrator, in parallel and
//!   deterministically, each against a fresh copy of the shop, recording every turn;
//! - [`metrics`]: accuracy, macro-F1, per-route scores, confusions, out-of-scope and escalation
//!   precision/recall, automation, tool-call exact match, slot accuracy, tokens, latency, τ-style
//!   pass^k;
//! - [`report`]: JSON, Markdown and self-contained HTML reports (charts drawn with plotters);
//! - [`compare`]: regression checks between two JSON reports, for CI.
//!
//! It depends on the orchestrator, agents' contracts and tools, never on the server: the server
//! passes the agents, embedder, router artefact and models it assembled.

pub mod compare;
pub mod format;
pub mod loaders;
pub mod metrics;
pub mod models;
pub mod report;
pub mod runner;
pub mod user;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What can go wrong in an eval, apart from bad rows (which are reported and skipped).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A whole file is unusable (wrong version, unreadable header, not the expected format).
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The system under evaluation could not be assembled.
    #[error("building the system under evaluation: {0}")]
    System(String),
    /// A report could not be produced or read.
    #[error("report: {0}")]
    Report(String),
    /// A model call failed in a way the run cannot continue from (e.g. a replay-cache miss).
    #[error("model: {0}")]
    Model(String),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// A row that could not be used, with its position; the rest of the file still loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// File.
    pub path: PathBuf,
    /// 1-based line (0 when the format has no lines for the row, e.g. an entry of a JSON array;
    /// the message then names the entry).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// Largest dataset file read (the shipped samples are tens of KB).
pub const MAX_DATASET_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a dataset file with the size limit.
pub(crate) fn read_limited(path: &std::path::Path) -> Result<Vec<u8>, EvalError> {
    let size = std::fs::metadata(path).map_err(|e| EvalError::io(path, e))?.len();
    if size > MAX_DATASET_BYTES {
        return Err(EvalError::BadFile {
            path: path.to_owned(),
            message: format!("{size} bytes is larger than the {MAX_DATASET_BYTES}-byte limit"),
        });
    }
    std::fs::read(path).map_err(|e| EvalError::io(path, e))
}
