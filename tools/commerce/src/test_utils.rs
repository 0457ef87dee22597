//! An in-memory shop store, a small fixture shop, and the conformance suites that every
//! [`OrderStore`] and [`TicketStore`] implementation runs.

// Conformance suites report violations by panicking, like `assert!`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::domain::*;
use crate::store::*;

#[derive(Debug, Default)]
struct Inner {
    customers: BTreeMap<String, Customer>,
    products: BTreeMap<String, Product>,
    orders: BTreeMap<String, Order>,
    tickets: BTreeMap<i64, Ticket>,
    preferences: BTreeMap<String, Preferences>,
    outbox: BTreeMap<i64, OutboxEntry>,
}

#[derive(Debug)]
struct OutboxEntry {
    notification: TicketNotification,
    claimed_until: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
}

/// Orders and tickets in memory: the reference the database stores are compared against.
#[derive(Debug, Default)]
pub struct MemoryShopStore {
    inner: Mutex<Inner>,
}

impl MemoryShopStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_order(
        &self,
        order_id: &str,
        f: impl FnOnce(&mut Order) -> StoreResult<()>,
    ) -> StoreResult<Order> {
        let mut inner = self.lock();
        let order = inner
            .orders
            .get_mut(order_id)
            .ok_or_else(|| StoreError::NotFound { what: format!("order {order_id}") })?;
        let mut updated = order.clone();
        f(&mut updated)?;
        *order = updated.clone();
        Ok(updated)
    }
}

impl OrderStore for MemoryShopStore {
    async fn import(&self, data: &ShopData) -> StoreResult<ImportStats> {
        fn seed<T: Clone>(
            map: &mut BTreeMap<String, T>,
            items: &[T],
            id: impl Fn(&T) -> &str,
        ) -> usize {
            let mut inserted = 0;
            for item in items {
                if !map.contains_key(id(item)) {
                    map.insert(id(item).to_owned(), item.clone());
                    inserted += 1;
                }
            }
            inserted
        }
        let mut inner = self.lock();
        Ok(ImportStats {
            customers: seed(&mut inner.customers, &data.customers, |c| &c.id),
            products: seed(&mut inner.products, &data.products, |p| &p.id),
            orders: seed(&mut inner.orders, &data.orders, |o| &o.id),
        })
    }

    async fn customer(&self, id: &str) -> StoreResult<Option<Customer>> {
        Ok(self.lock().customers.get(id).cloned())
    }

    async fn product(&self, id: &str) -> StoreResult<Option<Product>> {
        Ok(self.lock().products.get(id).cloned())
    }

    async fn products(&self) -> StoreResult<Vec<Product>> {
        Ok(self.lock().products.values().cloned().collect())
    }

    async fn order(&self, id: &str) -> StoreResult<Option<Order>> {
        Ok(self.lock().orders.get(id).cloned())
    }

    async fn orders_of(&self, customer_id: &str) -> StoreResult<Vec<Order>> {
        let mut orders: Vec<Order> =
            self.lock().orders.values().filter(|o| o.customer_id == customer_id).cloned().collect();
        orders.sort_by(|a, b| b.placed_at.cmp(&a.placed_at).then(a.id.cmp(&b.id)));
        Ok(orders)
    }

    async fn cancel_order(
        &self,
        customer_id: &str,
        order_id: &str,
        _reason: CancelReason,
    ) -> StoreResult<Order> {
        self.write_order(order_id, |o| {
            check_cancellable(o, customer_id)?;
            apply_cancellation(o);
            Ok(())
        })
    }

    async fn update_order_address(
        &self,
        customer_id: &str,
        order_id: &str,
        address: &Address,
    ) -> StoreResult<Order> {
        self.write_order(order_id, |o| {
            check_address_change(o, customer_id, address)?;
            o.address = address.clone();
            Ok(())
        })
    }
}

impl TicketStore for MemoryShopStore {
    async fn create_ticket(&self, t: &NewTicket) -> StoreResult<Ticket> {
        validate_new_ticket(t)?;
        let mut inner = self.lock();
        let n = inner.tickets.keys().next_back().copied().unwrap_or(0) + 1;
        let now = Utc::now();
        let ticket = Ticket {
            id: ticket_id(n),
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
            sla_due_at: t.sla_due_at,
            history: vec![TicketEvent::created(now, &t.actor)],
            assignee: None,
            conversation_id: t.conversation_id.clone(),
            sla_reminded_at: None,
            sla_breached_at: None,
        };
        inner.tickets.insert(n, ticket.clone());
        Ok(ticket)
    }

    async fn ticket(&self, id: &str) -> StoreResult<Option<Ticket>> {
        Ok(parse_ticket_id(id).and_then(|n| self.lock().tickets.get(&n).cloned()))
    }

    async fn tickets_of(&self, customer_id: &str) -> StoreResult<Vec<Ticket>> {
        let mut tickets: Vec<Ticket> = self
            .lock()
            .tickets
            .values()
            .filter(|t| t.customer_id == customer_id)
            .cloned()
            .collect();
        tickets.reverse();
        Ok(tickets)
    }

