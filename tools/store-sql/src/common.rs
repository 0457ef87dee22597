//! What both backends share: the SQL text (both accept `$n` parameters), the row shapes and their
//! conversion into domain values, and the input checks that keep hostile values away from the
//! database.

use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, Utc};
use fenliu_tools_commerce::store::{SlaClock, validate_new_ticket};
use fenliu_tools_commerce::{
    Address, Customer, Department, Fulfillment, NewTicket, Order, OrderItem, OrderStatus, Payment,
    PaymentMethod, PersonName, Product, ShopData, StoreError, StoreResult, Ticket, TicketChange,
    TicketEvent, TicketEventKind, TicketKind, TicketNotification, TicketNotificationKind,
    TicketPriority, TicketStatus, TicketUpdate, Tier, Variant,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;

use crate::error::corrupt;

/// Longest id a lookup sends to the database; anything longer cannot exist (ids are short codes).
pub(crate) const MAX_ID_BYTES: usize = 256;

// ---- SQL shared by both backends -------------------------------------------------------------

pub(crate) const SELECT_CUSTOMER: &str = "SELECT id, first_name, last_name, email, tier, language, \
     address, payment_methods FROM customers WHERE id = $1";

pub(crate) const SEED_CUSTOMER: &str = "INSERT INTO customers \
     (id, first_name, last_name, email, tier, language, address, payment_methods) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (id) DO NOTHING";

pub(crate) const SELECT_PRODUCT: &str = "SELECT id, name, category, description, warranty_months, \
     variants FROM products WHERE id = $1";

pub(crate) const SELECT_PRODUCTS: &str = "SELECT id, name, category, description, \
     warranty_months, variants FROM products ORDER BY id";

pub(crate) const SEED_PRODUCT: &str = "INSERT INTO products \
     (id, name, category, description, warranty_months, variants) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (id) DO NOTHING";

pub(crate) const SELECT_ORDER: &str = "SELECT id, customer_id, status, placed_at, \
     estimated_delivery, delivered_at, address, items, fulfillments, payments \
     FROM orders WHERE id = $1";

/// Newest first; ties by id, as the in-memory reference store orders them.
pub(crate) const SELECT_ORDERS_OF: &str = "SELECT id, customer_id, status, placed_at, \
     estimated_delivery, delivered_at, address, items, fulfillments, payments \
     FROM orders WHERE customer_id = $1 ORDER BY placed_at DESC, id";

/// Writes a whole order: the import, and every change to an order (inside its transaction).
pub(crate) const SEED_ORDER: &str = "INSERT INTO orders \
     (id, customer_id, status, placed_at, estimated_delivery, delivered_at, address, items, \
     fulfillments, payments) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (id) DO NOTHING";

/// The fields an order change (cancellation, address change) may touch.
pub(crate) const UPDATE_ORDER: &str =
    "UPDATE orders SET status = $2, address = $3, payments = $4 WHERE id = $1";

pub(crate) const INSERT_TICKET: &str = "INSERT INTO tickets \
     (customer_id, order_id, kind, department, priority, status, subject, description, \
     created_at, updated_at, sla_due_at, conversation_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";

pub(crate) const INSERT_TICKET_EVENT: &str = "INSERT INTO ticket_events \
     (ticket_id, occurred_at, actor, from_status, to_status, note, kind, from_department, \
     to_department, assignee) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// The fields a ticket change may touch ([`apply_ticket_update`](fenliu_tools_commerce::store::apply_ticket_update)).
pub(crate) const UPDATE_TICKET: &str =
    "UPDATE tickets SET status = $2, department = $3, assignee = $4, updated_at = $5 WHERE id = $1";

/// The SLA sweep's marks.
pub(crate) const UPDATE_TICKET_SLA: &str =
    "UPDATE tickets SET sla_reminded_at = $2, sla_breached_at = $3 WHERE id = $1";

const TICKET_COLUMNS: &str = "t.id, t.customer_id, t.order_id, t.kind, \
     t.department, t.priority, t.status, t.subject, t.description, t.created_at, t.updated_at, \
     t.sla_due_at, t.assignee, t.conversation_id, t.sla_reminded_at, t.sla_breached_at, \
     e.occurred_at AS event_at, e.actor AS event_actor, \
     e.from_status AS event_from, e.to_status AS event_to, e.note AS event_note, \
     e.kind AS event_kind, e.from_department AS event_from_department, \
     e.to_department AS event_to_department, e.assignee AS event_assignee";

/// One ticket with its history, read in one statement (so in one snapshot).
pub(crate) static SELECT_TICKET: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN ticket_events e ON e.ticket_id = t.id \
         WHERE t.id = $1 ORDER BY t.id DESC, e.id"
    )
});

