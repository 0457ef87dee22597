//! Assembling a running fenliu from configuration: store, shop data, models, tools, agents,
//! supervisor, orchestrator. `serve` and `chat` share it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use fenliu_agent::policy::ModelDrivenPolicy;
use fenliu_agent::settings::SettingsSet;
use fenliu_agent::{CustomerRef, CustomerTier, DynAgent, DynChatModel, Language};
use fenliu_knowledge::DynEmbedder;
use fenliu_models::{
    GemmaEmbedder, LocalGemma, LocalGemmaOptions, MiniLmEmbedder, MiniLmOptions, ModelRegistry,
};
use fenliu_orchestrator::training::RouterArtifact;
use fenliu_orchestrator::{AgentRegistry, Orchestrator, RouterEmbedder, Supervisor};
use fenliu_store_sql::SqlStore;
use fenliu_tool::{DynTool, ToolSet};
use fenliu_tools_commerce::marketing::{ProductCatalog, marketing_tools};
use fenliu_tools_commerce::{
    Customer, DynOrderStore, DynPreferenceStore, DynTicketStore, ShopData, Tier,
};
use tracing::info;

use crate::config::{AgentPolicy, Config};

/// The specialist agents this build ships. Registering an agent is one line here.
pub fn agents() -> Vec<Arc<dyn DynAgent>> {
    vec![
        Arc::new(fenliu_agent_order::OrderAgent::new()),
        Arc::new(fenliu_agent_after_sales::AfterSalesAgent::new()),
        Arc::new(fenliu_agent_complaint::ComplaintAgent::new()),
        Arc::new(fenliu_agent_faq::FaqAgent::new()),
        Arc::new(fenliu_agent_marketing::MarketingAgent::with_knowledge()),
        Arc::new(fenliu_example_membership_points::MembershipPointsAgent::new()),
    ]
}

/// The tools the agents outside `agents/` bring (the examples), over the shop's orders; the
/// server and `fenliu eval` add them to their tool sets.
pub fn extension_tools(orders: Arc<dyn DynOrderStore>) -> Vec<Arc<dyn DynTool>> {
    fenliu_example_membership_points::tools(orders)
}

/// Tools that only read: everything else an agent may call counts as a write, which the
/// model-driven policy runs only after the customer confirms (an unknown tool is a write).
const READ_ONLY_TOOLS: &[&str] = &[
    "get_order",
    "list_orders",
    "get_ticket",
    "list_tickets",
    "check_warranty",
    "search_products",
    "get_newsletter_subscription",
    "kb_search",
    "get_points_balance",
];