    async fn update_ticket_status(
        &self,
        id: &str,
        to: TicketStatus,
        actor: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Ticket> {
        TicketStore::change_ticket(self, id, &TicketUpdate::status(to, actor, note, at)).await
    }

    async fn change_ticket(&self, id: &str, update: &TicketUpdate) -> StoreResult<Ticket> {
        let what = || format!("ticket {id}");
        let n = parse_ticket_id(id).ok_or_else(|| StoreError::NotFound { what: what() })?;
        let mut inner = self.lock();
        let stored =
            inner.tickets.get_mut(&n).ok_or_else(|| StoreError::NotFound { what: what() })?;
        let mut ticket = stored.clone();
        let applied = apply_ticket_update(&mut ticket, update)?;
        *stored = ticket.clone();
        if let Some(kind) = applied.notify {
            let next = inner.outbox.keys().next_back().copied().unwrap_or(0) + 1;
            let notification = TicketNotification { id: next, ..notification_for(&ticket, kind) };
            inner.outbox.insert(
                next,
                OutboxEntry { notification, claimed_until: None, delivered_at: None },
            );
        }
        Ok(ticket)
    }

    async fn department_queue(
        &self,
        department: Department,
        status: Option<TicketStatus>,
        limit: usize,
    ) -> StoreResult<Vec<Ticket>> {
        check_queue_limit(limit)?;
        let mut tickets: Vec<Ticket> = self
            .lock()
            .tickets
            .values()
            .filter(|t| t.department == department)
            .filter(|t| match status {
                Some(s) => t.status == s,
                None => t.status != TicketStatus::Closed,
            })
            .cloned()
            .collect();
        tickets.sort_by(queue_order);
        tickets.truncate(limit);
        Ok(tickets)
    }

    async fn sweep_ticket_sla(
        &self,
        now: DateTime<Utc>,
        reminder_fraction: f64,
    ) -> StoreResult<Vec<SlaAlert>> {
        check_reminder_fraction(reminder_fraction)?;
        let mut inner = self.lock();
        let mut alerts = Vec::new();
        for ticket in inner.tickets.values_mut() {
            if let Some(kind) = sla_alert_due(ticket, now, reminder_fraction) {
                alerts.push(apply_sla_alert(ticket, kind, now).0);
            }
        }
        Ok(alerts)
    }

    async fn claim_ticket_notifications(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<TicketNotification>> {
        check_claim(lease, limit)?;
        let mut inner = self.lock();
        let mut claimed = Vec::new();
        for entry in inner.outbox.values_mut() {
            if claimed.len() == limit {
                break;
            }
            if entry.delivered_at.is_none() && entry.claimed_until.is_none_or(|until| until <= now)
            {
                entry.claimed_until = Some(now + lease);
                entry.notification.attempts += 1;
                claimed.push(entry.notification.clone());
            }
        }
        Ok(claimed)
    }

    async fn ack_ticket_notification(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        let mut inner = self.lock();
        match inner.outbox.get_mut(&id) {
            Some(entry) if entry.delivered_at.is_none() => {
                entry.delivered_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl PreferenceStore for MemoryShopStore {
    async fn preferences(&self, customer_id: &str) -> StoreResult<Preferences> {
        let inner = self.lock();
        if !inner.customers.contains_key(customer_id) {
            return Err(StoreError::NotFound { what: format!("customer {customer_id}") });
        }
        Ok(inner.preferences.get(customer_id).copied().unwrap_or_default())
    }

    async fn set_newsletter(
        &self,
        customer_id: &str,
        subscribed: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Preferences> {
        let mut inner = self.lock();
        if !inner.customers.contains_key(customer_id) {
            return Err(StoreError::NotFound { what: format!("customer {customer_id}") });
        }
        let prefs = Preferences { newsletter: Some(subscribed), updated_at: Some(at) };
        inner.preferences.insert(customer_id.to_owned(), prefs);
        Ok(prefs)
    }
}

/// Every commerce tool (orders and tickets) over one in-memory store, with the ticket tools'
/// clock fixed at `now` so SLA due times and warranty windows are deterministic.
pub fn shop_tools(
    store: &std::sync::Arc<MemoryShopStore>,
    now: DateTime<Utc>,
) -> fenliu_tool::ToolSet {
    let orders: std::sync::Arc<dyn DynOrderStore> = store.clone();
    let tickets: std::sync::Arc<dyn DynTicketStore> = store.clone();
    let mut tools = crate::tools::order_tools(orders.clone());
    tools.extend(crate::ticket_tools::ticket_tools_with_clock(
        orders,
        tickets,
        crate::ticket_tools::fixed_clock(now),
    ));
    fenliu_tool::ToolSet::new(tools).expect("the commerce tools have unique, valid names")
}

/// A small shop used by unit tests and the conformance suites: two customers (one VIP), two
/// products, four orders of `alice` in different statuses and one of `bob`.
pub fn fixture_shop() -> ShopData {
    let address = |line1: &str| Address {
        line1: line1.into(),
        line2: String::new(),
        city: "Austin".into(),
        state: "TX".into(),
        country: "USA".into(),
        zip: "78701".into(),
    };
    let customer = |id: &str, first: &str, tier| Customer {
        id: id.into(),
        name: PersonName { first: first.into(), last: "Test".into() },
        email: format!("{id}@example.com"),
        tier,
        language: "en".into(),
        address: address("1 Main St"),
        payment_methods: vec![PaymentMethod {
            id: format!("gift_card_{id}"),
            kind: PaymentKind::GiftCard,
            brand: None,
            last_four: None,
            balance: Some(100.0),
        }],
    };
    let variant = |item: &str, color: &str, price| Variant {
        item_id: item.into(),
        options: BTreeMap::from([("color".to_owned(), color.to_owned())]),
        available: true,
        price,
    };
    let products = vec![
        Product {
            id: "p-bottle".into(),
            name: "Water Bottle".into(),
            category: "kitchen".into(),
            description: "A bottle.".into(),
            warranty_months: 0,
            variants: vec![variant("i-blue", "blue", 20.5), variant("i-red", "red", 21.0)],
        },
        Product {
            id: "p-watch".into(),
            name: "Smart Watch".into(),
            category: "electronics".into(),
            description: "A watch.".into(),
            warranty_months: 24,
            variants: vec![variant("i-watch", "black", 300.0)],
        },
    ];
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).single().unwrap_or_default();
    let order =
        |id: &str, customer: &str, status, days: i64, item: &str, product: &str, price| Order {
            id: id.into(),
            customer_id: customer.into(),
            status,
            placed_at: base + Duration::days(days),
            estimated_delivery: Some((base + Duration::days(days + 5)).date_naive()),
            delivered_at: (status == OrderStatus::Delivered)
                .then(|| base + Duration::days(days + 4)),
            address: address("1 Main St"),
            items: vec![OrderItem {
                item_id: item.into(),
                product_id: product.into(),
                name: "Thing".into(),
                price,
                options: BTreeMap::new(),
            }],
            fulfillments: if status == OrderStatus::Pending {
                vec![]
            } else {
                vec![Fulfillment {
                    carrier: "UPS".into(),
                    tracking_ids: vec![format!("TRK{days}")],
                    item_ids: vec![item.into()],
                }]
            },
            payments: vec![Payment {
                kind: PaymentEventKind::Payment,
                amount: price,
                payment_method_id: format!("gift_card_{customer}"),
            }],
        };
    ShopData {
        customers: vec![
            customer("alice", "Alice", Tier::Vip),
            customer("bob", "Bob", Tier::Regular),
        ],
        products,
        orders: vec![
            order("#W1000001", "alice", OrderStatus::Pending, 10, "i-blue", "p-bottle", 20.5),
            order("#W1000002", "alice", OrderStatus::Delivered, 1, "i-watch", "p-watch", 300.0),
            order("#W1000003", "alice", OrderStatus::Shipped, 5, "i-red", "p-bottle", 21.0),
            order("#W1000004", "alice", OrderStatus::Pending, 11, "i-red", "p-bottle", 21.0),
            order("#W2000001", "bob", OrderStatus::Pending, 3, "i-blue", "p-bottle", 20.5),
        ],
    }
}

/// Ids and strings an attacker might send; stores must answer "not found", never fail or match.
pub fn hostile_ids() -> Vec<String> {
    vec![
        String::new(),
        "' OR '1'='1".into(),
        "#W1000001'; DROP TABLE orders; --".into(),
        "%".into(),
        "_".into(),
        "\u{0}".into(),
        "x".repeat(1 << 20),
        "订单".into(),
    ]
}

/// Checks an [`OrderStore`] against the contract. The store must be empty on entry.
pub async fn assert_order_store_conformance<S: OrderStore>(store: &S) {
    let shop = fixture_shop();
    let stats = store.import(&shop).await.expect("import");
    assert_eq!(stats, ImportStats { customers: 2, products: 2, orders: 5 });
    let again = store.import(&shop).await.expect("import is idempotent");
    assert_eq!(again, ImportStats::default(), "re-import inserted records again");
    assert_eq!(store.products().await.expect("products").len(), 2, "re-import duplicated products");

    let alice = store.customer("alice").await.expect("customer").expect("alice exists");
    assert_eq!(alice, shop.customers[0], "customer round-trip");
    let watch = store.product("p-watch").await.expect("product").expect("watch exists");
    assert_eq!(watch, shop.products[1], "product round-trip");
    let order = store.order("#W1000002").await.expect("order").expect("order exists");
    assert_eq!(order, shop.orders[1], "order round-trip");

    let ids: Vec<String> =
        store.orders_of("alice").await.expect("orders_of").into_iter().map(|o| o.id).collect();
    assert_eq!(ids, ["#W1000004", "#W1000001", "#W1000003", "#W1000002"], "newest first");
    assert!(store.orders_of("nobody").await.expect("orders_of").is_empty());

    for id in hostile_ids() {
        assert_eq!(store.order(&id).await.expect("hostile order id"), None);
        assert_eq!(store.customer(&id).await.expect("hostile customer id"), None);
        assert!(store.orders_of(&id).await.expect("hostile orders_of").is_empty());
    }

    // Cancellation: ownership, state, refund.
    let err = store.cancel_order("bob", "#W1000001", CancelReason::NoLongerNeeded).await;
    assert!(matches!(err, Err(StoreError::NotOwner { .. })), "foreign cancel: {err:?}");
    let err = store.cancel_order("alice", "#W1000002", CancelReason::NoLongerNeeded).await;
    assert!(matches!(err, Err(StoreError::InvalidState { .. })), "delivered cancel: {err:?}");
    let err = store.cancel_order("alice", "#W9999999", CancelReason::NoLongerNeeded).await;
    assert!(matches!(err, Err(StoreError::NotFound { .. })), "missing cancel: {err:?}");
    let cancelled = store
        .cancel_order("alice", "#W1000001", CancelReason::OrderedByMistake)
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.refunded(), 20.5, "refund recorded");
    assert_eq!(store.order("#W1000001").await.expect("order"), Some(cancelled), "cancel persisted");
    let again = store.cancel_order("alice", "#W1000001", CancelReason::OrderedByMistake).await;
    assert!(matches!(again, Err(StoreError::InvalidState { .. })), "double cancel: {again:?}");

    // Address change: validation, ownership, state.
    let mut address = shop.customers[0].address.clone();
    address.line1 = "2 New Road".into();
    let updated =
        store.update_order_address("alice", "#W1000004", &address).await.expect("address change");
    assert_eq!(updated.address, address);
    assert_eq!(
        store.order("#W1000004").await.expect("order").map(|o| o.address),
        Some(address.clone())
    );
    let mut bad = address.clone();
    bad.line1 = String::new();
    assert!(matches!(
        store.update_order_address("alice", "#W1000004", &bad).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.update_order_address("alice", "#W2000001", &address).await,
        Err(StoreError::NotOwner { .. })
    ));
    assert!(matches!(
        store.update_order_address("alice", "#W1000003", &address).await,
        Err(StoreError::InvalidState { .. })
    ));
    // Re-seeding (every server start does) must not undo the customer's changes.
    store.import(&shop).await.expect("re-import");
    let order = store.order("#W1000001").await.expect("order").expect("exists");
    assert_eq!(order.status, OrderStatus::Cancelled, "re-import reverted a cancellation");
    let order = store.order("#W1000004").await.expect("order").expect("exists");
    assert_eq!(order.address, address, "re-import reverted an address change");

    // Bob's order is untouched by all of the above.
    assert_eq!(store.order("#W2000001").await.expect("order").as_ref(), Some(&shop.orders[4]));
}

/// Checks that two concurrent cancellations of one order cannot both succeed.
pub async fn assert_cancel_is_atomic<S: OrderStore>(store: &S) {
    store.import(&fixture_shop()).await.expect("import");
    let (a, b) = futures_join(
        store.cancel_order("bob", "#W2000001", CancelReason::NoLongerNeeded),
        store.cancel_order("bob", "#W2000001", CancelReason::NoLongerNeeded),
    )
    .await;
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "exactly one concurrent cancel must win: {a:?} / {b:?}"
    );
    let order = store.order("#W2000001").await.expect("order").expect("exists");
    assert_eq!(order.refunded(), 20.5, "refunded once, not twice");
}

/// Runs two futures concurrently (a tiny `join`, so this crate needs no futures dependency).
async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    use std::pin::pin;
    use std::task::Poll;
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    match (ra, rb) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("poll_fn only returns once both are ready"),
    }
}

fn new_ticket(customer: &str, subject: &str) -> NewTicket {
    NewTicket {
        customer_id: customer.into(),
        order_id: Some("#W1000002".into()),
        kind: TicketKind::Repair,
        department: Department::AfterSales,
        priority: TicketPriority::High,
        subject: subject.into(),
        description: "Screen stays black after charging.".into(),
        sla_due_at: Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).single().unwrap_or_default(),
        actor: "agent:after_sales".into(),
        conversation_id: Some(format!("conv-{customer}")),
    }
}

/// Checks a [`TicketStore`] against the contract. The store must have no tickets on entry.
pub async fn assert_ticket_store_conformance<S: TicketStore>(store: &S) {
    let first =
        store.create_ticket(&new_ticket("alice", "Watch does not turn on")).await.expect("create");
    let second = store.create_ticket(&new_ticket("alice", "Second")).await.expect("create");
    store.create_ticket(&new_ticket("bob", "Bob's")).await.expect("create");
    assert_ne!(first.id, second.id, "ticket ids are unique");
    assert!(parse_ticket_id(&first.id).is_some(), "ticket id {} is not T-nnnnnn", first.id);
    assert_eq!(first.status, TicketStatus::Open);
    assert_eq!(first.history.len(), 1);
    assert_eq!(first.sla_due_at, new_ticket("alice", "x").sla_due_at, "SLA due time kept");

    let fetched = store.ticket(&first.id).await.expect("ticket").expect("exists");
    assert_eq!(fetched, first, "a new ticket reads back as created");
    assert_eq!(fetched.conversation_id.as_deref(), Some("conv-alice"), "conversation kept");
    assert_eq!(fetched.assignee, None);
    assert_eq!(fetched.history[0].kind, TicketEventKind::Created);
    assert_eq!(fetched.subject, "Watch does not turn on");
    assert_eq!(fetched.priority, TicketPriority::High);
    let ids: Vec<String> =
        store.tickets_of("alice").await.expect("tickets_of").into_iter().map(|t| t.id).collect();
    assert_eq!(ids, [second.id.clone(), first.id.clone()], "newest first, only alice's");

    let at = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).single().unwrap_or_default();
    let t = store
        .update_ticket_status(&first.id, TicketStatus::Assigned, "human:alice", "taken", at)
        .await
        .expect("assign");
    assert_eq!(t.status, TicketStatus::Assigned);
    assert_eq!(t.updated_at, at);
    let bad = store.update_ticket_status(&first.id, TicketStatus::Closed, "x", "", at).await;
    assert!(
        matches!(bad, Err(StoreError::InvalidState { .. })),
        "assigned → closed allowed: {bad:?}"
    );
    let t = store.ticket(&first.id).await.expect("ticket").expect("exists");
    assert_eq!(t.history.len(), 2, "history recorded");
    assert_eq!(t.history[1].from, Some(TicketStatus::Open));
    assert_eq!(t.history[1].actor, "human:alice");