/// A customer's tickets with their histories, newest ticket first, events oldest first.
pub(crate) static SELECT_TICKETS_OF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {TICKET_COLUMNS} FROM tickets t \
             LEFT JOIN ticket_events e ON e.ticket_id = t.id \
             WHERE t.customer_id = $1 ORDER BY t.id DESC, e.id"
    )
});

/// Urgent first, as [`queue_order`](fenliu_tools_commerce::store::queue_order).
const PRIORITY_RANK: &str = "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 \
     WHEN 'normal' THEN 2 ELSE 3 END";

/// A department's queue with histories: `$1` department, `$2` status or NULL (everything but
/// closed), `$3` limit; in queue order.
pub(crate) static SELECT_QUEUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let rank = PRIORITY_RANK.replace("priority", "t.priority");
    format!(
        "SELECT {TICKET_COLUMNS} FROM tickets t \
         LEFT JOIN ticket_events e ON e.ticket_id = t.id \
         WHERE t.id IN (SELECT id FROM tickets WHERE department = $1 \
             AND (status = $2 OR ($2 IS NULL AND status <> 'closed')) \
             ORDER BY {PRIORITY_RANK}, sla_due_at, id LIMIT $3) \
         ORDER BY {rank}, t.sla_due_at, t.id, e.id"
    )
});

/// The SLA sweep's candidates: not resolved or closed, no breach found yet, and either due or
/// not reminded yet (`$1` now).
pub(crate) const SELECT_SLA_CANDIDATES: &str = "SELECT id, status, created_at, sla_due_at, \
     sla_reminded_at, sla_breached_at FROM tickets \
     WHERE status NOT IN ('resolved', 'closed') AND sla_breached_at IS NULL \
     AND (sla_due_at <= $1 OR sla_reminded_at IS NULL) ORDER BY sla_due_at, id";

pub(crate) const INSERT_NOTIFICATION: &str = "INSERT INTO ticket_notifications \
     (ticket_id, customer_id, conversation_id, kind, status, department, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

const NOTIFICATION_COLUMNS: &str = "id, ticket_id, customer_id, conversation_id, kind, status, \
     department, created_at, attempts";

/// Claims pending notifications: `$1` now, `$2` the end of the claim, `$3` limit. The PostgreSQL
/// flavour skips rows another claimer holds.
pub(crate) fn claim_notifications_sql(skip_locked: bool) -> String {
    let lock = if skip_locked { " FOR UPDATE SKIP LOCKED" } else { "" };
    format!(
        "UPDATE ticket_notifications SET claimed_until = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM ticket_notifications WHERE delivered_at IS NULL \
             AND (claimed_until IS NULL OR claimed_until <= $1) ORDER BY id LIMIT $3{lock}) \
         RETURNING {NOTIFICATION_COLUMNS}"
    )
}

pub(crate) const ACK_NOTIFICATION: &str =
    "UPDATE ticket_notifications SET delivered_at = $2 WHERE id = $1 AND delivered_at IS NULL";

// ---- Input checks ----------------------------------------------------------------------------

