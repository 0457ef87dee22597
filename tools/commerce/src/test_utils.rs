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
            history: vec![TicketEvent {
                at: now,
                actor: t.actor.clone(),
                from: None,
                to: TicketStatus::Open,
                note: "created".into(),
            }],
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
        let what = || format!("ticket {id}");
        let n = parse_ticket_id(id).ok_or_else(|| StoreError::NotFound { what: what() })?;
        let mut inner = self.lock();
        let ticket =
            inner.tickets.get_mut(&n).ok_or_else(|| StoreError::NotFound { what: what() })?;
        check_ticket_transition(ticket, to)?;
        ticket.history.push(TicketEvent {
            at,
            actor: actor.to_owned(),
            from: Some(ticket.status),
            to,
            note: note.to_owned(),
        });
        ticket.status = to;
        ticket.updated_at = at;
        Ok(ticket.clone())
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
    }
}
