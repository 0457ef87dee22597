//! The store contracts: [`OrderStore`] (customers, products, orders) and [`TicketStore`].
//!
//! Writes take the *acting customer* and check ownership and state inside the store's own
//! transaction, so that a bug (or a prompt injection) above the store cannot act on another
//! customer's order, and two concurrent cancellations cannot both succeed.

use std::future::Future;

use chrono::{DateTime, Utc};
use fenliu_tool::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::domain::{
    Address, Customer, Department, NewTicket, Order, Product, SlaAlert, SlaAlertKind, Ticket,
    TicketEvent, TicketEventKind, TicketNotification, TicketNotificationKind, TicketStatus,
};

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong in a store.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("{what} not found")]
    NotFound {
        /// E.g. `order #W1`.
        what: String,
    },
    /// The acting customer does not own the record.
    #[error("{what} does not belong to the acting customer")]
    NotOwner {
        /// E.g. `order #W1`.
        what: String,
    },
    /// The record's state forbids the change.
    #[error("{what} is {state}: {reason}")]
    InvalidState {
        /// E.g. `order #W1`.
        what: String,
        /// Current state.
        state: String,
        /// Why that forbids the change.
        reason: String,
    },
    /// The record is in another department's queue than the one acting on it.
    #[error("{what} is in the {department} queue")]
    WrongDepartment {
        /// E.g. `ticket T-000001`.
        what: String,
        /// The department that holds it.
        department: String,
    },
    /// The input is invalid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database failed; details are logged where the error is created.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Why a customer cancels a pending order (the retail policy accepts these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The customer no longer needs it.
    NoLongerNeeded,
    /// Ordered by mistake.
    OrderedByMistake,
}

/// Records inserted by an import (existing records are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportStats {
    /// Customers inserted.
    pub customers: usize,
    /// Products inserted.
    pub products: usize,
    /// Orders inserted.
    pub orders: usize,
}

/// A whole shop's catalogue, customers and orders, as loaded from `data/demo/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShopData {
    /// Customers.
    pub customers: Vec<Customer>,
    /// Products.
    pub products: Vec<Product>,
    /// Orders.
    pub orders: Vec<Order>,
}

/// Customers, products and orders.
pub trait OrderStore: Send + Sync {
    /// Seeds the store: inserts the records of `data` that do not exist yet and leaves existing
    /// ones untouched, so re-importing the demo shop at every start never undoes a customer's
    /// cancellation or address change. Returns the counts inserted.
    fn import(&self, data: &ShopData) -> impl Future<Output = StoreResult<ImportStats>> + Send;
    /// A customer by id.
    fn customer(&self, id: &str) -> impl Future<Output = StoreResult<Option<Customer>>> + Send;
    /// A product by id.
    fn product(&self, id: &str) -> impl Future<Output = StoreResult<Option<Product>>> + Send;
    /// All products, by id.
    fn products(&self) -> impl Future<Output = StoreResult<Vec<Product>>> + Send;
    /// An order by id, whoever owns it (callers check ownership).
    fn order(&self, id: &str) -> impl Future<Output = StoreResult<Option<Order>>> + Send;
    /// A customer's orders, newest first.
    fn orders_of(&self, customer_id: &str) -> impl Future<Output = StoreResult<Vec<Order>>> + Send;
    /// Cancels a pending order of `customer_id`, refunding every payment to its method.
    fn cancel_order(
        &self,
        customer_id: &str,
        order_id: &str,
        reason: CancelReason,
    ) -> impl Future<Output = StoreResult<Order>> + Send;
    /// Changes the shipping address of a pending order of `customer_id`.
    fn update_order_address(
        &self,
        customer_id: &str,
        order_id: &str,
        address: &Address,
    ) -> impl Future<Output = StoreResult<Order>> + Send;
}

