//! The new route end to end: registered (alone) in an [`AgentRegistry`] as the server does,
//! routed by the supervisor's k-NN stage over the agents' phrases with the real MiniLM (no trained
//! artefact: the shipped one predates this route), answered by the agent through the turn loop.

use std::path::PathBuf;
use std::sync::Arc;

use fenliu_agent::{Channel, CustomerRef, CustomerTier, Language};
use fenliu_knowledge::DynEmbedder;
use fenliu_models::{MiniLmEmbedder, MiniLmOptions};
use fenliu_orchestrator::{
    AgentRegistry, MemoryConversationStore, Orchestrator, ReplyKind, RouterConfig, Supervisor,
    TurnLimits, TurnRequest,
};

use super::{store, toolset};
use fenliu_example_membership_points::{MembershipPointsAgent, ROUTE};

fn embedder() -> Arc<dyn DynEmbedder> {
    let dir = std::env::var_os("FENLIU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
        .join(MiniLmEmbedder::DIR_NAME);
    Arc::new(MiniLmEmbedder::load(&dir, MiniLmOptions::default()).unwrap_or_else(|e| {
        panic!("{e} (the test suite runs scripts/setup.sh first: `make test`)")
    }))
}

#[tokio::test]
async fn the_new_route_is_reached_through_the_turn_loop() {
    let store = store().await;
    let mut registry = AgentRegistry::new();
    registry.register(Arc::new(MembershipPointsAgent::new())).unwrap();
    let config = RouterConfig { model: None, ..RouterConfig::default() };
    let supervisor = Supervisor::new(
        embedder(),
        &registry.training_phrases(),
        registry.route_descriptions(),
        None,
        config,
    )
    .await
    .unwrap();
    let orchestrator = Orchestrator::new(
        "test",
        registry,
        supervisor,
        toolset(&store),
        MemoryConversationStore::new(),
        TurnLimits::default(),
    )
    .unwrap();
    let alice = CustomerRef {
        id: "alice".into(),
        name: "Alice".into(),
        tier: CustomerTier::Vip,
        language: Language::En,
    };
    for (message, expected) in [
        ("How many points have I earned so far?", "300 membership points"),
        ("我现在有多少会员积分", "300 会员积分"),
    ] {
        let outcome = orchestrator
            .handle_turn(TurnRequest {
                conversation_id: None,
                customer: alice.clone(),
                channel: Channel::Web,
                text: message.into(),
            })
            .await
            .unwrap();
        assert_eq!(outcome.decision.route.as_str(), ROUTE, "{message}: {:?}", outcome.decision);
        assert_eq!(outcome.agent.as_deref(), Some(MembershipPointsAgent::ID));
        assert_eq!(outcome.kind, ReplyKind::Answer);
        assert!(outcome.reply.contains(expected), "{message}: {}", outcome.reply);
        assert!(!outcome.reply.contains("777"), "bob's balance leaked: {}", outcome.reply);
    }
    // A request for a person still goes to a person, not to the new agent.
    let outcome = orchestrator
        .handle_turn(TurnRequest {
            conversation_id: None,
            customer: alice,
            channel: Channel::Web,
            text: "转人工".into(),
        })
        .await
        .unwrap();
    assert_eq!(outcome.kind, ReplyKind::Escalated);
}
