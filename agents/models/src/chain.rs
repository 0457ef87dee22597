//! Fallback chains of chat models guarded by circuit breakers.
//!
//! A [`FallbackChain`] is itself a [`ChatModel`]: it asks its providers in order (e.g. hosted →
//! local) and returns the first answer. Each provider sits behind a [`CircuitBreaker`]: after
//! `failures` availability failures within `window`, the provider is skipped for `cool_down`,
//! then one probe call is let through; a probe that succeeds closes the breaker again.
//!
//! # Which errors move on to the next provider
//! | error | next provider? | counts against the breaker? |
//! |---|---|---|
//! | `Timeout`, `RateLimited`, `Unavailable`, `Provider` 5xx ([`ModelError::is_retryable`]) | yes | yes |
//! | `InvalidResponse` (bad JSON, schema violation, truncated stream) | yes | no: the provider answered |
//! | `InvalidRequest`, `Provider` 4xx | **no**: returned unchanged | no |
//! | `Cancelled` | no: returned unchanged | no |
//!
//! A request a provider rejects (too long, bad schema, refused by a content policy) is our
//! request's fault: the next provider would most likely reject it too, or worse answer what the
//! first one refused, and retrying would hide the bug. A provider that cannot serve a role at all
//! (the local base model cannot call tools) does not belong in that role's chain.
//!
//! When every provider fails or is skipped the chain answers [`ModelError::Unavailable`] with one
//! line per provider (its error or why it was skipped; provider errors are already scrubbed of
//! API keys). That is where the *templated reply + escalation* step of "hosted → local →
//! template" happens: callers treat `Unavailable` as "no model" and take their deterministic path
//! (the router skips its LLM stage; agents answer from templates and escalate).
//!
//! # Streaming
//! [`ChatModel::chat_stream`] falls back only while nothing has reached the caller: a provider
//! whose call fails, or whose stream fails or ends before its first event, is skipped like a
//! failed `chat`. Once the first event is out the chain is committed to that provider; a later
//! error is passed through (and, when retryable, recorded on its breaker).
//!
//! # Observability
//! A `chat` answer's `model` field becomes `"{provider}/{model}"` (e.g.
//! `hosted/gpt-4o-mini-2024-07-18`, `local/local:gemma-3-270m`). Every fallback is logged at
//! `warn`, breaker transitions at `info`/`warn`, the answering provider at `debug`;
//! [`FallbackChain::status`] reports each breaker for health endpoints.
//!
//! # Breaker scope
//! A breaker belongs to one entry of one chain: a provider listed in two chains has two breakers
//! (each chain has its own thresholds). Breakers are cheap to clone and clones share their state.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fenliu_agent::{ChatModel, ChatRequest, ChatResponse, ChatStream, DynChatModel, ModelError};
use futures::StreamExt;

// ---------------------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------------------

/// A source of the current time, injectable so that breakers can be tested without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: for tests and simulations. Clones share their time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    offset: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// A clock standing at the moment of its creation.
    pub fn new() -> Self {
        Self { start: Instant::now(), offset: Arc::default() }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset = offset.saturating_add(by);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------------------------

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Availability failures within `window` that open the breaker (at least 1).
    pub failures: u32,
    /// How far back failures are counted.
    pub window: Duration,
    /// How long an open breaker skips its provider before letting one probe through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    /// 3 failures within 60 s open the breaker for 30 s.
    fn default() -> Self {
        Self { failures: 3, window: Duration::from_secs(60), cool_down: Duration::from_secs(30) }
    }
}

