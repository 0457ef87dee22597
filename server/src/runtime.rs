//! Assembling a running fenliu from configuration: store, shop data, models, tools, agents,
//! supervisor, orchestrator. `serve` and `chat` share it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use fenliu_agent::{CustomerRef, CustomerTier, DynAgent, Language};
use fenliu_knowledge::DynEmbedder;
use fenliu_models::{MiniLmEmbedder, MiniLmOptions};
use fenliu_orchestrator::{AgentRegistry, MemoryConversationStore, Orchestrator, Supervisor};
use fenliu_store_sql::SqlStore;
use fenliu_tool::ToolSet;
use fenliu_tools_commerce::{Customer, DynOrderStore, ShopData, Tier};
use tracing::info;

use crate::config::Config;

/// The specialist agents this build ships. Registering an agent is one line here.
pub fn agents() -> Vec<Arc<dyn DynAgent>> {
    vec![Arc::new(fenliu_agent_order::OrderAgent::new())]
}

/// A fully assembled instance.
pub struct Runtime {
    /// The turn loop.
    pub orchestrator: Orchestrator<MemoryConversationStore>,
    /// Orders, customers, products.
    pub orders: Arc<dyn DynOrderStore>,
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

        let model_dir = config.models.dir.join(MiniLmEmbedder::DIR_NAME);
        let embedder = MiniLmEmbedder::load(&model_dir, MiniLmOptions::default())?;
        let embedder: Arc<dyn DynEmbedder> = Arc::new(embedder);

        let tools = ToolSet::new(fenliu_tools_commerce::tools::order_tools(orders.clone()))?;
        let mut registry = AgentRegistry::new();
        for agent in agents() {
            registry.register(agent)?;
        }
        let supervisor =
            Supervisor::train(embedder, &registry.training_phrases(), config.router.clone())
                .await?;
        let orchestrator = Orchestrator::new(
            config.shop.tenant.clone(),
            registry,
            supervisor,
            tools,
            MemoryConversationStore::new(),
            config.limits.clone(),
        )?;
        info!(elapsed_ms = started.elapsed().as_millis() as u64, "runtime ready");
        Ok(Self { orchestrator, orders })
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