/// The model-driven policies `[agents.<id>] policy = "model_driven"` asks for, by agent id,
/// with every non-read-only tool on the agent's allow-list to be confirmed. `has_model` tells
/// whether an agent has a chat model. An id that names no agent, or a model-driven agent without
/// a model, is a start-up error naming the key.
pub fn agent_policies(
    config: &Config,
    agents: &[Arc<dyn DynAgent>],
    has_model: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<(String, ModelDrivenPolicy)>> {
    let mut policies = Vec::new();
    for (id, agent_config) in &config.agents {
        let Some(agent) = agents.iter().find(|a| a.descriptor().id == *id) else {
            let known: Vec<String> = agents.iter().map(|a| a.descriptor().id).collect();
            anyhow::bail!(
                "agents.{id}: no agent `{id}` is registered (agents: {})",
                known.join(", ")
            );
        };
        if agent_config.policy != AgentPolicy::ModelDriven {
            continue;
        }
        if !has_model(id) {
            anyhow::bail!(
                "agents.{id}.policy = \"model_driven\" needs a chat model for `{id}`: set \
                 models.default or models.roles.{id}"
            );
        }
        let confirm_tools = agent
            .descriptor()
            .tools
            .into_iter()
            .filter(|t| !READ_ONLY_TOOLS.contains(&t.as_str()))
            .collect();
        policies.push((
            id.clone(),
            ModelDrivenPolicy { confirm_tools, ..ModelDrivenPolicy::default() },
        ));
    }
    Ok(policies)
}

/// The registry of [`agents`].
pub fn registry() -> anyhow::Result<AgentRegistry> {
    let mut registry = AgentRegistry::new();
    for agent in agents() {
        registry.register(agent)?;
    }
    Ok(registry)
}

/// The MiniLM embedder from the configured models directory.
pub fn load_embedder(config: &Config) -> anyhow::Result<Arc<dyn DynEmbedder>> {
    let model_dir = config.models.dir.join(MiniLmEmbedder::DIR_NAME);
    Ok(Arc::new(MiniLmEmbedder::load(&model_dir, MiniLmOptions::default())?))
}

/// The embedding `fenliu train` fits the semantic head on (`router.embedder`), with `threads`
/// compute threads for the local Gemma.
pub fn load_training_embedder(
    config: &Config,
    threads: usize,
) -> anyhow::Result<Arc<dyn DynEmbedder>> {
    match config.router.embedder {
        RouterEmbedder::Minilm => load_embedder(config),
        RouterEmbedder::Gemma => load_gemma_embedder(config, GemmaEmbedder::DEFAULT_LAYER, threads),
    }
}

/// The supervisor's embedding at run time: the one the semantic head of `router.model` was
/// trained on, so an artefact always meets its own embedder whatever `router.embedder` says
/// now. Without a trained head, MiniLM: the k-NN fallback compares raw vectors, and nearest
/// neighbours among the agents' phrases route 49% of the training messages right with MiniLM,
/// 28% with raw Gemma states.
///
/// `threads` is the Gemma pool's size (1 when serving, so concurrent turns each keep a core).
/// The Gemma embedder loads its own copy of the model (~0.3 GB, ~1 s) even when the local chat
/// model is configured too: routing never waits behind a generation.
pub fn load_router_embedder(
    config: &Config,
    threads: usize,
) -> anyhow::Result<Arc<dyn DynEmbedder>> {
    let trained_on = match &config.router.model {
        Some(path) if !path.as_os_str().is_empty() => {
            // An unreadable artefact is reported by `build_supervisor`, with its context.
            RouterArtifact::load(path).ok().and_then(|a| a.semantic).map(|h| h.embedder)
        }
        _ => None,
    };
    match trained_on.as_deref().and_then(GemmaEmbedder::layer_of) {
        Some(layer) => load_gemma_embedder(config, layer, threads),
        None => load_embedder(config),
    }
}

fn load_gemma_embedder(
    config: &Config,
    layer: usize,
    threads: usize,
) -> anyhow::Result<Arc<dyn DynEmbedder>> {
    let path = config.models.dir.join(LocalGemma::FILE);
    let options = LocalGemmaOptions { threads: threads.max(1), ..Default::default() };
    let model = LocalGemma::load(&path, options).context("loading the router's embedding model")?;
    Ok(Arc::new(GemmaEmbedder::new(model, layer)?))
}

/// The per-agent settings files of `[agent_settings]`, validated against the registry's agents.
pub fn agent_settings(config: &Config, registry: &AgentRegistry) -> anyhow::Result<SettingsSet> {
    crate::agent_settings::load(&config.agent_settings, &registry.descriptors())
}

/// The supervisor: the trained artefact from `router.model` when configured, the agents'
/// phrases (with the settings files' extra phrases) for the k-NN fallback, and the route
/// descriptions for the LLM stage.
pub async fn build_supervisor(
    config: &Config,
    registry: &AgentRegistry,
    embedder: Arc<dyn DynEmbedder>,
) -> anyhow::Result<Supervisor> {
    let settings = agent_settings(config, registry)?;
    build_supervisor_with(config, registry, embedder, &settings).await
}

/// [`build_supervisor`] with settings already loaded.
pub async fn build_supervisor_with(
    config: &Config,
    registry: &AgentRegistry,
    embedder: Arc<dyn DynEmbedder>,
    settings: &SettingsSet,
) -> anyhow::Result<Supervisor> {
    let artifact = match &config.router.model {
        Some(path) if !path.as_os_str().is_empty() => Some(RouterArtifact::load(path).context(
            "loading the router model (train one with `fenliu train`, or set router.model = \"\" \
             to route with the agents' phrases only)",
        )?),
        _ => None,
    };
    Ok(Supervisor::new(
        embedder,
        &registry.training_phrases_with(settings),
        registry.route_descriptions(),
        artifact,
        config.router.clone(),
    )
    .await?)
}

/// The chat models of `[models]`: providers and chains built once, roles checked against the
/// router, the summariser and the registered agents.
pub async fn chat_models(
    config: &Config,
    registry: &AgentRegistry,
) -> anyhow::Result<ModelRegistry> {
    let section = config.models.section();
    let dir = config.models.dir.clone();
    // Local models load from disk for a few seconds: off the async runtime.
    let models =
        tokio::task::spawn_blocking(move || ModelRegistry::build(&section, &dir)).await??;
    let mut roles: Vec<String> =
        vec![ModelRegistry::ROUTER.to_owned(), ModelRegistry::SUMMARISER.to_owned()];
    roles.extend(registry.route_descriptions().into_iter().map(|(r, _)| r.to_string()));
    roles.extend(agents().iter().map(|a| a.descriptor().id));
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    models.check_roles(&roles)?;
    Ok(models)
}

/// A fully assembled instance.
pub struct Runtime {
    /// The turn loop; conversation state lives in the configured store, so a restart (or another
    /// replica on the same PostgreSQL) continues every conversation.
    pub orchestrator: Orchestrator<SqlStore>,
    /// Orders, customers, products.
    pub orders: Arc<dyn DynOrderStore>,
    /// The knowledge base behind `kb_search`, persisted under `knowledge.path`.
    pub knowledge: Arc<fenliu_knowledge_base::KnowledgeBase>,
    /// The sentence embedder (served on `/v1/embeddings`).
    pub embedder: Arc<dyn DynEmbedder>,
    /// The local chat model, when `models.serve_chat` is on (served on `/v1/chat/completions`).
    pub local_chat: Option<Arc<dyn DynChatModel>>,
    /// The per-agent settings files in force and the status of their last reload.
    pub settings: crate::agent_settings::SettingsHandle,
}

impl Runtime {
    /// Builds everything the configuration describes.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let started = Instant::now();
        let store = SqlStore::connect(&config.store.url())
            .await
            .with_context(|| format!("opening the store at {}", config.store.url()))?;
        let store = Arc::new(store);
        if let Some(dir) = &config.shop.seed_dir {
            let shop = ShopData::load_dir(dir)
                .with_context(|| format!("loading the shop in {}", dir.display()))?;
            let stats = store.import(&shop).await.context("importing the shop")?;
            info!(
                customers = stats.customers,
                products = stats.products,
                orders = stats.orders,
                "shop imported"
            );
        }
        let orders: Arc<dyn DynOrderStore> = store.clone();

        let embedder = load_embedder(config)?;

        let tickets: Arc<dyn DynTicketStore> = store.clone();
        let mut tools = fenliu_tools_commerce::tools::order_tools(orders.clone());
        tools.extend(fenliu_tools_commerce::ticket_tools::ticket_tools(orders.clone(), tickets));
        tools.extend(extension_tools(orders.clone()));
        let knowledge = crate::knowledge::open(config, embedder.clone()).await?;
        crate::knowledge::seed_if_empty(config, &knowledge).await?;
        tools.push(Arc::new(fenliu_tools_knowledge::KbSearch::new(knowledge.clone())));
        let catalog = ProductCatalog::from_store(orders.as_ref(), embedder.clone())
            .await
            .context("embedding the product catalogue")?;
        let preferences: Arc<dyn DynPreferenceStore> = store.clone();
        tools.extend(marketing_tools(Arc::new(catalog), preferences));
        let tools = ToolSet::new(tools)?;
        let registry = registry()?;
        let models = chat_models(config, &registry).await?;
        let policies = agent_policies(config, &agents(), |id| models.for_role(id).is_some())?;
        let seen = crate::agent_settings::fingerprint(&config.agent_settings.dir);
        let initial = agent_settings(config, &registry)?;
        let router_embedder = load_router_embedder(config, 1)?;
        let mut supervisor =
            build_supervisor_with(config, &registry, router_embedder, &initial).await?;
        let settings = crate::agent_settings::start(
            &config.agent_settings,
            registry.descriptors(),
            initial,
            seen,
        );
        if let Some(router_model) = models.for_role(ModelRegistry::ROUTER) {
            supervisor = supervisor.with_llm(router_model);
        }
        let local_chat: Option<Arc<dyn DynChatModel>> = if config.models.serve_chat {
            let options = LocalGemmaOptions {
                threads: config.models.chat_threads,
                ..LocalGemmaOptions::default()
            };
            Some(Arc::new(LocalGemma::load(&config.models.dir.join(LocalGemma::FILE), options)?))
        } else {
            None
        };
        let orchestrator = Orchestrator::new(
            config.shop.tenant.clone(),
            registry,
            supervisor,
            tools,
            SqlStore::clone(&store),
            config.limits.clone(),
        )?;
        let orchestrator = agents().iter().fold(orchestrator, |o, agent| {
            let id = agent.descriptor().id;
            match models.for_role(&id) {
                Some(model) => o.with_agent_model(&id, model),
                None => o,
            }
        });
        let orchestrator = policies
            .into_iter()
            .fold(orchestrator, |o, (id, p)| o.with_agent_policy(&id, p))
            .with_settings(settings.live.clone());
        info!(elapsed_ms = started.elapsed().as_millis() as u64, "runtime ready");
        Ok(Self { orchestrator, orders, knowledge, embedder, local_chat, settings })
    }

    /// The authenticated customer, as agents see them.
    pub async fn customer(&self, id: &str) -> anyhow::Result<Option<CustomerRef>> {
        Ok(self.orders.customer(id).await?.map(customer_ref))
    }
}