    let mut empty = new_ticket("alice", "");
    assert!(matches!(store.create_ticket(&empty).await, Err(StoreError::InvalidInput(_))));
    empty.subject = "x".repeat(1000);
    assert!(matches!(store.create_ticket(&empty).await, Err(StoreError::InvalidInput(_))));
    for id in hostile_ids() {
        assert_eq!(store.ticket(&id).await.expect("hostile ticket id"), None);
        assert!(matches!(
            store.update_ticket_status(&id, TicketStatus::Assigned, "x", "", at).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}

fn routed_ticket(
    customer: &str,
    department: Department,
    priority: TicketPriority,
    conversation: Option<&str>,
    sla_due_at: DateTime<Utc>,
) -> NewTicket {
    NewTicket {
        department,
        priority,
        sla_due_at,
        conversation_id: conversation.map(str::to_owned),
        ..new_ticket(customer, &format!("{} {customer}", department.as_str()))
    }
}

fn update(change: TicketChange, actor: &str, note: &str, at: DateTime<Utc>) -> TicketUpdate {
    TicketUpdate { change, actor: actor.into(), note: note.into(), at, department: None }
}

fn status(to: TicketStatus) -> TicketChange {
    TicketChange::Status { to }
}

/// Checks tickets as routed work on a [`TicketStore`]: department queues, the lifecycle with
/// typed refusals, assignment, transfer with history, the customer-notification outbox (written
/// with each change, claimed with a lease, acknowledged once) and the SLA sweep (each reminder
/// and breach exactly once). The store must have no tickets on entry.
pub async fn assert_ticket_routing_conformance<S: TicketStore>(store: &S) {
    use TicketStatus::*;
    let past = Utc.with_ymd_and_hms(2026, 1, 3, 12, 0, 0).single().unwrap();
    let far = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).single().unwrap();
    let convo = Some("conv-alice");
    let t1 = store
        .create_ticket(&routed_ticket(
            "alice",
            Department::AfterSales,
            TicketPriority::High,
            convo,
            far,
        ))
        .await
        .expect("create t1");
    let t2 = store
        .create_ticket(&routed_ticket(
            "bob",
            Department::Logistics,
            TicketPriority::Urgent,
            None,
            past,
        ))
        .await
        .expect("create t2");
    let t3 = store
        .create_ticket(&routed_ticket(
            "alice",
            Department::AfterSales,
            TicketPriority::Low,
            convo,
            past,
        ))
        .await
        .expect("create t3");
    let t5 = store
        .create_ticket(&routed_ticket(
            "alice",
            Department::AfterSales,
            TicketPriority::High,
            convo,
            past,
        ))
        .await
        .expect("create t5");
    let at = t1.created_at + Duration::minutes(1);

    // Queues: per department, most urgent first, then the earliest due time.
    let ids = |ts: Vec<Ticket>| ts.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let queue = store.department_queue(Department::AfterSales, None, 50).await.expect("queue");
    assert_eq!(ids(queue), [t5.id.clone(), t1.id.clone(), t3.id.clone()], "queue order");
    let queue = store.department_queue(Department::Logistics, Some(Open), 50).await.expect("queue");
    assert_eq!(ids(queue), [t2.id.as_str()]);
    let queue = store.department_queue(Department::AfterSales, Some(Assigned), 50).await;
    assert!(queue.expect("queue").is_empty(), "status filter");
    let queue = store.department_queue(Department::AfterSales, None, 1).await.expect("queue");
    assert_eq!(ids(queue), [t5.id.as_str()], "limit");
    for bad in [0, MAX_QUEUE_LIMIT + 1] {
        let r = store.department_queue(Department::AfterSales, None, bad).await;
        assert!(matches!(r, Err(StoreError::InvalidInput(_))), "limit {bad}: {r:?}");
    }

    // Claiming from the right queue; refusals are typed and change nothing.
    let claim = TicketUpdate {
        department: Some(Department::Quality),
        ..update(TicketChange::Assign { assignee: "human:ann".into() }, "human:ann", "", at)
    };
    let r = store.change_ticket(&t1.id, &claim).await;
    assert!(matches!(r, Err(StoreError::WrongDepartment { .. })), "wrong department: {r:?}");
    let claim = TicketUpdate { department: Some(Department::AfterSales), ..claim };
    let t = store.change_ticket(&t1.id, &claim).await.expect("claim");
    assert_eq!((t.status, t.assignee.as_deref()), (Assigned, Some("human:ann")));
    let r = store.change_ticket(&t1.id, &claim).await;
    assert!(matches!(r, Err(StoreError::InvalidState { .. })), "claimed twice: {r:?}");
    for (bad, why) in [
        (update(status(Closed), "human:ann", "", at), "assigned → closed"),
        (update(status(Resolved), "human:ann", "", at), "assigned → resolved"),
        (update(status(Assigned), "human:ann", "", at), "assigned → assigned"),
    ] {
        let r = store.change_ticket(&t1.id, &bad).await;
        assert!(matches!(r, Err(StoreError::InvalidState { .. })), "{why}: {r:?}");
    }
    for (bad, why) in [
        (update(status(InProgress), "", "", at), "empty actor"),
        (update(status(InProgress), &"a".repeat(MAX_TICKET_ACTOR_CHARS + 1), "", at), "long actor"),
        (update(status(InProgress), "x\u{7}", "", at), "control actor"),
        (
            update(status(InProgress), "human:ann", &"n".repeat(MAX_TICKET_NOTE_CHARS + 1), at),
            "oversized note",
        ),
        (update(status(InProgress), "human:ann", "a\0b", at), "NUL note"),
        (update(TicketChange::Assign { assignee: " ".into() }, "human:ann", "", at), "no assignee"),
    ] {
        let r = store.change_ticket(&t1.id, &bad).await;
        assert!(matches!(r, Err(StoreError::InvalidInput(_))), "{why}: {r:?}");
    }
    let unchanged = store.ticket(&t1.id).await.expect("ticket").expect("exists");
    assert_eq!(unchanged.history.len(), 2, "refused changes left no history");
    assert_eq!(unchanged.status, Assigned);

    // The whole lifecycle, then nothing after closed.
    let steps = [InProgress, WaitingForCustomer, InProgress, Resolved, Closed];
    for (i, to) in steps.into_iter().enumerate() {
        let when = at + Duration::minutes(i as i64 + 1);
        let t = store
            .change_ticket(&t1.id, &update(status(to), "human:ann", &format!("step {i}"), when))
            .await
            .unwrap_or_else(|e| panic!("→ {}: {e}", to.as_str()));
        assert_eq!((t.status, t.updated_at), (to, when));
    }
    for to in TicketStatus::ALL {
        let r = store.change_ticket(&t1.id, &update(status(to), "human:ann", "", at)).await;
        assert!(matches!(r, Err(StoreError::InvalidState { .. })), "closed → {to:?}: {r:?}");
    }
    let r = store
        .change_ticket(
            &t1.id,
            &update(TicketChange::Transfer { to: Department::Finance }, "h", "n", at),
        )
        .await;
    assert!(matches!(r, Err(StoreError::InvalidState { .. })), "closed transfer: {r:?}");
    let r = store.change_ticket(&t3.id, &update(status(Resolved), "human:ann", "", at)).await;
    assert!(matches!(r, Err(StoreError::InvalidState { .. })), "open → resolved: {r:?}");
    let t = store.ticket(&t1.id).await.expect("ticket").expect("exists");
    let kinds: Vec<_> = t.history.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            TicketEventKind::Created,
            TicketEventKind::Assigned,
            TicketEventKind::Status,
            TicketEventKind::Status,
            TicketEventKind::Status,
            TicketEventKind::Status,
            TicketEventKind::Status,
        ]
    );
    assert_eq!(t.history[1].assignee.as_deref(), Some("human:ann"));
    assert_eq!((t.history[6].from, t.history[6].to), (Some(Resolved), Closed));
    assert_eq!(t.history[6].note, "step 4");
    assert!(t.history.iter().skip(1).all(|e| e.actor == "human:ann"));

