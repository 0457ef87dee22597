//! The marketing agent on the demo shop's real catalogue (`data/demo/products.json`) searched
//! with the real MiniLM embedder: the contract suite, scripted multi-turn recommendations in
//! English and Chinese, and the newsletter opt-in/out with confirmation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use fenliu_agent::test_utils::{AgentHarness, TurnResult, assert_agent_conformance, run_turn};
use fenliu_agent::{AgentReply, CustomerRef, CustomerTier, Language, Route};
use fenliu_agent_marketing::MarketingAgent;
use fenliu_knowledge::DynEmbedder;
use fenliu_models::{MiniLmEmbedder, MiniLmOptions};
use fenliu_tool::ToolSet;
use fenliu_tools_commerce::marketing::{ProductCatalog, marketing_tools};
use fenliu_tools_commerce::test_utils::MemoryShopStore;
use fenliu_tools_commerce::tools::order_tools;
use fenliu_tools_commerce::{DynOrderStore, OrderStore, PreferenceStore, Product, ShopData};

const ALICE: &str = "aarav_gonzalez_5113";
const ALICE_ZH: &str = "aarav_khan_2797";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models_dir() -> PathBuf {
    std::env::var_os("FENLIU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"))
}

/// MiniLM, loaded once for the whole binary (loading costs a second).
fn embedder() -> Arc<dyn DynEmbedder> {
    static E: OnceLock<Arc<dyn DynEmbedder>> = OnceLock::new();
    E.get_or_init(|| {
        let dir = models_dir().join(MiniLmEmbedder::DIR_NAME);
        Arc::new(MiniLmEmbedder::load(&dir, MiniLmOptions::default()).unwrap_or_else(|e| {
            panic!("{e} (the test suite runs scripts/setup.sh first: `make test`)")
        }))
    })
    .clone()
}

fn demo_shop() -> ShopData {
    ShopData::load_dir(&root().join("data/demo")).unwrap()
}

async fn setup() -> (Arc<MemoryShopStore>, ToolSet) {
    let store = Arc::new(MemoryShopStore::new());
    OrderStore::import(store.as_ref(), &demo_shop()).await.unwrap();
    let catalog = ProductCatalog::from_store(store.as_ref(), embedder()).await.unwrap();
    let mut tools = order_tools(store.clone() as Arc<dyn DynOrderStore>);
    tools.extend(marketing_tools(Arc::new(catalog), store.clone()));
    (store, ToolSet::new(tools).unwrap())
}

fn customer(id: &str, language: Language) -> CustomerRef {
    CustomerRef { id: id.into(), name: id.into(), tier: CustomerTier::Regular, language }
}

async fn turn(tools: &ToolSet, who: &str, message: &str, slots: serde_json::Value) -> TurnResult {
    let c = customer(who, Language::detect(message));
    run_turn(&MarketingAgent::new(), tools, &c, message, &[], slots).await.unwrap()
}

/// The cheapest available variant price of a product, formatted as the agent shows it.
fn cheapest(name: &str, max: f64) -> String {
    let shop = demo_shop();
    let p: &Product = shop.products.iter().find(|p| p.name == name).unwrap();
    let price = p
        .variants
        .iter()
        .filter(|v| v.available && v.price <= max)
        .map(|v| v.price)
        .fold(f64::INFINITY, f64::min);
    format!("${price:.2}")
}

#[tokio::test]
async fn marketing_agent_conforms() {
    let (_, tools) = setup().await;
    let harness = AgentHarness {
        tools,
        customer: customer(ALICE, Language::En),
        forbidden_in_replies: vec!["aarav.khan8893@example.com".into(), ALICE_ZH.into()],
        foreign_ids: vec!["#W7678072".into()],
    };
    assert_agent_conformance(&MarketingAgent::new(), &harness).await;
}

#[tokio::test]
async fn recommendation_with_real_catalogue_items_en() {
    let (_, tools) = setup().await;
    let (reply, slots, calls) = turn(
        &tools,
        ALICE,
        "I'm looking for a gift, can you recommend something?",
        serde_json::Value::Null,
    )
    .await;
    let AgentReply::AskSlot { slot, .. } = reply else { panic!("{reply:?}") };
    assert_eq!(slot, "product_need");
    assert!(calls.is_empty(), "nothing to search for yet: {calls:?}");

    let (reply, _, calls) = turn(&tools, ALICE, "wireless earbuds under $250", slots).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert_eq!(calls, ["search_products"]);
    assert!(text.starts_with("Here is what I'd suggest"), "{text}");
    assert!(text.contains("1. Wireless Earbuds"), "best match first: {text}");
    assert!(text.contains(&cheapest("Wireless Earbuds", 250.0)), "real price: {text}");
}

#[tokio::test]
async fn recommendation_by_use_finds_related_products() {
    let (_, tools) = setup().await;
    let (reply, _, _) = turn(
        &tools,
        ALICE,
        "What would you suggest for making coffee at home in the morning?",
        serde_json::Value::Null,
    )
    .await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(
        text.contains("Coffee Maker") || text.contains("Espresso Machine"),
        "semantic match by use: {text}"
    );
}

