//! Model selection by configuration: providers, fallback chains, a default and per-role
//! overrides, read from the `[models]` section of `fenliu.toml`.
//!
//! ```toml
//! [models]
//! default = "main"                  # a provider or a chain; omit for no model at all
//!
//! [models.roles]                    # per-role overrides; other roles use `default`
//! router = "local"                  # the router's LLM stage
//! summariser = "hosted"
//! order = "main"                    # an agent, by its id (order, after_sales, complaint, …)
//!
//! [models.providers.hosted]
//! kind = "openai"                   # any OpenAI-compatible endpoint (see `OpenAiConfig`)
//! base_url = "https://api.openai.com/v1"
//! api_key = "sk-…"                  # better: FENLIU__MODELS__PROVIDERS__HOSTED__API_KEY
//! model = "gpt-4o-mini"
//! max_retries = 1                   # in a chain, fall back rather than retry for long
//!
//! [models.providers.local]
//! kind = "local"                    # Gemma 3 270M on candle, from the models directory
//! path = "gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
//! threads = 1
//! context_tokens = 2048
//!
//! [models.chains.main]              # hosted → local → (callers' templated reply + escalation)
//! providers = ["hosted", "local"]
//! failures = 3                      # availability failures within `window_secs` …
//! window_secs = 60
//! cool_down_secs = 30               # … skip the provider this long, then probe once
//! ```
//!
//! # Rules
//! - Providers and chains share one namespace (`[A-Za-z0-9_-]+`); `default` and every role name
//!   one of them. Chains list providers only: they do not nest (a chain inside a chain would hide
//!   a second breaker per provider and allow cycles).
//! - Each provider that something refers to is built once, at [`ModelRegistry::build`], and
//!   shared (`Arc`) by every chain and role using it; providers nothing refers to are not built
//!   (a warning is logged). Local models are therefore loaded **at build**, not at first use:
//!   a missing file stops the start rather than the first customer, and the first answer does
//!   not wait seconds for a load. Build is blocking (a local load takes seconds): call it before
//!   serving, or in `spawn_blocking`.
//! - Role keys are free-form here (agents are registered by the server); the server passes the
//!   roles it knows to [`ModelRegistry::check_roles`] to reject typos.
//! - With nothing configured ([`ModelRegistry::default`]) every role has no model: the router's
//!   LLM stage is off and agents run deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fenliu_agent::DynChatModel;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::chain::{BreakerConfig, CircuitBreaker, Clock, FallbackChain, SystemClock};
use crate::{LocalGemma, LocalGemmaOptions, ModelLoadError, OpenAiCompatible, OpenAiConfig};

/// The `[models]` selection: which models exist and which role uses which.
///
/// `Serialize` is for showing the configuration (and for figment defaults): API keys and
/// extra header values come out as `[REDACTED]`, so a serialised section does not round-trip.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsSection {
    /// Provider or chain used by every role without an override; `None`: no model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Role → provider or chain. Roles: [`ModelRegistry::ROUTER`], [`ModelRegistry::SUMMARISER`]
    /// and agent ids.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Named model providers.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Named fallback chains over providers.
    #[serde(default)]
    pub chains: BTreeMap<String, ChainConfig>,
}

/// One model provider, tagged by `kind`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind")]
pub enum ProviderConfig {
    /// `kind = "openai"`: an OpenAI-compatible endpoint; the other keys are [`OpenAiConfig`]'s.
    #[serde(rename = "openai", serialize_with = "redacted_openai")]
    OpenAi(OpenAiConfig),
    /// `kind = "local"`: the local Gemma model.
    #[serde(rename = "local")]
    Local(LocalConfig),
}

impl PartialEq for ProviderConfig {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::OpenAi(a), Self::OpenAi(b)) => openai_fields(a) == openai_fields(b),
            (Self::Local(a), Self::Local(b)) => a == b,
            _ => false,
        }
    }
}

/// Every field of an [`OpenAiConfig`], comparable (the destructuring fails to compile when a
/// field is added, so none is forgotten).
#[allow(clippy::type_complexity)]
fn openai_fields(
    c: &OpenAiConfig,
) -> (
    &str,
    &str,
    &str,
    &Option<String>,
    &BTreeMap<String, String>,
    [Duration; 6],
    u32,
    crate::openai::MaxTokensField,
) {
    let OpenAiConfig {
        base_url,
        api_key,
        model,
        id,
        headers,
        timeout,
        idle_timeout,
        connect_timeout,
        max_retries,
        backoff_base,
        backoff_max,
        max_retry_after,
        max_tokens_field,
    } = c;
    (
        base_url,
        api_key.expose(),
        model,
        id,
        headers,
        [*timeout, *idle_timeout, *connect_timeout, *backoff_base, *backoff_max, *max_retry_after],
        *max_retries,
        *max_tokens_field,
    )
}

