//! The SQLite backend: one file, WAL journal, writes serialised by `BEGIN IMMEDIATE`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fenliu_tools_commerce::store::{
    apply_cancellation, apply_sla_alert, apply_ticket_update, check_address_change,
    check_cancellable, check_claim, check_queue_limit, check_reminder_fraction, notification_for,
    sla_alert_due, sla_alert_due_for,
};
use fenliu_tools_commerce::{
    Address, CancelReason, Customer, Department, ImportStats, NewTicket, Order, OrderStore,
    Product, ShopData, SlaAlert, StoreResult, Ticket, TicketEvent, TicketNotification,
    TicketStatus, TicketStore, TicketUpdate, parse_ticket_id, ticket_id,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Sqlite, Transaction};

use crate::CONNECT_TIMEOUT;
use crate::common::*;
use crate::error::{SqlBackend, SqlStoreError, query_failed};

/// The outbox claim, in this backend's flavour.
static CLAIM_NOTIFICATIONS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| claim_notifications_sql(false));

const BACKEND: SqlBackend = SqlBackend::Sqlite;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another writer's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a file database: WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;

fn failed(op: &'static str) -> impl FnOnce(sqlx::Error) -> fenliu_tools_commerce::StoreError {
    query_failed(BACKEND, op)
}

/// The stored form of a timestamp: fixed-width UTC with microseconds, so text order is time order.
fn ts(at: DateTime<Utc>) -> String {
    micros(at).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The shop in a SQLite database: the embedded default.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if missing) the database file at `path`,
    /// and brings its schema up to date.
    ///
    /// The file is used in WAL mode with foreign keys on; a writer waits up to 5 s for another.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, SqlStoreError> {
        let path = path.as_ref();
        Self::open_with(SqliteConnectOptions::new().filename(path), path).await
    }

    /// Opens the database a `sqlite:` URL names: `sqlite:relative/path.db`,
    /// `sqlite:///absolute/path.db`, or `sqlite::memory:` for [`SqliteStore::in_memory`].
    pub async fn connect(url: &str) -> Result<Self, SqlStoreError> {
        let invalid = |reason: &str| SqlStoreError::InvalidUrl { reason: reason.to_owned() };
        if url.contains('\0') {
            return Err(invalid("the URL contains a NUL character"));
        }
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| invalid("a SQLite URL starts with `sqlite:`"))?;
        let database = rest.split('?').next().unwrap_or_default();
        if database == ":memory:" {
            return Self::in_memory().await;
        }
        if database.is_empty() {
            return Err(invalid("the SQLite URL names no database file"));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| SqlStoreError::InvalidUrl { reason: e.to_string() })?;
        let path = options.get_filename().to_owned();
        Self::open_with(options, &path).await
    }

    /// A private database in memory, gone when the store is dropped: for tests and demos.
    pub async fn in_memory() -> Result<Self, SqlStoreError> {
        let target = ":memory:";
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
        // One connection that never closes: each connection to `:memory:` is its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| SqlStoreError::Connect {
                backend: BACKEND,
                target: target.into(),
                source,
            })?;
        migrate(&pool, target).await?;
        Ok(Self { pool })
    }

    async fn open_with(options: SqliteConnectOptions, path: &Path) -> Result<Self, SqlStoreError> {
        let invalid = |reason: &str| SqlStoreError::InvalidPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if path.as_os_str().is_empty() {
            return Err(invalid("the path is empty"));
        }
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(invalid("the path contains a NUL character"));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| SqlStoreError::CreateDir { path: dir.to_owned(), source })?;
        }
        let target = path.display().to_string();
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| SqlStoreError::Connect {
                backend: BACKEND,
                target: target.clone(),
                source,
            })?;
        migrate(&pool, &target).await?;
        tracing::info!(path = %target, "SQLite store open");
        Ok(Self { pool })
    }

    /// The connection pool, for maintenance beyond the store traits.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection (waiting for running queries); later calls fail with
    /// [`StoreError::Backend`](fenliu_tools_commerce::StoreError::Backend).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction holding SQLite's write lock from its first statement, so that the
    /// checks it makes still hold when it commits.
    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(failed("begin write transaction"))
    }

    /// Reads an order, applies `change` (which checks ownership and state), writes it back; all
    /// under the write lock.
    async fn modify_order(
        &self,
        order_id: &str,
        change: impl FnOnce(&mut Order) -> StoreResult<()> + Send,
    ) -> StoreResult<Order> {
        if !plausible_id(order_id) {
            return Err(not_found("order", order_id));
        }
        let mut tx = self.write().await?;
        let row: Option<OrderRow> = sqlx::query_as(SELECT_ORDER)
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed("read order"))?;
        let mut order = row.ok_or_else(|| not_found("order", order_id))?.into_order()?;
        change(&mut order)?;
        update_order(&mut tx, &order).await?;
        tx.commit().await.map_err(failed("commit order change"))?;
        Ok(order)
    }
}