#[tokio::test]
async fn recommendation_with_real_catalogue_items_zh() {
    let (_, tools) = setup().await;
    let (reply, slots, _) =
        turn(&tools, ALICE_ZH, "有什么推荐的吗？", serde_json::Value::Null).await;
    let AgentReply::AskSlot { text, .. } = reply else { panic!("{reply:?}") };
    assert!(text.contains("预算"), "{text}");
    let (reply, _, calls) = turn(&tools, ALICE_ZH, "400美元以内的智能手表，黑色的", slots).await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert_eq!(calls, ["search_products"]);
    assert!(text.contains("1. 智能手表（Smart Watch）"), "{text}");
    assert!(text.contains("black"), "colour filter applied: {text}");
    assert!(!text.contains("Espresso"), "{text}");
}

#[tokio::test]
async fn unknown_products_get_an_honest_answer() {
    let (_, tools) = setup().await;
    let (reply, _, _) =
        turn(&tools, ALICE, "Do you sell tractor tyres for a John Deere?", serde_json::Value::Null)
            .await;
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(!text.contains("Tractor"), "{text}");
}

#[tokio::test]
async fn newsletter_opt_in_and_out_need_confirmation() {
    let (store, tools) = setup().await;
    for (who, ask, yes) in [
        (ALICE, "Please subscribe me to your newsletter", "yes"),
        (ALICE_ZH, "帮我订阅会员通讯", "确认"),
    ] {
        let (reply, slots, calls) = turn(&tools, who, ask, serde_json::Value::Null).await;
        assert!(matches!(reply, AgentReply::AskSlot { .. }), "{reply:?}");
        assert_eq!(calls, ["get_newsletter_subscription"]);
        assert_eq!(
            PreferenceStore::preferences(store.as_ref(), who).await.unwrap().newsletter,
            None,
            "nothing changes before the customer confirms"
        );
        let (reply, _, calls) = turn(&tools, who, yes, slots).await;
        assert!(matches!(reply, AgentReply::Answer { .. }), "{reply:?}");
        assert_eq!(calls, ["set_newsletter_subscription"]);
        assert!(
            PreferenceStore::preferences(store.as_ref(), who)
                .await
                .unwrap()
                .newsletter_subscribed()
        );
    }
    // Opt-out, declined: the choice stays.
    let (_, slots, _) =
        turn(&tools, ALICE, "Stop sending me promotional emails", serde_json::Value::Null).await;
    let (reply, _, calls) = turn(&tools, ALICE, "no, wait", slots).await;
    assert!(calls.is_empty(), "{calls:?}");
    let AgentReply::Answer { text } = reply else { panic!("{reply:?}") };
    assert!(text.contains("left your newsletter setting"), "{text}");
    assert!(
        PreferenceStore::preferences(store.as_ref(), ALICE).await.unwrap().newsletter_subscribed()
    );
    // Opt-out, confirmed.
    let (_, slots, _) =
        turn(&tools, ALICE, "unsubscribe me from the newsletter", serde_json::Value::Null).await;
    let (_, _, calls) = turn(&tools, ALICE, "yes please", slots).await;
    assert_eq!(calls, ["set_newsletter_subscription"]);
    let prefs = PreferenceStore::preferences(store.as_ref(), ALICE).await.unwrap();
    assert_eq!(prefs.newsletter, Some(false));
    // Asking again when already out: no write, no question.
    let (reply, _, calls) =
        turn(&tools, ALICE, "unsubscribe me from the newsletter", serde_json::Value::Null).await;
    assert!(matches!(reply, AgentReply::Answer { .. }), "{reply:?}");
    assert_eq!(calls, ["get_newsletter_subscription"]);
}

#[tokio::test]
async fn promotions_without_the_knowledge_base_go_to_faq() {
    let (_, tools) = setup().await;
    let (reply, _, calls) =
        turn(&tools, ALICE, "Are there any promotions right now?", serde_json::Value::Null).await;
    assert_eq!(
        reply,
        AgentReply::Handoff {
            route: Route::FAQ,
            reason: "promotions are answered from the knowledge base".into()
        }
    );
    assert!(calls.is_empty());
}

#[tokio::test]
async fn operator_templates_replace_the_newsletter_texts() {
    let (_, tools) = setup().await;
    let settings = "[templates.zh]\nsubscribed = \"订阅成功！\"";
    let run = |message: &'static str, slots: serde_json::Value| {
        let tools = tools.clone();
        async move {
            fenliu_agent::test_utils::run_turn_with_settings(
                &MarketingAgent::new(),
                &tools,
                &customer(ALICE_ZH, Language::Zh),
                message,
                &[],
                slots,
                settings,
            )
            .await
            .unwrap()
        }
    };
    let (reply, slots, _) = run("帮我订阅会员通讯", serde_json::Value::Null).await;
    assert!(matches!(reply, AgentReply::AskSlot { .. }), "{reply:?}");
    let (reply, _, calls) = run("确认", slots).await;
    assert_eq!(calls, ["set_newsletter_subscription"]);
    assert_eq!(reply.customer_text(), Some("订阅成功！"));
}
