//! The shop's data: customers, products, orders and tickets.
//!
//! Amounts are in the shop's currency units as `f64`, as in the τ-bench data the demo shop is
//! derived from; sums are rounded to cents with [`round_cents`].

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Rounds an amount to cents.
pub fn round_cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street and number.
    pub line1: String,
    /// Suite, floor, … (may be empty).
    #[serde(default)]
    pub line2: String,
    /// City.
    pub city: String,
    /// State or province.
    pub state: String,
    /// Country.
    pub country: String,
    /// Postal code.
    pub zip: String,
}

impl Address {
    /// Checks that required parts are present and of sane length.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value, required) in [
            ("line1", &self.line1, true),
            ("line2", &self.line2, false),
            ("city", &self.city, true),
            ("state", &self.state, false),
            ("country", &self.country, true),
            ("zip", &self.zip, true),
        ] {
            if required && value.trim().is_empty() {
                return Err(format!("address {name} is required"));
            }
            if value.chars().count() > 200 || value.chars().any(char::is_control) {
                return Err(format!("address {name} is too long or contains control characters"));
            }
        }
        Ok(())
    }

    /// One-line rendering.
    pub fn one_line(&self) -> String {
        let mut parts = vec![self.line1.as_str()];
        if !self.line2.is_empty() {
            parts.push(&self.line2);
        }
        parts.extend([self.city.as_str(), &self.state, &self.zip, &self.country]);
        parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(", ")
    }
}

/// Customer tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Everyone.
    #[default]
    Regular,
    /// High-value customer.
    Vip,
}

/// A customer's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PersonName {
    /// Given name.
    pub first: String,
    /// Family name.
    pub last: String,
}

/// Kind of payment method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// Store gift card (refunds arrive immediately).
    GiftCard,
    /// Credit card.
    CreditCard,
    /// PayPal.
    Paypal,
}

/// A stored payment method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentMethod {
    /// Id referenced by payments.
    pub id: String,
    /// Kind.
    pub kind: PaymentKind,
    /// Card brand.
    pub brand: Option<String>,
    /// Last four card digits.
    pub last_four: Option<String>,
    /// Gift card balance.
    pub balance: Option<f64>,
}

/// A customer of the shop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Customer {
    /// Id, e.g. `james_li_5688`.
    pub id: String,
    /// Name.
    pub name: PersonName,
    /// E-mail.
    pub email: String,
    /// Tier.
    pub tier: Tier,
    /// Preferred language code (`en`, `zh`).
    pub language: String,
    /// Default shipping address.
    pub address: Address,
    /// Stored payment methods.
    pub payment_methods: Vec<PaymentMethod>,
}

/// One purchasable variant of a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Variant {
    /// Item id, referenced by order items.
    pub item_id: String,
    /// Options such as colour and size.
    pub options: BTreeMap<String, String>,
    /// Whether it can be ordered now.
    pub available: bool,
    /// Price.
    pub price: f64,
}

/// A product with its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Product {
    /// Product id.
    pub id: String,
    /// Name, e.g. `Water Bottle`.
    pub name: String,
    /// Category, e.g. `electronics`.
    pub category: String,
    /// One-sentence description.
    pub description: String,
    /// Warranty from delivery, in months (0: none beyond the return window).
    pub warranty_months: u32,
    /// Variants.
    pub variants: Vec<Variant>,
}

/// Order lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, not yet processed: can be cancelled or modified.
    Pending,
    /// Packed and handed to the carrier.
    Processed,
    /// In transit.
    Shipped,
    /// Delivered: can be returned or exchanged within the return window.
    Delivered,
    /// Cancelled and refunded.
    Cancelled,
    /// A return of delivered items was requested.
    ReturnRequested,
    /// An exchange of delivered items was requested.
    ExchangeRequested,
}

impl OrderStatus {
    /// All statuses.
    pub const ALL: [OrderStatus; 7] = [
        Self::Pending,
        Self::Processed,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::ReturnRequested,
        Self::ExchangeRequested,
    ];

    /// The snake_case name stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processed => "processed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::ReturnRequested => "return_requested",
            Self::ExchangeRequested => "exchange_requested",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderItem {
    /// Variant id.
    pub item_id: String,
    /// Product id.
    pub product_id: String,
    /// Product name.
    pub name: String,
    /// Price paid.
    pub price: f64,
    /// Variant options.
    pub options: BTreeMap<String, String>,
}

/// A shipment of some items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Fulfillment {
    /// Carrier name.
    pub carrier: String,
    /// Tracking numbers.
    pub tracking_ids: Vec<String>,
    /// Items in this shipment.
    pub item_ids: Vec<String>,
}

