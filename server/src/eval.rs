//! `fenliu eval` and `fenliu eval compare`: the offline evals of `fenliu-evals` over the agents,
//! router and models this build assembles (see `docs/evals.md`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, TimeZone, Utc};
use fenliu_agent::DynChatModel;
use fenliu_evals::compare::{Thresholds, compare};
use fenliu_evals::loaders::{DatasetKind, load};
use fenliu_evals::models::{Replay, ReplayCache};
use fenliu_evals::report::Report;
use fenliu_evals::runner::{MemoryShopStore, ToolFactory};
use fenliu_evals::runner::{RunOptions, System, UserKind, run};
use fenliu_knowledge::DynEmbedder;
use fenliu_models::ModelRegistry;
use fenliu_orchestrator::training::RouterArtifact;
use fenliu_tool::DynTool;
use fenliu_tools_commerce::marketing::{ProductCatalog, marketing_tools};
use fenliu_tools_commerce::{DynPreferenceStore, ShopData};

use crate::config::Config;
use crate::runtime::{
    agent_policies, agent_settings, agents, chat_models, load_embedder, load_router_embedder,
    registry,
};

/// The demo shop's reference time: the ticket tools' clock in evals, so warranty windows and
/// SLA due times are the same on every day the eval runs.
pub fn demo_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).single().unwrap_or_else(Utc::now)
}

/// The tools of one eval conversation over its own copy of the shop. Keep this list the same as
/// [`Runtime::build`](crate::runtime::Runtime::build)'s: an agent whose allow-list names a tool
/// missing here stops the eval with the tool's name.
///
/// `shared` are tools that do not read or write the shop (knowledge search): built once by
/// [`shared_tools`] and given to every conversation.
pub fn eval_tools(
    catalog: Arc<ProductCatalog>,
    shared: Vec<Arc<dyn DynTool>>,
    now: DateTime<Utc>,
) -> ToolFactory {
    let commerce = System::commerce_tools(now);
    Arc::new(move |store: Arc<MemoryShopStore>| {
        let mut tools = commerce(store.clone());
        tools.extend(crate::runtime::extension_tools(store.clone()));
        tools.extend(shared.iter().cloned());
        let preferences: Arc<dyn DynPreferenceStore> = store;
        tools.extend(marketing_tools(catalog.clone(), preferences));
        tools
    })
}

/// The tools that do not depend on the shop's state, built once for the whole run. Keep in step
/// with [`Runtime::build`](crate::runtime::Runtime::build).
pub async fn shared_tools(
    config: &Config,
    embedder: &Arc<dyn DynEmbedder>,
) -> anyhow::Result<Vec<Arc<dyn DynTool>>> {
    let knowledge = crate::knowledge::open(config, embedder.clone()).await?;
    crate::knowledge::seed_if_empty(config, &knowledge).await?;
    Ok(vec![Arc::new(fenliu_tools_knowledge::KbSearch::new(knowledge))])
}

/// Options of `fenliu eval`.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    /// Dataset files.
    pub data: Vec<PathBuf>,
    /// Their format (`None`: guessed from each file name).
    pub format: Option<String>,
    /// At most this many conversations per dataset (seeded sample).
    pub limit: Option<usize>,
    /// Runs per conversation (k of pass^k).
    pub trials: u32,
    /// Seed.
    pub seed: u64,
    /// Parallel conversations.
    pub jobs: Option<usize>,
    /// Report directory.
    pub out: PathBuf,
    /// Report file stem.
    pub name: String,
    /// Customer of conversations that name none.
    pub customer: String,
    /// `none`, `config`, a provider or chain of `[models]`, or `replay`.
    pub model: String,
    /// Replay cache file.
    pub replay_cache: Option<PathBuf>,
    /// `scripted` or `llm`.
    pub user: String,
    /// The provider or chain playing the LLM user.
    pub user_model: Option<String>,
    /// Hide the progress bar.
    pub quiet: bool,
}

/// The models of a run: the router's, the agents', and the replay cache to save afterwards.
struct Models {
    router: Option<Arc<dyn DynChatModel>>,
    agents: BTreeMap<String, Arc<dyn DynChatModel>>,
    user: Option<Arc<dyn DynChatModel>>,
    cache: Option<Arc<ReplayCache>>,
}

