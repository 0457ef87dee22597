//! SQLite, on real files (each test its own) and in memory.

use fenliu_store_sql::{SqlBackend, SqlStore, SqliteStore};
use fenliu_tools_commerce::test_utils::{
    assert_cancel_is_atomic, assert_order_store_conformance, assert_ticket_routing_conformance,
    assert_ticket_store_conformance, fixture_shop,
};
use fenliu_tools_commerce::{CancelReason, OrderStatus, OrderStore, TicketStore};

use crate::scenarios;
use crate::support::{migration_files, sqlite_file};

#[tokio::test]
async fn sqlite_file_order_store_conforms() {
    let (store, _dir) = sqlite_file().await;
    assert_order_store_conformance(&store).await;
}

#[tokio::test]
async fn sqlite_file_cancel_is_atomic() {
    let (store, _dir) = sqlite_file().await;
    assert_cancel_is_atomic(&store).await;
}

#[tokio::test]
async fn sqlite_file_ticket_store_conforms() {
    let (store, _dir) = sqlite_file().await;
    assert_ticket_store_conformance(&store).await;
}

#[tokio::test]
async fn sqlite_in_memory_conforms() {
    assert_order_store_conformance(&SqliteStore::in_memory().await.unwrap()).await;
    assert_cancel_is_atomic(&SqliteStore::in_memory().await.unwrap()).await;
    assert_ticket_store_conformance(&SqliteStore::in_memory().await.unwrap()).await;
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), SqlBackend::Sqlite);
    assert_order_store_conformance(&store).await;
    assert_ticket_store_conformance(&store).await;
}

#[tokio::test]
async fn sqlite_url_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("via-url.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    assert_eq!(store.backend(), SqlBackend::Sqlite);
    assert_order_store_conformance(&store).await;
    assert_cancel_is_atomic(&SqlStore::connect(&url.replace("via-url", "other")).await.unwrap())
        .await;
    assert_ticket_store_conformance(&store).await;
    store.close().await;
}

#[tokio::test]
async fn sqlite_data_persists_across_reopen_and_migrations_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/shop.db");
    let first = SqliteStore::open(&path).await.unwrap();
    assert!(path.is_file(), "file and parent directories created");
    first.import(&fixture_shop()).await.unwrap();
    first.cancel_order("alice", "#W1000001", CancelReason::NoLongerNeeded).await.unwrap();
    let ticket = TicketStore::create_ticket(&first, &scenario_ticket()).await.unwrap();
    first.close().await;

    // Reopening runs the migrations again: they are recorded once and the data is intact.
    let second = SqliteStore::open(&path).await.unwrap();
    let third = SqliteStore::open(&path).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(second.pool())
        .await
        .unwrap();
    assert_eq!(applied, migration_files("sqlite"), "each migration recorded once");
    let order = second.order("#W1000001").await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.refunded(), 20.5);
    assert_eq!(third.ticket(&ticket.id).await.unwrap(), Some(ticket.clone()));
    let next = second.create_ticket(&scenario_ticket()).await.unwrap();
    assert_eq!(next.id, "T-000002", "ids continue after reopening");
    second.close().await;
    third.close().await;

    let via_url = SqlStore::connect(&format!("sqlite:{}", path.display())).await.unwrap();
    assert_eq!(via_url.customer("alice").await.unwrap(), Some(fixture_shop().customers[0].clone()));
    assert_eq!(via_url.tickets_of("alice").await.unwrap().len(), 2);
    via_url.close().await;
}

fn scenario_ticket() -> fenliu_tools_commerce::NewTicket {
    use chrono::TimeZone;
    fenliu_tools_commerce::NewTicket {
        customer_id: "alice".into(),
        order_id: Some("#W1000002".into()),
        kind: fenliu_tools_commerce::TicketKind::Repair,
        department: fenliu_tools_commerce::Department::AfterSales,
        priority: fenliu_tools_commerce::TicketPriority::Normal,
        subject: "Watch is dead".into(),
        description: String::new(),
        sla_due_at: chrono::Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).unwrap(),
        actor: "agent:after_sales".into(),
        conversation_id: Some("conv-1".into()),
    }
}

