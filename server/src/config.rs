//! Configuration: built-in defaults → `fenliu.toml` → environment (`FENLIU__SECTION__KEY`),
//! validated once at start-up.
//!
//! Every key has a default, so the embedded mode (SQLite under `data/`, models under `models/`)
//! needs no file at all. Relative paths are relative to the working directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fenliu_orchestrator::{RouterConfig, TurnLimits};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named config file does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value has the wrong type, or a key is unknown.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// Values are individually fine but unusable.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Order and ticket store.
    pub store: StoreConfig,
    /// Local model files.
    pub models: ModelsConfig,
    /// The shop served.
    pub shop: ShopConfig,
    /// Supervisor thresholds.
    pub router: RouterConfig,
    /// Per-turn limits.
    pub limits: TurnLimits,
    /// The knowledge base.
    pub knowledge: crate::knowledge::KnowledgeConfig,
    /// Per-agent settings (`[agents.<id>]`), by agent id; checked against the registered agents
    /// at start.
    pub agents: BTreeMap<String, AgentConfig>,
    /// The operators' per-agent settings files, reloaded while running (`[agent_settings]`).
    pub agent_settings: crate::agent_settings::AgentSettingsConfig,
}

/// Settings of one agent (`[agents.<id>]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Who decides the agent's tool calls.
    pub policy: AgentPolicy,
}

/// Who decides an agent's tool calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentPolicy {
    /// The agent's own code (works with no chat model).
    #[default]
    Deterministic,
    /// The agent's chat model chooses among its allow-listed tools by function calling; writes
    /// wait for the customer's confirmation. Needs a chat model for the agent (`[models]`).
    ModelDriven,
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Largest accepted request body. A message is at most `limits.max_message_chars`
    /// characters; the body limit stops oversized uploads before they are parsed.
    pub max_body_bytes: usize,
    /// Requests taking longer are answered with 408.
    pub request_timeout_secs: u64,
    /// Requests handled at once; further requests wait for a slot (and time out after
    /// `request_timeout_secs`), so a surge cannot start unbounded work.
    pub max_concurrent_requests: usize,
    /// The human dispatcher escalations are queued in (`[server.handoff]`).
    pub handoff: crate::handoff::HandoffConfig,
    /// The ticket SLA sweep and notification delivery timers (`[server.tickets]`).
    pub tickets: crate::tickets::TicketsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 30,
            max_concurrent_requests: 512,
            handoff: crate::handoff::HandoffConfig::default(),
            tickets: crate::tickets::TicketsConfig::default(),
        }
    }
}

/// Which database holds orders and tickets.
///
/// A flat struct rather than a tagged enum so that layers merge key by key: the environment can
/// switch `kind` to `postgres` and add a `url` while the default `path` stays harmlessly in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The backend.
    pub kind: StoreKind,
    /// SQLite database file; created with its directory if missing.
    pub path: PathBuf,
    /// PostgreSQL connection URL, e.g. `postgres://user@host:5432/db` (required for `postgres`).
    pub url: Option<String>,
}

/// Store backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file: the embedded default.
    #[default]
    Sqlite,
    /// PostgreSQL, for several replicas.
    Postgres,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { kind: StoreKind::Sqlite, path: PathBuf::from("data/fenliu.sqlite"), url: None }
    }
}

impl StoreConfig {
    /// An SQLite store at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), ..Self::default() }
    }

    /// The sqlx connection URL.
    pub fn url(&self) -> String {
        match self.kind {
            StoreKind::Sqlite => format!("sqlite://{}", self.path.display()),
            StoreKind::Postgres => self.url.clone().unwrap_or_default(),
        }
    }
}

