//! The order agent against the in-memory shop store: the contract suite and the policy flows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use fenliu_agent::test_utils::{AgentHarness, TurnResult, assert_agent_conformance, run_turn};
use fenliu_agent::{AgentReply, CustomerRef, CustomerTier, Language};
use fenliu_agent_order::{OrderAgent, OrderSlots};
use fenliu_tool::ToolSet;
use fenliu_tools_commerce::test_utils::{MemoryShopStore, fixture_shop};
use fenliu_tools_commerce::tools::order_tools;
use fenliu_tools_commerce::{DynOrderStore, OrderStatus};

async fn setup() -> (Arc<MemoryShopStore>, ToolSet) {
    let store = Arc::new(MemoryShopStore::new());
    store.import(&fixture_shop()).await.unwrap();
    let tools = ToolSet::new(order_tools(store.clone() as Arc<dyn DynOrderStore>)).unwrap();
    (store, tools)
}

fn customer(id: &str) -> CustomerRef {
    CustomerRef {
        id: id.into(),
        name: id.into(),
        tier: CustomerTier::Regular,
        language: Language::En,
    }
}

/// Runs one turn; returns the reply, the new slots and the names of the tools called.
async fn turn(tools: &ToolSet, who: &str, message: &str, slots: serde_json::Value) -> TurnResult {
    run_turn(&OrderAgent::new(), tools, &customer(who), message, &[], slots).await.unwrap()
}

#[tokio::test]
async fn order_agent_conforms() {
    let (_, tools) = setup().await;
    let harness = AgentHarness {
        tools,
        customer: customer("alice"),
        forbidden_in_replies: vec!["gift_card_bob".into(), "bob@example.com".into(), "Bob".into()],
        foreign_ids: vec!["#W2000001".into()],
    };
    assert_agent_conformance(&OrderAgent::new(), &harness).await;
}

#[tokio::test]
async fn status_with_real_order_data() {
    let (_, tools) = setup().await;
    let (reply, _, calls) =
        turn(&tools, "alice", "Where is my order W1000003?", serde_json::Value::Null).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(
        text.contains("#W1000003") && text.contains("shipped") && text.contains("UPS TRK5"),
        "{text}"
    );
    assert_eq!(calls, ["get_order"]);
}

#[tokio::test]
async fn order_id_in_a_second_turn() {
    let (_, tools) = setup().await;
    let (reply, slots, calls) =
        turn(&tools, "alice", "where is my package?", serde_json::Value::Null).await;
    let AgentReply::AskSlot { slot, text } = reply else { panic!("{reply:?}") };
    assert_eq!(slot, "order_id");
    assert!(text.contains("#W1000004"), "recent orders offered: {text}");
    assert_eq!(calls, ["list_orders"]);
    let (reply, _, _) = turn(&tools, "alice", "it's W1000002", slots).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("delivered"), "{text}");
}

#[tokio::test]
async fn another_customers_order_is_refused_without_data() {
    let (_, tools) = setup().await;
    for message in ["Where is order #W2000001?", "订单W2000001到哪了", "cancel W2000001"] {
        let (reply, _, _) = turn(&tools, "alice", message, serde_json::Value::Null).await;
        let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
        assert!(text.contains("can't find") || text.contains("没有找到"), "{text}");
        assert!(!text.contains("20.50") && !text.contains("Water Bottle"), "leaked data: {text}");
    }
}

#[tokio::test]
async fn cancel_needs_explicit_confirmation() {
    let (store, tools) = setup().await;
    let (reply, slots, _) =
        turn(&tools, "alice", "Please cancel order W1000001", serde_json::Value::Null).await;
    assert!(
        matches!(reply, AgentReply::AskSlot { ref slot, .. } if slot == "confirmation"),
        "{reply:?}"
    );
    assert_eq!(store.order("#W1000001").await.unwrap().unwrap().status, OrderStatus::Pending);

    // An unclear answer asks again and changes nothing.
    let (reply, slots, calls) = turn(&tools, "alice", "hmm what happens then?", slots).await;
    assert!(matches!(reply, AgentReply::AskSlot { .. }), "{reply:?}");
    assert!(calls.is_empty());

    let (reply, slots, calls) = turn(&tools, "alice", "yes", slots).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("cancelled") && text.contains("$20.50"), "{text}");
    assert_eq!(calls, ["cancel_order"]);
    assert_eq!(serde_json::from_value::<OrderSlots>(slots).unwrap(), OrderSlots::default());
    assert_eq!(store.order("#W1000001").await.unwrap().unwrap().status, OrderStatus::Cancelled);
}

#[tokio::test]
async fn declining_keeps_the_order_in_chinese() {
    let (store, tools) = setup().await;
    let (_, slots, _) =
        turn(&tools, "alice", "帮我取消订单W1000004", serde_json::Value::Null).await;
    let (reply, _, calls) = turn(&tools, "alice", "不要", slots).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("保持不变"), "{text}");
    assert!(calls.is_empty());
    assert_eq!(store.order("#W1000004").await.unwrap().unwrap().status, OrderStatus::Pending);
}

#[tokio::test]
async fn delivered_orders_cannot_be_cancelled() {
    let (_, tools) = setup().await;
    let (reply, _, _) = turn(&tools, "alice", "cancel W1000002", serde_json::Value::Null).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("can no longer be cancelled") && text.contains("30 days"), "{text}");
}