#[tokio::test]
async fn sqlite_file_ticket_routing_conforms() {
    let (store, _dir) = sqlite_file().await;
    assert_ticket_routing_conformance(&store).await;
    assert_ticket_routing_conformance(&SqliteStore::in_memory().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sla_sweep_and_outbox_race() {
    let (store, _dir) = sqlite_file().await;
    scenarios::sla_sweep_and_outbox_race(&[store.clone(), store]).await;
}

/// SLA marks and the outbox are in the file: a restarted server neither repeats a reminder nor
/// loses or re-sends a delivered notification, and an unfinished claim comes back once it lapses.
#[tokio::test]
async fn sqlite_sla_marks_and_outbox_survive_reopening() {
    use fenliu_tools_commerce::{SlaAlertKind, TicketStatus};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let first = SqliteStore::open(&path).await.unwrap();
    let ticket = first.create_ticket(&scenario_ticket()).await.unwrap();
    let now = chrono::Utc::now();
    let alerts = first.sweep_ticket_sla(now, 0.8).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, SlaAlertKind::Breach);
    first
        .update_ticket_status(&ticket.id, TicketStatus::InProgress, "human:ann", "", now)
        .await
        .unwrap();
    first
        .update_ticket_status(&ticket.id, TicketStatus::WaitingForCustomer, "human:ann", "", now)
        .await
        .unwrap();
    let lease = chrono::Duration::seconds(30);
    let claimed = first.claim_ticket_notifications(now, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(first.ack_ticket_notification(claimed[0].id, now).await.unwrap());
    first.close().await;

    let second = SqliteStore::open(&path).await.unwrap();
    assert!(second.sweep_ticket_sla(now, 0.8).await.unwrap().is_empty(), "no repeat after restart");
    assert!(second.claim_ticket_notifications(now, lease, 10).await.unwrap().is_empty(), "leased");
    let later = now + lease;
    let again = second.claim_ticket_notifications(later, lease, 10).await.unwrap();
    assert_eq!(again.iter().map(|n| n.id).collect::<Vec<_>>(), [claimed[1].id]);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].conversation_id, "conv-1");
    assert!(!second.ack_ticket_notification(claimed[0].id, later).await.unwrap(), "acked once");
    // History is append-only in the database itself.
    let r = sqlx::query("UPDATE ticket_events SET note = 'rewritten'").execute(second.pool()).await;
    assert!(r.is_err(), "history rows can be rewritten");
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_eight_way_cancel_race() {
    let (store, dir) = sqlite_file().await;
    // A second pool on the same file, as a second process would have.
    let other = SqliteStore::open(dir.path().join("shop.db")).await.unwrap();
    scenarios::cancel_race(&[store, other]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_eight_way_ticket_race() {
    let (store, dir) = sqlite_file().await;
    let other = SqliteStore::open(dir.path().join("shop.db")).await.unwrap();
    scenarios::ticket_race(&[store, other]).await;
}

#[tokio::test]
async fn sqlite_tickets_round_trip_exactly() {
    let (store, _dir) = sqlite_file().await;
    scenarios::tickets_round_trip_exactly(&store).await;
}

#[tokio::test]
async fn sqlite_hostile_order_input() {
    let (store, _dir) = sqlite_file().await;
    scenarios::hostile_order_input(&store).await;
}

#[tokio::test]
async fn sqlite_demo_shop_round_trips() {
    let (store, _dir) = sqlite_file().await;
    scenarios::demo_shop_round_trips(&store, "SQLite").await;
}

#[tokio::test]
async fn sqlite_conversation_store_conforms_and_survives_reopening() {
    let (store, dir) = sqlite_file().await;
    fenliu_agent::test_utils::assert_conversation_store_conformance(&store).await;
    let path = dir.path().join("shop.db");
    drop(store);
    let reopened = SqliteStore::open(&path).await.unwrap();
    let state = fenliu_agent::ConversationStore::load(&reopened, "conv-1").await.unwrap();
    assert_eq!(state.map(|s| s.turns.len()), Some(2), "conversation state lost on restart");
}

#[tokio::test]
async fn sqlite_preference_store_conforms_and_survives_reopening() {
    use fenliu_tools_commerce::PreferenceStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prefs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.import(&fixture_shop()).await.unwrap();
    fenliu_tools_commerce::test_utils::assert_preference_store_conformance(&store).await;
    store.close().await;
    let store = SqlStore::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let prefs = store.preferences("alice").await.unwrap();
    assert_eq!(prefs.newsletter, Some(false), "the opt-out survives a restart");
}