async fn select_models(config: &Config, args: &EvalArgs) -> anyhow::Result<Models> {
    let agent_ids: Vec<String> = agents().iter().map(|a| a.descriptor().id).collect();
    let cache = match &args.replay_cache {
        Some(path) => Some(Arc::new(ReplayCache::open(path)?)),
        None if args.model == "replay" => {
            anyhow::bail!("--model replay needs --replay-cache FILE (recorded by an earlier run)")
        }
        None => None,
    };
    let wrap = |m: Arc<dyn DynChatModel>| -> Arc<dyn DynChatModel> {
        match &cache {
            Some(c) => Arc::new(Replay::new(m.model_id().to_owned(), Some(m), c.clone())),
            None => m,
        }
    };
    let needs_registry =
        args.model != "none" && args.model != "replay" || args.user_model.is_some();
    let registry =
        if needs_registry { Some(chat_models(config, &registry()?).await?) } else { None };
    let named = |name: &str| -> anyhow::Result<Arc<dyn DynChatModel>> {
        let r = registry.as_ref().context("no model registry")?;
        r.provider(name)
            .or_else(|| r.chain(name).map(|c| c as Arc<dyn DynChatModel>))
            .with_context(|| format!("no provider or chain `{name}` in [models] (see fenliu.toml)"))
    };
    let mut models = Models { router: None, agents: BTreeMap::new(), user: None, cache: None };
    match args.model.as_str() {
        "none" => {}
        "replay" => {
            let c = cache.as_ref().context("--model replay needs --replay-cache FILE")?;
            let replay: Arc<dyn DynChatModel> = Arc::new(Replay::new("replay", None, c.clone()));
            models.router = Some(replay.clone());
            for id in &agent_ids {
                models.agents.insert(id.clone(), replay.clone());
            }
        }
        "config" => {
            let r = registry.as_ref().context("no model registry")?;
            models.router = r.for_role(ModelRegistry::ROUTER).map(wrap);
            for id in &agent_ids {
                if let Some(m) = r.for_role(id) {
                    models.agents.insert(id.clone(), wrap(m));
                }
            }
        }
        name => {
            let m = wrap(named(name)?);
            models.router = Some(m.clone());
            for id in &agent_ids {
                models.agents.insert(id.clone(), m.clone());
            }
        }
    }
    models.user = match (args.user.as_str(), &args.user_model) {
        ("scripted", _) => None,
        ("llm", Some(name)) => Some(wrap(named(name)?)),
        ("llm", None) => anyhow::bail!("--user llm needs --user-model NAME (a provider or chain)"),
        (other, _) => anyhow::bail!("--user must be `scripted` or `llm`, not `{other}`"),
    };
    models.cache = cache;
    Ok(models)
}

/// The model-driven policies of `[agents.<id>] policy` for an eval whose agents have `models`.
/// With `--model none` no agent has a model, so every agent runs its deterministic policy (said
/// on stderr); otherwise a model-driven agent without a model stops the eval, as it stops `serve`.
pub fn eval_policies(
    config: &Config,
    model: &str,
    models: &BTreeMap<String, Arc<dyn DynChatModel>>,
) -> anyhow::Result<Vec<(String, fenliu_agent::policy::ModelDrivenPolicy)>> {
    if model == "none" {
        let driven: Vec<&str> = config
            .agents
            .iter()
            .filter(|(_, a)| a.policy == crate::config::AgentPolicy::ModelDriven)
            .map(|(id, _)| id.as_str())
            .collect();
        if !driven.is_empty() {
            eprintln!(
                "--model none: {} run(s) the deterministic policy (model_driven needs a model)",
                driven.join(", ")
            );
        }
        return Ok(Vec::new());
    }
    let policies = agent_policies(config, &agents(), |id| models.contains_key(id))?;
    for (id, _) in &policies {
        eprintln!("agent `{id}`: model-driven policy ([agents.{id}] policy)");
    }
    Ok(policies)
}