/// [`OpenAiConfig`] as configuration keys, secrets redacted (the `kind` tag is added by serde).
fn redacted_openai<S: Serializer>(c: &OpenAiConfig, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(None)?;
    map.serialize_entry("base_url", &c.base_url)?;
    if !c.api_key.is_empty() {
        map.serialize_entry("api_key", "[REDACTED]")?;
    }
    map.serialize_entry("model", &c.model)?;
    if let Some(id) = &c.id {
        map.serialize_entry("id", id)?;
    }
    if !c.headers.is_empty() {
        let redacted: BTreeMap<&str, &str> =
            c.headers.keys().map(|k| (k.as_str(), "[REDACTED]")).collect();
        map.serialize_entry("headers", &redacted)?;
    }
    for (key, value) in [
        ("timeout", c.timeout),
        ("idle_timeout", c.idle_timeout),
        ("connect_timeout", c.connect_timeout),
        ("backoff_base", c.backoff_base),
        ("backoff_max", c.backoff_max),
        ("max_retry_after", c.max_retry_after),
    ] {
        map.serialize_entry(key, &value.as_secs_f64())?;
    }
    map.serialize_entry("max_retries", &c.max_retries)?;
    let field = match c.max_tokens_field {
        crate::openai::MaxTokensField::MaxTokens => "max_tokens",
        crate::openai::MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
    };
    map.serialize_entry("max_tokens_field", field)?;
    map.end()
}

/// A local Gemma model (`kind = "local"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The GGUF file, relative to the models directory (or absolute).
    #[serde(default = "local_defaults::path")]
    pub path: PathBuf,
    /// Compute threads ([`LocalGemmaOptions::threads`]).
    #[serde(default = "local_defaults::threads")]
    pub threads: usize,
    /// Context bound in tokens, prompt and answer ([`LocalGemmaOptions::context_tokens`]).
    #[serde(default = "local_defaults::context_tokens")]
    pub context_tokens: usize,
    /// Answer length when a request sets none.
    #[serde(default = "local_defaults::max_tokens")]
    pub max_tokens: u32,
    /// How the conversation is laid out for the model.
    #[serde(default)]
    pub prompt_format: LocalPromptFormat,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            path: local_defaults::path(),
            threads: local_defaults::threads(),
            context_tokens: local_defaults::context_tokens(),
            max_tokens: local_defaults::max_tokens(),
            prompt_format: LocalPromptFormat::default(),
        }
    }
}

mod local_defaults {
    use std::path::PathBuf;

    use crate::{LocalGemma, LocalGemmaOptions};

    pub(super) fn path() -> PathBuf {
        PathBuf::from(LocalGemma::FILE)
    }
    pub(super) fn threads() -> usize {
        LocalGemmaOptions::default().threads
    }
    pub(super) fn context_tokens() -> usize {
        LocalGemmaOptions::default().context_tokens
    }
    pub(super) fn max_tokens() -> u32 {
        LocalGemmaOptions::default().default_max_tokens
    }
}

/// [`PromptFormat`](crate::PromptFormat) in configuration files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalPromptFormat {
    /// `gemma_chat`: Gemma's chat template.
    #[default]
    GemmaChat,
    /// `transcript`: `User:` / `Assistant:` lines, better for the base model.
    Transcript,
}

impl From<LocalPromptFormat> for crate::PromptFormat {
    fn from(f: LocalPromptFormat) -> Self {
        match f {
            LocalPromptFormat::GemmaChat => Self::GemmaChat,
            LocalPromptFormat::Transcript => Self::Transcript,
        }
    }
}

/// A fallback chain: providers tried in order, each behind its own circuit breaker.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Provider names, first tried first. Not chains: chains do not nest.
    pub providers: Vec<String>,
    /// Availability failures within `window_secs` that open a provider's breaker.
    #[serde(default = "chain_defaults::failures")]
    pub failures: u32,
    /// How far back failures are counted, in seconds.
    #[serde(default = "chain_defaults::window_secs")]
    pub window_secs: f64,
    /// How long an open breaker skips its provider before one probe, in seconds.
    #[serde(default = "chain_defaults::cool_down_secs")]
    pub cool_down_secs: f64,
}