/// Where the local models are, and which of them this instance serves to others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// The directory `scripts/setup.sh` fills.
    pub dir: PathBuf,
    /// Load the local Gemma model and serve it on `/v1/chat/completions` (costs ~4 s at start and
    /// ~0.5 GB of memory, so it is off unless asked for).
    pub serve_chat: bool,
    /// Compute threads of the local chat model (1 is safe on a busy machine).
    pub chat_threads: usize,
    /// The provider or chain every role uses unless `roles` says otherwise; none: no chat model
    /// (the router's LLM stage is off and agents run their deterministic policies).
    pub default: Option<String>,
    /// Per-role overrides: `router`, `summariser`, or an agent id (`order`, `after_sales`, …).
    pub roles: BTreeMap<String, String>,
    /// Named providers: `kind = "openai"` (any OpenAI-compatible endpoint) or `kind = "local"`.
    pub providers: BTreeMap<String, fenliu_models::ProviderConfig>,
    /// Named fallback chains of providers with their circuit-breaker settings.
    pub chains: BTreeMap<String, fenliu_models::ChainConfig>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models"),
            serve_chat: false,
            chat_threads: 1,
            default: None,
            roles: BTreeMap::new(),
            providers: BTreeMap::new(),
            chains: BTreeMap::new(),
        }
    }
}

impl ModelsConfig {
    /// The chat-model part, as the model registry reads it.
    pub fn section(&self) -> fenliu_models::ModelsSection {
        fenliu_models::ModelsSection {
            default: self.default.clone(),
            roles: self.roles.clone(),
            providers: self.providers.clone(),
            chains: self.chains.clone(),
        }
    }
}

/// The shop served by this instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopConfig {
    /// Tenant id, partitioning stores and knowledge.
    pub tenant: String,
    /// A shop directory (`customers.json`, `products.json`, `orders.json`) imported at start;
    /// the import is an idempotent upsert.
    pub seed_dir: Option<PathBuf>,
}

impl Default for ShopConfig {
    fn default() -> Self {
        Self { tenant: "demo".into(), seed_dir: Some(PathBuf::from("data/demo")) }
    }
}