/// Converts a stored customer into the reference agents receive.
pub fn customer_ref(c: Customer) -> CustomerRef {
    CustomerRef {
        name: format!("{} {}", c.name.first, c.name.last),
        tier: match c.tier {
            Tier::Vip => CustomerTier::Vip,
            Tier::Regular => CustomerTier::Regular,
        },
        language: if c.language == "zh" { Language::Zh } else { Language::En },
        id: c.id,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::AgentConfig;

    fn config(entries: &[(&str, AgentPolicy)]) -> Config {
        let mut config = Config::default();
        for (id, policy) in entries {
            config.agents.insert((*id).to_owned(), AgentConfig { policy: *policy });
        }
        config
    }

    #[test]
    fn model_driven_agents_get_a_policy_that_confirms_their_writes() {
        let c = config(&[("order", AgentPolicy::ModelDriven), ("faq", AgentPolicy::Deterministic)]);
        let policies = agent_policies(&c, &agents(), |_| true).unwrap();
        assert_eq!(policies.len(), 1, "{policies:?}");
        let (id, policy) = &policies[0];
        assert_eq!(id, "order");
        // The order agent's allow-list: get_order, list_orders (reads) and cancel_order (a write).
        assert_eq!(policy.confirm_tools, ["cancel_order", "change_order_address"]);
        assert!(agent_policies(&Config::default(), &agents(), |_| false).unwrap().is_empty());
    }

    #[test]
    fn unknown_agents_and_missing_models_fail_with_the_key_named() {
        let c = config(&[("loyalty", AgentPolicy::ModelDriven)]);
        let err = agent_policies(&c, &agents(), |_| true).unwrap_err().to_string();
        assert!(err.contains("agents.loyalty") && err.contains("membership_points"), "{err}");
        let c = config(&[("order", AgentPolicy::ModelDriven)]);
        let err = agent_policies(&c, &agents(), |id| id != "order").unwrap_err().to_string();
        assert!(err.contains("agents.order.policy") && err.contains("models.roles.order"), "{err}");
        // Deterministic needs no model.
        let c = config(&[("order", AgentPolicy::Deterministic)]);
        assert!(agent_policies(&c, &agents(), |_| false).unwrap().is_empty());
    }
}
