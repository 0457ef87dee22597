//! The shop's SQL storage: [`OrderStore`] and [`TicketStore`] of `fenliu-tools-commerce` on
//! SQLite (the embedded default, one file) and PostgreSQL (for several server processes sharing
//! one shop).
//!
//! This crate owns:
//! - the two backends, [`SqliteStore`] and [`PostgresStore`] (orders, tickets with their department
//!   queues, history, SLA sweep marks and customer-notification outbox, conversations and
//!   customers' marketing preferences), and the closed enum [`SqlStore`]
//!   that picks one from a database URL ([`SqlStore::connect`]);
//! - their schemas and migrations (`migrations/sqlite`, `migrations/postgres`, embedded with
//!   `sqlx::migrate!` and run on every open);
//! - [`SqlStoreError`], why a store could not be opened (bad URL, unreachable server, failed
//!   migration). Once open, failures of queries are [`StoreError::Backend`], logged where they
//!   are mapped.
//!
//! The business rules are not here: every write checks ownership and state with the shared checks
//! of [`fenliu_tools_commerce::store`], inside a transaction that holds a lock on what it checked
//! (`SELECT … FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so two concurrent
//! cancellations of one order cannot both succeed. Both backends pass the conformance suites of
//! `fenliu_tools_commerce::test_utils`.
//!
//! Timestamps are kept to the microsecond (PostgreSQL's precision) on both backends: values are
//! truncated before they are written, and what a write returns equals what a later read returns.

mod common;
mod conversations;
mod error;
mod postgres;
mod preferences;
mod sqlite;

use std::time::Duration;

use chrono::{DateTime, Utc};
use fenliu_tools_commerce::{
    Address, CancelReason, Customer, Department, ImportStats, NewTicket, Order, OrderStore,
    Product, ShopData, SlaAlert, StoreResult, Ticket, TicketNotification, TicketStatus,
    TicketStore, TicketUpdate,
};

pub use error::{SqlBackend, SqlStoreError};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
/// Options for [`PostgresStore::connect_with`] (re-exported from `sqlx`).
pub use sqlx::postgres::PgConnectOptions;

#[cfg(doc)]
use fenliu_tools_commerce::StoreError;

/// How long opening a store waits for the first connection (and a query for a pooled one).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A shop store on one of the built-in SQL backends.
#[derive(Debug, Clone)]
pub enum SqlStore {
    /// SQLite, embedded.
    Sqlite(SqliteStore),
    /// PostgreSQL, over the network.
    Postgres(PostgresStore),
}

impl SqlStore {
    /// Opens the store a database URL names, by its scheme, and brings its schema up to date:
    /// - `sqlite:path/to/shop.db`, `sqlite:///abs/path.db` (file and directories are created),
    ///   `sqlite::memory:`;
    /// - `postgres://user:password@host:port/database` (or `postgresql://`).
    pub async fn connect(url: &str) -> Result<Self, SqlStoreError> {
        let invalid = |reason: &str| SqlStoreError::InvalidUrl { reason: reason.to_owned() };
        if url.trim().is_empty() {
            return Err(invalid("the URL is empty"));
        }
        if url.contains('\0') {
            return Err(invalid("the URL contains a NUL character"));
        }
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .filter(|s| {
                s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
            .ok_or_else(|| invalid("the URL has no scheme (expected `sqlite:` or `postgres:`)"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => SqliteStore::connect(url).await.map(Self::Sqlite),
            "postgres" | "postgresql" => PostgresStore::connect(url).await.map(Self::Postgres),
            _ => {
                Err(SqlStoreError::UnsupportedScheme { scheme: scheme.chars().take(32).collect() })
            }
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> SqlBackend {
        match self {
            Self::Sqlite(_) => SqlBackend::Sqlite,
            Self::Postgres(_) => SqlBackend::Postgres,
        }
    }

    /// Closes every connection (waiting for running queries).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// Calls the same method on whichever backend `self` is.
macro_rules! delegate {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            SqlStore::Sqlite(s) => s.$method($($arg),*).await,
            SqlStore::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl OrderStore for SqlStore {
    async fn import(&self, data: &ShopData) -> StoreResult<ImportStats> {
        delegate!(self.import(data))
    }

    async fn customer(&self, id: &str) -> StoreResult<Option<Customer>> {
        delegate!(self.customer(id))
    }

    async fn product(&self, id: &str) -> StoreResult<Option<Product>> {
        delegate!(self.product(id))
    }

    async fn products(&self) -> StoreResult<Vec<Product>> {
        delegate!(self.products())
    }

    async fn order(&self, id: &str) -> StoreResult<Option<Order>> {
        delegate!(self.order(id))
    }

    async fn orders_of(&self, customer_id: &str) -> StoreResult<Vec<Order>> {
        delegate!(self.orders_of(customer_id))
    }

    async fn cancel_order(
        &self,
        customer_id: &str,
        order_id: &str,
        reason: CancelReason,
    ) -> StoreResult<Order> {
        delegate!(self.cancel_order(customer_id, order_id, reason))
    }

    async fn update_order_address(
        &self,
        customer_id: &str,
        order_id: &str,
        address: &Address,
    ) -> StoreResult<Order> {
        delegate!(self.update_order_address(customer_id, order_id, address))
    }
}

impl TicketStore for SqlStore {
    async fn create_ticket(&self, ticket: &NewTicket) -> StoreResult<Ticket> {
        delegate!(self.create_ticket(ticket))
    }

    async fn ticket(&self, id: &str) -> StoreResult<Option<Ticket>> {
        delegate!(self.ticket(id))
    }

    async fn tickets_of(&self, customer_id: &str) -> StoreResult<Vec<Ticket>> {
        delegate!(self.tickets_of(customer_id))
    }

    async fn update_ticket_status(
        &self,
        id: &str,
        to: TicketStatus,
        actor: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Ticket> {
        delegate!(self.update_ticket_status(id, to, actor, note, at))
    }

    async fn change_ticket(&self, id: &str, update: &TicketUpdate) -> StoreResult<Ticket> {
        delegate!(self.change_ticket(id, update))
    }

    async fn department_queue(
        &self,
        department: Department,
        status: Option<TicketStatus>,
        limit: usize,
    ) -> StoreResult<Vec<Ticket>> {
        delegate!(self.department_queue(department, status, limit))
    }

    async fn sweep_ticket_sla(
        &self,
        now: DateTime<Utc>,
        reminder_fraction: f64,
    ) -> StoreResult<Vec<SlaAlert>> {
        delegate!(self.sweep_ticket_sla(now, reminder_fraction))
    }

    async fn claim_ticket_notifications(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: usize,
    ) -> StoreResult<Vec<TicketNotification>> {
        delegate!(self.claim_ticket_notifications(now, lease, limit))
    }

    async fn ack_ticket_notification(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        delegate!(self.ack_ticket_notification(id, at))
    }
}