/// Tickets: repair, return, exchange, complaint.
pub trait TicketStore: Send + Sync {
    /// Opens a ticket; the store allocates its id.
    fn create_ticket(&self, ticket: &NewTicket)
    -> impl Future<Output = StoreResult<Ticket>> + Send;
    /// A ticket by id.
    fn ticket(&self, id: &str) -> impl Future<Output = StoreResult<Option<Ticket>>> + Send;
    /// A customer's tickets, newest first.
    fn tickets_of(
        &self,
        customer_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<Ticket>>> + Send;
    /// Moves a ticket along its lifecycle, recording who did it and why (a
    /// [`TicketChange::Status`] through [`TicketStore::change_ticket`]).
    fn update_ticket_status(
        &self,
        id: &str,
        to: TicketStatus,
        actor: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Ticket>> + Send;
    /// Applies a status change, an assignment or a transfer under the shared rules of
    /// [`apply_ticket_update`], appending its history entry and, when the customer is to hear of
    /// it, a notification to the outbox, all in one transaction.
    fn change_ticket(
        &self,
        id: &str,
        update: &TicketUpdate,
    ) -> impl Future<Output = StoreResult<Ticket>> + Send;
    /// A department's queue: its tickets in `status` (without a status: every ticket that is not
    /// closed), most urgent first ([`queue_order`]), at most `limit` (1–[`MAX_QUEUE_LIMIT`]).
    fn department_queue(
        &self,
        department: Department,
        status: Option<TicketStatus>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Ticket>>> + Send;
    /// Emits the SLA reminders and breaches due at `now` ([`sla_alert_due`]), each at most once
    /// per ticket however often (and from however many processes) the sweep runs: the ticket
    /// records that it was sent in the same transaction, with a history entry.
    fn sweep_ticket_sla(
        &self,
        now: DateTime<Utc>,
        reminder_fraction: f64,
    ) -> impl Future<Output = StoreResult<Vec<SlaAlert>>> + Send;
    /// Claims up to `limit` undelivered notifications, oldest first, for `lease`: no other claim
    /// returns them until the lease runs out (a deliverer that dies is replaced by the next).
    fn claim_ticket_notifications(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<TicketNotification>>> + Send;
    /// Marks a notification delivered; `false` when it already was (or does not exist).
    fn ack_ticket_notification(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Longest note on a ticket change.
pub const MAX_TICKET_NOTE_CHARS: usize = 2_000;
/// Longest actor or assignee name.
pub const MAX_TICKET_ACTOR_CHARS: usize = 128;
/// Most tickets one queue read returns.
pub const MAX_QUEUE_LIMIT: usize = 500;
/// Most notifications one claim returns.
pub const MAX_CLAIM_LIMIT: usize = 500;
/// Who the SLA sweep's history entries are signed by.
pub const SLA_ACTOR: &str = "system:sla";

/// What a [`TicketUpdate`] changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum TicketChange {
    /// Moves along the lifecycle ([`TicketStatus::can_transition_to`]). Moving to `assigned`
    /// makes the actor the owner (a claim); moving back to `open` releases the owner.
    Status {
        /// The new status.
        to: TicketStatus,
    },
    /// Makes `assignee` the owner; an open ticket becomes assigned, one in work keeps its status.
    Assign {
        /// The new owner.
        assignee: String,
    },
    /// Moves the ticket to another department's queue: it is open there, with no owner, and
    /// keeps its SLA due time and its history. Needs a note.
    Transfer {
        /// The receiving department.
        to: Department,
    },
}

/// One change to a ticket, with who made it, why and when.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketUpdate {
    /// What changes.
    pub change: TicketChange,
    /// Who (`human:alice`, `agent:after_sales`).
    pub actor: String,
    /// Why; kept in the history (at most [`MAX_TICKET_NOTE_CHARS`]).
    pub note: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The queue the actor works from: when set, the ticket must be in it
    /// ([`StoreError::WrongDepartment`] otherwise).
    pub department: Option<Department>,
}

impl TicketUpdate {
    /// A status change from any queue.
    pub fn status(to: TicketStatus, actor: &str, note: &str, at: DateTime<Utc>) -> Self {
        Self {
            change: TicketChange::Status { to },
            actor: actor.to_owned(),
            note: note.to_owned(),
            at,
            department: None,
        }
    }
}

/// What [`apply_ticket_update`] decided besides the new ticket value.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedTicketChange {
    /// The history entry to append.
    pub event: TicketEvent,
    /// The notification to put in the outbox, if the customer is to hear of the change (only
    /// tickets with a conversation have somewhere to hear it).
    pub notify: Option<TicketNotificationKind>,
}

fn check_name(field: &str, value: &str) -> StoreResult<()> {
    if value.trim().is_empty()
        || value.chars().count() > MAX_TICKET_ACTOR_CHARS
        || value.chars().any(char::is_control)
    {
        return Err(StoreError::InvalidInput(format!(
            "{field} must be 1-{MAX_TICKET_ACTOR_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

/// The one place ticket changes are decided, for every backend: checks the actor, the note, the
/// acting department and the lifecycle, then applies the change to `ticket` (status, department,
/// owner, `updated_at`, a new history entry) and says whether the customer is notified.
pub fn apply_ticket_update(
    ticket: &mut Ticket,
    update: &TicketUpdate,
) -> StoreResult<AppliedTicketChange> {
    check_name("actor", &update.actor)?;
    if update.note.chars().count() > MAX_TICKET_NOTE_CHARS {
        return Err(StoreError::InvalidInput(format!(
            "the note is longer than {MAX_TICKET_NOTE_CHARS} characters"
        )));
    }
    if update.note.contains('\0') {
        return Err(StoreError::InvalidInput("the note contains a NUL character".into()));
    }
    let what = || format!("ticket {}", ticket.id);
    if let Some(acting) = update.department
        && acting != ticket.department
    {
        return Err(StoreError::WrongDepartment {
            what: what(),
            department: ticket.department.as_str().to_owned(),
        });
    }
    let from = ticket.status;
    let mut event = TicketEvent {
        at: update.at,
        actor: update.actor.clone(),
        from: Some(from),
        to: from,
        note: update.note.clone(),
        kind: TicketEventKind::Status,
        from_department: None,
        to_department: None,
        assignee: None,
    };
    let notify = match &update.change {
        TicketChange::Status { to } => {
            check_ticket_transition(ticket, *to)?;
            match to {
                TicketStatus::Assigned => ticket.assignee = Some(update.actor.clone()),
                TicketStatus::Open => ticket.assignee = None,
                _ => {}
            }
            ticket.status = *to;
            event.to = *to;
            (*to != TicketStatus::Open).then_some(TicketNotificationKind::Status)
        }
        TicketChange::Assign { assignee } => {
            check_name("assignee", assignee)?;
            if matches!(from, TicketStatus::Resolved | TicketStatus::Closed) {
                return Err(StoreError::InvalidState {
                    what: what(),
                    state: from.as_str().to_owned(),
                    reason: "only tickets still in work can be assigned".into(),
                });
            }
            if ticket.assignee.as_deref() == Some(assignee.as_str()) {
                return Err(StoreError::InvalidState {
                    what: what(),
                    state: from.as_str().to_owned(),
                    reason: format!("already assigned to {assignee}"),
                });
            }
            ticket.assignee = Some(assignee.clone());
            if from == TicketStatus::Open {
                ticket.status = TicketStatus::Assigned;
            }
            event.kind = TicketEventKind::Assigned;
            event.to = ticket.status;
            event.assignee = Some(assignee.clone());
            (from == TicketStatus::Open).then_some(TicketNotificationKind::Status)
        }
        TicketChange::Transfer { to } => {
            if update.note.trim().is_empty() {
                return Err(StoreError::InvalidInput("a transfer needs a note".into()));
            }
            if *to == ticket.department {
                return Err(StoreError::InvalidInput(format!(
                    "{} is already in the {} queue",
                    what(),
                    to.as_str()
                )));
            }
            if matches!(from, TicketStatus::Resolved | TicketStatus::Closed) {
                return Err(StoreError::InvalidState {
                    what: what(),
                    state: from.as_str().to_owned(),
                    reason: "reopen it before transferring it".into(),
                });
            }
            event.kind = TicketEventKind::Transferred;
            event.from_department = Some(ticket.department);
            event.to_department = Some(*to);
            event.to = TicketStatus::Open;
            ticket.department = *to;
            ticket.status = TicketStatus::Open;
            ticket.assignee = None;
            Some(TicketNotificationKind::Transferred)
        }
    };
    ticket.updated_at = update.at;
    ticket.history.push(event.clone());
    let notify = notify.filter(|_| ticket.conversation_id.is_some());
    Ok(AppliedTicketChange { event, notify })
}

/// The outbox entry for a change [`apply_ticket_update`] applied to `ticket` (id 0 until stored).
pub fn notification_for(ticket: &Ticket, kind: TicketNotificationKind) -> TicketNotification {
    TicketNotification {
        id: 0,
        ticket_id: ticket.id.clone(),
        customer_id: ticket.customer_id.clone(),
        conversation_id: ticket.conversation_id.clone().unwrap_or_default(),
        kind,
        status: ticket.status,
        department: ticket.department,
        created_at: ticket.updated_at,
        attempts: 0,
    }
}

/// Queue order: priority (urgent first), then the earliest SLA due time, then the oldest ticket.
pub fn queue_order(a: &Ticket, b: &Ticket) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.sla_due_at.cmp(&b.sla_due_at))
        .then(crate::domain::parse_ticket_id(&a.id).cmp(&crate::domain::parse_ticket_id(&b.id)))
}

/// Checks a queue read's limit.
pub fn check_queue_limit(limit: usize) -> StoreResult<()> {
    if (1..=MAX_QUEUE_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!("limit must be 1-{MAX_QUEUE_LIMIT}")))
    }
}

/// Checks a notification claim's lease and limit.
pub fn check_claim(lease: chrono::Duration, limit: usize) -> StoreResult<()> {
    if lease <= chrono::Duration::zero() || lease > chrono::Duration::days(1) {
        return Err(StoreError::InvalidInput("the lease must be between 0 and 1 day".into()));
    }
    if !(1..=MAX_CLAIM_LIMIT).contains(&limit) {
        return Err(StoreError::InvalidInput(format!("limit must be 1-{MAX_CLAIM_LIMIT}")));
    }
    Ok(())
}

/// Checks the share of the SLA time after which the sweep reminds: in (0, 1].
pub fn check_reminder_fraction(fraction: f64) -> StoreResult<()> {
    if fraction.is_finite() && fraction > 0.0 && fraction <= 1.0 {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "the reminder fraction must be in (0, 1], got {fraction}"
        )))
    }
}

/// Whether the tickets SLA sweep emits an event for `ticket` at `now`: none for resolved or closed
/// tickets; a breach once the due time has passed; a reminder once `reminder_fraction` of the time
/// from creation to the due time has passed. Each at most once (a breach found first makes the
/// reminder moot).
pub fn sla_alert_due(
    ticket: &Ticket,
    now: DateTime<Utc>,
    reminder_fraction: f64,
) -> Option<SlaAlertKind> {
    sla_alert_due_for(&SlaClock::of(ticket), now, reminder_fraction)
}

/// The fields of a ticket the SLA sweep looks at (so backends can pick candidates from a light
/// query and decide with the same rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaClock {
    /// Status.
    pub status: TicketStatus,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Due.
    pub sla_due_at: DateTime<Utc>,
    /// Reminder sent.
    pub sla_reminded_at: Option<DateTime<Utc>>,
    /// Breach found.
    pub sla_breached_at: Option<DateTime<Utc>>,
}

