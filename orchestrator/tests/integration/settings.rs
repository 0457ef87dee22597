//! Operators' per-agent settings in the turn loop: a new [`SettingsSet`] swapped into the live
//! cell applies from the next turn — template overrides, a narrowed allow-list, thresholds and the
//! model-driven step limit.

use std::path::Path;
use std::sync::Arc;

use fenliu_agent::policy::ModelDrivenPolicy;
use fenliu_agent::settings::{AgentSettings, LiveSettings, SettingsSet};
use fenliu_agent::test_utils::ScriptedChatModel;
use fenliu_agent::{
    Agent, AgentContext, AgentDescriptor, AgentError, AgentReply, EscalationReason, Route,
    TemplateSpec,
};
use fenliu_knowledge::test_utils::HashingEmbedder;
use fenliu_orchestrator::{
    AgentRegistry, MemoryConversationStore, Orchestrator, ReplyKind, RouterConfig, Supervisor,
    TurnLimits,
};
use fenliu_tool::{ToolError, ToolOutcome};
use fenliu_tools_commerce::OrderStore;
use fenliu_tools_commerce::test_utils::{MemoryShopStore, fixture_shop, shop_tools};
use serde_json::json;

use crate::request;

/// Looks up the order in the message with `get_order` and answers from a replaceable template.
struct Orders;

impl Agent for Orders {
    type Slots = ();
    fn descriptor(&self) -> AgentDescriptor {
        AgentDescriptor::new(
            "order",
            vec![Route::ORDER],
            "Answers questions about the customer's existing orders.",
            &["where is my order", "track my parcel", "订单到哪了"],
            &["get_order", "list_orders", "cancel_order"],
        )
        .with_templates(vec![TemplateSpec::new(
            "status",
            &["order_id", "status"],
            "the status of an order",
        )])
    }
    async fn handle(&self, ctx: &AgentContext<'_>, _: &mut ()) -> Result<AgentReply, AgentError> {
        let order = ctx.call_tool("get_order", json!({"order_id": "W1000003"})).await;
        let text = match order.outcome {
            ToolOutcome::Ok { output } => {
                let status = output["status"].as_str().unwrap_or_default().to_owned();
                ctx.template("status", &[("order_id", &"#W1000003"), ("status", &status)])
                    .unwrap_or_else(|| format!("built-in: {status}"))
            }
            ToolOutcome::Err { error } => format!("tool error: {error}"),
        };
        Ok(AgentReply::Answer { text })
    }
}

async fn setup(
    router: RouterConfig,
) -> (Orchestrator<MemoryConversationStore>, Arc<LiveSettings>, Arc<ScriptedChatModel>) {
    let store = Arc::new(MemoryShopStore::new());
    OrderStore::import(store.as_ref(), &fixture_shop()).await.unwrap();
    let mut registry = AgentRegistry::new();
    registry.register(Arc::new(Orders)).unwrap();
    let supervisor = Supervisor::train(
        Arc::new(HashingEmbedder::new(256)),
        &registry.training_phrases(),
        router,
    )
    .await
    .unwrap();
    let live = Arc::new(LiveSettings::default());
    let model = Arc::new(ScriptedChatModel::default());
    let o = Orchestrator::new(
        "t",
        registry,
        supervisor,
        shop_tools(&store, chrono::Utc::now()),
        MemoryConversationStore::new(),
        TurnLimits::default(),
    )
    .unwrap()
    .with_settings(live.clone());
    (o, live, model)
}

fn settings(toml: &str) -> SettingsSet {
    let parsed =
        AgentSettings::parse(Path::new("order.toml"), toml, &Agent::descriptor(&Orders)).unwrap();
    SettingsSet::from_agents([("order".to_owned(), parsed)])
}

const ASK: &str = "where is my order W1000003";

#[tokio::test]
async fn a_swapped_template_applies_to_the_next_turn() {
    let (o, live, _) = setup(RouterConfig::default()).await;
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert!(out.reply.starts_with("built-in: "), "{}", out.reply);

    live.replace(settings("[templates.en]\nstatus = \"Parcel {order_id} is {status}!\""));
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert!(out.reply.starts_with("Parcel #W1000003 is "), "{}", out.reply);
    assert!(out.reply.ends_with('!'), "{}", out.reply);
    // A Chinese turn has no Chinese override: the built-in text.
    let out = o.handle_turn(request(None, "alice", "订单到哪了")).await.unwrap();
    assert!(out.reply.starts_with("built-in: "), "{}", out.reply);

    live.replace(SettingsSet::empty());
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert!(out.reply.starts_with("built-in: "), "{}", out.reply);
}

#[tokio::test]
async fn a_narrowed_allow_list_refuses_the_removed_tool() {
    let (o, live, _) = setup(RouterConfig::default()).await;
    live.replace(settings("tools = [\"list_orders\"]"));
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert!(out.reply.starts_with("tool error"), "{}", out.reply);
    assert!(
        matches!(
            &out.tool_calls[0].outcome,
            ToolOutcome::Err { error: ToolError::NotAllowed { .. } }
        ),
        "{:?}",
        out.tool_calls
    );
}

#[tokio::test]
async fn thresholds_decide_clarification_and_escalation() {
    let (o, live, _) = setup(RouterConfig::default()).await;
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert_eq!(out.kind, ReplyKind::Answer);
    assert!(out.decision.confidence < 1.0, "{:?}", out.decision);

    // Stricter than any k-NN vote can be: the supervisor asks once, then hands over.
    live.replace(settings("[thresholds]\nmin_confidence = 1.0"));
    let first = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert_eq!(first.kind, ReplyKind::Clarify);
    let second = o.handle_turn(request(Some(&first.conversation_id), "alice", ASK)).await.unwrap();
    assert_eq!(second.kind, ReplyKind::Escalated);

    // No clarifying question at all.
    live.replace(settings("[thresholds]\nmin_confidence = 1.0\nmax_clarifications = 0"));
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert_eq!(out.kind, ReplyKind::Escalated);
    assert_eq!(out.escalation.unwrap().reason, EscalationReason::LowConfidence);
}

#[tokio::test]
async fn a_looser_agent_threshold_overrides_a_strict_router() {
    let strict = RouterConfig { min_confidence: 1.0, ..RouterConfig::default() };
    let (o, live, _) = setup(strict).await;
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert_eq!(out.kind, ReplyKind::Clarify, "{:?}", out.decision);
    live.replace(settings("[thresholds]\nmin_confidence = 0.1"));
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert_eq!(out.kind, ReplyKind::Answer, "{:?}", out.decision);
}

#[tokio::test]
async fn max_steps_bounds_the_model_driven_policy() {
    let (o, live, model) = setup(RouterConfig::default()).await;
    let o = o
        .with_agent_model("order", model.clone())
        .with_agent_policy("order", ModelDrivenPolicy::default());
    live.replace(settings("[thresholds]\nmax_steps = 1"));
    // The model keeps calling tools; after one step the agent gives up and escalates.
    for _ in 0..3 {
        model.push(ScriptedChatModel::tool_call("get_order", json!({"order_id": "W1000003"})));
    }
    let out = o.handle_turn(request(None, "alice", ASK)).await.unwrap();
    assert_eq!(out.kind, ReplyKind::Escalated, "{}", out.reply);
    assert_eq!(model.requests().len(), 1);
}