async fn migrate(pool: &SqlitePool, target: &str) -> Result<(), SqlStoreError> {
    MIGRATOR.run(pool).await.map_err(|source| SqlStoreError::Migrate {
        backend: BACKEND,
        target: target.to_owned(),
        source,
    })
}

/// Writes the fields an order change may touch.
async fn update_order(conn: &mut SqliteConnection, o: &Order) -> StoreResult<()> {
    sqlx::query(UPDATE_ORDER)
        .bind(&o.id)
        .bind(o.status.as_str())
        .bind(Json(&o.address))
        .bind(Json(&o.payments))
        .execute(conn)
        .await
        .map_err(failed("update order"))?;
    Ok(())
}

async fn seed_customer(conn: &mut SqliteConnection, c: &Customer) -> StoreResult<usize> {
    let done = sqlx::query(SEED_CUSTOMER)
        .bind(&c.id)
        .bind(&c.name.first)
        .bind(&c.name.last)
        .bind(&c.email)
        .bind(enum_text(c.tier)?)
        .bind(&c.language)
        .bind(Json(&c.address))
        .bind(Json(&c.payment_methods))
        .execute(conn)
        .await
        .map_err(failed("write customer"))?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
}

async fn seed_product(conn: &mut SqliteConnection, p: &Product) -> StoreResult<usize> {
    let done = sqlx::query(SEED_PRODUCT)
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.category)
        .bind(&p.description)
        .bind(i64::from(p.warranty_months))
        .bind(Json(&p.variants))
        .execute(conn)
        .await
        .map_err(failed("write product"))?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
}

async fn seed_order(conn: &mut SqliteConnection, o: &Order) -> StoreResult<usize> {
    let done = sqlx::query(SEED_ORDER)
        .bind(&o.id)
        .bind(&o.customer_id)
        .bind(o.status.as_str())
        .bind(ts(o.placed_at))
        .bind(o.estimated_delivery)
        .bind(o.delivered_at.map(ts))
        .bind(Json(&o.address))
        .bind(Json(&o.items))
        .bind(Json(&o.fulfillments))
        .bind(Json(&o.payments))
        .execute(conn)
        .await
        .map_err(failed("write order"))?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
}

async fn insert_event(
    conn: &mut SqliteConnection,
    ticket: i64,
    e: &TicketEvent,
) -> StoreResult<()> {
    sqlx::query(INSERT_TICKET_EVENT)
        .bind(ticket)
        .bind(ts(e.at))
        .bind(&e.actor)
        .bind(e.from.map(TicketStatus::as_str))
        .bind(e.to.as_str())
        .bind(&e.note)
        .bind(e.kind.as_str())
        .bind(e.from_department.map(Department::as_str))
        .bind(e.to_department.map(Department::as_str))
        .bind(e.assignee.as_deref())
        .execute(conn)
        .await
        .map_err(failed("write ticket event"))?;
    Ok(())
}

/// One ticket with its history, inside the caller's transaction.
async fn read_ticket(conn: &mut SqliteConnection, number: i64) -> StoreResult<Option<Ticket>> {
    let rows: Vec<TicketEventRow> = sqlx::query_as(SELECT_TICKET.as_str())
        .bind(number)
        .fetch_all(conn)
        .await
        .map_err(failed("read ticket"))?;
    Ok(tickets_from_rows(rows)?.pop())
}

/// Puts a customer notification in the outbox.
async fn insert_notification(
    conn: &mut SqliteConnection,
    number: i64,
    n: &TicketNotification,
) -> StoreResult<()> {
    sqlx::query(INSERT_NOTIFICATION)
        .bind(number)
        .bind(&n.customer_id)
        .bind(&n.conversation_id)
        .bind(n.kind.as_str())
        .bind(n.status.as_str())
        .bind(n.department.as_str())
        .bind(ts(n.created_at))
        .execute(conn)
        .await
        .map_err(failed("write ticket notification"))?;
    Ok(())
}