    // Transfer: status back to open in the new queue, owner released, history and SLA kept.
    store
        .change_ticket(&t3.id, &update(status(Assigned), "human:bo", "mine", at))
        .await
        .expect("claim by status");
    store
        .change_ticket(&t3.id, &update(status(InProgress), "human:bo", "", at))
        .await
        .expect("start");
    let transfer = |to, note: &str| update(TicketChange::Transfer { to }, "human:bo", note, at);
    let r = store.change_ticket(&t3.id, &transfer(Department::Finance, "  ")).await;
    assert!(matches!(r, Err(StoreError::InvalidInput(_))), "transfer without a note: {r:?}");
    let r = store.change_ticket(&t3.id, &transfer(Department::AfterSales, "x")).await;
    assert!(matches!(r, Err(StoreError::InvalidInput(_))), "transfer to itself: {r:?}");
    let moved = store
        .change_ticket(&t3.id, &transfer(Department::Finance, "refund due"))
        .await
        .expect("transfer");
    assert_eq!(
        (moved.department, moved.status, moved.assignee.clone()),
        (Department::Finance, Open, None)
    );
    assert_eq!(moved.sla_due_at, t3.sla_due_at, "the SLA clock does not restart");
    let moved = store.ticket(&t3.id).await.expect("ticket").expect("exists");
    let last = moved.history.last().expect("history");
    assert_eq!(last.kind, TicketEventKind::Transferred);
    assert_eq!(
        (last.from_department, last.to_department, last.from, last.to),
        (Some(Department::AfterSales), Some(Department::Finance), Some(InProgress), Open)
    );
    assert_eq!(last.note, "refund due");
    assert_eq!(moved.history.len(), 4, "created, claimed, started, transferred");
    let finance = store.department_queue(Department::Finance, None, 50).await.expect("queue");
    assert_eq!(ids(finance), [t3.id.as_str()]);
    let after_sales = store.department_queue(Department::AfterSales, None, 50).await.expect("q");
    assert_eq!(ids(after_sales), [t5.id.as_str()], "transferred and closed tickets left");
    let closed = store.department_queue(Department::AfterSales, Some(Closed), 50).await.expect("q");
    assert_eq!(ids(closed), [t1.id.as_str()]);
    let r = store
        .change_ticket(
            &t3.id,
            &TicketUpdate {
                department: Some(Department::AfterSales),
                ..update(status(Assigned), "human:bo", "", at)
            },
        )
        .await;
    assert!(matches!(r, Err(StoreError::WrongDepartment { .. })), "old queue acts: {r:?}");