/// Whether `id` could name a stored record. Lookups of anything else answer "not found" without
/// asking the database: PostgreSQL rejects NUL bytes in text with an error, and there is no point
/// in shipping a megabyte-long id to the server.
pub(crate) fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES && !id.contains('\0')
}

/// `order #W1`, with implausible ids shortened and escaped so error messages stay small.
pub(crate) fn describe(kind: &str, id: &str) -> String {
    if plausible_id(id) || id.is_empty() {
        format!("{kind} {id}")
    } else {
        let head: String = id.chars().take(32).collect();
        format!("{kind} {head:?}… ({} bytes)", id.len())
    }
}

pub(crate) fn not_found(kind: &str, id: &str) -> StoreError {
    StoreError::NotFound { what: describe(kind, id) }
}

/// Rejects text neither backend can store the same way (PostgreSQL refuses NUL bytes).
pub(crate) fn check_text(field: &str, value: &str) -> StoreResult<()> {
    if value.contains('\0') {
        return Err(StoreError::InvalidInput(format!("{field} contains a NUL character")));
    }
    Ok(())
}

/// Rejects timestamps outside years 1–9999, which one or the other backend cannot represent in
/// its column (and which no shop event has).
pub(crate) fn check_time(field: &str, at: DateTime<Utc>) -> StoreResult<()> {
    check_year(field, at.year())
}

fn check_year(field: &str, year: i32) -> StoreResult<()> {
    if (1..=9999).contains(&year) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!("{field} is outside the years 1-9999")))
    }
}

/// The precision both backends store: microseconds (PostgreSQL's). Every timestamp is truncated
/// before it is written, so what a write returns equals what a later read returns.
pub(crate) fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Checks a new ticket: the shared rules of the commerce crate, then what the databases need.
pub(crate) fn validate_ticket(t: &NewTicket) -> StoreResult<()> {
    validate_new_ticket(t)?;
    check_text("ticket customer_id", &t.customer_id)?;
    check_text("ticket order_id", t.order_id.as_deref().unwrap_or_default())?;
    check_text("ticket subject", &t.subject)?;
    check_text("ticket description", &t.description)?;
    check_text("ticket actor", &t.actor)?;
    check_time("ticket sla_due_at", t.sla_due_at)
}

/// Checks what the databases need of a ticket change (the shared rules check the rest), and
/// truncates its time to the stored precision.
pub(crate) fn validate_update(update: &TicketUpdate) -> StoreResult<TicketUpdate> {
    check_text("actor", &update.actor)?;
    check_text("note", &update.note)?;
    if let TicketChange::Assign { assignee } = &update.change {
        check_text("assignee", assignee)?;
    }
    check_time("time of the change", update.at)?;
    Ok(TicketUpdate { at: micros(update.at), ..update.clone() })
}

/// Checks a time the SLA sweep or the outbox is given, truncated to the stored precision.
pub(crate) fn checked_now(at: DateTime<Utc>) -> StoreResult<DateTime<Utc>> {
    check_time("the time", at)?;
    Ok(micros(at))
}

/// Checks a whole import before anything is written: no NUL characters anywhere (PostgreSQL
/// refuses them in text and JSONB), finite amounts (JSON has no NaN or infinity: they would be
/// written as `null` and never read back), timestamps in range.
pub(crate) fn validate_import(data: &ShopData) -> StoreResult<()> {
    let value = serde_json::to_value(data)
        .map_err(|e| StoreError::InvalidInput(format!("import data cannot be encoded: {e}")))?;
    if contains_nul(&value) {
        return Err(StoreError::InvalidInput("import data contains a NUL character".into()));
    }
    let finite = |what: &str, id: &str, amount: f64| {
        if amount.is_finite() {
            Ok(())
        } else {
            Err(StoreError::InvalidInput(format!(
                "{}: amount {amount} is not finite",
                describe(what, id)
            )))
        }
    };
    for c in &data.customers {
        for m in &c.payment_methods {
            finite("customer", &c.id, m.balance.unwrap_or_default())?;
        }
    }
    for p in &data.products {
        for v in &p.variants {
            finite("product", &p.id, v.price)?;
        }
    }
    for o in &data.orders {
        check_time("order placed_at", o.placed_at)?;
        if let Some(at) = o.delivered_at {
            check_time("order delivered_at", at)?;
        }
        if let Some(date) = o.estimated_delivery {
            check_year("order estimated_delivery", date.year())?;
        }
        for i in &o.items {
            finite("order", &o.id, i.price)?;
        }
        for p in &o.payments {
            finite("order", &o.id, p.amount)?;
        }
    }
    Ok(())
}

