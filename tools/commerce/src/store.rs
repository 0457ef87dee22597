//! The store contracts: [`OrderStore`] (customers, products, orders) and [`TicketStore`].
//!
//! Writes take the *acting customer* and check ownership and state inside the store's own
//! transaction, so that a bug (or a prompt injection) above the store cannot act on another
//! customer's order, and two concurrent cancellations cannot both succeed.

use std::future::Future;

use chrono::{DateTime, Utc};
use fenliu_tool::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::domain::{Address, Customer, NewTicket, Order, Product, Ticket, TicketStatus};

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
    /// Moves a ticket along its lifecycle, recording who did it and why.
    fn update_ticket_status(
        &self,
        id: &str,
        to: TicketStatus,
        actor: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Ticket>> + Send;
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