    // A ticket without a conversation changes without notifying anyone.
    store.change_ticket(&t2.id, &update(status(InProgress), "human:cy", "", at)).await.expect("t2");
    for id in hostile_ids().iter().map(String::as_str).chain(["T-999999"]) {
        let r = store.change_ticket(id, &update(status(Assigned), "h", "", at)).await;
        assert!(matches!(r, Err(StoreError::NotFound { .. })), "hostile id: {r:?}");
    }

    // Outbox: t1 assigned + 5 steps, t3 claimed + started + transferred = 9 notifications.
    let now = at + Duration::hours(1);
    let lease = Duration::seconds(60);
    for (lease, limit) in [(Duration::zero(), 5), (Duration::days(2), 5), (lease, 0), (lease, 501)]
    {
        let r = store.claim_ticket_notifications(now, lease, limit).await;
        assert!(matches!(r, Err(StoreError::InvalidInput(_))), "claim {lease} {limit}: {r:?}");
    }
    let first = store.claim_ticket_notifications(now, lease, 5).await.expect("claim");
    let rest = store.claim_ticket_notifications(now, lease, 50).await.expect("claim");
    assert_eq!((first.len(), rest.len()), (5, 4), "9 notifications, claimed once each");
    assert!(store.claim_ticket_notifications(now, lease, 50).await.expect("claim").is_empty());
    let all: Vec<&TicketNotification> = first.iter().chain(&rest).collect();
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert!(all.iter().all(|n| n.conversation_id == "conv-alice" && n.customer_id == "alice"));
    assert!(all.iter().all(|n| n.attempts == 1));
    let of = |id: &str| {
        all.iter().filter(|n| n.ticket_id == id).map(|n| (n.kind, n.status)).collect::<Vec<_>>()
    };
    use TicketNotificationKind as K;
    assert_eq!(
        of(&t1.id),
        [
            (K::Status, Assigned),
            (K::Status, InProgress),
            (K::Status, WaitingForCustomer),
            (K::Status, InProgress),
            (K::Status, Resolved),
            (K::Status, Closed)
        ]
    );
    assert_eq!(
        of(&t3.id),
        [(K::Status, Assigned), (K::Status, InProgress), (K::Transferred, Open)]
    );
    assert!(all.iter().any(|n| n.kind == K::Transferred && n.department == Department::Finance));
    for n in &first {
        assert!(store.ack_ticket_notification(n.id, now).await.expect("ack"), "first ack");
        assert!(!store.ack_ticket_notification(n.id, now).await.expect("ack"), "second ack");
    }
    assert!(!store.ack_ticket_notification(999_999, now).await.expect("ack unknown"));
    // The unacknowledged four come back once their lease ran out, and only then.
    let later = now + lease + Duration::seconds(1);
    let again = store.claim_ticket_notifications(later, lease, 50).await.expect("reclaim");
    assert_eq!(ids_of(&again), ids_of(&rest), "lapsed claims are re-offered");
    assert!(again.iter().all(|n| n.attempts == 2));
    for n in &again {
        assert!(store.ack_ticket_notification(n.id, later).await.expect("ack"));
    }
    let much_later = later + Duration::hours(1);
    assert!(store.claim_ticket_notifications(much_later, lease, 50).await.expect("c").is_empty());