impl SlaClock {
    /// The SLA fields of `ticket`.
    pub fn of(ticket: &Ticket) -> Self {
        Self {
            status: ticket.status,
            created_at: ticket.created_at,
            sla_due_at: ticket.sla_due_at,
            sla_reminded_at: ticket.sla_reminded_at,
            sla_breached_at: ticket.sla_breached_at,
        }
    }
}

/// [`sla_alert_due`] on the SLA fields alone.
pub fn sla_alert_due_for(
    clock: &SlaClock,
    now: DateTime<Utc>,
    reminder_fraction: f64,
) -> Option<SlaAlertKind> {
    if matches!(clock.status, TicketStatus::Resolved | TicketStatus::Closed)
        || clock.sla_breached_at.is_some()
    {
        return None;
    }
    if now >= clock.sla_due_at {
        return Some(SlaAlertKind::Breach);
    }
    let span = (clock.sla_due_at - clock.created_at).num_milliseconds() as f64;
    let remind_at = clock.created_at
        + chrono::Duration::milliseconds((span * reminder_fraction).round() as i64);
    (clock.sla_reminded_at.is_none() && now >= remind_at).then_some(SlaAlertKind::Reminder)
}

/// Records an SLA event on `ticket` (the time it was sent, a history entry; `updated_at` is left
/// alone: nothing changed for the customer) and returns the alert and the history entry.
pub fn apply_sla_alert(
    ticket: &mut Ticket,
    kind: SlaAlertKind,
    now: DateTime<Utc>,
) -> (SlaAlert, TicketEvent) {
    let due = ticket.sla_due_at.format("%Y-%m-%d %H:%M UTC");
    let (event_kind, note) = match kind {
        SlaAlertKind::Reminder => {
            ticket.sla_reminded_at = Some(now);
            (TicketEventKind::SlaReminder, format!("SLA reminder: due at {due}"))
        }
        SlaAlertKind::Breach => {
            ticket.sla_breached_at = Some(now);
            ticket.sla_reminded_at.get_or_insert(now);
            (TicketEventKind::SlaBreach, format!("SLA breached: was due at {due}"))
        }
    };
    let event = TicketEvent {
        at: now,
        actor: SLA_ACTOR.to_owned(),
        from: Some(ticket.status),
        to: ticket.status,
        note,
        kind: event_kind,
        from_department: None,
        to_department: None,
        assignee: None,
    };
    ticket.history.push(event.clone());
    let alert = SlaAlert {
        ticket_id: ticket.id.clone(),
        kind,
        department: ticket.department,
        priority: ticket.priority,
        status: ticket.status,
        assignee: ticket.assignee.clone(),
        sla_due_at: ticket.sla_due_at,
        at: now,
    };
    (alert, event)
}

