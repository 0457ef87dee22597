//! PostgreSQL at `FENLIU_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! each test in a schema of its own.

use fenliu_store_sql::{SqlBackend, SqlStore};
use fenliu_tools_commerce::test_utils::{
    assert_cancel_is_atomic, assert_order_store_conformance, assert_ticket_routing_conformance,
    assert_ticket_store_conformance,
};

use crate::scenarios;
use crate::support::{migration_files, with_postgres};

#[tokio::test]
async fn postgres_order_store_conforms() {
    with_postgres("postgres_order_store_conforms", |store, _| async move {
        assert_order_store_conformance(&store).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_cancel_is_atomic() {
    with_postgres("postgres_cancel_is_atomic", |store, _| async move {
        assert_cancel_is_atomic(&store).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_ticket_store_conforms() {
    with_postgres("postgres_ticket_store_conforms", |store, _| async move {
        assert_ticket_store_conformance(&store).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_url_store_conforms_and_migrations_rerun() {
    with_postgres("postgres_url_store_conforms_and_migrations_rerun", |_, schema| async move {
        // The schema already holds the migrated tables: connecting again migrates nothing.
        let store = SqlStore::connect(&schema.url()).await.unwrap();
        assert_eq!(store.backend(), SqlBackend::Postgres);
        let again = schema.store().await;
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(again.pool())
            .await
            .unwrap();
        assert_eq!(applied, migration_files("postgres"), "each migration recorded once");
        assert_order_store_conformance(&store).await;
        assert_ticket_store_conformance(&store).await;
        store.close().await;
        again.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_eight_way_cancel_race() {
    with_postgres("postgres_eight_way_cancel_race", |store, schema| async move {
        // A second pool on the same schema, as a second server process would have.
        let other = schema.store().await;
        scenarios::cancel_race(&[store, other.clone()]).await;
        other.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_eight_way_ticket_race() {
    with_postgres("postgres_eight_way_ticket_race", |store, schema| async move {
        let other = schema.store().await;
        scenarios::ticket_race(&[store, other.clone()]).await;
        other.close().await;
    })
    .await;
}

#[tokio::test]
async fn postgres_tickets_round_trip_exactly() {
    with_postgres("postgres_tickets_round_trip_exactly", |store, _| async move {
        scenarios::tickets_round_trip_exactly(&store).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_hostile_order_input() {
    with_postgres("postgres_hostile_order_input", |store, _| async move {
        scenarios::hostile_order_input(&store).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_demo_shop_round_trips() {
    with_postgres("postgres_demo_shop_round_trips", |store, _| async move {
        scenarios::demo_shop_round_trips(&store, "PostgreSQL").await;
    })
    .await;
}

#[tokio::test]
async fn postgres_conversation_store_conforms() {
    with_postgres("postgres_conversation_store_conforms", |store, _| async move {
        fenliu_agent::test_utils::assert_conversation_store_conformance(&store).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_preference_store_conforms() {
    with_postgres("postgres_preference_store_conforms", |store, _| async move {
        use fenliu_tools_commerce::OrderStore;
        store.import(&fenliu_tools_commerce::test_utils::fixture_shop()).await.unwrap();
        fenliu_tools_commerce::test_utils::assert_preference_store_conformance(&store).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_ticket_routing_conforms() {
    with_postgres("postgres_ticket_routing_conforms", |store, _| async move {
        assert_ticket_routing_conformance(&store).await;
        let r =
            sqlx::query("UPDATE ticket_events SET note = 'rewritten'").execute(store.pool()).await;
        assert!(r.is_err(), "history rows can be rewritten");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sla_sweep_and_outbox_race() {
    with_postgres("postgres_sla_sweep_and_outbox_race", |store, schema| async move {
        let other = schema.store().await;
        scenarios::sla_sweep_and_outbox_race(&[store, other.clone()]).await;
        other.close().await;
    })
    .await;
}