    // SLA sweep: t2, t3, t5 are past due (a breach each); t4 reminds at 80 %, then breaches.
    for bad in [0.0, 1.5, f64::NAN, -1.0] {
        let r = store.sweep_ticket_sla(now, bad).await;
        assert!(matches!(r, Err(StoreError::InvalidInput(_))), "fraction {bad}: {r:?}");
    }
    store
        .change_ticket(&t5.id, &update(status(InProgress), "human:ann", "", at))
        .await
        .expect("t5");
    store
        .change_ticket(&t5.id, &update(status(Resolved), "human:ann", "", at))
        .await
        .expect("t5 resolved before the sweep");
    let t5_notes = store.claim_ticket_notifications(much_later, lease, 50).await.expect("claim");
    assert_eq!(t5_notes.iter().map(|n| n.status).collect::<Vec<_>>(), [InProgress, Resolved]);
    for n in &t5_notes {
        assert!(store.ack_ticket_notification(n.id, much_later).await.expect("ack"));
    }
    let start = Utc::now();
    let t4 = store
        .create_ticket(&routed_ticket(
            "alice",
            Department::Quality,
            TicketPriority::Normal,
            convo,
            start + Duration::hours(10),
        ))
        .await
        .expect("t4");
    let span = t4.sla_due_at - t4.created_at;
    let sweep = |at| async move {
        let mut alerts = store.sweep_ticket_sla(at, 0.8).await.expect("sweep");
        alerts.sort_by(|a, b| a.ticket_id.cmp(&b.ticket_id));
        alerts.into_iter().map(|a| (a.ticket_id, a.kind)).collect::<Vec<_>>()
    };
    let early = t4.created_at + span / 2;
    assert_eq!(
        sweep(early).await,
        [(t2.id.clone(), SlaAlertKind::Breach), (t3.id.clone(), SlaAlertKind::Breach)],
        "past-due open tickets breach; closed and resolved ones do not"
    );
    assert!(sweep(early).await.is_empty(), "a second sweep emits nothing again");
    let reminder_at = t4.created_at + span * 9 / 10;
    assert_eq!(sweep(reminder_at).await, [(t4.id.clone(), SlaAlertKind::Reminder)]);
    assert!(sweep(reminder_at).await.is_empty(), "the reminder is sent once");
    let overdue = t4.sla_due_at + Duration::seconds(1);
    assert_eq!(sweep(overdue).await, [(t4.id.clone(), SlaAlertKind::Breach)]);
    assert!(sweep(overdue + Duration::days(30)).await.is_empty(), "the breach is sent once");
    let t4 = store.ticket(&t4.id).await.expect("ticket").expect("exists");
    assert!(t4.sla_reminded_at.is_some() && t4.sla_breached_at.is_some());
    assert_eq!(t4.updated_at, t4.created_at, "SLA events are not customer-visible changes");
    let kinds: Vec<_> = t4.history.iter().map(|e| (e.kind, e.actor.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (TicketEventKind::Created, "agent:after_sales"),
            (TicketEventKind::SlaReminder, SLA_ACTOR),
            (TicketEventKind::SlaBreach, SLA_ACTOR)
        ]
    );
    let t2 = store.ticket(&t2.id).await.expect("ticket").expect("exists");
    assert!(
        t2.sla_breached_at.is_some() && t2.sla_reminded_at.is_some(),
        "breach implies reminded"
    );
    assert!(
        store.claim_ticket_notifications(much_later, lease, 50).await.expect("c").is_empty(),
        "SLA events do not notify the customer"
    );
}

