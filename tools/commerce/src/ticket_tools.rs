//! Ticket and warranty tools: `create_ticket`, `get_ticket`, `list_tickets`, `check_warranty`.
//!
//! Like the order tools, each one reads the customer from the [`ToolContext`], never from its
//! arguments. What a model may choose is limited to what the customer could choose: the kind of
//! ticket, the order, the text and the priority. The department, the SLA due time and the actor are
//! derived here, so a model (or a prompt injection) cannot route a ticket to another queue, move
//! its deadline or sign it as someone else.
//!
//! Time comes from a [`Clock`] so that warranty and return-window decisions can be tested at a fixed
//! instant; [`system_clock`] is the default.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Duration, Months, Utc};
use fenliu_tool::{DynTool, Tool, ToolContext, ToolError};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{
    Department, NewTicket, OrderStatus, Ticket, TicketKind, TicketPriority, TicketStatus,
    parse_ticket_id, ticket_id,
};
use crate::store::{DynOrderStore, DynTicketStore};
use crate::tools::{owned_order, store_error};

/// Where the tools get "now" from.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A clock stopped at `at`, for tests and replays.
pub fn fixed_clock(at: DateTime<Utc>) -> Clock {
    Arc::new(move || at)
}

/// Who tickets are opened by when no actor is configured. The orchestrator shares one tool set
/// between agents, so the tool cannot know which agent called it; it never takes this from a model.
pub const DEFAULT_ACTOR: &str = "agent";

// SLA: the time by which the department must have *acted on* a ticket (taken ownership, sent the
// return or repair label, answered the complaint), counted in calendar hours from creation. It is
// not the end of the physical work: a repair itself takes 10-15 business days at the service centre
// (data/demo/docs/warranty.en.md).

/// Urgent (safety risks, injuries): four hours, the fastest reply the shop promises anyone
/// (VIP complaints, data/demo/docs/feedback.en.md).
pub const SLA_URGENT_HOURS: i64 = 4;
/// High (VIP customers, legal threats): one day, the shop's "reply within 1 business day".
pub const SLA_HIGH_HOURS: i64 = 24;
/// Normal (repairs, returns, exchanges): three days, so the prepaid label promised "within 1
/// business day" still goes out across a weekend.
pub const SLA_NORMAL_HOURS: i64 = 72;
/// Low (routine complaints, reviews): five days, the shop's complaint resolution target.
pub const SLA_LOW_HOURS: i64 = 120;

/// Days after delivery during which delivered items can be returned or exchanged
/// (data/demo/docs/returns-policy.en.md).
pub const RETURN_WINDOW_DAYS: i64 = 30;

/// Longest ticket description kept; the store accepts up to 10,000 characters.
const MAX_DESCRIPTION_CHARS: usize = 4_000;

/// Resolution target of a priority, in hours.
pub fn sla_hours(priority: TicketPriority) -> i64 {
    match priority {
        TicketPriority::Urgent => SLA_URGENT_HOURS,
        TicketPriority::High => SLA_HIGH_HOURS,
        TicketPriority::Normal => SLA_NORMAL_HOURS,
        TicketPriority::Low => SLA_LOW_HOURS,
    }
}

/// The department queue a kind of ticket goes to.
pub fn department_for(kind: TicketKind) -> Department {
    match kind {
        TicketKind::Repair => Department::AfterSales,
        TicketKind::Return | TicketKind::Exchange => Department::Logistics,
        TicketKind::Complaint => Department::Quality,
        TicketKind::Inquiry => Department::CustomerCare,
    }
}

/// The snake_case name of a department, as stored.
pub fn department_name(department: Department) -> &'static str {
    department.as_str()
}

static TICKET_ID: LazyLock<Regex> = LazyLock::new(|| {
    // A fixed pattern, covered by tests: it cannot fail to compile.
    #[allow(clippy::expect_used)]
    Regex::new(r"(?i)(?:^|[^a-z0-9])#?(t-\d{1,12})(?:$|[^0-9])").expect("ticket id regex")
});

/// The first ticket id in a message (`T-000012`, `t-12`, `工单T-000012`), normalised to `T-000012`.
pub fn extract_ticket_id(message: &str) -> Option<String> {
    let head: String = message.chars().take(2_000).collect();
    TICKET_ID
        .captures_iter(&head)
        .find_map(|c| c.get(1).and_then(|m| parse_ticket_id(m.as_str())).map(ticket_id))
}

