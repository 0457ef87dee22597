//! Integration tests of `fenliu-dispatch`: the dispatcher's rules through the public API, the
//! backend conformance suite on the embedded (SQLite) and PostgreSQL backends (the latter skipped
//! with a visible `SKIP:` line when no server is reachable), persistence across restarts, and the
//! multi-replica concurrency test.

// Tests may unwrap; clippy does not see helper functions of a test binary as tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backends;
mod conformance;
mod core;
mod replicas;
mod support;
