#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The knowledge base end to end: ingestion semantics with a fast hashing embedder, persistence
//! on qdrant-edge, and retrieval quality with the real MiniLM model on the demo documents.

mod demo;
mod ingest;
