//! Scenarios beyond the commerce conformance suites, run on every backend.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use fenliu_tools_commerce::test_utils::{MemoryShopStore, fixture_shop, hostile_ids};
use fenliu_tools_commerce::{
    CancelReason, Department, ImportStats, NewTicket, OrderStatus, OrderStore, PaymentEventKind,
    ShopData, StoreError, TicketKind, TicketPriority, TicketStatus, TicketStore,
};
use tokio::sync::Barrier;

const RACERS: usize = 8;

/// `RACERS` tasks, spread over `stores` (separate pools, like separate server processes), race to
/// cancel the same order: exactly one wins, the others see the order cancelled, refund once.
pub(crate) async fn cancel_race<S: OrderStore + Clone + 'static>(stores: &[S]) {
    stores[0].import(&fixture_shop()).await.unwrap();
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let store = stores[i % stores.len()].clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            store.cancel_order("alice", "#W1000001", CancelReason::NoLongerNeeded).await
        });
    }
    let results = tasks.join_all().await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one of {RACERS} cancels must win: {results:?}");
    for r in &results {
        assert!(
            matches!(r, Ok(_) | Err(StoreError::InvalidState { .. })),
            "losers see the cancelled order, not a backend failure: {r:?}"
        );
    }
    let order = stores[0].order("#W1000001").await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.refunded(), 20.5, "refunded once");
    assert_eq!(order.payments.iter().filter(|p| p.kind == PaymentEventKind::Refund).count(), 1);
}

/// `RACERS` tasks race to assign the same open ticket: exactly one wins, history grows by one.
pub(crate) async fn ticket_race<S: TicketStore + Clone + 'static>(stores: &[S]) {
    let ticket = stores[0].create_ticket(&new_ticket("carol")).await.unwrap();
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let (store, id, barrier) =
            (stores[i % stores.len()].clone(), ticket.id.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let at = Utc::now();
            store
                .update_ticket_status(&id, TicketStatus::Assigned, &format!("human:{i}"), "", at)
                .await
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(_) | Err(StoreError::InvalidState { .. }))));
    let stored = stores[0].ticket(&ticket.id).await.unwrap().unwrap();
    assert_eq!(stored.history.len(), 2, "one transition recorded");
    assert_eq!(
        Some(&stored),
        results.iter().find_map(|r| r.as_ref().ok()),
        "winner's view is stored"
    );
}

fn new_ticket(customer: &str) -> NewTicket {
    NewTicket {
        customer_id: customer.into(),
        order_id: None,
        kind: TicketKind::Complaint,
        department: Department::Quality,
        priority: TicketPriority::Urgent,
        subject: "Bottle leaks".into(),
        description: "It leaks — 漏水.".into(),
        // Sub-second precision beyond microseconds, which the store truncates.
        sla_due_at: Utc.timestamp_opt(1_800_000_000, 987_654_321).unwrap(),
        actor: "customer".into(),
        conversation_id: Some("conv-dave".into()),
    }
}

/// `RACERS` sweeps, spread over `stores`, run at once over 20 past-due tickets: every breach is
/// emitted exactly once in total, and a later sweep emits nothing. Then `RACERS` deliverers claim
/// the notifications of 20 status changes at once: each is handed to exactly one of them.
pub(crate) async fn sla_sweep_and_outbox_race<S: TicketStore + Clone + 'static>(stores: &[S]) {
    let mut ids = Vec::new();
    for _ in 0..20 {
        let mut t = new_ticket("frank");
        t.sla_due_at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        ids.push(stores[0].create_ticket(&t).await.unwrap().id);
    }
    let now = Utc::now();
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let (store, barrier) = (stores[i % stores.len()].clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            store.sweep_ticket_sla(now, 0.8).await
        });
    }
    let mut alerts: Vec<String> = Vec::new();
    for r in tasks.join_all().await {
        alerts.extend(r.unwrap().into_iter().map(|a| a.ticket_id));
    }
    alerts.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(alerts, expected, "each breach exactly once across concurrent sweeps");
    assert!(stores[0].sweep_ticket_sla(now, 0.8).await.unwrap().is_empty());
    for id in &ids {
        let t = stores[0].ticket(id).await.unwrap().unwrap();
        assert_eq!(t.history.len(), 2, "one breach entry: {:?}", t.history);
    }

    for id in &ids {
        stores[0]
            .update_ticket_status(id, TicketStatus::InProgress, "human:gil", "", now)
            .await
            .unwrap();
    }
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let (store, barrier) = (stores[i % stores.len()].clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let batch =
                    store.claim_ticket_notifications(now, chrono::Duration::minutes(5), 3).await?;
                if batch.is_empty() {
                    return Ok::<_, StoreError>(mine);
                }
                mine.extend(batch.into_iter().map(|n| n.id));
            }
        });
    }
    let mut claimed: Vec<i64> = Vec::new();
    for r in tasks.join_all().await {
        claimed.extend(r.unwrap());
    }
    let total = claimed.len();
    claimed.sort_unstable();
    claimed.dedup();
    assert_eq!((total, claimed.len()), (20, 20), "every notification claimed by exactly one");
}

