//! The PostgreSQL backend: several server processes can share one shop; writes lock the row they
//! check with `SELECT … FOR UPDATE`.

use std::str::FromStr;

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
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, Postgres, Transaction};

use crate::CONNECT_TIMEOUT;
use crate::common::*;
use crate::error::{SqlBackend, SqlStoreError, query_failed};

/// The outbox claim, in this backend's flavour.
static CLAIM_NOTIFICATIONS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| claim_notifications_sql(true));

const BACKEND: SqlBackend = SqlBackend::Postgres;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per store (per server process).
const MAX_CONNECTIONS: u32 = 10;

const LOCK_ORDER: &str = "SELECT 1 FROM orders WHERE id = $1 FOR UPDATE";
const LOCK_TICKET: &str = "SELECT id FROM tickets WHERE id = $1 FOR UPDATE";

fn failed(op: &'static str) -> impl FnOnce(sqlx::Error) -> fenliu_tools_commerce::StoreError {
    query_failed(BACKEND, op)
}

/// Host, port and database of a connection, for messages (never the password).
fn target(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or(options.get_username());
    match options.get_socket() {
        Some(socket) => format!("{}/{database}", socket.display()),
        None => format!("{}:{}/{database}", options.get_host(), options.get_port()),
    }
}

/// The shop in a PostgreSQL database: for several server processes sharing one shop.
///
/// Tables live in the connection's `search_path` (normally `public`); to keep several shops in
/// one database, give each its own schema with `PgConnectOptions::options([("search_path", …)])`.
/// Cloning is cheap and shares the connection pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database a `postgres:` / `postgresql:` URL names and brings its schema up
    /// to date.
    pub async fn connect(url: &str) -> Result<Self, SqlStoreError> {
        if url.contains('\0') {
            return Err(SqlStoreError::InvalidUrl {
                reason: "the URL contains a NUL character".into(),
            });
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| SqlStoreError::InvalidUrl { reason: e.to_string() })?;
        Self::connect_with(options).await
    }

    /// Connects with explicit options and brings the schema up to date.
    ///
    /// The first connection must succeed within 5 s, and its error is reported as is (the pool
    /// alone would retry a refused connection until its timeout and then only say "timed out").
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, SqlStoreError> {
        let target = target(&options);
        let mut conn =
            match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(source)) => {
                    return Err(SqlStoreError::Connect { backend: BACKEND, target, source });
                }
                Err(_) => {
                    return Err(SqlStoreError::ConnectTimeout {
                        backend: BACKEND,
                        target,
                        timeout: CONNECT_TIMEOUT,
                    });
                }
            };
        let migrated = MIGRATOR.run(&mut conn).await;
        if let Err(error) = conn.close().await {
            tracing::debug!(%error, "closing the migration connection failed");
        }
        migrated.map_err(|source| SqlStoreError::Migrate {
            backend: BACKEND,
            target: target.clone(),
            source,
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        tracing::info!(%target, "PostgreSQL store connected");
        Ok(Self { pool })
    }

    /// The connection pool, for maintenance beyond the store traits.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection (waiting for running queries); later calls fail with
    /// [`StoreError::Backend`](fenliu_tools_commerce::StoreError::Backend).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A read-committed transaction; writers lock what they check with `FOR UPDATE`.
    async fn write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(failed("begin write transaction"))
    }

    /// Locks an order's row, reads it, applies `change` (which checks ownership and state), and
    /// writes it back: a concurrent writer waits for the lock and then sees the new state.
    async fn modify_order(
        &self,
        order_id: &str,
        change: impl FnOnce(&mut Order) -> StoreResult<()> + Send,
    ) -> StoreResult<Order> {
        if !plausible_id(order_id) {
            return Err(not_found("order", order_id));
        }
        let mut tx = self.write().await?;
        let locked: Option<i32> = sqlx::query_scalar(LOCK_ORDER)
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed("lock order"))?;
        if locked.is_none() {
            return Err(not_found("order", order_id));
        }
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

/// Writes the fields an order change may touch.
async fn update_order(conn: &mut PgConnection, o: &Order) -> StoreResult<()> {
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

async fn seed_customer(conn: &mut PgConnection, c: &Customer) -> StoreResult<usize> {
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

async fn seed_product(conn: &mut PgConnection, p: &Product) -> StoreResult<usize> {
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

async fn seed_order(conn: &mut PgConnection, o: &Order) -> StoreResult<usize> {
    let done = sqlx::query(SEED_ORDER)
        .bind(&o.id)
        .bind(&o.customer_id)
        .bind(o.status.as_str())
        .bind(micros(o.placed_at))
        .bind(o.estimated_delivery)
        .bind(o.delivered_at.map(micros))
        .bind(Json(&o.address))
        .bind(Json(&o.items))
        .bind(Json(&o.fulfillments))
        .bind(Json(&o.payments))
        .execute(conn)
        .await
        .map_err(failed("write order"))?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
}

async fn insert_event(conn: &mut PgConnection, ticket: i64, e: &TicketEvent) -> StoreResult<()> {
    sqlx::query(INSERT_TICKET_EVENT)
        .bind(ticket)
        .bind(micros(e.at))
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
async fn read_ticket(conn: &mut PgConnection, number: i64) -> StoreResult<Option<Ticket>> {
    let rows: Vec<TicketEventRow> = sqlx::query_as(SELECT_TICKET.as_str())
        .bind(number)
        .fetch_all(conn)
        .await
        .map_err(failed("read ticket"))?;
    Ok(tickets_from_rows(rows)?.pop())
}

/// Puts a customer notification in the outbox.
async fn insert_notification(
    conn: &mut PgConnection,
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
        .bind(n.created_at)
        .execute(conn)
        .await
        .map_err(failed("write ticket notification"))?;
    Ok(())
}

impl OrderStore for PostgresStore {
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

impl TicketStore for PostgresStore {
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
            .bind(now)
            .bind(now)
            .bind(sla_due_at)
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
        let locked: Option<i64> = sqlx::query_scalar(LOCK_TICKET)
            .bind(number)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed("lock ticket"))?;
        if locked.is_none() {
            return Err(not_found("ticket", id));
        }
        let mut ticket =
            read_ticket(&mut tx, number).await?.ok_or_else(|| not_found("ticket", id))?;
        let applied = apply_ticket_update(&mut ticket, &update)?;
        sqlx::query(UPDATE_TICKET)
            .bind(number)
            .bind(ticket.status.as_str())
            .bind(ticket.department.as_str())
            .bind(ticket.assignee.as_deref())
            .bind(ticket.updated_at)
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
            .bind(now)
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
            let locked: Option<i64> = sqlx::query_scalar(LOCK_TICKET)
                .bind(row.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed("lock ticket"))?;
            if locked.is_none() {
                continue;
            }
            let Some(mut ticket) = read_ticket(&mut tx, row.id).await? else {
                continue;
            };
            let Some(kind) = sla_alert_due(&ticket, now, reminder_fraction) else {
                continue;
            };
            let (alert, event) = apply_sla_alert(&mut ticket, kind, now);
            sqlx::query(UPDATE_TICKET_SLA)
                .bind(row.id)
                .bind(ticket.sla_reminded_at)
                .bind(ticket.sla_breached_at)
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
            .bind(now)
            .bind(until)
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
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(failed("acknowledge ticket notification"))?;
        Ok(done.rows_affected() == 1)
    }
}
