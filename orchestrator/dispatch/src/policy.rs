//! Dispatch policy: priority points, aging, SLA targets, offer and wrap-up timers, workflow steps.

use chrono::{DateTime, TimeDelta, Utc};
use fenliu_agent::{CustomerTier, Language, Priority, Route};
use serde::{Deserialize, Serialize};

use crate::model::{HumanAgent, Level, PRIMARY_LEVEL, WorkItem};

/// First-response and resolution targets of one priority, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTarget {
    /// A person answers within this.
    pub first_response_seconds: i64,
    /// The conversation is resolved within this.
    pub resolution_seconds: i64,
}

/// SLA targets per priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaPolicy {
    /// Low.
    pub low: SlaTarget,
    /// Normal.
    pub normal: SlaTarget,
    /// High (and VIP).
    pub high: SlaTarget,
    /// Urgent.
    pub urgent: SlaTarget,
    /// A reminder goes out when this share of the first-response target has passed.
    pub reminder_at: f64,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        let t = |f, r| SlaTarget { first_response_seconds: f, resolution_seconds: r };
        Self {
            low: t(30 * 60, 48 * 3600),
            normal: t(5 * 60, 24 * 3600),
            high: t(2 * 60, 8 * 3600),
            urgent: t(60, 4 * 3600),
            reminder_at: 0.8,
        }
    }
}

impl SlaPolicy {
    /// The targets of a priority.
    pub fn target(&self, priority: Priority) -> SlaTarget {
        match priority {
            Priority::Low => self.low,
            Priority::Normal => self.normal,
            Priority::High => self.high,
            Priority::Urgent => self.urgent,
        }
    }
}

/// A TaskRouter-style workflow step: once an item has waited `after_seconds` in the queue, its
/// target widens to what this step allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowStep {
    /// Seconds in the queue before this step applies.
    pub after_seconds: i64,
    /// Lowest route-skill level accepted (3+ = primary skill, 1 = any secondary skill).
    pub min_route_level: Level,
    /// Whether a person without the customer's language may take it.
    pub any_language: bool,
    /// Whether the overflow team (generalists, any route) may take it.
    pub overflow: bool,
}

/// Everything the dispatcher's decisions depend on, apart from the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// How long a person has to accept an offer.
    pub offer_timeout_seconds: i64,
    /// Wrap-up after a conversation closes.
    pub wrap_up_seconds: i64,
    /// Priority points a waiting item gains per minute (aging: nothing waits forever behind
    /// fresher, higher-priority work of its own class).
    pub aging_points_per_minute: f64,
    /// After this long in the queue an item joins the bypass class (VIP and urgent work), so a
    /// steady stream of VIPs cannot starve everyone else.
    pub starvation_seconds: i64,
    /// Routes whose work is urgent by nature (complaints): extra points.
    pub urgent_routes: Vec<Route>,
    /// SLA targets.
    pub sla: SlaPolicy,
    /// Workflow steps, by increasing `after_seconds`; the first should start at 0.
    pub workflow: Vec<WorkflowStep>,
    /// The handle time the performance score compares against, in seconds.
    pub target_aht_seconds: f64,
    /// How far back the observed service rate looks, in seconds.
    pub rate_window_seconds: i64,
    /// Offer a callback when the expected wait exceeds this, in seconds.
    pub callback_threshold_seconds: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            offer_timeout_seconds: 30,
            wrap_up_seconds: 60,
            aging_points_per_minute: 10.0,
            starvation_seconds: 15 * 60,
            urgent_routes: vec![Route::COMPLAINT],
            sla: SlaPolicy::default(),
            workflow: vec![
                WorkflowStep {
                    after_seconds: 0,
                    min_route_level: PRIMARY_LEVEL,
                    any_language: false,
                    overflow: false,
                },
                WorkflowStep {
                    after_seconds: 60,
                    min_route_level: 1,
                    any_language: false,
                    overflow: false,
                },
                WorkflowStep {
                    after_seconds: 120,
                    min_route_level: 1,
                    any_language: true,
                    overflow: false,
                },
                WorkflowStep {
                    after_seconds: 180,
                    min_route_level: 1,
                    any_language: true,
                    overflow: true,
                },
            ],
            target_aht_seconds: 600.0,
            rate_window_seconds: 15 * 60,
            callback_threshold_seconds: 600.0,
        }
    }
}

/// Points for a priority.
fn priority_points(p: Priority) -> f64 {
    match p {
        Priority::Low => 0.0,
        Priority::Normal => 100.0,
        Priority::High => 200.0,
        Priority::Urgent => 300.0,
    }
}

impl Policy {
    /// An item's static priority points: priority, tier, route urgency and SLA risk (aging is
    /// added by [`Policy::queue_key`]).
    pub fn points(&self, item: &WorkItem) -> f64 {
        let mut points = priority_points(item.priority);
        if item.tier == CustomerTier::Vip {
            points += 150.0;
        }
        if self.urgent_routes.contains(&item.route) {
            points += 50.0;
        }
        if item.at_risk {
            points += 100.0;
        }
        points
    }

    /// The item's score at `now`: points plus aging.
    pub fn score(&self, item: &WorkItem, now: DateTime<Utc>) -> f64 {
        let waited = (now - item.enqueued_at).num_milliseconds().max(0) as f64 / 60_000.0;
        self.points(item) + self.aging_points_per_minute * waited
    }

