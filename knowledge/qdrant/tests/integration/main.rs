#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Qdrant backend against the shared contract.
