//! [`PreferenceStore`] on SQLite and PostgreSQL: each customer's marketing preferences as one
//! JSON document, replaced whole on every change.

use chrono::{DateTime, Utc};
use fenliu_tools_commerce::{PreferenceStore, Preferences, StoreError, StoreResult};
use sqlx::types::Json;

use crate::common::{check_time, micros, not_found, plausible_id};
use crate::{PostgresStore, SqlStore, SqliteStore};

const CUSTOMER_EXISTS: &str = "SELECT id FROM customers WHERE id = $1";
const SELECT: &str = "SELECT preferences FROM customer_preferences WHERE customer_id = $1";
const UPSERT: &str = "INSERT INTO customer_preferences (customer_id, preferences, updated_at) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (customer_id) DO UPDATE SET preferences = excluded.preferences, \
     updated_at = excluded.updated_at";

fn failed(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        tracing::error!(error = %e, op, "preference store query failed");
        StoreError::Backend(format!("{op} failed"))
    }
}

/// Runs the same body on either pool type; the queries are portable.
macro_rules! preferences_impl {
    ($store:ty, $bind_time:expr) => {
        impl PreferenceStore for $store {
            async fn preferences(&self, customer_id: &str) -> StoreResult<Preferences> {
                if !plausible_id(customer_id) {
                    return Err(not_found("customer", customer_id));
                }
                let exists: Option<(String,)> = sqlx::query_as(CUSTOMER_EXISTS)
                    .bind(customer_id)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(failed("read customer"))?;
                if exists.is_none() {
                    return Err(not_found("customer", customer_id));
                }
                let row: Option<(Json<Preferences>,)> = sqlx::query_as(SELECT)
                    .bind(customer_id)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(failed("read preferences"))?;
                Ok(row.map(|(Json(p),)| p).unwrap_or_default())
            }

            async fn set_newsletter(
                &self,
                customer_id: &str,
                subscribed: bool,
                at: DateTime<Utc>,
            ) -> StoreResult<Preferences> {
                check_time("at", at)?;
                let mut prefs = self.preferences(customer_id).await?;
                let at = micros(at);
                prefs.newsletter = Some(subscribed);
                prefs.updated_at = Some(at);
                sqlx::query(UPSERT)
                    .bind(customer_id)
                    .bind(Json(prefs))
                    .bind($bind_time(at))
                    .execute(self.pool())
                    .await
                    .map_err(failed("write preferences"))?;
                Ok(prefs)
            }
        }
    };
}

fn sqlite_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn postgres_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at
}

preferences_impl!(SqliteStore, sqlite_time);
preferences_impl!(PostgresStore, postgres_time);

impl PreferenceStore for SqlStore {
    async fn preferences(&self, customer_id: &str) -> StoreResult<Preferences> {
        match self {
            Self::Sqlite(s) => s.preferences(customer_id).await,
            Self::Postgres(s) => s.preferences(customer_id).await,
        }
    }

    async fn set_newsletter(
        &self,
        customer_id: &str,
        subscribed: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Preferences> {
        match self {
            Self::Sqlite(s) => s.set_newsletter(customer_id, subscribed, at).await,
            Self::Postgres(s) => s.set_newsletter(customer_id, subscribed, at).await,
        }
    }
}
