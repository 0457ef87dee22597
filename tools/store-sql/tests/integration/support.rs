//! Test fixtures: fresh SQLite files, and a fresh PostgreSQL schema per test (or a visible skip).

use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fenliu_store_sql::{PgConnectOptions, PostgresStore, SqliteStore};
use futures::FutureExt;
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

/// The server the PostgreSQL tests use, unless `FENLIU_TEST_POSTGRES_URL` says otherwise.
pub(crate) const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long to wait for the server before skipping.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn postgres_url() -> String {
    std::env::var("FENLIU_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        _ => url.to_owned(),
    }
}

/// Says loudly that a PostgreSQL test did not run.
///
/// Written to the process's stderr directly rather than with `eprintln!`, which the test harness
/// captures and shows only for failing tests: a skip must be visible in a passing run.
fn skip(test: &str, url: &str, error: &dyn std::fmt::Display) {
    let line = format!("SKIP: PostgreSQL not reachable at {}: {error} [{test}]\n", redact(url));
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A fresh SQLite file in a temporary directory (removed when the `TempDir` drops).
pub(crate) async fn sqlite_file() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("shop.db")).await.unwrap();
    (store, dir)
}

/// A fresh PostgreSQL schema for one test.
pub(crate) struct PgSchema {
    /// Connection options whose `search_path` is the test's schema.
    pub(crate) options: PgConnectOptions,
    /// The schema's name.
    pub(crate) name: String,
    /// URL of the server, for `SqlStore::connect` tests.
    pub(crate) url: String,
}

impl PgSchema {
    /// A `postgres:` URL whose connections use this schema.
    pub(crate) fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.name)
    }

    /// A new store on this schema (its own pool, like another server process).
    pub(crate) async fn store(&self) -> PostgresStore {
        PostgresStore::connect_with(self.options.clone()).await.unwrap()
    }
}

/// Runs `body` against a store in a schema of its own, dropped afterwards (even if the body
/// panics); prints `SKIP: …` and returns when PostgreSQL is not reachable.
pub(crate) async fn with_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(PostgresStore, PgSchema) -> Fut,
    Fut: Future<Output = ()>,
{
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = postgres_url();
    let mut admin = match tokio::time::timeout(REACH_TIMEOUT, PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(sqlx::Error::Io(error))) => return skip(test, &url, &error),
        Err(_) => return skip(test, &url, &format!("no answer within {REACH_TIMEOUT:?}")),
        // Reachable but refusing us (credentials, missing database): a broken setup, not a skip.
        Ok(Err(error)) => panic!("PostgreSQL at {} refused the test: {error}", redact(&url)),
    };
    let name =
        format!("fenliu_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    // The schema name is ours (letters, digits, underscores), not input: formatting it is safe.
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA \"{name}\"")).execute(&mut admin).await.unwrap();
    let options =
        PgConnectOptions::from_str(&url).unwrap().options([("search_path", name.as_str())]);
    let schema = PgSchema { options, name: name.clone(), url };
    let store = schema.store().await;
    let outcome = AssertUnwindSafe(body(store.clone(), schema)).catch_unwind().await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA \"{name}\" CASCADE")).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error);
    }
}

#[test]
fn urls_are_redacted() {
    assert_eq!(redact("postgres://u:pw@h:5/db"), "postgres://u:***@h:5/db");
    assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact("postgres://h"), "postgres://h");
}

/// How many migration files the crate ships for `backend` (`sqlite` or `postgres`), so that the
/// "recorded once" checks follow new migrations instead of a hard-coded count.
pub(crate) fn migration_files(backend: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    let count = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter(|entry| {
            entry.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    i64::try_from(count).unwrap()
}