/// Runs the datasets, prints the metrics table and writes the JSON, Markdown and HTML reports.
pub async fn eval(config: &Config, args: &EvalArgs) -> anyhow::Result<Report> {
    let shop_dir = config.shop.seed_dir.clone().unwrap_or_else(|| PathBuf::from("data/demo"));
    let shop = ShopData::load_dir(&shop_dir)
        .with_context(|| format!("loading the shop in {}", shop_dir.display()))?;
    let artifact = match &config.router.model {
        Some(path) if !path.as_os_str().is_empty() => Some(
            RouterArtifact::load(path)
                .with_context(|| format!("loading the router model {}", path.display()))?,
        ),
        _ => None,
    };
    let models = select_models(config, args).await?;
    let embedder = load_embedder(config)?;
    let catalog = ProductCatalog::new(shop.products.clone(), embedder.clone())
        .await
        .context("embedding the product catalogue")?;
    let router_embedder = load_router_embedder(config, 1)?;
    let mut system = System::new(agents(), router_embedder, artifact, shop, demo_now());
    let shared = shared_tools(config, &embedder).await?;
    system.tools = eval_tools(Arc::new(catalog), shared, demo_now());
    system.tenant.clone_from(&config.shop.tenant);
    system.router = config.router.clone();
    system.limits = config.limits.clone();
    system.router_model = models.router.clone();
    system.agent_models = models.agents.clone();
    system.agent_policies =
        eval_policies(config, &args.model, &models.agents)?.into_iter().collect();
    system.agent_settings = agent_settings(config, &registry()?)?;
    let routes = system.routes();

    let data = if args.data.is_empty() {
        vec![PathBuf::from("data/evals/scenarios.jsonl")]
    } else {
        args.data.clone()
    };
    let mut datasets = Vec::new();
    for path in &data {
        let kind = match &args.format {
            Some(f) => DatasetKind::parse(f).with_context(|| {
                let all: Vec<&str> = DatasetKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown --format `{f}`; one of {}", all.join(", "))
            })?,
            None => DatasetKind::detect(path),
        };
        let d = load(path, kind, &routes, &system.shop)?;
        for e in d.errors.iter().take(20) {
            eprintln!("skipped {e}");
        }
        if d.errors.len() > 20 {
            eprintln!("… and {} more bad rows in {}", d.errors.len() - 20, path.display());
        }
        eprintln!(
            "{}: {} conversations ({}), {} bad rows",
            path.display(),
            d.conversations.len(),
            kind.name(),
            d.errors.len()
        );
        datasets.push(d);
    }
    let options = RunOptions {
        jobs: args.jobs.unwrap_or_else(|| RunOptions::default().jobs),
        trials: args.trials.max(1),
        seed: args.seed,
        limit: args.limit,
        default_customer: args.customer.clone(),
        user: match &models.user {
            Some(m) => UserKind::Llm(m.clone()),
            None => UserKind::Scripted,
        },
        progress: !args.quiet,
        model_label: args.model.clone(),
        ..RunOptions::default()
    };
    let result = run(Arc::new(system), &datasets, &options).await?;
    if let Some(cache) = &models.cache {
        let saved = cache.save()?;
        let (hits, misses) = cache.stats();
        eprintln!("replay cache: {hits} hits, {misses} misses, {saved} answers recorded");
    }
    let report = Report::new(result);
    print!("{}", report.table());
    let [json, md, html] = report.write_all(&args.out, &args.name)?;
    println!("reports: {} {} {}", json.display(), md.display(), html.display());
    Ok(report)
}

/// Options of `fenliu eval compare`.
#[derive(Debug, Clone)]
pub struct CompareArgs {
    /// The baseline report.
    pub base: PathBuf,
    /// The new report.
    pub new: PathBuf,
    /// Tolerances.
    pub thresholds: Thresholds,
    /// JSON instead of a table.
    pub json: bool,
}

/// Compares two reports; `Ok(false)` on a regression (the command exits non-zero).
pub fn compare_reports(args: &CompareArgs) -> anyhow::Result<bool> {
    let base = Report::load(&args.base)?;
    let new = Report::load(&args.new)?;
    let c = compare(&base, &new, &args.thresholds);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "passed": c.passed(),
                "thresholds": args.thresholds,
                "comparison": c,
            }))?
        );
    } else {
        print!("{}", c.table());
    }
    Ok(c.passed())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::{AgentConfig, AgentPolicy};
    use fenliu_models::openai::{OpenAiCompatible, OpenAiConfig};

    fn model() -> Arc<dyn DynChatModel> {
        Arc::new(OpenAiCompatible::new(OpenAiConfig::new("http://127.0.0.1:9/v1", "m")).unwrap())
    }

    #[test]
    fn eval_honours_agent_policies() {
        let mut config = Config::default();
        config.agents.insert("order".into(), AgentConfig { policy: AgentPolicy::ModelDriven });
        config.agents.insert("faq".into(), AgentConfig { policy: AgentPolicy::Deterministic });
        let with_model: BTreeMap<String, Arc<dyn DynChatModel>> =
            [("order".to_owned(), model()), ("faq".to_owned(), model())].into();
        let policies = eval_policies(&config, "config", &with_model).unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0].0, "order");
        assert!(policies[0].1.confirm_tools.contains(&"cancel_order".to_owned()));
        assert!(!policies[0].1.confirm_tools.contains(&"get_order".to_owned()));
        // --model none: no agent has a model, so nothing is model-driven.
        assert!(eval_policies(&config, "none", &BTreeMap::new()).unwrap().is_empty());
        // A model-driven agent without a model stops the eval with the key named.
        let err = eval_policies(&config, "config", &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("agents.order.policy"), "{err}");
    }
}