/// A breaker's state, as reported by [`CircuitBreaker::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `recent_failures` failures lie within the window.
    Closed {
        /// Failures within the window so far.
        recent_failures: u32,
    },
    /// Calls are skipped for `remaining` longer.
    Open {
        /// Time left in the cool-down.
        remaining: Duration,
    },
    /// The cool-down is over: the next call is a probe (or one is under way).
    HalfOpen {
        /// Whether a probe call is running now.
        probing: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct BreakerInner {
    phase: Phase,
    failures: VecDeque<Instant>,
}

/// Closed → open after [`BreakerConfig::failures`] failures within [`BreakerConfig::window`];
/// open skips calls for [`BreakerConfig::cool_down`]; then half-open lets exactly one probe
/// through: its success closes the breaker, its failure opens it for another cool-down.
///
/// In the closed state successes do not erase failures: failures age out of the window. Results
/// of calls admitted before the breaker opened (still running when it did) are ignored while it
/// is open or half-open; only the probe decides.
///
/// Use it through [`try_acquire`](Self::try_acquire): the [`Permit`] it returns records the
/// outcome; a permit dropped without an outcome (the call was cancelled) records nothing, and a
/// dropped probe lets the next call probe instead.
#[derive(Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    /// `chain:provider` once in a chain, for the logs.
    label: Arc<str>,
    inner: Arc<Mutex<BreakerInner>>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker on the system clock. `failures` below 1 is raised to 1.
    pub fn new(config: BreakerConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A closed breaker on `clock`.
    pub fn with_clock(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        let config = BreakerConfig { failures: config.failures.max(1), ..config };
        Self {
            config,
            clock,
            label: Arc::from(""),
            inner: Arc::new(Mutex::new(BreakerInner {
                phase: Phase::Closed,
                failures: VecDeque::new(),
            })),
        }
    }

    /// The thresholds in force.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, BreakerInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state (an expired cool-down shows as half-open).
    pub fn state(&self) -> BreakerState {
        let now = self.clock.now();
        let mut inner = self.lock();
        match inner.phase {
            Phase::Closed => {
                prune(&mut inner.failures, now, self.config.window);
                BreakerState::Closed {
                    recent_failures: u32::try_from(inner.failures.len()).unwrap_or(u32::MAX),
                }
            }
            Phase::Open { until } if now < until => {
                BreakerState::Open { remaining: until.saturating_duration_since(now) }
            }
            Phase::Open { .. } => BreakerState::HalfOpen { probing: false },
            Phase::HalfOpen { probing } => BreakerState::HalfOpen { probing },
        }
    }

    /// Asks to make a call: `None` while the breaker is open, or half-open with its probe under
    /// way.
    pub fn try_acquire(&self) -> Option<Permit> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let probe = match inner.phase {
            Phase::Closed => false,
            Phase::Open { until } if now < until => return None,
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                inner.phase = Phase::HalfOpen { probing: true };
                true
            }
            Phase::HalfOpen { probing: true } => return None,
        };
        Some(Permit { breaker: self.clone(), probe, settled: false })
    }

    fn record(&self, probe: bool, success: bool) {
        let now = self.clock.now();
        let mut inner = self.lock();
        match (inner.phase, probe, success) {
            (Phase::Closed, _, true) => {}
            (Phase::Closed, _, false) => {
                inner.failures.push_back(now);
                prune(&mut inner.failures, now, self.config.window);
                if inner.failures.len() >= self.config.failures as usize {
                    inner.failures.clear();
                    inner.phase = Phase::Open { until: now + self.config.cool_down };
                    tracing::warn!(
                        breaker = %self.label,
                        failures = self.config.failures,
                        window_s = self.config.window.as_secs_f64(),
                        cool_down_s = self.config.cool_down.as_secs_f64(),
                        "circuit opened"
                    );
                }
            }
            (Phase::HalfOpen { .. }, true, true) => {
                inner.failures.clear();
                inner.phase = Phase::Closed;
                tracing::info!(breaker = %self.label, "circuit closed: the probe succeeded");
            }
            (Phase::HalfOpen { .. }, true, false) => {
                inner.phase = Phase::Open { until: now + self.config.cool_down };
                tracing::warn!(
                    breaker = %self.label,
                    cool_down_s = self.config.cool_down.as_secs_f64(),
                    "circuit re-opened: the probe failed"
                );
            }
            // Late results of calls admitted before the breaker opened.
            (Phase::Open { .. } | Phase::HalfOpen { .. }, _, _) => {}
        }
    }

    /// Records a failure outside a permit (a committed stream failing later): counts like a
    /// failure in the closed state, ignored otherwise.
    fn record_late_failure(&self) {
        self.record(false, false);
    }

    fn release_probe(&self) {
        let mut inner = self.lock();
        if let Phase::HalfOpen { probing: true } = inner.phase {
            inner.phase = Phase::HalfOpen { probing: false };
        }
    }
}

fn prune(failures: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while failures.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
        failures.pop_front();
    }
}

/// Leave to make one call through a [`CircuitBreaker`]; report how it went.
#[derive(Debug)]
#[must_use = "a permit records the call's outcome; dropping it records nothing"]
pub struct Permit {
    breaker: CircuitBreaker,
    probe: bool,
    settled: bool,
}

impl Permit {
    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The provider answered (with an answer, or with an error that proves it reachable).
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.record(self.probe, true);
    }

    /// The provider was unavailable (timeout, rate limit, 5xx, refused connection).
    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.release_probe();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fallback chain
// ---------------------------------------------------------------------------------------------

struct Provider {
    name: String,
    model: Arc<dyn DynChatModel>,
    breaker: CircuitBreaker,
}

/// One provider of a chain and its breaker, as reported by [`FallbackChain::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The provider's name in the chain (the configuration key).
    pub name: String,
    /// The model's [`ChatModel::model_id`].
    pub model_id: String,
    /// Its breaker.
    pub state: BreakerState,
}

/// Ordered providers tried in turn, each behind its own [`CircuitBreaker`]; a [`ChatModel`].
/// See the [module documentation](self) for which errors move on.
pub struct FallbackChain {
    id: String,
    providers: Vec<Provider>,
}