fn contains_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

// ---- Enums as text ---------------------------------------------------------------------------

/// The serde name of a unit enum variant (`after_sales`, `vip`), as stored in text columns.
pub(crate) fn enum_text<T: Serialize + std::fmt::Debug>(value: T) -> StoreResult<String> {
    match serde_json::to_value(&value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        // Unit variants of the domain's enums always serialise to strings; anything else is a
        // domain change this crate has not caught up with.
        _ => Err(corrupt("enum", format!("{value:?} does not serialise to a string"))),
    }
}

fn enum_from_text<T: DeserializeOwned>(what: &str, text: String) -> StoreResult<T> {
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|_| corrupt(what, format!("unknown value {text:?}")))
}

fn order_status(text: &str) -> StoreResult<OrderStatus> {
    OrderStatus::parse(text).ok_or_else(|| corrupt("order status", format!("{text:?}")))
}

fn ticket_status(text: &str) -> StoreResult<TicketStatus> {
    TicketStatus::parse(text).ok_or_else(|| corrupt("ticket status", format!("{text:?}")))
}

// ---- Rows ------------------------------------------------------------------------------------

/// A `customers` row.
#[derive(sqlx::FromRow)]
pub(crate) struct CustomerRow {
    id: String,
    first_name: String,
    last_name: String,
    email: String,
    tier: String,
    language: String,
    address: Json<Address>,
    payment_methods: Json<Vec<PaymentMethod>>,
}

impl CustomerRow {
    pub(crate) fn into_customer(self) -> StoreResult<Customer> {
        Ok(Customer {
            tier: enum_from_text::<Tier>("customer tier", self.tier)?,
            id: self.id,
            name: PersonName { first: self.first_name, last: self.last_name },
            email: self.email,
            language: self.language,
            address: self.address.0,
            payment_methods: self.payment_methods.0,
        })
    }
}

/// A `products` row.
#[derive(sqlx::FromRow)]
pub(crate) struct ProductRow {
    id: String,
    name: String,
    category: String,
    description: String,
    warranty_months: i64,
    variants: Json<Vec<Variant>>,
}

impl ProductRow {
    pub(crate) fn into_product(self) -> StoreResult<Product> {
        let warranty_months = u32::try_from(self.warranty_months)
            .map_err(|_| corrupt("product warranty_months", self.warranty_months))?;
        Ok(Product {
            id: self.id,
            name: self.name,
            category: self.category,
            description: self.description,
            warranty_months,
            variants: self.variants.0,
        })
    }
}

/// An `orders` row.
#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    id: String,
    customer_id: String,
    status: String,
    placed_at: DateTime<Utc>,
    estimated_delivery: Option<NaiveDate>,
    delivered_at: Option<DateTime<Utc>>,
    address: Json<Address>,
    items: Json<Vec<OrderItem>>,
    fulfillments: Json<Vec<Fulfillment>>,
    payments: Json<Vec<Payment>>,
}

impl OrderRow {
    pub(crate) fn into_order(self) -> StoreResult<Order> {
        Ok(Order {
            status: order_status(&self.status)?,
            id: self.id,
            customer_id: self.customer_id,
            placed_at: self.placed_at,
            estimated_delivery: self.estimated_delivery,
            delivered_at: self.delivered_at,
            address: self.address.0,
            items: self.items.0,
            fulfillments: self.fulfillments.0,
            payments: self.payments.0,
        })
    }
}