    /// The item's place in the queue, as a key that does not change with time: ordering by
    /// `points + rate·(now − enqueued)` is ordering by `points − rate·enqueued`, whatever `now`.
    /// In milli-points, so integer keys sort exactly (and SQL can index them).
    pub fn queue_key(&self, item: &WorkItem) -> QueueKey {
        let aging =
            self.aging_points_per_minute * item.enqueued_at.timestamp_millis() as f64 / 60_000.0;
        QueueKey {
            class: u8::from(item.bypass()),
            key: ((self.points(item) - aging) * 1000.0).round() as i64,
            seq: item.seq,
        }
    }

    /// The workflow step in force for an item that entered the queue at `since`.
    pub fn step_at(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> usize {
        let waited = (now - since).num_seconds();
        self.workflow.iter().rposition(|s| s.after_seconds <= waited).unwrap_or(0)
    }

    /// Whether `agent` may be offered `item` at workflow step `step` (status and capacity are
    /// checked separately).
    pub fn eligible(&self, agent: &HumanAgent, item: &WorkItem, step: usize) -> bool {
        self.eligible_for(agent, &item.route, item.language, step)
    }

    /// [`Policy::eligible`] for work of a route and language (what the backends' queries and
    /// pre-filters need: no item at hand).
    pub fn eligible_for(
        &self,
        agent: &HumanAgent,
        route: &Route,
        language: Language,
        step: usize,
    ) -> bool {
        let Some(step) = self.workflow.get(step).or(self.workflow.first()) else {
            // No workflow: primary skills and language only.
            return agent.skills.route_level(route) >= PRIMARY_LEVEL
                && agent.skills.language_level(language) > 0;
        };
        let language = step.any_language || agent.skills.language_level(language) > 0;
        if agent.overflow {
            return step.overflow && language;
        }
        language && agent.skills.route_level(route) >= step.min_route_level.max(1)
    }

    /// The workflow steps in force: the configured ones, or (none configured) one step that
    /// takes primary skills and the customer's language from the start.
    pub fn steps(&self) -> std::borrow::Cow<'_, [WorkflowStep]> {
        if self.workflow.is_empty() {
            std::borrow::Cow::Owned(vec![WorkflowStep {
                after_seconds: 0,
                min_route_level: PRIMARY_LEVEL,
                any_language: false,
                overflow: false,
            }])
        } else {
            std::borrow::Cow::Borrowed(&self.workflow)
        }
    }

    /// How well `agent` suits `item`, higher is better: skill fit weighs most, then measured
    /// performance, then spare capacity (spreading load).
    pub fn agent_score(&self, agent: &HumanAgent, item: &WorkItem) -> f64 {
        let level = |l: Level| f64::from(l) / 5.0;
        let route = level(agent.skills.route_level(&item.route));
        let language = level(agent.skills.language_level(item.language));
        let product = match &item.product {
            Some(p) => level(agent.skills.products.get(p).copied().unwrap_or(0)),
            None => route,
        };
        let fit = 0.6 * route + 0.25 * language + 0.15 * product;
        let cap = f64::from(agent.capacity.of(item.medium).max(1));
        let spare = f64::from(agent.free(item.medium)) / cap;
        3.0 * fit + agent.performance.score(self.target_aht_seconds) + 0.5 * spare
    }

    /// When the item's next per-item timer is due (see [`Dispatcher::run_timers`]): a workflow
    /// step, the SLA reminder or a breach, or starvation promotion. Once they have run at `t`,
    /// every timer still pending is after `t`, so a backend polling this never spins.
    ///
    /// [`Dispatcher::run_timers`]: crate::Dispatcher::run_timers
    pub fn next_timer(&self, item: &WorkItem) -> Option<DateTime<Utc>> {
        use crate::model::ItemState;
        let queued = item.state == ItemState::Queued;
        let answered = !matches!(item.state, ItemState::Queued | ItemState::Offered { .. });
        let finished =
            matches!(item.state, ItemState::Completed { .. } | ItemState::Abandoned { .. });
        if finished {
            return None;
        }
        let mut due: Vec<DateTime<Utc>> = Vec::new();
        if !answered && !item.breached_first_response {
            due.push(item.first_response_due);
            if !item.reminded {
                let total = (item.first_response_due - item.enqueued_at).num_milliseconds() as f64;
                due.push(
                    item.enqueued_at
                        + TimeDelta::milliseconds((total * self.sla.reminder_at) as i64),
                );
            }
        }
        if !item.breached_resolution {
            due.push(item.resolution_due);
        }
        if queued {
            if !item.promoted && !item.bypass() {
                due.push(item.enqueued_at + Self::secs(self.starvation_seconds));
            }
            if let Some(step) = self.workflow.get(item.step + 1) {
                due.push(item.queued_since + Self::secs(step.after_seconds));
            }
        }
        due.into_iter().min()
    }

    /// A `TimeDelta` of whole seconds.
    pub(crate) fn secs(s: i64) -> TimeDelta {
        TimeDelta::try_seconds(s).unwrap_or(TimeDelta::MAX)
    }
}

/// The queue order of an item: bypass class first, then the highest aged score, then arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueKey {
    /// 1 for VIP, urgent and promoted work, 0 for the rest.
    pub class: u8,
    /// Aged score in milli-points (see [`Policy::queue_key`]).
    pub key: i64,
    /// Arrival order.
    pub seq: u64,
}

impl Ord for QueueKey {
    /// Best first: higher class, higher key, then earlier arrival.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.class.cmp(&self.class).then(other.key.cmp(&self.key)).then(self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for QueueKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