fn invalid(tool: &str, reason: &str) -> ToolError {
    ToolError::InvalidArguments { tool: tool.to_owned(), reason: reason.to_owned() }
}

/// Loads a ticket and checks that the authenticated customer owns it.
async fn owned_ticket(
    store: &dyn DynTicketStore,
    tool: &str,
    ctx: &ToolContext,
    raw_id: &str,
) -> Result<Ticket, ToolError> {
    let n = parse_ticket_id(raw_id)
        .ok_or_else(|| invalid(tool, "ticket_id must look like T-000042"))?;
    let id = ticket_id(n);
    match store.ticket(&id).await.map_err(|e| store_error(tool, e))? {
        None => Err(ToolError::NotFound { tool: tool.to_owned(), what: format!("ticket {id}") }),
        Some(ticket) if ticket.customer_id != ctx.customer_id => {
            tracing::warn!(%tool, "refused cross-customer ticket access");
            Err(ToolError::Denied {
                tool: tool.to_owned(),
                reason: "the ticket is not on this customer's account".into(),
            })
        }
        Some(ticket) => Ok(ticket),
    }
}

/// Removes control characters (keeping line breaks) and trims; free text from a model or customer
/// goes into tickets people read.
fn clean_text(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .filter(|c| !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'))
        .take(max_chars)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Arguments of `create_ticket`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicketArgs {
    /// What the ticket is about; decides the department queue.
    pub kind: TicketKind,
    /// The order concerned, e.g. `#W2611340`, if any.
    #[serde(default)]
    pub order_id: Option<String>,
    /// One line, at most 200 characters.
    pub subject: String,
    /// What happened, in the customer's words.
    pub description: String,
    /// Priority; `normal` when omitted. Decides the SLA due time.
    #[serde(default)]
    pub priority: Option<TicketPriority>,
}

/// `create_ticket`: opens a repair, return, exchange, complaint or inquiry ticket for the customer.
/// Call only after the customer agreed to it.
pub struct CreateTicket {
    orders: Arc<dyn DynOrderStore>,
    tickets: Arc<dyn DynTicketStore>,
    actor: String,
    clock: Clock,
}

impl CreateTicket {
    /// The tool over the stores, opening tickets as [`DEFAULT_ACTOR`] on the wall clock.
    pub fn new(orders: Arc<dyn DynOrderStore>, tickets: Arc<dyn DynTicketStore>) -> Self {
        Self { orders, tickets, actor: DEFAULT_ACTOR.to_owned(), clock: system_clock() }
    }

    /// Opens tickets as `actor` (e.g. `agent:after_sales`) instead.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Uses `clock` for the SLA due time.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

impl Tool for CreateTicket {
    const NAME: &'static str = "create_ticket";
    type Args = CreateTicketArgs;
    type Output = Ticket;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Open a ticket for the customer: repair, return, exchange, complaint or inquiry, optionally \
         about one of their orders. The department and the SLA due time follow from the kind and \
         priority. Only after the customer agreed to open it."
    }

    async fn call(&self, ctx: &ToolContext, args: CreateTicketArgs) -> Result<Ticket, ToolError> {
        let order_id = match args.order_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(owned_order(self.orders.as_ref(), Self::NAME, ctx, raw).await?.id),
        };
        let subject = clean_text(&args.subject, 201).replace('\n', " ");
        let priority = args.priority.unwrap_or_default();
        let ticket = NewTicket {
            customer_id: ctx.customer_id.clone(),
            order_id,
            kind: args.kind,
            department: department_for(args.kind),
            priority,
            subject,
            description: clean_text(&args.description, MAX_DESCRIPTION_CHARS),
            sla_due_at: (self.clock)() + Duration::hours(sla_hours(priority)),
            actor: self.actor.clone(),
            // Status changes are told to the customer in the conversation that opened it.
            conversation_id: Some(ctx.conversation_id.clone())
                .filter(|c| !c.trim().is_empty() && c.len() <= 256 && !c.contains('\0')),
        };
        self.tickets.create_ticket(&ticket).await.map_err(|e| store_error(Self::NAME, e))
    }
}

/// Arguments naming one ticket.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketIdArgs {
    /// The ticket id, e.g. `T-000042`.
    pub ticket_id: String,
}

