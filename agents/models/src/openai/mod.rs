//! Hosted models over the OpenAI-compatible HTTP API (`/v1/chat/completions`, `/v1/embeddings`).
//!
//! OpenAI, DeepSeek, vLLM, Ollama and fenliu's own local server all speak this protocol, so one
//! client covers them; [`OpenAiConfig`] says where and how.
//!
//! # Layout
//! - this file: [`OpenAiConfig`], [`Secret`], the shared client, error mapping and the retry loop;
//! - `transport`: the HTTP transport installed under async-openai (status errors with their
//!   `Retry-After`, the end-of-stream check);
//! - `chat`: [`OpenAiCompatible`], the [`ChatModel`](fenliu_agent::ChatModel);
//! - `embed`: [`OpenAiEmbedder`], the [`Embedder`](fenliu_knowledge::Embedder).
//!
//! # Why a transport of our own under async-openai
//! async-openai 0.43 builds the requests and parses the answers, but its error path drops the
//! response headers (so a final `429` loses its `Retry-After`), its retry layer reads only
//! integer `Retry-After` values, has no jitter and no cap, and its SSE reader ends a stream the
//! same way whether the provider sent `data: [DONE]` or the connection just closed. With the
//! `middleware` feature we install our own tower service as the HTTP executor: it turns error
//! statuses into `transport::HttpStatus` (status, provider message, `Retry-After`) and fails a
//! stream that closes before `[DONE]`. Retries live here, in `Resilience::run`, because only
//! the call knows its deadline.
//!
//! # Cancellation
//! Every future and stream here is cancel-safe by dropping: dropping a `chat` future aborts the
//! HTTP request (and any backoff sleep); dropping a [`ChatStream`](fenliu_agent::ChatStream)
//! closes the connection, so the provider stops generating (and billing). Nothing here returns
//! [`ModelError::Cancelled`]: a dropped call has nobody to return to. The client needs a tokio
//! runtime.

mod chat;
mod embed;
mod transport;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_openai::error::OpenAIError;
use fenliu_agent::ModelError;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::ModelLoadError;

pub use chat::OpenAiCompatible;
pub use embed::{OpenAiEmbedder, OpenAiEmbedderOptions};

/// A secret string (an API key): its `Debug` and `Display` print `[REDACTED]`, it is never
/// serialised, and its memory is zeroed on drop.
#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself: only for putting it on the wire.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether no secret is set (local servers such as Ollama need none).
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Replaces every occurrence of the secret in `text`, for messages that may echo it.
    pub(crate) fn scrub(&self, text: String) -> String {
        if self.is_empty() || !text.contains(self.expose()) {
            text
        } else {
            text.replace(self.expose(), "[REDACTED]")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// Which request field carries the token limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: understood by DeepSeek, vLLM, Ollama and OpenAI's non-reasoning models.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: required by OpenAI's reasoning models.
    MaxCompletionTokens,
}

/// Where an OpenAI-compatible model lives and how hard to try reaching it.
///
/// Deserialisable from the configuration file; durations are given in seconds (`timeout = 30`,
/// `idle_timeout = 2.5`). `Debug` never shows the API key nor extra header values.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// API root including the version, e.g. `https://api.openai.com/v1`,
    /// `https://api.deepseek.com/v1`, `http://localhost:8000/v1` (vLLM),
    /// `http://localhost:11434/v1` (Ollama).
    pub base_url: String,
    /// Sent as `Authorization: Bearer …`; empty sends no `Authorization` header.
    #[serde(default)]
    pub api_key: Secret,
    /// The provider's model name, e.g. `gpt-4o-mini`, `deepseek-chat`, `qwen2.5:7b`.
    pub model: String,
    /// Identifier reported by `model_id()` (circuit breakers and logs key on it); defaults to
    /// `openai:{model}`. Set it when two endpoints serve a model of the same name.
    #[serde(default)]
    pub id: Option<String>,
    /// Extra headers on every request (gateways, `OpenAI-Organization`, `api-key` for Azure-style
    /// proxies). Values are treated as secrets in `Debug`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deadline for a whole call, retries and backoff included; for a stream, until its last
    /// event.
    #[serde(default = "defaults::timeout", with = "secs")]
    pub timeout: Duration,
    /// Longest silence tolerated between two stream chunks (and before the first one) before the
    /// stream fails with [`ModelError::Timeout`]: a stalled provider is detected long before the
    /// whole-call deadline.
    #[serde(default = "defaults::idle_timeout", with = "secs")]
    pub idle_timeout: Duration,
    /// Time allowed to open a TCP/TLS connection.
    #[serde(default = "defaults::connect_timeout", with = "secs")]
    pub connect_timeout: Duration,
    /// Retries after the first attempt, on 429, 5xx and refused connections; never on other 4xx.
    #[serde(default = "defaults::max_retries")]
    pub max_retries: u32,
    /// First backoff delay; doubled at each retry, with jitter, up to `backoff_max`.
    #[serde(default = "defaults::backoff_base", with = "secs")]
    pub backoff_base: Duration,
    /// Longest backoff delay.
    #[serde(default = "defaults::backoff_max", with = "secs")]
    pub backoff_max: Duration,
    /// Longest `Retry-After` we wait for. A provider asking for more gets no retry: the call
    /// fails at once with [`ModelError::RateLimited`] carrying the provider's delay, so that a
    /// fallback chain can move on instead of holding a customer for minutes.
    #[serde(default = "defaults::max_retry_after", with = "secs")]
    pub max_retry_after: Duration,
    /// Which field carries `max_tokens`.
    #[serde(default)]
    pub max_tokens_field: MaxTokensField,
}