#[tokio::test]
async fn repeated_failure_escalates() {
    let (_, tools) = setup().await;
    let mut slots = serde_json::Value::Null;
    let mut last = None;
    for _ in 0..3 {
        let (reply, s, _) = turn(&tools, "alice", "where is it", slots).await;
        slots = s;
        last = Some(reply);
    }
    assert!(matches!(last, Some(AgentReply::Escalate(_))), "{last:?}");
}

#[tokio::test]
async fn address_change_asks_reads_confirms_and_writes() {
    let (store, tools) = setup().await;
    let (reply, slots, calls) = turn(
        &tools,
        "alice",
        "I need to change the shipping address of W1000001",
        serde_json::Value::Null,
    )
    .await;
    let AgentReply::AskSlot { slot, .. } = reply else { panic!("{reply:?}") };
    assert_eq!(slot, "address");
    assert_eq!(calls, ["get_order"]);

    let (reply, slots, calls) =
        turn(&tools, "alice", "12 Elm Street, Apt 3, Boston, MA 02110, USA", slots).await;
    let AgentReply::AskSlot { slot, text } = reply else { panic!("{reply:?}") };
    assert_eq!(slot, "confirmation");
    assert!(text.contains("12 Elm Street, Apt 3, Boston, MA, 02110, USA"), "{text}");
    assert_eq!(calls, ["get_order"], "nothing written before the customer confirms");
    let before = store.order("#W1000001").await.unwrap().unwrap().address;
    assert_ne!(before.city, "Boston");

    let (reply, slots, calls) = turn(&tools, "alice", "yes", slots).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("will ship to 12 Elm Street"), "{text}");
    assert_eq!(calls, ["change_order_address"]);
    assert_eq!(serde_json::from_value::<OrderSlots>(slots).unwrap(), OrderSlots::default());
    let after = store.order("#W1000001").await.unwrap().unwrap().address;
    assert_eq!((after.city.as_str(), after.zip.as_str()), ("Boston", "02110"));
}

#[tokio::test]
async fn address_change_in_one_chinese_message_and_declined() {
    let (store, tools) = setup().await;
    let before = store.order("#W1000004").await.unwrap().unwrap().address;
    let (reply, slots, _) = turn(
        &tools,
        "alice",
        "订单W1000004的地址改成浙江省杭州市西湖区文三路90号，邮编310012",
        serde_json::Value::Null,
    )
    .await;
    let AgentReply::AskSlot { slot, text } = reply else { panic!("{reply:?}") };
    assert_eq!(slot, "confirmation");
    assert!(text.contains("杭州市") && text.contains("310012"), "{text}");
    let (reply, _, calls) = turn(&tools, "alice", "不要", slots).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("保持不变"), "{text}");
    assert!(calls.is_empty());
    assert_eq!(store.order("#W1000004").await.unwrap().unwrap().address, before);
}

#[tokio::test]
async fn address_of_a_shipped_order_cannot_change() {
    let (_, tools) = setup().await;
    let (reply, _, calls) = turn(
        &tools,
        "alice",
        "change the address of W1000003 to 12 Elm Street, Boston, MA 02110",
        serde_json::Value::Null,
    )
    .await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("can no longer be changed"), "{text}");
    assert_eq!(calls, ["get_order"]);
}

#[tokio::test]
async fn an_unreadable_address_is_asked_again_then_escalated() {
    let (store, tools) = setup().await;
    let before = store.order("#W1000001").await.unwrap().unwrap().address;
    let (_, mut slots, _) =
        turn(&tools, "alice", "change address for W1000001", serde_json::Value::Null).await;
    let mut last = None;
    for message in ["somewhere nice", "{\"tool\":\"change_order_address\"}", "near the park"] {
        let (reply, s, calls) = turn(&tools, "alice", message, slots).await;
        assert!(!calls.iter().any(|c| c == "change_order_address"), "{calls:?}");
        slots = s;
        last = Some(reply);
    }
    assert!(matches!(last, Some(AgentReply::Escalate(_))), "{last:?}");
    assert_eq!(store.order("#W1000001").await.unwrap().unwrap().address, before);
}

#[tokio::test]
async fn another_customers_order_address_is_never_changed() {
    let (store, tools) = setup().await;
    let before = store.order("#W2000001").await.unwrap().unwrap().address;
    let (reply, slots, _) = turn(
        &tools,
        "alice",
        "ship W2000001 to 12 Elm Street, Boston, MA 02110 instead",
        serde_json::Value::Null,
    )
    .await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("can't find"), "{text}");
    let (_, _, calls) = turn(&tools, "alice", "yes", slots).await;
    assert!(!calls.iter().any(|c| c == "change_order_address"), "{calls:?}");
    assert_eq!(store.order("#W2000001").await.unwrap().unwrap().address, before);
}

#[tokio::test]
async fn operator_templates_replace_the_status_text() {
    let (_, tools) = setup().await;
    let (reply, _, calls) = fenliu_agent::test_utils::run_turn_with_settings(
        &OrderAgent::new(),
        &tools,
        &customer("alice"),
        "where is my order W1000003",
        &[],
        serde_json::Value::Null,
        "[templates.en]\nstatus = \"Parcel {order_id}: {status}; tracking {tracking}; eta {estimated_delivery}.\"",
    )
    .await
    .unwrap();
    assert_eq!(calls, ["get_order"]);
    let text = reply.customer_text().unwrap();
    assert!(
        text.starts_with("Parcel #W1000003: shipped and on its way; tracking UPS TRK5; eta "),
        "{text}"
    );
    assert!(!text.contains('{'), "{text}");
}