/// Payment or refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentEventKind {
    /// Money taken.
    Payment,
    /// Money returned.
    Refund,
}

/// A money movement on an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Payment {
    /// Payment or refund.
    pub kind: PaymentEventKind,
    /// Amount.
    pub amount: f64,
    /// Payment method used.
    pub payment_method_id: String,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    /// Id, e.g. `#W2611340`.
    pub id: String,
    /// Owner.
    pub customer_id: String,
    /// Status.
    pub status: OrderStatus,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// Expected delivery date.
    pub estimated_delivery: Option<NaiveDate>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Shipping address.
    pub address: Address,
    /// Lines.
    pub items: Vec<OrderItem>,
    /// Shipments.
    pub fulfillments: Vec<Fulfillment>,
    /// Payments and refunds.
    pub payments: Vec<Payment>,
}

impl Order {
    /// Sum of item prices.
    pub fn total(&self) -> f64 {
        round_cents(self.items.iter().map(|i| i.price).sum())
    }

    /// Sum of refunds.
    pub fn refunded(&self) -> f64 {
        round_cents(
            self.payments
                .iter()
                .filter(|p| p.kind == PaymentEventKind::Refund)
                .map(|p| p.amount)
                .sum(),
        )
    }
}

/// Normalises what customers type for an order id (`w2611340`, `#W2611340`, `W 2611340`) to the
/// stored form `#W2611340`. Returns `None` for anything that is not an order id.
pub fn normalize_order_id(raw: &str) -> Option<String> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let body = compact.strip_prefix('#').unwrap_or(&compact);
    let digits = body.strip_prefix(['W', 'w'])?;
    (digits.len() >= 5 && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("#W{digits}"))
}

static ORDER_ID_IN_TEXT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    // A fixed pattern, covered by tests: it cannot fail to compile. The id must not be glued to a
    // preceding letter or digit ("HW12345") or followed by a digit.
    #[allow(clippy::expect_used)]
    regex::Regex::new(r"(?i)(?:^|[^a-z0-9])(#?\s?w\s?\d{5,12})(?:$|[^0-9])")
        .expect("order id regex")
});

/// The first order id in a free-text message (`W2611340`, `#w2611340`, `订单W2611340`),
/// normalised; only the first 2,000 characters are scanned.
pub fn find_order_id(message: &str) -> Option<String> {
    let head: String = message.chars().take(2_000).collect();
    ORDER_ID_IN_TEXT
        .captures_iter(&head)
        .find_map(|c| c.get(1).and_then(|m| normalize_order_id(m.as_str())))
}

/// What a ticket is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// Repair of a faulty product.
    Repair,
    /// Return of delivered items.
    Return,
    /// Exchange of delivered items.
    Exchange,
    /// A complaint.
    Complaint,
    /// Anything else a person must look at.
    Inquiry,
}

/// Department queues tickets are routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Department {
    /// Repairs, warranty.
    AfterSales,
    /// Shipping, returns logistics.
    Logistics,
    /// Product quality, complaints.
    Quality,
    /// Refunds, invoices.
    Finance,
    /// General customer care.
    CustomerCare,
}

impl Department {
    /// All departments.
    pub const ALL: [Department; 5] =
        [Self::AfterSales, Self::Logistics, Self::Quality, Self::Finance, Self::CustomerCare];

    /// The snake_case name stored in databases and used in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AfterSales => "after_sales",
            Self::Logistics => "logistics",
            Self::Quality => "quality",
            Self::Finance => "finance",
            Self::CustomerCare => "customer_care",
        }
    }

    /// Parses a stored name (`after-sales` is accepted for `after_sales`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().replace('-', "_");
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// Ticket priority.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TicketPriority {
    /// Can wait.
    Low,
    /// Default.
    #[default]
    Normal,
    /// Before normal.
    High,
    /// First.
    Urgent,
}

/// Ticket lifecycle: open → assigned → in progress ⇄ waiting for customer → resolved → closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Created, not yet with anyone.
    Open,
    /// Someone owns it.
    Assigned,
    /// Being worked on.
    InProgress,
    /// Waiting for the customer's answer.
    WaitingForCustomer,
    /// Done, pending confirmation.
    Resolved,
    /// Finished.
    Closed,
}