mod defaults {
    use std::time::Duration;

    // A customer waits for the answer: a minute is already generous for one model call.
    pub(super) fn timeout() -> Duration {
        Duration::from_secs(60)
    }
    // Providers stream several chunks per second; 20 s of silence (prompt processing of long
    // contexts included) means the stream is stuck.
    pub(super) fn idle_timeout() -> Duration {
        Duration::from_secs(20)
    }
    pub(super) fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn max_retries() -> u32 {
        2
    }
    pub(super) fn backoff_base() -> Duration {
        Duration::from_millis(500)
    }
    pub(super) fn backoff_max() -> Duration {
        Duration::from_secs(8)
    }
    pub(super) fn max_retry_after() -> Duration {
        Duration::from_secs(20)
    }
}

/// Durations as a number of seconds in configuration files.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

impl OpenAiConfig {
    /// A configuration with default timeouts and retries and no API key.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: Secret::default(),
            model: model.into(),
            id: None,
            headers: BTreeMap::new(),
            timeout: defaults::timeout(),
            idle_timeout: defaults::idle_timeout(),
            connect_timeout: defaults::connect_timeout(),
            max_retries: defaults::max_retries(),
            backoff_base: defaults::backoff_base(),
            backoff_max: defaults::backoff_max(),
            max_retry_after: defaults::max_retry_after(),
            max_tokens_field: MaxTokensField::default(),
        }
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, key: impl Into<Secret>) -> Self {
        self.api_key = key.into();
        self
    }

    /// Adds an extra header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The identifier `model_id()` reports.
    pub fn model_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| format!("openai:{}", self.model))
    }

    fn header_map(&self) -> Result<HeaderMap, ModelLoadError> {
        let mut headers = HeaderMap::new();
        if !self.api_key.is_empty() {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", self.api_key.expose()))
                .map_err(|_| {
                    ModelLoadError::Config(
                        "the API key contains characters not allowed in a header".into(),
                    )
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ModelLoadError::Config(format!("invalid header name {name:?}")))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                ModelLoadError::Config(format!("header {name} has an invalid value"))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }

    fn validate(&self) -> Result<(), ModelLoadError> {
        let url = self.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ModelLoadError::Config(format!(
                "base_url {url:?} must start with http:// or https://"
            )));
        }
        if self.model.trim().is_empty() {
            return Err(ModelLoadError::Config("model name is empty".into()));
        }
        if self.timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(ModelLoadError::Config("timeouts must be positive".into()));
        }
        Ok(())
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("model", &self.model)
            .field("id", &self.id)
            .field("headers", &self.headers.keys().map(|k| (k, "[REDACTED]")).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("max_retry_after", &self.max_retry_after)
            .field("max_tokens_field", &self.max_tokens_field)
            .finish()
    }
}