/// `get_ticket`: one of the customer's tickets with status, department, SLA due time and history.
pub struct GetTicket {
    tickets: Arc<dyn DynTicketStore>,
}

impl GetTicket {
    /// The tool over a store.
    pub fn new(tickets: Arc<dyn DynTicketStore>) -> Self {
        Self { tickets }
    }
}

impl Tool for GetTicket {
    const NAME: &'static str = "get_ticket";
    type Args = TicketIdArgs;
    type Output = Ticket;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Look up one of the customer's tickets (repair, return, exchange, complaint) by id: status, \
         department, priority, SLA due time and history."
    }

    async fn call(&self, ctx: &ToolContext, args: TicketIdArgs) -> Result<Ticket, ToolError> {
        owned_ticket(self.tickets.as_ref(), Self::NAME, ctx, &args.ticket_id).await
    }
}

/// Arguments of `list_tickets`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTicketsArgs {
    /// Only tickets in this status.
    #[serde(default)]
    pub status: Option<TicketStatus>,
}

/// A line of `list_tickets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketSummary {
    /// Ticket id.
    pub id: String,
    /// Kind.
    pub kind: TicketKind,
    /// Status.
    pub status: TicketStatus,
    /// Department queue.
    pub department: Department,
    /// Priority.
    pub priority: TicketPriority,
    /// Order concerned.
    pub order_id: Option<String>,
    /// One line.
    pub subject: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// SLA due time.
    pub sla_due_at: DateTime<Utc>,
}

impl From<Ticket> for TicketSummary {
    fn from(t: Ticket) -> Self {
        Self {
            id: t.id,
            kind: t.kind,
            status: t.status,
            department: t.department,
            priority: t.priority,
            order_id: t.order_id,
            subject: t.subject,
            created_at: t.created_at,
            sla_due_at: t.sla_due_at,
        }
    }
}

/// `list_tickets`: the customer's tickets, newest first.
pub struct ListTickets {
    tickets: Arc<dyn DynTicketStore>,
}

impl ListTickets {
    /// The tool over a store.
    pub fn new(tickets: Arc<dyn DynTicketStore>) -> Self {
        Self { tickets }
    }
}

impl Tool for ListTickets {
    const NAME: &'static str = "list_tickets";
    type Args = ListTicketsArgs;
    type Output = Vec<TicketSummary>;
    type Error = ToolError;

    fn description(&self) -> &str {
        "List the customer's tickets (repairs, returns, exchanges, complaints), newest first, \
         optionally only those in one status."
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: ListTicketsArgs,
    ) -> Result<Vec<TicketSummary>, ToolError> {
        let tickets = self
            .tickets
            .tickets_of(&ctx.customer_id)
            .await
            .map_err(|e| store_error(Self::NAME, e))?;
        Ok(tickets
            .into_iter()
            .filter(|t| args.status.is_none_or(|s| t.status == s))
            .map(TicketSummary::from)
            .collect())
    }
}

/// Arguments of `check_warranty`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckWarrantyArgs {
    /// The order id, e.g. `#W2611340`.
    pub order_id: String,
    /// Only this item of the order (its `item_id`); all items when omitted.
    #[serde(default)]
    pub item_id: Option<String>,
}

/// Warranty and return-window facts of one delivered item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemWarranty {
    /// Item (variant) id.
    pub item_id: String,
    /// Product id.
    pub product_id: String,
    /// Product name.
    pub name: String,
    /// Warranty of the product in months from delivery (0: none beyond the return window).
    pub warranty_months: u32,
    /// When the order was delivered.
    pub delivered_at: DateTime<Utc>,
    /// When the warranty ends (`None` without a warranty).
    pub warranty_ends_at: Option<DateTime<Utc>>,
    /// Whether the item is still under warranty at `checked_at`.
    pub in_warranty: bool,
    /// When the 30-day return and exchange window ends.
    pub return_window_ends_at: DateTime<Utc>,
    /// Whether the item can still be returned or exchanged at `checked_at`.
    pub within_return_window: bool,
}