impl OrderStore for SqliteStore {
    async fn import(&self, data: &ShopData) -> StoreResult<ImportStats> {
        validate_import(data)?;
        let mut tx = self.write().await?;
        let mut stats = ImportStats::default();
        for c in &data.customers {
            stats.customers += seed_customer(&mut tx, c).await?;
        }
        for p in &data.products {
            stats.products += seed_product(&mut tx, p).await?;
        }
        for o in &data.orders {
            stats.orders += seed_order(&mut tx, o).await?;
        }
        tx.commit().await.map_err(failed("commit import"))?;
        Ok(stats)
    }

    async fn customer(&self, id: &str) -> StoreResult<Option<Customer>> {
        if !plausible_id(id) {
            return Ok(None);
        }
        let row: Option<CustomerRow> = sqlx::query_as(SELECT_CUSTOMER)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("read customer"))?;
        row.map(CustomerRow::into_customer).transpose()
    }

    async fn product(&self, id: &str) -> StoreResult<Option<Product>> {
        if !plausible_id(id) {
            return Ok(None);
        }
        let row: Option<ProductRow> = sqlx::query_as(SELECT_PRODUCT)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("read product"))?;
        row.map(ProductRow::into_product).transpose()
    }

    async fn products(&self) -> StoreResult<Vec<Product>> {
        let rows: Vec<ProductRow> = sqlx::query_as(SELECT_PRODUCTS)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read products"))?;
        rows.into_iter().map(ProductRow::into_product).collect()
    }

    async fn order(&self, id: &str) -> StoreResult<Option<Order>> {
        if !plausible_id(id) {
            return Ok(None);
        }
        let row: Option<OrderRow> = sqlx::query_as(SELECT_ORDER)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("read order"))?;
        row.map(OrderRow::into_order).transpose()
    }

    async fn orders_of(&self, customer_id: &str) -> StoreResult<Vec<Order>> {
        if !plausible_id(customer_id) {
            return Ok(Vec::new());
        }
        let rows: Vec<OrderRow> = sqlx::query_as(SELECT_ORDERS_OF)
            .bind(customer_id)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read orders of customer"))?;
        rows.into_iter().map(OrderRow::into_order).collect()
    }

    async fn cancel_order(
        &self,
        customer_id: &str,
        order_id: &str,
        _reason: CancelReason,
    ) -> StoreResult<Order> {
        self.modify_order(order_id, |order| {
            check_cancellable(order, customer_id)?;
            apply_cancellation(order);
            Ok(())
        })
        .await
    }

    async fn update_order_address(
        &self,
        customer_id: &str,
        order_id: &str,
        address: &Address,
    ) -> StoreResult<Order> {
        self.modify_order(order_id, |order| {
            check_address_change(order, customer_id, address)?;
            order.address = address.clone();
            Ok(())
        })
        .await
    }
}