/// async-openai's view of our configuration: base URL and headers, nothing from the environment
/// (its own `OpenAIConfig` reads `OPENAI_*` variables, which would leak an organisation header to
/// DeepSeek or a local server).
#[derive(Clone)]
struct ApiConfig {
    base: String,
    key: SecretString,
    headers: HeaderMap,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("base", &self.base)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl async_openai::config::Config for ApiConfig {
    fn headers(&self) -> HeaderMap {
        self.headers.clone()
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }
    fn api_base(&self) -> &str {
        &self.base
    }
    fn api_key(&self) -> &SecretString {
        &self.key
    }
}

/// The async-openai client over our transport, shared by chat and embeddings.
type Client = async_openai::Client<ApiConfig>;

fn build_client(config: &OpenAiConfig) -> Result<Client, ModelLoadError> {
    config.validate()?;
    let http = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!("fenliu/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ModelLoadError::Config(format!("HTTP client: {e}")))?;
    let api = ApiConfig {
        base: config.base_url.trim().trim_end_matches('/').to_owned(),
        key: SecretString::from(config.api_key.expose().to_owned()),
        headers: config.header_map()?,
    };
    Ok(async_openai::Client::build(http.clone(), api)
        .with_http_service(transport::Transport::new(http)))
}

/// A failed attempt: the error the caller sees, and the provider's requested pause.
#[derive(Debug)]
struct Failure {
    error: ModelError,
    retry_after: Option<Duration>,
}

impl From<ModelError> for Failure {
    fn from(error: ModelError) -> Self {
        Self { error, retry_after: None }
    }
}

/// Longest provider text kept in an error message.
const MAX_MESSAGE_CHARS: usize = 300;

fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Maps async-openai's errors (and our transport's) onto [`ModelError`], scrubbing the key.
fn map_error(error: OpenAIError, key: &Secret) -> Failure {
    let failure = match error {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<transport::HttpStatus>() {
            Ok(status) => status.into_failure(),
            Err(other) => ModelError::Unavailable(other.to_string()).into(),
        },
        OpenAIError::Reqwest(e) => reqwest_error(e).into(),
        OpenAIError::ApiError(e) => {
            let status = e.status_code.as_u16();
            if status == 429 {
                Failure { error: ModelError::RateLimited { retry_after: None }, retry_after: None }
            } else {
                ModelError::Provider { status, message: shorten(&e.api_error.message) }.into()
            }
        }
        OpenAIError::JSONDeserialize(e, content) => {
            ModelError::InvalidResponse(format!("{e} in {:?}", shorten(&content))).into()
        }
        OpenAIError::StreamError(e) => {
            // async-openai keeps only the top-level text of the transport error (for a stream
            // closed before `[DONE]`: "error decoding response body").
            ModelError::InvalidResponse(format!("the stream broke off: {e}")).into()
        }
        OpenAIError::InvalidArgument(m) => ModelError::InvalidRequest(m).into(),
        other => ModelError::Unavailable(other.to_string()).into(),
    };
    Failure { error: scrub_error(failure.error, key), retry_after: failure.retry_after }
}

fn reqwest_error(e: reqwest::Error) -> ModelError {
    // `without_url`: the URL may carry credentials in its user-info part.
    let e = e.without_url();
    let shown = format!("{}", WithSource(&e));
    if e.is_connect() {
        ModelError::Unavailable(format!("cannot connect: {shown}"))
    } else if e.is_decode() || e.is_body() {
        ModelError::InvalidResponse(shown)
    } else {
        ModelError::Unavailable(shown)
    }
}

/// Displays an error with its chain of causes (reqwest's top-level message is vague).
struct WithSource<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

fn scrub_error(error: ModelError, key: &Secret) -> ModelError {
    match error {
        ModelError::Provider { status, message } => {
            ModelError::Provider { status, message: key.scrub(message) }
        }
        ModelError::InvalidResponse(m) => ModelError::InvalidResponse(key.scrub(m)),
        ModelError::InvalidRequest(m) => ModelError::InvalidRequest(key.scrub(m)),
        ModelError::Unavailable(m) => ModelError::Unavailable(key.scrub(m)),
        other => other,
    }
}

/// Deadline, retries and backoff around one logical call.
#[derive(Debug, Clone)]
struct Resilience {
    timeout: Duration,
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
    model_id: String,
}

impl Resilience {
    fn new(config: &OpenAiConfig) -> Self {
        Self {
            timeout: config.timeout,
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            backoff_max: config.backoff_max,
            max_retry_after: config.max_retry_after,
            model_id: config.model_id(),
        }
    }