impl TicketStatus {
    /// All statuses.
    pub const ALL: [TicketStatus; 6] = [
        Self::Open,
        Self::Assigned,
        Self::InProgress,
        Self::WaitingForCustomer,
        Self::Resolved,
        Self::Closed,
    ];

    /// Whether the lifecycle allows moving from `self` to `to`.
    pub fn can_transition_to(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        matches!(
            (self, to),
            (Open, Assigned)
                | (Open, InProgress)
                | (Open, Closed)
                | (Assigned, Open)
                | (Assigned, InProgress)
                | (InProgress, WaitingForCustomer)
                | (InProgress, Resolved)
                | (WaitingForCustomer, InProgress)
                | (WaitingForCustomer, Resolved)
                | (Resolved, InProgress)
                | (Resolved, Closed)
        )
    }

    /// The snake_case name stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Assigned => "assigned",
            Self::InProgress => "in_progress",
            Self::WaitingForCustomer => "waiting_for_customer",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What a history entry of a ticket records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketEventKind {
    /// The ticket was opened.
    Created,
    /// The status changed.
    #[default]
    Status,
    /// Someone was made the owner (`assignee`).
    Assigned,
    /// The ticket moved to another department's queue (`from_department` → `to_department`).
    Transferred,
    /// The SLA sweep's reminder: most of the time to the due date has passed.
    SlaReminder,
    /// The SLA sweep found the due date passed.
    SlaBreach,
}

impl TicketEventKind {
    /// All kinds.
    pub const ALL: [TicketEventKind; 6] = [
        Self::Created,
        Self::Status,
        Self::Assigned,
        Self::Transferred,
        Self::SlaReminder,
        Self::SlaBreach,
    ];

    /// The snake_case name stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Status => "status",
            Self::Assigned => "assigned",
            Self::Transferred => "transferred",
            Self::SlaReminder => "sla_reminder",
            Self::SlaBreach => "sla_breach",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A change in a ticket's life, kept as history (append-only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`agent:after_sales`, `human:alice`, `system:sla`).
    pub actor: String,
    /// Status before (None at creation).
    pub from: Option<TicketStatus>,
    /// Status after.
    pub to: TicketStatus,
    /// Free text.
    pub note: String,
    /// What the entry records.
    #[serde(default)]
    pub kind: TicketEventKind,
    /// The department before a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_department: Option<Department>,
    /// The department after a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_department: Option<Department>,
    /// The owner after an assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
}

impl TicketEvent {
    /// The entry of a ticket's creation.
    pub fn created(at: DateTime<Utc>, actor: &str) -> Self {
        Self {
            at,
            actor: actor.to_owned(),
            from: None,
            to: TicketStatus::Open,
            note: "created".into(),
            kind: TicketEventKind::Created,
            from_department: None,
            to_department: None,
            assignee: None,
        }
    }
}

/// What is needed to open a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NewTicket {
    /// Customer the ticket is for.
    pub customer_id: String,
    /// Order concerned.
    pub order_id: Option<String>,
    /// Kind.
    pub kind: TicketKind,
    /// Department queue.
    pub department: Department,
    /// Priority.
    pub priority: TicketPriority,
    /// One line.
    pub subject: String,
    /// Details.
    pub description: String,
    /// When the SLA requires resolution.
    pub sla_due_at: DateTime<Utc>,
    /// Who opens it.
    pub actor: String,
    /// The conversation it was opened in: status changes are told to the customer there.
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// A ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ticket {
    /// Id, e.g. `T-000042`.
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// Order concerned.
    pub order_id: Option<String>,
    /// Kind.
    pub kind: TicketKind,
    /// Department queue.
    pub department: Department,
    /// Priority.
    pub priority: TicketPriority,
    /// Status.
    pub status: TicketStatus,
    /// One line.
    pub subject: String,
    /// Details.
    pub description: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// SLA due time.
    pub sla_due_at: DateTime<Utc>,
    /// History, oldest first.
    pub history: Vec<TicketEvent>,
    /// The person (or agent) who owns it, once assigned.
    #[serde(default)]
    pub assignee: Option<String>,
    /// The conversation it was opened in, where the customer hears of status changes.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// When the SLA sweep sent its reminder.
    #[serde(default)]
    pub sla_reminded_at: Option<DateTime<Utc>>,
    /// When the SLA sweep found the due time passed.
    #[serde(default)]
    pub sla_breached_at: Option<DateTime<Utc>>,
}