/// A `tickets` row joined with one of its `ticket_events` (or none).
#[derive(sqlx::FromRow)]
pub(crate) struct TicketEventRow {
    id: i64,
    customer_id: String,
    order_id: Option<String>,
    kind: String,
    department: String,
    priority: String,
    status: String,
    subject: String,
    description: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    sla_due_at: DateTime<Utc>,
    assignee: Option<String>,
    conversation_id: Option<String>,
    sla_reminded_at: Option<DateTime<Utc>>,
    sla_breached_at: Option<DateTime<Utc>>,
    event_at: Option<DateTime<Utc>>,
    event_actor: Option<String>,
    event_from: Option<String>,
    event_to: Option<String>,
    event_note: Option<String>,
    event_kind: Option<String>,
    event_from_department: Option<String>,
    event_to_department: Option<String>,
    event_assignee: Option<String>,
}

impl TicketEventRow {
    fn event(&mut self) -> StoreResult<Option<TicketEvent>> {
        let (Some(at), Some(to)) = (self.event_at, self.event_to.take()) else {
            return Ok(None);
        };
        Ok(Some(TicketEvent {
            at,
            actor: self.event_actor.take().unwrap_or_default(),
            from: self.event_from.take().as_deref().map(ticket_status).transpose()?,
            to: ticket_status(&to)?,
            note: self.event_note.take().unwrap_or_default(),
            kind: match self.event_kind.take() {
                Some(k) => TicketEventKind::parse(&k)
                    .ok_or_else(|| corrupt("ticket event kind", format!("{k:?}")))?,
                None => TicketEventKind::Status,
            },
            from_department: self.event_from_department.take().map(department).transpose()?,
            to_department: self.event_to_department.take().map(department).transpose()?,
            assignee: self.event_assignee.take(),
        }))
    }

    fn into_ticket(self) -> StoreResult<Ticket> {
        Ok(Ticket {
            id: fenliu_tools_commerce::ticket_id(self.id),
            kind: enum_from_text::<TicketKind>("ticket kind", self.kind)?,
            department: enum_from_text::<Department>("ticket department", self.department)?,
            priority: enum_from_text::<TicketPriority>("ticket priority", self.priority)?,
            status: ticket_status(&self.status)?,
            customer_id: self.customer_id,
            order_id: self.order_id,
            subject: self.subject,
            description: self.description,
            created_at: self.created_at,
            updated_at: self.updated_at,
            sla_due_at: self.sla_due_at,
            history: Vec::new(),
            assignee: self.assignee,
            conversation_id: self.conversation_id,
            sla_reminded_at: self.sla_reminded_at,
            sla_breached_at: self.sla_breached_at,
        })
    }
}

fn department(text: String) -> StoreResult<Department> {
    Department::parse(&text).ok_or_else(|| corrupt("department", format!("{text:?}")))
}

/// A row of the SLA sweep's candidate query.
#[derive(sqlx::FromRow)]
pub(crate) struct SlaRow {
    pub(crate) id: i64,
    status: String,
    created_at: DateTime<Utc>,
    sla_due_at: DateTime<Utc>,
    sla_reminded_at: Option<DateTime<Utc>>,
    sla_breached_at: Option<DateTime<Utc>>,
}

impl SlaRow {
    pub(crate) fn clock(&self) -> StoreResult<SlaClock> {
        Ok(SlaClock {
            status: ticket_status(&self.status)?,
            created_at: self.created_at,
            sla_due_at: self.sla_due_at,
            sla_reminded_at: self.sla_reminded_at,
            sla_breached_at: self.sla_breached_at,
        })
    }
}