mod chain_defaults {
    use crate::chain::BreakerConfig;

    pub(super) fn failures() -> u32 {
        BreakerConfig::default().failures
    }
    pub(super) fn window_secs() -> f64 {
        BreakerConfig::default().window.as_secs_f64()
    }
    pub(super) fn cool_down_secs() -> f64 {
        BreakerConfig::default().cool_down.as_secs_f64()
    }
}

fn config_error(message: String) -> ModelLoadError {
    ModelLoadError::Config(message)
}

fn seconds(key: &str, secs: f64) -> Result<Duration, ModelLoadError> {
    if secs > 0.0
        && let Ok(d) = Duration::try_from_secs_f64(secs)
    {
        return Ok(d);
    }
    Err(config_error(format!("{key} must be a positive number of seconds, not {secs}")))
}

impl ChainConfig {
    /// The breaker thresholds, validated; `key` names the chain in errors.
    fn breaker(&self, key: &str) -> Result<BreakerConfig, ModelLoadError> {
        if self.failures == 0 {
            return Err(config_error(format!("{key}.failures must be at least 1")));
        }
        Ok(BreakerConfig {
            failures: self.failures,
            window: seconds(&format!("{key}.window_secs"), self.window_secs)?,
            cool_down: seconds(&format!("{key}.cool_down_secs"), self.cool_down_secs)?,
        })
    }
}

/// A role's model and the name it was configured by.
#[derive(Clone)]
struct Target {
    name: String,
    model: Arc<dyn DynChatModel>,
}

/// The models built from a [`ModelsSection`], looked up by role.
///
/// Cheap to clone (everything is shared). [`Default`] configures nothing: every role has no
/// model.
#[derive(Clone, Default)]
pub struct ModelRegistry {
    default: Option<Target>,
    roles: BTreeMap<String, Target>,
    providers: BTreeMap<String, Arc<dyn DynChatModel>>,
    chains: BTreeMap<String, Arc<FallbackChain>>,
}

impl fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelRegistry")
            .field("default", &self.default.as_ref().map(|t| &t.name))
            .field(
                "roles",
                &self.roles.iter().map(|(r, t)| (r, &t.name)).collect::<BTreeMap<_, _>>(),
            )
            .field(
                "providers",
                &self.providers.iter().map(|(n, m)| (n, m.model_id())).collect::<BTreeMap<_, _>>(),
            )
            .field("chains", &self.chains)
            .finish()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn listed<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&str> = names.map(String::as_str).collect();
    if all.is_empty() { "none".to_owned() } else { all.join(", ") }
}

impl ModelRegistry {
    /// The router's role (its LLM stage).
    pub const ROUTER: &'static str = "router";
    /// The conversation summariser's role (escalation summaries).
    pub const SUMMARISER: &'static str = "summariser";

    /// Validates `section` and builds its models; local model files are read from `models_dir`
    /// (relative `path`s). Blocking: local models are loaded here.
    pub fn build(section: &ModelsSection, models_dir: &Path) -> Result<Self, ModelLoadError> {
        Self::build_with_clock(section, models_dir, Arc::new(SystemClock))
    }

