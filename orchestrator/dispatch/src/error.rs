//! Why a dispatcher operation failed.

use crate::model::{AgentId, ItemId};

/// A dispatcher failure.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// No such work item.
    #[error("unknown work item {item}")]
    UnknownItem {
        /// The id asked for.
        item: ItemId,
    },
    /// No such person.
    #[error("unknown agent {agent}")]
    UnknownAgent {
        /// The id asked for.
        agent: AgentId,
    },
    /// The item is already in the dispatcher.
    #[error("work item {item} is already queued or held")]
    Duplicate {
        /// The id.
        item: ItemId,
    },
    /// The item is not in a state that allows the operation.
    #[error("work item {item} is {state}, not {expected}")]
    WrongState {
        /// The item.
        item: ItemId,
        /// Its state.
        state: &'static str,
        /// The state the operation needs.
        expected: &'static str,
    },
    /// Someone else holds the item.
    #[error("work item {item} is not held by {agent}")]
    NotHolder {
        /// The item.
        item: ItemId,
        /// Who asked.
        agent: AgentId,
    },
    /// A query failed.
    #[error("dispatch store: {op} failed: {source}")]
    Backend {
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("dispatch store: migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored state could not be read back.
    #[error("dispatch store: corrupt {what} {id}: {reason}")]
    Corrupt {
        /// Agent or item.
        what: &'static str,
        /// Its id.
        id: String,
        /// What was wrong.
        reason: String,
    },
    /// A scenario file is invalid.
    #[error("scenario: {0}")]
    Scenario(String),
}

/// A dispatcher result.
pub type DispatchResult<T> = Result<T, DispatchError>;

/// Maps a driver error for `op`.
pub(crate) fn backend(op: &'static str) -> impl FnOnce(sqlx::Error) -> DispatchError {
    move |source| DispatchError::Backend { op, source }
}