/// What a customer notification says about a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketNotificationKind {
    /// The status changed.
    Status,
    /// The ticket moved to another department.
    Transferred,
}

impl TicketNotificationKind {
    /// The snake_case name stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Transferred => "transferred",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Status, Self::Transferred].into_iter().find(|k| k.as_str() == s)
    }
}

/// A customer notification waiting in the outbox: written in the same transaction as the ticket
/// change it reports, delivered into the ticket's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketNotification {
    /// Outbox id, unique per store.
    pub id: i64,
    /// The ticket.
    pub ticket_id: String,
    /// Its customer.
    pub customer_id: String,
    /// The conversation to deliver into.
    pub conversation_id: String,
    /// What changed.
    pub kind: TicketNotificationKind,
    /// The ticket's status after the change.
    pub status: TicketStatus,
    /// The ticket's department after the change.
    pub department: Department,
    /// When the change happened.
    pub created_at: DateTime<Utc>,
    /// Claims so far, this one included (more than one: an earlier delivery did not finish).
    pub attempts: u32,
}

impl TicketNotification {
    /// The message for the customer, in `language` (`zh` → Chinese, anything else English).
    pub fn message(&self, language: &str) -> String {
        let zh = language.trim().eq_ignore_ascii_case("zh");
        let id = &self.ticket_id;
        match (self.kind, zh) {
            (TicketNotificationKind::Transferred, false) => format!(
                "Update on ticket {id}: it is now with our {} team, who will take it from here.",
                department_label(self.department, false)
            ),
            (TicketNotificationKind::Transferred, true) => format!(
                "工单 {id} 进度更新：已转交{}团队继续处理。",
                department_label(self.department, true)
            ),
            (TicketNotificationKind::Status, false) => {
                let what = match self.status {
                    TicketStatus::Open => "is open again and waiting in our queue",
                    TicketStatus::Assigned => "has been picked up by a member of our team",
                    TicketStatus::InProgress => "is being worked on",
                    TicketStatus::WaitingForCustomer => {
                        "is waiting for your reply: please answer here so we can continue"
                    }
                    TicketStatus::Resolved => {
                        "is resolved; reply here within a few days if anything is still wrong"
                    }
                    TicketStatus::Closed => "is closed",
                };
                format!("Update on ticket {id}: it {what}.")
            }
            (TicketNotificationKind::Status, true) => {
                let what = match self.status {
                    TicketStatus::Open => "已重新进入处理队列",
                    TicketStatus::Assigned => "已由专人受理",
                    TicketStatus::InProgress => "正在处理中",
                    TicketStatus::WaitingForCustomer => {
                        "正在等待您的回复，请在此回复以便我们继续处理"
                    }
                    TicketStatus::Resolved => "已解决；如仍有问题，请在几天内在此回复",
                    TicketStatus::Closed => "已关闭",
                };
                format!("工单 {id} 进度更新：{what}。")
            }
        }
    }
}

fn department_label(d: Department, zh: bool) -> &'static str {
    match (d, zh) {
        (Department::AfterSales, false) => "after-sales",
        (Department::Logistics, false) => "logistics",
        (Department::Quality, false) => "quality",
        (Department::Finance, false) => "finance",
        (Department::CustomerCare, false) => "customer care",
        (Department::AfterSales, true) => "售后",
        (Department::Logistics, true) => "物流",
        (Department::Quality, true) => "质量",
        (Department::Finance, true) => "财务",
        (Department::CustomerCare, true) => "客服",
    }
}

/// Which SLA event the sweep found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlaAlertKind {
    /// Most of the time to the due date has passed.
    Reminder,
    /// The due date has passed.
    Breach,
}

/// An SLA event the sweep emitted (each kind at most once per ticket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SlaAlert {
    /// The ticket.
    pub ticket_id: String,
    /// Reminder or breach.
    pub kind: SlaAlertKind,
    /// The ticket's queue.
    pub department: Department,
    /// Its priority.
    pub priority: TicketPriority,
    /// Its status when the sweep ran.
    pub status: TicketStatus,
    /// Its owner, if any.
    pub assignee: Option<String>,
    /// The due time.
    pub sla_due_at: DateTime<Utc>,
    /// When the sweep emitted the event.
    pub at: DateTime<Utc>,
}