impl fmt::Debug for FallbackChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackChain")
            .field("id", &self.id)
            .field("providers", &self.status())
            .finish()
    }
}

/// What the chain does with a provider's error.
enum Verdict {
    /// Try the next provider; `unavailable` says whether the breaker records a failure.
    Next { unavailable: bool },
    /// Return the error unchanged.
    Stop,
}

fn verdict(error: &ModelError) -> Verdict {
    if error.is_retryable() {
        Verdict::Next { unavailable: true }
    } else if matches!(error, ModelError::InvalidResponse(_)) {
        Verdict::Next { unavailable: false }
    } else {
        Verdict::Stop
    }
}

/// Longest error text kept per provider in the summary.
const MAX_ERROR_CHARS: usize = 200;

fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_ERROR_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

impl FallbackChain {
    /// An empty chain named `name` (its [`model_id`](ChatModel::model_id) is `chain:{name}`).
    pub fn new(name: &str) -> Self {
        Self { id: format!("chain:{name}"), providers: Vec::new() }
    }

    /// Appends a provider, tried after those already added.
    pub fn with_provider(
        mut self,
        name: impl Into<String>,
        model: Arc<dyn DynChatModel>,
        mut breaker: CircuitBreaker,
    ) -> Self {
        let name = name.into();
        breaker.label = Arc::from(format!("{}/{name}", self.id));
        self.providers.push(Provider { name, model, breaker });
        self
    }

    /// The number of providers.
    pub fn len(&self) -> usize {
        self.providers.len()
    }

    /// Whether the chain has no provider (it then always answers `Unavailable`).
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Each provider's breaker, in chain order.
    pub fn status(&self) -> Vec<ProviderStatus> {
        self.providers
            .iter()
            .map(|p| ProviderStatus {
                name: p.name.clone(),
                model_id: p.model.model_id().to_owned(),
                state: p.breaker.state(),
            })
            .collect()
    }

    /// The breaker of provider `name`.
    pub fn breaker(&self, name: &str) -> Option<&CircuitBreaker> {
        self.providers.iter().find(|p| p.name == name).map(|p| &p.breaker)
    }

    /// Handles a provider's error: `Err` to stop with it, `Ok` after noting it to move on.
    fn on_error(
        &self,
        provider: &Provider,
        permit: Permit,
        error: ModelError,
        attempts: &mut Vec<String>,
    ) -> Result<(), ModelError> {
        match verdict(&error) {
            Verdict::Stop => {
                if matches!(error, ModelError::Cancelled) {
                    drop(permit);
                } else {
                    permit.success();
                }
                if !attempts.is_empty() {
                    tracing::warn!(
                        chain = %self.id,
                        provider = %provider.name,
                        earlier = %attempts.join("; "),
                        error = %error,
                        "provider rejected the request after fallbacks; not trying further"
                    );
                }
                Err(error)
            }
            Verdict::Next { unavailable } => {
                if unavailable {
                    permit.failure();
                } else {
                    permit.success();
                }
                tracing::warn!(
                    chain = %self.id,
                    provider = %provider.name,
                    error = %error,
                    "provider failed; falling back"
                );
                attempts.push(format!("{}: {}", provider.name, shorten(&error.to_string())));
                Ok(())
            }
        }
    }

    fn skipped(&self, provider: &Provider, attempts: &mut Vec<String>) {
        let why = match provider.breaker.state() {
            BreakerState::Open { remaining } => {
                format!("skipped, circuit open ({}s of cool-down left)", remaining.as_secs())
            }
            _ => "skipped, circuit half-open with a probe under way".to_owned(),
        };
        tracing::debug!(chain = %self.id, provider = %provider.name, "{why}");
        attempts.push(format!("{}: {why}", provider.name));
    }

    fn exhausted(&self, attempts: &[String]) -> ModelError {
        if attempts.is_empty() {
            return ModelError::Unavailable(format!("{} has no providers", self.id));
        }
        let summary = format!(
            "all {} providers of {} failed: {}",
            self.providers.len(),
            self.id,
            attempts.join("; ")
        );
        tracing::warn!(chain = %self.id, "{summary}");
        ModelError::Unavailable(summary)
    }

    fn answered(&self, provider: &Provider, fallbacks: usize) {
        if fallbacks == 0 {
            tracing::debug!(chain = %self.id, provider = %provider.name, "chain answered");
        } else {
            tracing::info!(
                chain = %self.id,
                provider = %provider.name,
                fallbacks,
                "chain answered after falling back"
            );
        }
    }
}