/// What `check_warranty` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WarrantyReport {
    /// Order id.
    pub order_id: String,
    /// Order status.
    pub order_status: OrderStatus,
    /// The instant the check was made for.
    pub checked_at: DateTime<Utc>,
    /// Per item.
    pub items: Vec<ItemWarranty>,
}

/// `check_warranty`: for a delivered order of the customer, whether each item is still under
/// warranty and still within the 30-day return window.
pub struct CheckWarranty {
    orders: Arc<dyn DynOrderStore>,
    clock: Clock,
}

impl CheckWarranty {
    /// The tool over a store, on the wall clock.
    pub fn new(orders: Arc<dyn DynOrderStore>) -> Self {
        Self { orders, clock: system_clock() }
    }

    /// Uses `clock` for "now".
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

impl Tool for CheckWarranty {
    const NAME: &'static str = "check_warranty";
    type Args = CheckWarrantyArgs;
    type Output = WarrantyReport;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Check one of the customer's delivered orders: per item the warranty length, delivery date, \
         warranty end date, whether it is still under warranty and whether it can still be returned \
         or exchanged (30 days from delivery)."
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: CheckWarrantyArgs,
    ) -> Result<WarrantyReport, ToolError> {
        let order = owned_order(self.orders.as_ref(), Self::NAME, ctx, &args.order_id).await?;
        let delivered_at = match (order.status, order.delivered_at) {
            (OrderStatus::Cancelled, _) | (_, None) => {
                return Err(ToolError::Conflict {
                    tool: Self::NAME.into(),
                    reason: format!(
                        "order {} is {}: warranty and returns start at delivery",
                        order.id,
                        order.status.as_str()
                    ),
                });
            }
            (_, Some(at)) => at,
        };
        let items: Vec<_> = order
            .items
            .iter()
            .filter(|i| args.item_id.as_deref().is_none_or(|id| i.item_id == id.trim()))
            .collect();
        if items.is_empty() {
            return Err(ToolError::NotFound {
                tool: Self::NAME.into(),
                what: format!("that item in order {}", order.id),
            });
        }
        let now = (self.clock)();
        let return_window_ends_at = delivered_at + Duration::days(RETURN_WINDOW_DAYS);
        let mut report = Vec::with_capacity(items.len());
        for item in items {
            let product = self
                .orders
                .product(&item.product_id)
                .await
                .map_err(|e| store_error(Self::NAME, e))?
                .ok_or_else(|| {
                    // The loader checks that items reference products; this is a data fault.
                    tracing::error!(product = %item.product_id, "order item without product");
                    ToolError::Unavailable { tool: Self::NAME.into() }
                })?;
            let months = product.warranty_months;
            let warranty_ends_at = (months > 0)
                .then(|| delivered_at.checked_add_months(Months::new(months)))
                .flatten();
            report.push(ItemWarranty {
                item_id: item.item_id.clone(),
                product_id: item.product_id.clone(),
                name: item.name.clone(),
                warranty_months: months,
                delivered_at,
                in_warranty: warranty_ends_at.is_some_and(|end| now < end),
                warranty_ends_at,
                return_window_ends_at,
                within_return_window: now < return_window_ends_at,
            });
        }
        Ok(WarrantyReport {
            order_id: order.id,
            order_status: order.status,
            checked_at: now,
            items: report,
        })
    }
}

/// The ticket and warranty tools over the stores, on the wall clock.
pub fn ticket_tools(
    orders: Arc<dyn DynOrderStore>,
    tickets: Arc<dyn DynTicketStore>,
) -> Vec<Arc<dyn DynTool>> {
    ticket_tools_with_clock(orders, tickets, system_clock())
}