/// Formats the numeric ticket id stores allocate.
pub fn ticket_id(n: i64) -> String {
    format!("T-{n:06}")
}

/// Parses `T-000042` (case-insensitive, `#` tolerated) into 42.
pub fn parse_ticket_id(raw: &str) -> Option<i64> {
    let s = raw.trim().trim_start_matches('#');
    let digits = s.strip_prefix("T-").or_else(|| s.strip_prefix("t-"))?;
    (!digits.is_empty() && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_normalise() {
        assert_eq!(normalize_order_id("#W2611340").as_deref(), Some("#W2611340"));
        assert_eq!(normalize_order_id("w2611340").as_deref(), Some("#W2611340"));
        assert_eq!(normalize_order_id(" W 2611340 ").as_deref(), Some("#W2611340"));
        for bad in ["", "#", "W", "X2611340", "W26a1340", "'; DROP TABLE orders;--", "W1"] {
            assert_eq!(normalize_order_id(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_order_id(&format!("W{}", "9".repeat(100))), None);
    }

    #[test]
    fn order_ids_in_text() {
        assert_eq!(find_order_id("it's W2611340").as_deref(), Some("#W2611340"));
        assert_eq!(find_order_id("订单W2611340到哪了").as_deref(), Some("#W2611340"));
        assert_eq!(find_order_id("model HW123456"), None);
        assert_eq!(find_order_id("W2611340 and W1000001").as_deref(), Some("#W2611340"));
        assert_eq!(find_order_id(&"W".repeat(100_000)), None);
    }

    #[test]
    fn ticket_ids_round_trip() {
        assert_eq!(ticket_id(42), "T-000042");
        assert_eq!(parse_ticket_id("T-000042"), Some(42));
        assert_eq!(parse_ticket_id("#t-7"), Some(7));
        assert_eq!(parse_ticket_id("T-"), None);
        assert_eq!(parse_ticket_id("T-99999999999999999999"), None);
    }

    #[test]
    fn ticket_lifecycle() {
        use TicketStatus::*;
        assert!(Open.can_transition_to(Assigned));
        assert!(InProgress.can_transition_to(WaitingForCustomer));
        assert!(Resolved.can_transition_to(Closed));
        assert!(!Closed.can_transition_to(Open));
        assert!(!Open.can_transition_to(Resolved));
        for s in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(s.as_str()), Some(s));
            assert!(!s.can_transition_to(s));
        }
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn departments_events_and_notifications() {
        for d in Department::ALL {
            assert_eq!(Department::parse(d.as_str()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
        assert_eq!(Department::parse("after-sales"), Some(Department::AfterSales));
        for bad in ["", "marketing", "AFTER_SALES", "after_sales'--"] {
            assert_eq!(Department::parse(bad), None, "{bad:?}");
        }
        for k in TicketEventKind::ALL {
            assert_eq!(TicketEventKind::parse(k.as_str()), Some(k));
        }
        let mut n = TicketNotification {
            id: 1,
            ticket_id: "T-000007".into(),
            customer_id: "alice".into(),
            conversation_id: "c".into(),
            kind: TicketNotificationKind::Status,
            status: TicketStatus::WaitingForCustomer,
            department: Department::AfterSales,
            created_at: Utc::now(),
            attempts: 1,
        };
        assert!(n.message("en").contains("T-000007") && n.message("en").contains("your reply"));
        assert!(n.message("zh").contains("等待您的回复"));
        n.kind = TicketNotificationKind::Transferred;
        n.department = Department::Logistics;
        assert!(n.message("en").contains("logistics"));
        assert!(n.message("ZH").contains("物流"));
    }

    #[test]
    fn address_validation() {
        let mut a = Address {
            line1: "1 Main St".into(),
            line2: String::new(),
            city: "Austin".into(),
            state: "TX".into(),
            country: "USA".into(),
            zip: "78701".into(),
        };
        assert!(a.validate().is_ok());
        assert_eq!(a.one_line(), "1 Main St, Austin, TX, 78701, USA");
        a.city = "x".repeat(500);
        assert!(a.validate().is_err());
        a.city = "  ".into();
        assert!(a.validate().is_err());
    }
}