impl Config {
    /// Loads defaults, then `file` (required if given, else `fenliu.toml` if present), then the
    /// environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_owned())),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file("fenliu.toml")),
        }
        Self::from_figment(figment.merge(Env::prefixed("FENLIU__").split("__")))
    }

    /// Extracts and validates a configuration from any figment (used by tests).
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Cross-field checks with messages that name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.server.max_body_bytes < 1024 {
            return invalid(format!(
                "server.max_body_bytes must be at least 1024, got {}",
                self.server.max_body_bytes
            ));
        }
        if self.server.request_timeout_secs == 0 {
            return invalid("server.request_timeout_secs must be positive".into());
        }
        if self.server.max_concurrent_requests == 0 {
            return invalid("server.max_concurrent_requests must be positive".into());
        }
        if self.limits.max_message_chars == 0 || self.limits.max_message_chars > 100_000 {
            return invalid(format!(
                "limits.max_message_chars must be in 1..=100000, got {}",
                self.limits.max_message_chars
            ));
        }
        if self.models.chat_threads == 0 || self.models.chat_threads > 64 {
            return invalid(format!(
                "models.chat_threads must be in 1..=64, got {}",
                self.models.chat_threads
            ));
        }
        if self.shop.tenant.trim().is_empty() {
            return invalid("shop.tenant must not be empty".into());
        }
        match (self.store.kind, &self.store.url) {
            (StoreKind::Postgres, None) => {
                return invalid("store.url is required when store.kind = \"postgres\"".into());
            }
            (StoreKind::Postgres, Some(url))
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) =>
            {
                return invalid(format!("store.url must start with postgres://, got {url:?}"));
            }
            (StoreKind::Sqlite, _) if self.store.path.as_os_str().is_empty() => {
                return invalid("store.path must not be empty".into());
            }
            _ => {}
        }
        self.knowledge.validate().map_err(ConfigError::Invalid)?;
        self.server.tickets.validate().map_err(ConfigError::Invalid)?;
        self.agent_settings.validate().map_err(ConfigError::Invalid)?;
        self.router.validate().map_err(ConfigError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(toml: &str) -> Result<Config, ConfigError> {
        Config::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)),
        )
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        let c = with("").unwrap();
        assert_eq!(c.store.url(), "sqlite://data/fenliu.sqlite");
        assert_eq!(c.server.bind.port(), 8080);
    }

    #[test]
    fn postgres_is_selected_by_kind() {
        let c = with("[store]\nkind = \"postgres\"\nurl = \"postgres://u@h/db\"").unwrap();
        assert_eq!(c.store.kind, StoreKind::Postgres);
        assert_eq!(c.store.url(), "postgres://u@h/db");
        let err = with("[store]\nkind = \"postgres\"").unwrap_err().to_string();
        assert!(err.contains("store.url is required"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let err = with("[server]\nbind = \"not an address\"").unwrap_err().to_string();
        assert!(err.contains("bind"), "{err}");
        let err = with("[server]\nbindd = \"127.0.0.1:1\"").unwrap_err().to_string();
        assert!(err.contains("bindd"), "{err}");
        let err = with("[router]\nmin_confidence = 3.0").unwrap_err().to_string();
        assert!(err.contains("router.min_confidence"), "{err}");
        let err =
            with("[store]\nkind = \"postgres\"\nurl = \"mysql://x\"").unwrap_err().to_string();
        assert!(err.contains("store.url"), "{err}");
        let err = with("[store]\nkind = \"oracle\"").unwrap_err().to_string();
        assert!(err.contains("oracle"), "{err}");
        let err = with("[router]\nembedder = \"bert\"").unwrap_err().to_string();
        assert!(err.contains("bert") && err.contains("minilm"), "{err}");
        let c = with("[router]\nembedder = \"minilm\"").unwrap();
        assert!(!c.router.thresholds().semantic_cjk, "MiniLM does not read Chinese");
        assert!(Config::default().router.thresholds().semantic_cjk, "Gemma does");
    }

    #[test]
    fn agent_policies_parse_and_unknown_values_are_named() {
        let c = with(
            "[agents.order]\npolicy = \"model_driven\"\n[agents.faq]\npolicy = \"deterministic\"",
        )
        .unwrap();
        assert_eq!(c.agents["order"].policy, AgentPolicy::ModelDriven);
        assert_eq!(c.agents["faq"].policy, AgentPolicy::Deterministic);
        assert_eq!(with("").unwrap().agents, BTreeMap::new());
        let err = with("[agents.order]\npolicy = \"yolo\"").unwrap_err().to_string();
        assert!(err.contains("yolo") && err.contains("model_driven"), "{err}");
        let err = with("[agents.order]\npolicyy = \"model_driven\"").unwrap_err().to_string();
        assert!(err.contains("policyy"), "{err}");
    }

    #[test]
    fn agent_settings_keys_are_checked() {
        let c = with("").unwrap();
        assert_eq!(c.agent_settings.dir, PathBuf::from("config/agents"));
        assert!(c.agent_settings.watch);
        let c =
            with("[agent_settings]\ndir = \"/etc/fenliu/agents\"\nwatch = false\npoll_ms = 200")
                .unwrap();
        assert_eq!(c.agent_settings.dir, PathBuf::from("/etc/fenliu/agents"));
        assert!(!c.agent_settings.watch);
        let err = with("[agent_settings]\npoll_ms = 1").unwrap_err().to_string();
        assert!(err.contains("agent_settings.poll_ms"), "{err}");
        let err = with("[agent_settings]\ndir = \"\"").unwrap_err().to_string();
        assert!(err.contains("agent_settings.dir"), "{err}");
        let err = with("[agent_settings]\nwatch = \"yes\"").unwrap_err().to_string();
        assert!(err.contains("watch"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error type
    fn environment_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("fenliu.toml", "[server]\nbind = \"127.0.0.1:9000\"")?;
            jail.set_env("FENLIU__SERVER__BIND", "127.0.0.1:9100");
            jail.set_env("FENLIU__LIMITS__MAX_MESSAGE_CHARS", "100");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.server.bind.port(), 9100);
            assert_eq!(c.limits.max_message_chars, 100);
            Ok(())
        });
    }

    #[test]
    fn named_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/fenliu.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }
}