    /// The pause before retry number `retry` (0-based) after `failure`, or `None` to give up.
    fn delay(&self, retry: u32, failure: &Failure) -> Option<Duration> {
        let retryable = match &failure.error {
            ModelError::RateLimited { .. } | ModelError::Unavailable(_) => true,
            ModelError::Provider { status, .. } => *status >= 500,
            _ => false,
        };
        if !retryable || retry >= self.max_retries {
            return None;
        }
        if let Some(asked) = failure.retry_after {
            if asked > self.max_retry_after {
                return None;
            }
            // Never earlier than asked; up to 10 % later so that clients told the same instant
            // do not all come back at once.
            return Some(asked + asked.mul_f64(rand::random::<f64>() * 0.1));
        }
        let exp = self.backoff_base.saturating_mul(1u32 << retry.min(16)).min(self.backoff_max);
        // "Equal jitter": half fixed, half random.
        Some(exp / 2 + exp.mul_f64(rand::random::<f64>() * 0.5))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the deadline passes.
    async fn run<T, F, Fut>(
        &self,
        deadline: tokio::time::Instant,
        mut attempt: F,
    ) -> Result<T, ModelError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut retry = 0;
        loop {
            let failure = match tokio::time::timeout_at(deadline, attempt()).await {
                Err(_) => return Err(ModelError::Timeout(self.timeout)),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
            };
            let Some(delay) = self.delay(retry, &failure) else {
                return Err(failure.error);
            };
            if tokio::time::Instant::now() + delay >= deadline {
                // Waiting would only turn the real cause into a timeout.
                return Err(failure.error);
            }
            tracing::debug!(
                model = %self.model_id,
                retry = retry + 1,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %failure.error,
                "retrying model call"
            );
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resilience() -> Resilience {
        Resilience::new(&OpenAiConfig::new("http://localhost/v1", "m"))
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let config = OpenAiConfig::new("http://x/v1", "m")
            .with_api_key("sk-very-secret")
            .with_header("x-gateway-token", "gw-secret");
        let shown = format!("{config:?} {} {:?}", config.api_key, config.api_key);
        assert!(!shown.contains("sk-very-secret") && !shown.contains("gw-secret"), "{shown}");
        assert!(shown.contains("x-gateway-token"));
        assert_eq!(config.api_key.scrub("key sk-very-secret!".into()), "key [REDACTED]!");
    }

    #[test]
    fn config_reads_seconds_and_defaults() {
        let config: OpenAiConfig = serde_json::from_value(serde_json::json!({
            "base_url": "http://localhost:11434/v1",
            "model": "qwen2.5",
            "api_key": "k",
            "timeout": 12.5,
            "max_tokens_field": "max_completion_tokens"
        }))
        .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(12_500));
        assert_eq!(config.idle_timeout, defaults::idle_timeout());
        assert_eq!(config.api_key.expose(), "k");
        assert_eq!(config.max_tokens_field, MaxTokensField::MaxCompletionTokens);
        assert_eq!(config.model_id(), "openai:qwen2.5");
        assert!(
            serde_json::from_value::<OpenAiConfig>(serde_json::json!({
                "base_url": "http://x", "model": "m", "bogus": 1
            }))
            .is_err()
        );
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert!(build_client(&OpenAiConfig::new("localhost:8000", "m")).is_err());
        assert!(build_client(&OpenAiConfig::new("http://localhost", " ")).is_err());
        let bad_header = OpenAiConfig::new("http://localhost", "m").with_header("bad name", "v");
        assert!(build_client(&bad_header).is_err());
        let bad_key = OpenAiConfig::new("http://localhost", "m").with_api_key("a\nb");
        let err = build_client(&bad_key).unwrap_err().to_string();
        assert!(!err.contains("a\nb"));
    }

    #[test]
    fn backoff_grows_with_jitter_and_stops() {
        let r = resilience();
        let server = Failure::from(ModelError::Provider { status: 503, message: String::new() });
        for retry in 0..2 {
            let d = r.delay(retry, &server).unwrap();
            let exp = r.backoff_base * (1 << retry);
            assert!(d >= exp / 2 && d <= exp, "{d:?} for retry {retry}");
        }
        assert_eq!(r.delay(2, &server), None, "max_retries reached");
        let client = Failure::from(ModelError::Provider { status: 400, message: String::new() });
        assert_eq!(r.delay(0, &client), None);
        assert_eq!(r.delay(0, &Failure::from(ModelError::InvalidResponse(String::new()))), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let r = resilience();
        let asked = |secs| Failure {
            error: ModelError::RateLimited { retry_after: Some(Duration::from_secs(secs)) },
            retry_after: Some(Duration::from_secs(secs)),
        };
        let d = r.delay(0, &asked(3)).unwrap();
        assert!(d >= Duration::from_secs(3) && d <= Duration::from_millis(3_300), "{d:?}");
        assert_eq!(r.delay(0, &asked(3_600)), None, "beyond max_retry_after");
    }
}