/// Shared checks of a cancellation, so every backend applies the same rule.
pub fn check_cancellable(order: &Order, customer_id: &str) -> StoreResult<()> {
    check_owned_pending(order, customer_id, "only pending orders can be cancelled")
}

/// Shared checks of an address change.
pub fn check_address_change(
    order: &Order,
    customer_id: &str,
    address: &Address,
) -> StoreResult<()> {
    address.validate().map_err(StoreError::InvalidInput)?;
    check_owned_pending(order, customer_id, "only pending orders can be changed")
}

fn check_owned_pending(order: &Order, customer_id: &str, reason: &str) -> StoreResult<()> {
    let what = format!("order {}", order.id);
    if order.customer_id != customer_id {
        return Err(StoreError::NotOwner { what });
    }
    if order.status != crate::domain::OrderStatus::Pending {
        return Err(StoreError::InvalidState {
            what,
            state: order.status.as_str().to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(())
}

/// Applies a cancellation to an order value: status and one refund per payment method.
pub fn apply_cancellation(order: &mut Order) {
    use crate::domain::{Payment, PaymentEventKind};
    let refunds: Vec<Payment> = order
        .payments
        .iter()
        .filter(|p| p.kind == PaymentEventKind::Payment)
        .map(|p| Payment {
            kind: PaymentEventKind::Refund,
            amount: p.amount,
            payment_method_id: p.payment_method_id.clone(),
        })
        .collect();
    order.payments.extend(refunds);
    order.status = crate::domain::OrderStatus::Cancelled;
}

/// Validates a new ticket before any backend writes it.
pub fn validate_new_ticket(t: &NewTicket) -> StoreResult<()> {
    let bad = |m: &str| Err(StoreError::InvalidInput(m.to_owned()));
    if t.customer_id.trim().is_empty() {
        return bad("ticket needs a customer");
    }
    if t.subject.trim().is_empty() || t.subject.chars().count() > 200 {
        return bad("ticket subject must be 1-200 characters");
    }
    if t.description.chars().count() > 10_000 {
        return bad("ticket description is longer than 10,000 characters");
    }
    if t.actor.trim().is_empty() {
        return bad("ticket needs an actor");
    }
    if let Some(c) = &t.conversation_id
        && (c.trim().is_empty() || c.len() > 256 || c.contains('\0'))
    {
        return bad("ticket conversation id must be 1-256 bytes");
    }
    Ok(())
}

/// The shared lifecycle check for ticket status changes.
pub fn check_ticket_transition(ticket: &Ticket, to: TicketStatus) -> StoreResult<()> {
    if ticket.status.can_transition_to(to) {
        Ok(())
    } else {
        Err(StoreError::InvalidState {
            what: format!("ticket {}", ticket.id),
            state: ticket.status.as_str().to_owned(),
            reason: format!("cannot move to {}", to.as_str()),
        })
    }
}

/// Object-safe twin of [`OrderStore`], what tools and servers hold.
#[allow(missing_docs)]
pub trait DynOrderStore: Send + Sync {
    fn import<'a>(&'a self, data: &'a ShopData) -> BoxFuture<'a, StoreResult<ImportStats>>;
    fn customer<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<Customer>>>;
    fn product<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<Product>>>;
    fn products(&self) -> BoxFuture<'_, StoreResult<Vec<Product>>>;
    fn order<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<Order>>>;
    fn orders_of<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, StoreResult<Vec<Order>>>;
    fn cancel_order<'a>(
        &'a self,
        customer_id: &'a str,
        order_id: &'a str,
        reason: CancelReason,
    ) -> BoxFuture<'a, StoreResult<Order>>;
    fn update_order_address<'a>(
        &'a self,
        customer_id: &'a str,
        order_id: &'a str,
        address: &'a Address,
    ) -> BoxFuture<'a, StoreResult<Order>>;
}

impl<T: OrderStore> DynOrderStore for T {
    fn import<'a>(&'a self, data: &'a ShopData) -> BoxFuture<'a, StoreResult<ImportStats>> {
        Box::pin(OrderStore::import(self, data))
    }
    fn customer<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<Customer>>> {
        Box::pin(OrderStore::customer(self, id))
    }
    fn product<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<Product>>> {
        Box::pin(OrderStore::product(self, id))
    }
    fn products(&self) -> BoxFuture<'_, StoreResult<Vec<Product>>> {
        Box::pin(OrderStore::products(self))
    }
    fn order<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<Order>>> {
        Box::pin(OrderStore::order(self, id))
    }
    fn orders_of<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, StoreResult<Vec<Order>>> {
        Box::pin(OrderStore::orders_of(self, customer_id))
    }
    fn cancel_order<'a>(
        &'a self,
        customer_id: &'a str,
        order_id: &'a str,
        reason: CancelReason,
    ) -> BoxFuture<'a, StoreResult<Order>> {
        Box::pin(OrderStore::cancel_order(self, customer_id, order_id, reason))
    }
    fn update_order_address<'a>(
        &'a self,
        customer_id: &'a str,
        order_id: &'a str,
        address: &'a Address,
    ) -> BoxFuture<'a, StoreResult<Order>> {
        Box::pin(OrderStore::update_order_address(self, customer_id, order_id, address))
    }
}

