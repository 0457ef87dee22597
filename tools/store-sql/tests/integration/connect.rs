//! Hostile input at the crate's entry points: `SqlStore::connect` and `SqliteStore::open`.

use std::time::{Duration, Instant};

use fenliu_store_sql::{SqlBackend, SqlStore, SqlStoreError, SqliteStore};

/// Each case must fail within this.
const QUICKLY: Duration = Duration::from_secs(10);

async fn connect_err(url: &str) -> SqlStoreError {
    let started = Instant::now();
    let result = tokio::time::timeout(QUICKLY, SqlStore::connect(url))
        .await
        .unwrap_or_else(|_| panic!("connect({url:?}) still running after {QUICKLY:?}"));
    let error = match result {
        Ok(store) => panic!("connect({url:?}) succeeded: {store:?}"),
        Err(error) => error,
    };
    let shown: String = url.chars().take(60).collect();
    eprintln!("connect({shown:?}) → {error} [{:?}]", started.elapsed());
    assert!(!error.to_string().is_empty());
    error
}

#[tokio::test]
async fn garbage_urls_fail_clearly_and_quickly() {
    for url in ["", "   ", "no scheme here", "://x", "sqlite:", "sqlite:?mode=rwc"] {
        assert!(matches!(connect_err(url).await, SqlStoreError::InvalidUrl { .. }), "{url:?}");
    }
    match connect_err("mysql://x").await {
        SqlStoreError::UnsupportedScheme { scheme } => assert_eq!(scheme, "mysql"),
        other => panic!("mysql: {other:?}"),
    }
    match connect_err(&format!("{}://x", "a".repeat(10_000))).await {
        SqlStoreError::UnsupportedScheme { scheme } => assert_eq!(scheme.len(), 32),
        other => panic!("long scheme: {other:?}"),
    }
    for url in ["sqlite:/nonexistent-dir/\0", "postgres://127.0.0.1/x\0"] {
        assert!(matches!(connect_err(url).await, SqlStoreError::InvalidUrl { .. }), "{url:?}");
    }
    assert!(!std::path::Path::new("/nonexistent-dir").exists(), "nothing created for a bad URL");
    for url in
        ["postgres://[::1", "postgres://127.0.0.1:99999/x", "postgresql://u@h:5432/d?sslmode=bogus"]
    {
        assert!(matches!(connect_err(url).await, SqlStoreError::InvalidUrl { .. }), "{url:?}");
    }
}

#[tokio::test]
async fn unreachable_postgres_fails_with_the_cause_and_no_password() {
    for url in ["postgres://127.0.0.1:1/x", "postgresql://user:hunter2@127.0.0.1:1/x"] {
        let error = connect_err(url).await;
        match &error {
            SqlStoreError::Connect { backend: SqlBackend::Postgres, target, .. } => {
                assert_eq!(target, "127.0.0.1:1/x");
            }
            other => panic!("{url}: {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert!(!message.contains("hunter2"), "password leaked: {message}");
    }
}

#[tokio::test]
async fn unusable_sqlite_paths_fail_clearly() {
    // Under /proc nothing can be created, whoever runs the test.
    match connect_err("sqlite:/proc/fenliu/not/here.db").await {
        SqlStoreError::CreateDir { .. } => {}
        other => panic!("{other:?}"),
    }
    // A directory is not a database file.
    let dir = tempfile::tempdir().unwrap();
    match SqliteStore::open(dir.path()).await {
        Err(SqlStoreError::Connect { backend: SqlBackend::Sqlite, .. }) => {}
        other => panic!("{other:?}"),
    }
    // A file that is not a database.
    let not_db = dir.path().join("not.db");
    std::fs::write(&not_db, vec![b'x'; 4096]).unwrap();
    match SqliteStore::open(&not_db).await {
        Err(error @ (SqlStoreError::Connect { .. } | SqlStoreError::Migrate { .. })) => {
            eprintln!("not a database → {error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(SqliteStore::open("").await, Err(SqlStoreError::InvalidPath { .. })));
}