/// The ticket and warranty tools over the stores, with "now" from `clock`.
pub fn ticket_tools_with_clock(
    orders: Arc<dyn DynOrderStore>,
    tickets: Arc<dyn DynTicketStore>,
    clock: Clock,
) -> Vec<Arc<dyn DynTool>> {
    vec![
        Arc::new(
            CreateTicket::new(Arc::clone(&orders), Arc::clone(&tickets))
                .with_clock(Arc::clone(&clock)),
        ),
        Arc::new(GetTicket::new(Arc::clone(&tickets))),
        Arc::new(ListTickets::new(tickets)),
        Arc::new(CheckWarranty::new(orders).with_clock(clock)),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::TimeZone;
    use fenliu_tool::test_utils::assert_tool_conformance;
    use serde_json::json;

    use super::*;
    use crate::test_utils::{MemoryShopStore, fixture_shop};

    fn ctx(customer: &str) -> ToolContext {
        ToolContext {
            tenant: "t".into(),
            customer_id: customer.into(),
            conversation_id: "c".into(),
        }
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().unwrap()
    }

    async fn stores() -> (Arc<dyn DynOrderStore>, Arc<dyn DynTicketStore>) {
        let store = Arc::new(MemoryShopStore::new());
        store.import(&fixture_shop()).await.unwrap();
        (store.clone(), store)
    }

    #[tokio::test]
    async fn tools_conform() {
        let (orders, tickets) = stores().await;
        let valid = [
            (
                CreateTicket::NAME,
                vec![
                    json!({"kind": "repair", "order_id": "#W1000002", "subject": "s", "description": "d"}),
                    json!({"kind": "complaint", "subject": "s", "description": "d", "priority": "high"}),
                ],
            ),
            (GetTicket::NAME, vec![json!({"ticket_id": "T-000001"})]),
            (ListTickets::NAME, vec![json!({}), json!({"status": "open"})]),
            (CheckWarranty::NAME, vec![json!({"order_id": "#W1000002", "item_id": "i-watch"})]),
        ];
        let tools = ticket_tools(orders, tickets);
        assert_eq!(tools.len(), 4);
        for tool in &tools {
            let args = valid.iter().find(|(n, _)| *n == tool.name()).map(|(_, a)| a).unwrap();
            assert_tool_conformance(tool.as_ref(), &ctx("alice"), args).await;
        }
    }

    #[tokio::test]
    async fn create_ticket_derives_department_sla_and_actor() {
        let (orders, tickets) = stores().await;
        let now = at(2026, 11, 20);
        let tool = CreateTicket::new(orders, tickets.clone())
            .with_actor("agent:after_sales")
            .with_clock(fixed_clock(now));
        for (kind, department) in [
            (TicketKind::Repair, Department::AfterSales),
            (TicketKind::Return, Department::Logistics),
            (TicketKind::Exchange, Department::Logistics),
            (TicketKind::Complaint, Department::Quality),
            (TicketKind::Inquiry, Department::CustomerCare),
        ] {
            let args: CreateTicketArgs = serde_json::from_value(json!({
                "kind": kind, "order_id": "w1000002", "subject": "Watch\u{0} broken",
                "description": "It does not turn on.", "priority": "high"
            }))
            .unwrap();
            let t = tool.call(&ctx("alice"), args).await.unwrap();
            assert_eq!(t.department, department);
            assert_eq!(t.order_id.as_deref(), Some("#W1000002"));
            assert_eq!(t.subject, "Watch broken");
            assert_eq!(t.sla_due_at, now + Duration::hours(SLA_HIGH_HOURS));
            assert_eq!(t.history[0].actor, "agent:after_sales");
            assert_eq!(t.customer_id, "alice");
        }
        let args: CreateTicketArgs =
            serde_json::from_value(json!({"kind": "complaint", "subject": "s", "description": ""}))
                .unwrap();
        let t = tool.call(&ctx("bob"), args).await.unwrap();
        assert_eq!((t.priority, t.order_id), (TicketPriority::Normal, None));
        assert_eq!(t.sla_due_at, now + Duration::hours(SLA_NORMAL_HOURS));
        assert!(sla_hours(TicketPriority::Urgent) < sla_hours(TicketPriority::High));
        assert!(sla_hours(TicketPriority::Normal) < sla_hours(TicketPriority::Low));
    }

    #[tokio::test]
    async fn foreign_and_missing_orders_and_tickets_are_refused() {
        let (orders, tickets) = stores().await;
        let set = fenliu_tool::ToolSet::new(ticket_tools(orders, tickets)).unwrap();
        let rec = set
            .call(
                &ctx("alice"),
                "create_ticket",
                json!({"kind": "repair", "order_id": "#W2000001", "subject": "s", "description": "d"}),
            )
            .await;
        assert!(matches!(
            rec.outcome,
            fenliu_tool::ToolOutcome::Err { error: ToolError::Denied { .. } }
        ));
        let rec = set
            .call(
                &ctx("alice"),
                "create_ticket",
                json!({"kind": "repair", "order_id": "#W9999999", "subject": "s", "description": "d"}),
            )
            .await;
        assert!(matches!(
            rec.outcome,
            fenliu_tool::ToolOutcome::Err { error: ToolError::NotFound { .. } }
        ));
        let rec = set
            .call(
                &ctx("bob"),
                "create_ticket",
                json!({"kind": "complaint", "subject": "late", "description": "d"}),
            )
            .await;
        let bobs = rec.output().unwrap()["id"].as_str().unwrap().to_owned();
        let rec = set.call(&ctx("alice"), "get_ticket", json!({"ticket_id": bobs})).await;
        let fenliu_tool::ToolOutcome::Err { error: ToolError::Denied { reason, .. } } = rec.outcome
        else {
            panic!("{rec:?}")
        };
        assert!(!reason.contains("bob"));
        let rec = set.call(&ctx("alice"), "get_ticket", json!({"ticket_id": "T-000999"})).await;
        assert!(matches!(
            rec.outcome,
            fenliu_tool::ToolOutcome::Err { error: ToolError::NotFound { .. } }
        ));
        let rec = set.call(&ctx("alice"), "list_tickets", json!({})).await;
        assert_eq!(rec.output(), Some(&json!([])));
        let rec = set.call(&ctx("bob"), "get_ticket", json!({"ticket_id": bobs})).await;
        assert_eq!(rec.output().unwrap()["subject"], "late");
        let rec = set.call(&ctx("alice"), "check_warranty", json!({"order_id": "#W2000001"})).await;
        assert!(matches!(
            rec.outcome,
            fenliu_tool::ToolOutcome::Err { error: ToolError::Denied { .. } }
        ));
    }

    #[tokio::test]
    async fn warranty_and_return_window_follow_the_clock() {
        let (orders, _) = stores().await;
        // #W1000002 (alice, smart watch with 24 months) was delivered on 2026-11-06 12:00.
        let check = |now| CheckWarranty::new(orders.clone()).with_clock(fixed_clock(now));
        let args = || CheckWarrantyArgs { order_id: "#W1000002".into(), item_id: None };

        let r = check(at(2026, 11, 20)).call(&ctx("alice"), args()).await.unwrap();
        let item = &r.items[0];
        assert_eq!(item.warranty_months, 24);
        assert_eq!(item.delivered_at, at(2026, 11, 6));
        assert_eq!(item.warranty_ends_at, Some(at(2028, 11, 6)));
        assert_eq!(item.return_window_ends_at, at(2026, 12, 6));
        assert!(item.in_warranty && item.within_return_window);

        let r = check(at(2027, 3, 1)).call(&ctx("alice"), args()).await.unwrap();
        assert!(r.items[0].in_warranty && !r.items[0].within_return_window);
        let r = check(at(2029, 1, 1)).call(&ctx("alice"), args()).await.unwrap();
        assert!(!r.items[0].in_warranty && !r.items[0].within_return_window);

        // Not delivered yet.
        let shipped = CheckWarrantyArgs { order_id: "#W1000003".into(), item_id: None };
        let err = check(at(2026, 11, 20)).call(&ctx("alice"), shipped).await.unwrap_err();
        assert!(matches!(err, ToolError::Conflict { .. }), "{err:?}");
        // An item that is not in the order.
        let other = CheckWarrantyArgs { order_id: "#W1000002".into(), item_id: Some("i-x".into()) };
        let err = check(at(2026, 11, 20)).call(&ctx("alice"), other).await.unwrap_err();
        assert!(matches!(err, ToolError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn ticket_ids_in_messages() {
        assert_eq!(extract_ticket_id("status of T-000012?").as_deref(), Some("T-000012"));
        assert_eq!(extract_ticket_id("我的工单t-12进度").as_deref(), Some("T-000012"));
        assert_eq!(extract_ticket_id("#T-7").as_deref(), Some("T-000007"));
        assert_eq!(extract_ticket_id("AT-123 is a model"), None);
        assert_eq!(extract_ticket_id("no ticket"), None);
        assert_eq!(extract_ticket_id(&"T-".repeat(100_000)), None);
        assert_eq!(department_name(department_for(TicketKind::Repair)), "after_sales");
    }
}
