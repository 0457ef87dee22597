//! Fixtures: a manual clock, fresh SQLite files, and a fresh PostgreSQL schema per test (or a
//! visible skip).

use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fenliu_dispatch::{EmbeddedBackend, ManualClock, Policy, PostgresBackend};
use futures::FutureExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

use crate::core::t0;

/// The server the PostgreSQL tests use, unless `FENLIU_TEST_POSTGRES_URL` says otherwise.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long to wait for the server before skipping.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// The suite's policy: default rules, no wrap-up unless a test asks.
pub(crate) fn policy() -> Policy {
    Policy { wrap_up_seconds: 0, ..Policy::default() }
}

pub(crate) fn clock() -> ManualClock {
    ManualClock::new(t0())
}

/// A fresh SQLite-backed embedded dispatcher.
pub(crate) async fn embedded(clock: &ManualClock) -> (EmbeddedBackend, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let b =
        EmbeddedBackend::open(dir.path().join("dispatch.db"), policy(), Arc::new(clock.clone()))
            .await
            .unwrap();
    (b, dir)
}

/// Says loudly that a PostgreSQL test did not run, on the process's stderr (the harness captures
/// `eprintln!` of passing tests).
fn skip(test: &str, error: &dyn std::fmt::Display) {
    let line = format!("SKIP: PostgreSQL not reachable for {test}: {error}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A fresh schema on the test server.
pub(crate) struct PgSchema {
    options: PgConnectOptions,
    /// The server's URL (without the schema).
    pub(crate) url: String,
    /// The schema's name.
    pub(crate) name: String,
}

impl PgSchema {
    /// A new backend on this schema: its own pool, like another replica.
    pub(crate) async fn backend(&self, clock: &ManualClock) -> PostgresBackend {
        PostgresBackend::connect_with(self.options.clone(), policy(), Arc::new(clock.clone()))
            .await
            .unwrap()
    }
}

/// Runs `body` in a schema of its own, dropped afterwards; prints `SKIP: …` and returns when
/// PostgreSQL is not reachable.
pub(crate) async fn with_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(PgSchema) -> Fut,
    Fut: Future<Output = ()>,
{
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url =
        std::env::var("FENLIU_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
    let mut admin = match tokio::time::timeout(REACH_TIMEOUT, PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(sqlx::Error::Io(error))) => return skip(test, &error),
        Err(_) => return skip(test, &format!("no answer within {REACH_TIMEOUT:?}")),
        Ok(Err(error)) => panic!("PostgreSQL refused the test: {error}"),
    };
    let name =
        format!("fenliu_dispatch_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    // Our own name (letters, digits, underscores): safe to format.
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA \"{name}\"")).execute(&mut admin).await.unwrap();
    let options =
        PgConnectOptions::from_str(&url).unwrap().options([("search_path", name.as_str())]);
    let schema = PgSchema { options, url: url.clone(), name: name.clone() };
    let outcome = AssertUnwindSafe(body(schema)).catch_unwind().await;
    sqlx::query(&format!("DROP SCHEMA \"{name}\" CASCADE")).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error);
    }
}
