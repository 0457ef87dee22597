//! The crate's two error stories: [`SqlStoreError`] for opening a store (URL, connection,
//! migrations), and the mapping of query failures into the commerce crate's
//! [`StoreError::Backend`], logged where it happens.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use fenliu_tools_commerce::StoreError;

/// The database engines this crate implements the stores on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlBackend {
    /// SQLite, embedded: one file on the local disk.
    Sqlite,
    /// PostgreSQL, over the network: for several server processes sharing one shop.
    Postgres,
}

impl SqlBackend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl fmt::Display for SqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// Why a store could not be opened.
///
/// Messages never repeat a whole database URL, which may carry a password: they name the scheme,
/// the host, port and database, or the file path.
#[derive(Debug, thiserror::Error)]
pub enum SqlStoreError {
    /// The URL is empty, has no scheme, or cannot be parsed.
    #[error("invalid database URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The URL names a database this crate does not implement.
    #[error(
        "unsupported database URL scheme `{scheme}:`: expected `sqlite:`, `postgres:` or `postgresql:`"
    )]
    UnsupportedScheme {
        /// The scheme found (at most 32 characters of it).
        scheme: String,
    },
    /// A SQLite file path that cannot be used.
    #[error("invalid SQLite database path {path:?}: {reason}")]
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory for a SQLite file could not be created.
    #[error("cannot create the directory {path:?} for the SQLite database: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The database refused or failed the connection (server down, wrong credentials, file not
    /// writable, …).
    #[error("cannot connect to {backend} at {target}: {source}")]
    Connect {
        /// Which engine.
        backend: SqlBackend,
        /// Host, port and database, or the file path.
        target: String,
        /// Cause.
        source: sqlx::Error,
    },
    /// The server did not answer in time.
    #[error("timed out after {timeout:?} connecting to {backend} at {target}")]
    ConnectTimeout {
        /// Which engine.
        backend: SqlBackend,
        /// Host, port and database.
        target: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// Bringing the schema up to date failed.
    #[error("migrating the {backend} schema at {target} failed: {source}")]
    Migrate {
        /// Which engine.
        backend: SqlBackend,
        /// Host, port and database, or the file path.
        target: String,
        /// Cause.
        source: sqlx::migrate::MigrateError,
    },
}

/// Maps a failed query of operation `op` into [`StoreError::Backend`], logging the details here,
/// where the error is created.
pub(crate) fn query_failed(
    backend: SqlBackend,
    op: &'static str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| {
        tracing::error!(backend = backend.as_str(), operation = op, %error, "SQL store query failed");
        StoreError::Backend(format!("{op}: {error}"))
    }
}

/// A stored value that cannot be read back into the domain (corrupt or foreign data).
pub(crate) fn corrupt(what: &str, detail: impl fmt::Display) -> StoreError {
    tracing::error!(record = what, %detail, "SQL store holds an unreadable value");
    StoreError::Backend(format!("unreadable stored {what}: {detail}"))
}