/// Object-safe twin of [`TicketStore`].
#[allow(missing_docs)]
pub trait DynTicketStore: Send + Sync {
    fn create_ticket<'a>(&'a self, ticket: &'a NewTicket) -> BoxFuture<'a, StoreResult<Ticket>>;
    fn ticket<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<Ticket>>>;
    fn tickets_of<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, StoreResult<Vec<Ticket>>>;
    fn update_ticket_status<'a>(
        &'a self,
        id: &'a str,
        to: TicketStatus,
        actor: &'a str,
        note: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Ticket>>;
    fn change_ticket<'a>(
        &'a self,
        id: &'a str,
        update: &'a TicketUpdate,
    ) -> BoxFuture<'a, StoreResult<Ticket>>;
    fn department_queue(
        &self,
        department: Department,
        status: Option<TicketStatus>,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Ticket>>>;
    fn sweep_ticket_sla(
        &self,
        now: DateTime<Utc>,
        reminder_fraction: f64,
    ) -> BoxFuture<'_, StoreResult<Vec<SlaAlert>>>;
    fn claim_ticket_notifications(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<TicketNotification>>>;
    fn ack_ticket_notification(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<bool>>;
}

impl<T: TicketStore> DynTicketStore for T {
    fn create_ticket<'a>(&'a self, ticket: &'a NewTicket) -> BoxFuture<'a, StoreResult<Ticket>> {
        Box::pin(TicketStore::create_ticket(self, ticket))
    }
    fn ticket<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<Ticket>>> {
        Box::pin(TicketStore::ticket(self, id))
    }
    fn tickets_of<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, StoreResult<Vec<Ticket>>> {
        Box::pin(TicketStore::tickets_of(self, customer_id))
    }
    fn update_ticket_status<'a>(
        &'a self,
        id: &'a str,
        to: TicketStatus,
        actor: &'a str,
        note: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Ticket>> {
        Box::pin(TicketStore::update_ticket_status(self, id, to, actor, note, at))
    }
    fn change_ticket<'a>(
        &'a self,
        id: &'a str,
        update: &'a TicketUpdate,
    ) -> BoxFuture<'a, StoreResult<Ticket>> {
        Box::pin(TicketStore::change_ticket(self, id, update))
    }
    fn department_queue(
        &self,
        department: Department,
        status: Option<TicketStatus>,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Ticket>>> {
        Box::pin(TicketStore::department_queue(self, department, status, limit))
    }
    fn sweep_ticket_sla(
        &self,
        now: DateTime<Utc>,
        reminder_fraction: f64,
    ) -> BoxFuture<'_, StoreResult<Vec<SlaAlert>>> {
        Box::pin(TicketStore::sweep_ticket_sla(self, now, reminder_fraction))
    }
    fn claim_ticket_notifications(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<TicketNotification>>> {
        Box::pin(TicketStore::claim_ticket_notifications(self, now, lease, limit))
    }
    fn ack_ticket_notification(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(TicketStore::ack_ticket_notification(self, id, at))
    }
}

/// A customer's marketing preferences.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Preferences {
    /// Newsletter subscription: `None` when the customer never chose (nothing is sent then:
    /// marketing e-mail needs an opt-in).
    pub newsletter: Option<bool>,
    /// When the customer last changed a preference.
    pub updated_at: Option<DateTime<Utc>>,
}

