//! Integration tests of `fenliu-store-sql`: the commerce conformance suites and this crate's own
//! scenarios (races, persistence, the demo shop, hostile input) on SQLite files and on a real
//! PostgreSQL server (skipped, with a visible `SKIP:` line, when none is reachable).

// Tests may unwrap; clippy does not see helper functions of a test binary as tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod connect;
mod postgres;
mod scenarios;
mod sqlite;
mod support;