impl TicketStore for SqliteStore {
    async fn create_ticket(&self, t: &NewTicket) -> StoreResult<Ticket> {
        validate_ticket(t)?;
        let now = micros(Utc::now());
        let sla_due_at = micros(t.sla_due_at);
        let created = TicketEvent::created(now, &t.actor);
        let mut tx = self.write().await?;
        let number: i64 = sqlx::query_scalar(INSERT_TICKET)
            .bind(&t.customer_id)
            .bind(t.order_id.as_deref())
            .bind(enum_text(t.kind)?)
            .bind(enum_text(t.department)?)
            .bind(enum_text(t.priority)?)
            .bind(TicketStatus::Open.as_str())
            .bind(&t.subject)
            .bind(&t.description)
            .bind(ts(now))
            .bind(ts(now))
            .bind(ts(sla_due_at))
            .bind(t.conversation_id.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(failed("write ticket"))?;
        insert_event(&mut tx, number, &created).await?;
        tx.commit().await.map_err(failed("commit new ticket"))?;
        Ok(Ticket {
            id: ticket_id(number),
            customer_id: t.customer_id.clone(),
            order_id: t.order_id.clone(),
            kind: t.kind,
            department: t.department,
            priority: t.priority,
            status: TicketStatus::Open,
            subject: t.subject.clone(),
            description: t.description.clone(),
            created_at: now,
            updated_at: now,
            sla_due_at,
            history: vec![created],
            assignee: None,
            conversation_id: t.conversation_id.clone(),
            sla_reminded_at: None,
            sla_breached_at: None,
        })
    }

    async fn ticket(&self, id: &str) -> StoreResult<Option<Ticket>> {
        let Some(number) = parse_ticket_id(id) else {
            return Ok(None);
        };
        let rows: Vec<TicketEventRow> = sqlx::query_as(SELECT_TICKET.as_str())
            .bind(number)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read ticket"))?;
        Ok(tickets_from_rows(rows)?.pop())
    }

    async fn tickets_of(&self, customer_id: &str) -> StoreResult<Vec<Ticket>> {
        if !plausible_id(customer_id) {
            return Ok(Vec::new());
        }
        let rows: Vec<TicketEventRow> = sqlx::query_as(SELECT_TICKETS_OF.as_str())
            .bind(customer_id)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read tickets of customer"))?;
        tickets_from_rows(rows)
    }

    async fn update_ticket_status(
        &self,
        id: &str,
        to: TicketStatus,
        actor: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Ticket> {
        self.change_ticket(id, &TicketUpdate::status(to, actor, note, at)).await
    }

    async fn change_ticket(&self, id: &str, update: &TicketUpdate) -> StoreResult<Ticket> {
        let number = parse_ticket_id(id).ok_or_else(|| not_found("ticket", id))?;
        let update = validate_update(update)?;
        let mut tx = self.write().await?;
        let mut ticket =
            read_ticket(&mut tx, number).await?.ok_or_else(|| not_found("ticket", id))?;
        let applied = apply_ticket_update(&mut ticket, &update)?;
        sqlx::query(UPDATE_TICKET)
            .bind(number)
            .bind(ticket.status.as_str())
            .bind(ticket.department.as_str())
            .bind(ticket.assignee.as_deref())
            .bind(ts(ticket.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(failed("write ticket"))?;
        insert_event(&mut tx, number, &applied.event).await?;
        if let Some(kind) = applied.notify {
            insert_notification(&mut tx, number, &notification_for(&ticket, kind)).await?;
        }
        tx.commit().await.map_err(failed("commit ticket change"))?;
        Ok(ticket)
    }

    async fn department_queue(
        &self,
        department: Department,
        status: Option<TicketStatus>,
        limit: usize,
    ) -> StoreResult<Vec<Ticket>> {
        check_queue_limit(limit)?;
        let rows: Vec<TicketEventRow> = sqlx::query_as(SELECT_QUEUE.as_str())
            .bind(department.as_str())
            .bind(status.map(TicketStatus::as_str))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read department queue"))?;
        tickets_from_rows(rows)
    }

    async fn sweep_ticket_sla(
        &self,
        now: DateTime<Utc>,
        reminder_fraction: f64,
    ) -> StoreResult<Vec<SlaAlert>> {
        check_reminder_fraction(reminder_fraction)?;
        let now = checked_now(now)?;
        let candidates: Vec<SlaRow> = sqlx::query_as(SELECT_SLA_CANDIDATES)
            .bind(ts(now))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read SLA candidates"))?;
        let mut alerts = Vec::new();
        for row in candidates {
            if sla_alert_due_for(&row.clock()?, now, reminder_fraction).is_none() {
                continue;
            }
            // Decided again under the lock: another sweep may have sent it meanwhile.
            let mut tx = self.write().await?;
            let Some(mut ticket) = read_ticket(&mut tx, row.id).await? else {
                continue;
            };
            let Some(kind) = sla_alert_due(&ticket, now, reminder_fraction) else {
                continue;
            };
            let (alert, event) = apply_sla_alert(&mut ticket, kind, now);
            sqlx::query(UPDATE_TICKET_SLA)
                .bind(row.id)
                .bind(ticket.sla_reminded_at.map(ts))
                .bind(ticket.sla_breached_at.map(ts))
                .execute(&mut *tx)
                .await
                .map_err(failed("write SLA marks"))?;
            insert_event(&mut tx, row.id, &event).await?;
            tx.commit().await.map_err(failed("commit SLA event"))?;
            alerts.push(alert);
        }
        Ok(alerts)
    }

    async fn claim_ticket_notifications(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: usize,
    ) -> StoreResult<Vec<TicketNotification>> {
        check_claim(lease, limit)?;
        let now = checked_now(now)?;
        let until = checked_now(now + lease)?;
        let mut tx = self.write().await?;
        let rows: Vec<NotificationRow> = sqlx::query_as(CLAIM_NOTIFICATIONS.as_str())
            .bind(ts(now))
            .bind(ts(until))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("claim ticket notifications"))?;
        tx.commit().await.map_err(failed("commit notification claim"))?;
        notifications_from_rows(rows)
    }

    async fn ack_ticket_notification(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        let at = checked_now(at)?;
        let done = sqlx::query(ACK_NOTIFICATION)
            .bind(id)
            .bind(ts(at))
            .execute(&self.pool)
            .await
            .map_err(failed("acknowledge ticket notification"))?;
        Ok(done.rows_affected() == 1)
    }
}