impl Preferences {
    /// Whether the newsletter may be sent: only after an explicit opt-in.
    pub fn newsletter_subscribed(&self) -> bool {
        self.newsletter == Some(true)
    }
}

/// Marketing preferences (newsletter opt-in/out), one record per customer.
pub trait PreferenceStore: Send + Sync {
    /// The customer's preferences; defaults when the customer never set any. An unknown
    /// customer is [`StoreError::NotFound`].
    fn preferences(
        &self,
        customer_id: &str,
    ) -> impl Future<Output = StoreResult<Preferences>> + Send;
    /// Records the customer's newsletter choice at `at`. An unknown customer is
    /// [`StoreError::NotFound`].
    fn set_newsletter(
        &self,
        customer_id: &str,
        subscribed: bool,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Preferences>> + Send;
}

/// Object-safe twin of [`PreferenceStore`].
#[allow(missing_docs)]
pub trait DynPreferenceStore: Send + Sync {
    fn preferences<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, StoreResult<Preferences>>;
    fn set_newsletter<'a>(
        &'a self,
        customer_id: &'a str,
        subscribed: bool,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Preferences>>;
}

impl<T: PreferenceStore> DynPreferenceStore for T {
    fn preferences<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, StoreResult<Preferences>> {
        Box::pin(PreferenceStore::preferences(self, customer_id))
    }
    fn set_newsletter<'a>(
        &'a self,
        customer_id: &'a str,
        subscribed: bool,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Preferences>> {
        Box::pin(PreferenceStore::set_newsletter(self, customer_id, subscribed, at))
    }
}