fn ids_of(ns: &[TicketNotification]) -> Vec<i64> {
    ns.iter().map(|n| n.id).collect()
}

/// Checks a [`PreferenceStore`]: defaults before any choice, opt-in and opt-out round-trip per
/// customer, unknown and hostile customer ids are `NotFound`. The store must hold
/// [`fixture_shop`] (import it first).
pub async fn assert_preference_store_conformance<S: PreferenceStore>(store: &S) {
    assert_eq!(store.preferences("alice").await.expect("read"), Preferences::default());
    assert!(!Preferences::default().newsletter_subscribed(), "no opt-in, no newsletter");
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).single().expect("valid time");
    let p = store.set_newsletter("alice", true, at).await.expect("opt in");
    assert_eq!(p, Preferences { newsletter: Some(true), updated_at: Some(at) });
    assert_eq!(store.preferences("alice").await.expect("read"), p, "round trip");
    assert_eq!(
        store.preferences("bob").await.expect("read"),
        Preferences::default(),
        "one customer's choice does not touch another's"
    );
    let later = at + Duration::seconds(90);
    let p = store.set_newsletter("alice", false, later).await.expect("opt out");
    assert_eq!(p.newsletter, Some(false));
    assert_eq!(store.preferences("alice").await.expect("read").updated_at, Some(later));
    for id in hostile_ids().iter().map(String::as_str).chain(["nobody"]) {
        assert!(
            matches!(store.preferences(id).await, Err(StoreError::NotFound { .. })),
            "unknown customer read"
        );
        assert!(
            matches!(store.set_newsletter(id, true, at).await, Err(StoreError::NotFound { .. })),
            "unknown customer write"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_conforms() {
        assert_order_store_conformance(&MemoryShopStore::new()).await;
        assert_cancel_is_atomic(&MemoryShopStore::new()).await;
        assert_ticket_store_conformance(&MemoryShopStore::new()).await;
        assert_ticket_routing_conformance(&MemoryShopStore::new()).await;
    }
}