    /// [`build`](Self::build) with the breakers on `clock` (tests drive time by hand).
    pub fn build_with_clock(
        section: &ModelsSection,
        models_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ModelLoadError> {
        let known = || {
            format!(
                "providers: {}; chains: {}",
                listed(section.providers.keys()),
                listed(section.chains.keys())
            )
        };
        // Names.
        for name in section.providers.keys() {
            if !valid_name(name) {
                return Err(config_error(format!(
                    "models.providers: name {name:?} must be letters, digits, '_' or '-'"
                )));
            }
        }
        for name in section.chains.keys() {
            if !valid_name(name) {
                return Err(config_error(format!(
                    "models.chains: name {name:?} must be letters, digits, '_' or '-'"
                )));
            }
            if section.providers.contains_key(name) {
                return Err(config_error(format!(
                    "models: `{name}` is both a provider and a chain; names must be unique"
                )));
            }
        }
        // Chains: non-empty lists of distinct providers, sane thresholds.
        let mut breakers = BTreeMap::new();
        for (name, chain) in &section.chains {
            let key = format!("models.chains.{name}");
            if chain.providers.is_empty() {
                return Err(config_error(format!("{key}.providers is empty")));
            }
            let mut seen = BTreeSet::new();
            for provider in &chain.providers {
                if section.chains.contains_key(provider) {
                    return Err(config_error(format!(
                        "{key}.providers: `{provider}` is a chain; chains cannot nest, list its \
                         providers instead"
                    )));
                }
                if !section.providers.contains_key(provider) {
                    return Err(config_error(format!(
                        "{key}.providers: unknown provider `{provider}` (providers: {})",
                        listed(section.providers.keys())
                    )));
                }
                if !seen.insert(provider) {
                    return Err(config_error(format!(
                        "{key}.providers: `{provider}` is listed twice"
                    )));
                }
            }
            breakers.insert(name.clone(), chain.breaker(&key)?);
        }
        // Default and roles point at something.
        let resolve = |key: String, target: &str| -> Result<(), ModelLoadError> {
            if section.providers.contains_key(target) || section.chains.contains_key(target) {
                Ok(())
            } else {
                Err(config_error(format!(
                    "{key}: `{target}` is neither a provider nor a chain ({})",
                    known()
                )))
            }
        };
        if let Some(default) = &section.default {
            resolve("models.default".into(), default)?;
        }
        for (role, target) in &section.roles {
            if !valid_name(role) {
                return Err(config_error(format!(
                    "models.roles: role {role:?} must be letters, digits, '_' or '-'"
                )));
            }
            resolve(format!("models.roles.{role}"), target)?;
        }

        // Build every referenced provider once.
        let mut used = BTreeSet::new();
        let mut mark = |target: &str| {
            if let Some(chain) = section.chains.get(target) {
                used.extend(chain.providers.iter().cloned());
            } else {
                used.insert(target.to_owned());
            }
        };
        section.default.iter().for_each(|t| mark(t));
        section.roles.values().for_each(|t| mark(t));
        section.chains.values().flat_map(|c| &c.providers).for_each(|t| mark(t));
        let mut providers = BTreeMap::new();
        for (name, config) in &section.providers {
            if !used.contains(name) {
                tracing::warn!(provider = %name, "model provider configured but never used; not built");
                continue;
            }
            let model = build_provider(name, config, models_dir)?;
            tracing::info!(provider = %name, model = model.model_id(), "model provider ready");
            providers.insert(name.clone(), model);
        }

        let mut chains = BTreeMap::new();
        for (name, chain) in &section.chains {
            let breaker = breakers[name];
            let mut built = FallbackChain::new(name);
            for provider in &chain.providers {
                built = built.with_provider(
                    provider.clone(),
                    providers[provider].clone(),
                    CircuitBreaker::with_clock(breaker, clock.clone()),
                );
            }
            chains.insert(name.clone(), Arc::new(built));
        }

        let target = |name: &str| -> Target {
            let model: Arc<dyn DynChatModel> = match chains.get(name) {
                Some(chain) => chain.clone(),
                None => providers[name].clone(),
            };
            Target { name: name.to_owned(), model }
        };
        let default = section.default.as_deref().map(target);
        let roles = section.roles.iter().map(|(role, name)| (role.clone(), target(name))).collect();
        Ok(Self { default, roles, providers, chains })
    }

    /// The model serving `role`: its override, else the default, else `None` (no model).
    pub fn for_role(&self, role: &str) -> Option<Arc<dyn DynChatModel>> {
        self.roles.get(role).or(self.default.as_ref()).map(|t| t.model.clone())
    }

    /// The provider or chain name serving `role`, as configured.
    pub fn target_of(&self, role: &str) -> Option<&str> {
        self.roles.get(role).or(self.default.as_ref()).map(|t| t.name.as_str())
    }

    /// The default model, if any.
    pub fn default_model(&self) -> Option<Arc<dyn DynChatModel>> {
        self.default.as_ref().map(|t| t.model.clone())
    }

    /// Whether no role has a model.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.roles.is_empty()
    }

    /// A built provider by name.
    pub fn provider(&self, name: &str) -> Option<Arc<dyn DynChatModel>> {
        self.providers.get(name).cloned()
    }

    /// A chain by name (for its breakers' [`status`](FallbackChain::status)).
    pub fn chain(&self, name: &str) -> Option<Arc<FallbackChain>> {
        self.chains.get(name).cloned()
    }

    /// The chains, by name.
    pub fn chains(&self) -> impl Iterator<Item = (&str, &Arc<FallbackChain>)> {
        self.chains.iter().map(|(name, chain)| (name.as_str(), chain))
    }