impl ChatModel for FallbackChain {
    fn model_id(&self) -> &str {
        &self.id
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        let mut attempts = Vec::new();
        for provider in &self.providers {
            let Some(permit) = provider.breaker.try_acquire() else {
                self.skipped(provider, &mut attempts);
                continue;
            };
            match provider.model.chat(request.clone()).await {
                Ok(mut response) => {
                    permit.success();
                    self.answered(provider, attempts.len());
                    response.model = format!("{}/{}", provider.name, response.model);
                    return Ok(response);
                }
                Err(error) => self.on_error(provider, permit, error, &mut attempts)?,
            }
        }
        Err(self.exhausted(&attempts))
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ModelError> {
        let mut attempts = Vec::new();
        for provider in &self.providers {
            let Some(permit) = provider.breaker.try_acquire() else {
                self.skipped(provider, &mut attempts);
                continue;
            };
            let mut stream = match provider.model.chat_stream(request.clone()).await {
                Ok(stream) => stream,
                Err(error) => {
                    self.on_error(provider, permit, error, &mut attempts)?;
                    continue;
                }
            };
            match stream.next().await {
                Some(Ok(first)) => {
                    permit.success();
                    self.answered(provider, attempts.len());
                    let breaker = provider.breaker.clone();
                    let rest = stream.inspect(move |item| {
                        if let Err(e) = item
                            && e.is_retryable()
                        {
                            breaker.record_late_failure();
                        }
                    });
                    return Ok(Box::pin(futures::stream::iter([Ok(first)]).chain(rest)));
                }
                Some(Err(error)) => self.on_error(provider, permit, error, &mut attempts)?,
                None => {
                    let error =
                        ModelError::InvalidResponse("stream ended before its first event".into());
                    self.on_error(provider, permit, error, &mut attempts)?;
                }
            }
        }
        Err(self.exhausted(&attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(clock: &ManualClock) -> CircuitBreaker {
        CircuitBreaker::with_clock(
            BreakerConfig {
                failures: 3,
                window: Duration::from_secs(10),
                cool_down: Duration::from_secs(30),
            },
            Arc::new(clock.clone()),
        )
    }

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().unwrap().failure();
    }

    #[test]
    fn opens_after_n_failures_within_the_window() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed { recent_failures: 2 });
        // Successes do not erase failures.
        b.try_acquire().unwrap().success();
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open { remaining: Duration::from_secs(30) });
        assert!(b.try_acquire().is_none());
    }

    #[test]
    fn failures_age_out_of_the_window() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        fail(&b);
        fail(&b);
        clock.advance(Duration::from_secs(10));
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed { recent_failures: 1 });
        clock.advance(Duration::from_secs(9));
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed { recent_failures: 2 });
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        (0..3).for_each(|_| fail(&b));
        clock.advance(Duration::from_secs(29));
        assert!(b.try_acquire().is_none());
        assert_eq!(b.state(), BreakerState::Open { remaining: Duration::from_secs(1) });
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: false });

        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        assert!(b.try_acquire().is_none(), "only one probe at a time");
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: true });

        // A failed probe re-opens for a whole cool-down.
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open { remaining: Duration::from_secs(30) });
        clock.advance(Duration::from_secs(30));

        // A cancelled probe frees the slot for the next caller.
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: false });

        let probe = b.try_acquire().unwrap();
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed { recent_failures: 0 });
        assert!(!b.try_acquire().unwrap().is_probe());
    }

    #[test]
    fn late_results_do_not_move_an_open_breaker() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        let slow = b.try_acquire().unwrap();
        (0..3).for_each(|_| fail(&b));
        slow.success();
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        clock.advance(Duration::from_secs(30));
        let probe = b.try_acquire().unwrap();
        b.record_late_failure();
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: true });
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed { recent_failures: 0 });
    }

    #[test]
    fn zero_failures_means_one() {
        let clock = ManualClock::new();
        let b = CircuitBreaker::with_clock(
            BreakerConfig { failures: 0, ..BreakerConfig::default() },
            Arc::new(clock),
        );
        assert_eq!(b.config().failures, 1);
        fail(&b);
        assert!(b.try_acquire().is_none());
    }

    #[test]
    fn verdicts() {
        assert!(matches!(
            verdict(&ModelError::Timeout(Duration::from_secs(1))),
            Verdict::Next { unavailable: true }
        ));
        assert!(matches!(
            verdict(&ModelError::Provider { status: 502, message: String::new() }),
            Verdict::Next { unavailable: true }
        ));
        assert!(matches!(
            verdict(&ModelError::InvalidResponse(String::new())),
            Verdict::Next { unavailable: false }
        ));
        assert!(matches!(verdict(&ModelError::InvalidRequest(String::new())), Verdict::Stop));
        assert!(matches!(
            verdict(&ModelError::Provider { status: 400, message: String::new() }),
            Verdict::Stop
        ));
        assert!(matches!(verdict(&ModelError::Cancelled), Verdict::Stop));
    }
}