/// A `ticket_notifications` row.
#[derive(sqlx::FromRow)]
pub(crate) struct NotificationRow {
    id: i64,
    ticket_id: i64,
    customer_id: String,
    conversation_id: String,
    kind: String,
    status: String,
    department: String,
    created_at: DateTime<Utc>,
    attempts: i32,
}

impl NotificationRow {
    pub(crate) fn into_notification(self) -> StoreResult<TicketNotification> {
        Ok(TicketNotification {
            id: self.id,
            ticket_id: fenliu_tools_commerce::ticket_id(self.ticket_id),
            customer_id: self.customer_id,
            conversation_id: self.conversation_id,
            kind: TicketNotificationKind::parse(&self.kind)
                .ok_or_else(|| corrupt("notification kind", format!("{:?}", self.kind)))?,
            status: ticket_status(&self.status)?,
            department: department(self.department)?,
            created_at: self.created_at,
            attempts: u32::try_from(self.attempts)
                .map_err(|_| corrupt("notification attempts", self.attempts))?,
        })
    }
}

/// Claimed notifications, oldest first (`RETURNING` has no order).
pub(crate) fn notifications_from_rows(
    rows: Vec<NotificationRow>,
) -> StoreResult<Vec<TicketNotification>> {
    let mut out: Vec<TicketNotification> =
        rows.into_iter().map(NotificationRow::into_notification).collect::<Result<_, _>>()?;
    out.sort_by_key(|n| n.id);
    Ok(out)
}

/// Folds joined ticket/event rows (ordered by ticket, then event) into tickets with histories.
pub(crate) fn tickets_from_rows(rows: Vec<TicketEventRow>) -> StoreResult<Vec<Ticket>> {
    let mut tickets: Vec<(i64, Ticket)> = Vec::new();
    for mut row in rows {
        let event = row.event()?;
        let number = row.id;
        if tickets.last().is_none_or(|(n, _)| *n != number) {
            tickets.push((number, row.into_ticket()?));
        }
        if let (Some(event), Some((_, ticket))) = (event, tickets.last_mut()) {
            ticket.history.push(event);
        }
    }
    Ok(tickets.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_ids_are_described_briefly() {
        assert_eq!(describe("order", "#W1"), "order #W1");
        let long = describe("order", &"x".repeat(1 << 20));
        assert!(long.len() < 100, "{long}");
        assert!(describe("order", "a\0b").contains("\\0"));
        assert!(!plausible_id(""));
        assert!(!plausible_id("\0"));
        assert!(plausible_id("' OR '1'='1"));
    }

    #[test]
    fn enums_are_stored_by_serde_name() {
        assert_eq!(enum_text(Department::AfterSales).unwrap(), "after_sales");
        assert_eq!(enum_text(Tier::Vip).unwrap(), "vip");
        assert_eq!(enum_text(TicketPriority::Urgent).unwrap(), "urgent");
        let back: Department = enum_from_text("d", "customer_care".into()).unwrap();
        assert_eq!(back, Department::CustomerCare);
        assert!(enum_from_text::<Department>("d", "nope".into()).is_err());
    }

    #[test]
    fn timestamps_are_truncated_to_microseconds() {
        let at = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        assert_eq!(micros(at).timestamp_subsec_nanos(), 123_456_000);
        assert!(check_time("t", at).is_ok());
        assert!(check_time("t", DateTime::<Utc>::MAX_UTC).is_err());
    }

    #[test]
    fn imports_with_nul_or_nan_are_refused() {
        let mut data = fenliu_tools_commerce::test_utils::fixture_shop();
        assert!(validate_import(&data).is_ok());
        data.orders[0].items[0].name = "a\0b".into();
        assert!(matches!(validate_import(&data), Err(StoreError::InvalidInput(_))));
        let mut data = fenliu_tools_commerce::test_utils::fixture_shop();
        data.products[0].variants[0].price = f64::NAN;
        assert!(matches!(validate_import(&data), Err(StoreError::InvalidInput(_))));
    }
}