    /// Rejects role overrides for roles nobody asks for (typos): `known` lists the roles the
    /// application has (router, summariser, agent ids).
    pub fn check_roles(&self, known: &[&str]) -> Result<(), ModelLoadError> {
        match self.roles.keys().find(|role| !known.contains(&role.as_str())) {
            None => Ok(()),
            Some(role) => Err(config_error(format!(
                "models.roles.{role}: unknown role (roles: {})",
                known.join(", ")
            ))),
        }
    }

    /// Sets the default model (for tests and embedders wiring models by hand).
    pub fn with_default(mut self, name: &str, model: Arc<dyn DynChatModel>) -> Self {
        self.default = Some(Target { name: name.to_owned(), model });
        self
    }

    /// Overrides one role's model (for tests and embedders wiring models by hand).
    pub fn with_role(mut self, role: &str, name: &str, model: Arc<dyn DynChatModel>) -> Self {
        self.roles.insert(role.to_owned(), Target { name: name.to_owned(), model });
        self
    }
}

fn build_provider(
    name: &str,
    config: &ProviderConfig,
    models_dir: &Path,
) -> Result<Arc<dyn DynChatModel>, ModelLoadError> {
    let in_key = |e: ModelLoadError| match e {
        ModelLoadError::Config(message) => {
            config_error(format!("models.providers.{name}: {message}"))
        }
        other => other,
    };
    Ok(match config {
        ProviderConfig::OpenAi(openai) => {
            Arc::new(OpenAiCompatible::new(openai.clone()).map_err(in_key)?)
        }
        ProviderConfig::Local(local) => {
            if local.threads == 0 || local.context_tokens == 0 || local.max_tokens == 0 {
                return Err(config_error(format!(
                    "models.providers.{name}: threads, context_tokens and max_tokens must be at \
                     least 1"
                )));
            }
            let path = if local.path.is_absolute() {
                local.path.clone()
            } else {
                models_dir.join(&local.path)
            };
            let options = LocalGemmaOptions {
                threads: local.threads,
                context_tokens: local.context_tokens,
                default_max_tokens: local.max_tokens,
                prompt_format: local.prompt_format.into(),
                ..LocalGemmaOptions::default()
            };
            Arc::new(LocalGemma::load(&path, options).map_err(in_key)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelsSection, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_section_configures_nothing() {
        let section = parse("{}").unwrap();
        let registry = ModelRegistry::build(&section, Path::new("models")).unwrap();
        assert!(registry.is_empty());
        assert!(registry.for_role(ModelRegistry::ROUTER).is_none());
        assert!(ModelRegistry::default().for_role("order").is_none());
    }

    #[test]
    fn serialising_redacts_secrets_and_keeps_the_rest() {
        let text = r#"{"default": "h", "providers": {"h": {"kind": "openai",
            "base_url": "http://h/v1", "model": "m", "api_key": "sk-ser-secret",
            "headers": {"x-gw": "gw-secret"}, "timeout": 7},
            "l": {"kind": "local", "threads": 2}},
            "chains": {"c": {"providers": ["h", "l"]}}}"#;
        let section = parse(text).unwrap();
        let shown = serde_json::to_string(&section).unwrap();
        assert!(!shown.contains("sk-ser-secret") && !shown.contains("gw-secret"), "{shown}");
        assert!(shown.contains(r#""kind":"openai""#) && shown.contains(r#""timeout":7.0"#));
        let back: ModelsSection = serde_json::from_str(&shown).unwrap();
        assert_eq!(back.chains, section.chains);
        assert_eq!(back.providers["l"], section.providers["l"]);
        assert_ne!(back.providers["h"], section.providers["h"], "secrets do not round-trip");
        assert_eq!(section.clone(), section);
        let empty = serde_json::to_value(ModelsSection::default()).unwrap();
        assert_eq!(empty, serde_json::json!({"roles": {}, "providers": {}, "chains": {}}));
    }

    #[test]
    fn unused_providers_are_not_built() {
        // A local model whose file does not exist: fine as long as nothing uses it.
        let section =
            parse(r#"{"providers": {"l": {"kind": "local", "path": "/nope.gguf"}}}"#).unwrap();
        assert!(ModelRegistry::build(&section, Path::new("models")).is_ok());
        let section = parse(
            r#"{"default": "l", "providers": {"l": {"kind": "local", "path": "/nope.gguf"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            ModelRegistry::build(&section, Path::new("models")),
            Err(ModelLoadError::Missing { .. })
        ));
    }
}