/// What a write returns is exactly what a later read returns (timestamps to the microsecond).
pub(crate) async fn tickets_round_trip_exactly<S: TicketStore>(store: &S) {
    let created = store.create_ticket(&new_ticket("dave")).await.unwrap();
    assert_eq!(created.sla_due_at.timestamp_subsec_nanos(), 987_654_000, "truncated to µs");
    assert_eq!(store.ticket(&created.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(created.department, Department::Quality);
    assert_eq!(created.description, "It leaks — 漏水.");

    let at = Utc::now();
    let updated = store
        .update_ticket_status(&created.id, TicketStatus::InProgress, "human:erin", "looking", at)
        .await
        .unwrap();
    assert!(
        updated.updated_at <= at && at - updated.updated_at < chrono::Duration::microseconds(1)
    );
    assert_eq!(store.ticket(&created.id).await.unwrap().as_ref(), Some(&updated));
    assert_eq!(store.tickets_of("dave").await.unwrap(), vec![updated.clone()]);

    // Forms of the id customers type resolve like in the reference store.
    let lower = created.id.to_lowercase();
    assert_eq!(store.ticket(&format!("#{lower}")).await.unwrap().as_ref(), Some(&updated));

    // Values the databases cannot hold are refused as input, not backend failures.
    let mut bad = new_ticket("dave");
    bad.subject = "a\0b".into();
    assert!(matches!(store.create_ticket(&bad).await, Err(StoreError::InvalidInput(_))));
    let mut bad = new_ticket("dave");
    bad.sla_due_at = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    assert!(matches!(store.create_ticket(&bad).await, Err(StoreError::InvalidInput(_))));
    let r = store.update_ticket_status(&created.id, TicketStatus::Resolved, "x\0", "", at).await;
    assert!(matches!(r, Err(StoreError::InvalidInput(_))), "{r:?}");
    let r = store
        .update_ticket_status(
            &created.id,
            TicketStatus::Resolved,
            "x",
            "",
            chrono::DateTime::<Utc>::MAX_UTC,
        )
        .await;
    assert!(matches!(r, Err(StoreError::InvalidInput(_))), "{r:?}");
    assert_eq!(
        store.ticket(&created.id).await.unwrap().as_ref(),
        Some(&updated),
        "nothing written"
    );
    for id in hostile_ids() {
        assert!(store.tickets_of(&id).await.unwrap().is_empty());
    }
}

/// Hostile input at the order entry points: ids, and imports holding what a database cannot.
pub(crate) async fn hostile_order_input<S: OrderStore>(store: &S) {
    let mut bad = fixture_shop();
    bad.orders[0].items[0].name = "nul\0byte".into();
    assert!(matches!(store.import(&bad).await, Err(StoreError::InvalidInput(_))));
    let mut bad = fixture_shop();
    bad.orders[0].payments[0].amount = f64::INFINITY;
    assert!(matches!(store.import(&bad).await, Err(StoreError::InvalidInput(_))));
    assert!(store.products().await.unwrap().is_empty(), "a refused import writes nothing");

    // SQL metacharacters are data, stored and matched literally.
    let mut shop = fixture_shop();
    shop.customers[1].id = "o'brien\"; DROP TABLE orders; --".into();
    shop.orders[4].customer_id = shop.customers[1].id.clone();
    shop.products[0].id = "100%_off".into();
    store.import(&shop).await.unwrap();
    assert_eq!(
        store.customer(&shop.customers[1].id).await.unwrap().as_ref(),
        Some(&shop.customers[1])
    );
    assert_eq!(store.orders_of(&shop.customers[1].id).await.unwrap(), vec![shop.orders[4].clone()]);
    assert_eq!(store.product("100%_off").await.unwrap().as_ref(), Some(&shop.products[0]));
    assert_eq!(store.product("100%").await.unwrap(), None, "no LIKE matching");

    for id in hostile_ids() {
        assert_eq!(store.product(&id).await.unwrap(), None);
        let r = store.cancel_order("alice", &id, CancelReason::NoLongerNeeded).await;
        match r {
            Err(StoreError::NotFound { what }) => {
                assert!(what.len() < 100, "short message: {what}")
            }
            other => panic!("hostile cancel of {:?}: {other:?}", id.get(..20)),
        }
        let address = shop.customers[0].address.clone();
        let r = store.update_order_address(&id, "#W1000001", &address).await;
        assert!(matches!(r, Err(StoreError::NotOwner { .. })), "{r:?}");
    }
    assert_eq!(
        store.order("#W1000001").await.unwrap().as_ref(),
        Some(&shop.orders[0]),
        "untouched"
    );
}

/// The real demo shop (120 customers, ~300 orders) imports quickly, twice, and reads back exactly
/// as the in-memory reference store holds it.
pub(crate) async fn demo_shop_round_trips<S: OrderStore>(store: &S, backend: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo");
    let shop = ShopData::load_dir(&dir).unwrap();
    let reference = MemoryShopStore::new();
    reference.import(&shop).await.unwrap();

    let started = Instant::now();
    let stats = store.import(&shop).await.unwrap();
    let first = started.elapsed();
    let started = Instant::now();
    assert_eq!(
        store.import(&shop).await.unwrap(),
        ImportStats::default(),
        "re-import inserts nothing"
    );
    let second = started.elapsed();
    eprintln!(
        "{backend}: imported {} customers, {} products, {} orders in {first:?} (again in {second:?})",
        stats.customers, stats.products, stats.orders
    );
    assert!(first < Duration::from_secs(20), "import took {first:?}");
    assert_eq!((stats.customers, stats.products), (shop.customers.len(), shop.products.len()));

    assert_eq!(store.products().await.unwrap(), reference.products().await.unwrap());
    let mut by_customer: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &shop.customers {
        assert_eq!(store.customer(&c.id).await.unwrap().as_ref(), Some(c));
        let orders = store.orders_of(&c.id).await.unwrap();
        assert_eq!(orders, reference.orders_of(&c.id).await.unwrap(), "orders of {}", c.id);
        by_customer.insert(&c.id, orders.len());
    }
    assert_eq!(by_customer.values().sum::<usize>(), shop.orders.len());
    for o in &shop.orders {
        assert_eq!(store.order(&o.id).await.unwrap().as_ref(), Some(o));
    }
}
