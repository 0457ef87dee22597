//! [`ConversationStore`] on SQLite and PostgreSQL: each conversation's state as one JSON document,
//! replaced as a whole after every turn.

use fenliu_agent::state::{ConversationState, ConversationStore, StateError};
use sqlx::types::Json;

use crate::common::{micros, plausible_id};
use crate::{PostgresStore, SqlStore, SqliteStore};

const UPSERT: &str = "INSERT INTO conversations (id, customer_id, state, updated_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, state = excluded.state, \
     updated_at = excluded.updated_at";

const SELECT: &str = "SELECT state FROM conversations WHERE id = $1";

fn failed(op: &'static str) -> impl FnOnce(sqlx::Error) -> StateError {
    move |e| {
        tracing::error!(error = %e, op, "conversation store query failed");
        StateError(format!("{op} failed"))
    }
}

fn check(state: &ConversationState) -> Result<(), StateError> {
    if !plausible_id(&state.id) || !plausible_id(&state.customer_id) {
        return Err(StateError(
            "conversation and customer ids must be 1-256 bytes without NUL".into(),
        ));
    }
    Ok(())
}

impl ConversationStore for SqliteStore {
    async fn load(&self, id: &str) -> Result<Option<ConversationState>, StateError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        let row: Option<(Json<ConversationState>,)> = sqlx::query_as(SELECT)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(failed("load conversation"))?;
        Ok(row.map(|(Json(state),)| state))
    }

    async fn save(&self, state: &ConversationState) -> Result<(), StateError> {
        check(state)?;
        sqlx::query(UPSERT)
            .bind(&state.id)
            .bind(&state.customer_id)
            .bind(Json(state))
            .bind(micros(state.updated_at).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            .execute(self.pool())
            .await
            .map_err(failed("save conversation"))?;
        Ok(())
    }
}

impl ConversationStore for PostgresStore {
    async fn load(&self, id: &str) -> Result<Option<ConversationState>, StateError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        let row: Option<(Json<ConversationState>,)> = sqlx::query_as(SELECT)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(failed("load conversation"))?;
        Ok(row.map(|(Json(state),)| state))
    }

    async fn save(&self, state: &ConversationState) -> Result<(), StateError> {
        check(state)?;
        // PostgreSQL text and JSONB cannot hold NUL; such a message was already refused upstream,
        // but the store must not fail on it either.
        let json = serde_json::to_string(state)
            .map_err(|e| StateError(e.to_string()))?
            .replace("\\u0000", "\u{fffd}");
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| StateError(e.to_string()))?;
        sqlx::query(UPSERT)
            .bind(&state.id)
            .bind(&state.customer_id)
            .bind(Json(value))
            .bind(micros(state.updated_at))
            .execute(self.pool())
            .await
            .map_err(failed("save conversation"))?;
        Ok(())
    }
}

impl ConversationStore for SqlStore {
    async fn load(&self, id: &str) -> Result<Option<ConversationState>, StateError> {
        match self {
            Self::Sqlite(s) => s.load(id).await,
            Self::Postgres(s) => s.load(id).await,
        }
    }

    async fn save(&self, state: &ConversationState) -> Result<(), StateError> {
        match self {
            Self::Sqlite(s) => s.save(state).await,
            Self::Postgres(s) => s.save(state).await,
        }
    }
}
