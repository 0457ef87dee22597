//! The dispatcher's state machine: pure, single-threaded, with time passed in.
//!
//! Every operation takes `now`, so tests and the simulator drive it deterministically; the
//! backends wrap it (embedded) or reproduce its rules in SQL (PostgreSQL).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use fenliu_agent::{Language, Route};
use serde::Serialize;

use crate::error::{DispatchError, DispatchResult};
use crate::event::{Event, EventKind, SlaKind};
use crate::model::{
    AgentId, AgentStatus, HumanAgent, ItemId, ItemState, Medium, NewWorkItem, Outcome,
    TransferNote, WorkItem,
};
use crate::policy::{Policy, QueueKey};

/// A customer-facing wait estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WaitEstimate {
    /// Items ahead in the queue for the same medium (0 = next).
    pub position: usize,
    /// Expected wait from now, in seconds.
    pub expected_wait_seconds: f64,
    /// How it was estimated.
    pub method: EstimateMethod,
    /// Whether to offer the customer a callback instead of waiting.
    pub offer_callback: bool,
}

/// How a wait was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateMethod {
    /// From the service rate observed over the policy's window.
    ObservedRate,
    /// From Erlang C with the people online (too few completions observed yet).
    ErlangC,
}

/// What changed since the last [`Dispatcher::take_changes`]: what a persistent backend writes.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// People whose record changed.
    pub agents: Vec<HumanAgent>,
    /// Items whose record changed (including completed and abandoned ones, now gone).
    pub items: Vec<WorkItem>,
}

/// The in-memory dispatcher.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    policy: Policy,
    agents: BTreeMap<AgentId, HumanAgent>,
    /// Queued, offered and assigned items (finished ones leave).
    items: HashMap<ItemId, WorkItem>,
    /// Queued items in dispatch order.
    queue: BTreeMap<QueueKey, ItemId>,
    /// Each queued item's current key, to move it when its score changes.
    keys: HashMap<ItemId, QueueKey>,
    /// Open offers by expiry.
    offers: BTreeSet<(DateTime<Utc>, ItemId)>,
    /// Completion and arrival times within the rate window.
    completions: VecDeque<DateTime<Utc>>,
    arrivals: VecDeque<DateTime<Utc>>,
    next_seq: u64,
    dirty_agents: HashSet<AgentId>,
    dirty_items: HashSet<ItemId>,
    finished: Vec<WorkItem>,
}

impl Dispatcher {
    /// An empty dispatcher.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            agents: BTreeMap::new(),
            items: HashMap::new(),
            queue: BTreeMap::new(),
            keys: HashMap::new(),
            offers: BTreeSet::new(),
            completions: VecDeque::new(),
            arrivals: VecDeque::new(),
            next_seq: 0,
            dirty_agents: HashSet::new(),
            dirty_items: HashSet::new(),
            finished: Vec::new(),
        }
    }

    /// Rebuilds a dispatcher from stored people and live items (queued, offered, assigned).
    pub fn restore(
        policy: Policy,
        agents: impl IntoIterator<Item = HumanAgent>,
        items: impl IntoIterator<Item = WorkItem>,
    ) -> Self {
        let mut d = Self::new(policy);
        for a in agents {
            d.agents.insert(a.id.clone(), a);
        }
        for item in items {
            d.next_seq = d.next_seq.max(item.seq + 1);
            match &item.state {
                ItemState::Queued => {
                    let key = d.policy.queue_key(&item);
                    d.queue.insert(key, item.id.clone());
                    d.keys.insert(item.id.clone(), key);
                }
                ItemState::Offered { expires_at, .. } => {
                    d.offers.insert((*expires_at, item.id.clone()));
                }
                _ => {}
            }
            if item.state.holder().is_some() || item.state == ItemState::Queued {
                d.items.insert(item.id.clone(), item);
            }
        }
        d
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A person.
    pub fn agent(&self, id: &AgentId) -> Option<&HumanAgent> {
        self.agents.get(id)
    }

    /// Every person.
    pub fn agents(&self) -> impl Iterator<Item = &HumanAgent> {
        self.agents.values()
    }

    /// A live item (queued, offered or assigned).
    pub fn item(&self, id: &ItemId) -> Option<&WorkItem> {
        self.items.get(id)
    }

    /// Every live item.
    pub fn items(&self) -> impl Iterator<Item = &WorkItem> {
        self.items.values()
    }

    /// Queued items in dispatch order.
    pub fn queued(&self) -> impl Iterator<Item = &WorkItem> {
        self.queue.values().filter_map(|id| self.items.get(id))
    }

    /// How many items wait.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Takes what changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        let agents = self.dirty_agents.drain().filter_map(|id| self.agents.get(&id).cloned());
        let agents = agents.collect();
        let mut items: Vec<WorkItem> =
            self.dirty_items.drain().filter_map(|id| self.items.get(&id).cloned()).collect();
        items.append(&mut self.finished);
        Changes { agents, items }
    }

    /// Adds a person, or updates their profile (name, skills, capacity, team, status); what they
    /// hold and their measured performance are kept.
    pub fn upsert_agent(&mut self, mut agent: HumanAgent) {
        if let Some(old) = self.agents.get(&agent.id) {
            agent.load = old.load;
            agent.performance = old.performance;
            agent.last_offered_at = old.last_offered_at;
            agent.wrap_up_until = old.wrap_up_until;
        }
        self.dirty_agents.insert(agent.id.clone());
        self.agents.insert(agent.id.clone(), agent);
    }

    /// Changes a person's status. Going away or offline withdraws their pending offers (the items
    /// go back to the queue); conversations they accepted stay theirs.
    pub fn set_status(
        &mut self,
        agent: &AgentId,
        status: AgentStatus,
        now: DateTime<Utc>,
    ) -> DispatchResult<Vec<Event>> {
        let a = self.agent_mut(agent)?;
        a.status = status;
        if status != AgentStatus::WrapUp {
            a.wrap_up_until = None;
        }
        let mut events = Vec::new();
        if matches!(status, AgentStatus::Away | AgentStatus::Offline) {
            let withdrawn: Vec<ItemId> = self
                .offers
                .iter()
                .filter(|(_, id)| self.items.get(id).and_then(|i| i.state.holder()) == Some(agent))
                .map(|(_, id)| id.clone())
                .collect();
            for id in withdrawn {
                self.return_offer(&id, now, &mut events, true);
            }
        }
        Ok(events)
    }

    /// Puts an escalation in the queue.
    pub fn enqueue(&mut self, new: NewWorkItem, now: DateTime<Utc>) -> DispatchResult<Vec<Event>> {
        if self.items.contains_key(&new.id) {
            return Err(DispatchError::Duplicate { item: new.id });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let item = self.new_item(new, seq, now);
        let id = item.id.clone();
        self.items.insert(id.clone(), item);
        self.requeue(&id);
        self.arrivals.push_back(now);
        Ok(vec![Event { at: now, kind: EventKind::Enqueued { item: id } }])
    }

    /// Queues several items at once, all or none: a duplicate (live, or twice in `new`) queues
    /// nothing.
    pub fn enqueue_many(
        &mut self,
        new: Vec<NewWorkItem>,
        now: DateTime<Utc>,
    ) -> DispatchResult<Vec<Event>> {
        if let Some(dup) = first_duplicate(&new, |id| self.items.contains_key(id)) {
            return Err(DispatchError::Duplicate { item: dup });
        }
        let mut events = Vec::with_capacity(new.len());
        for n in new {
            events.extend(self.enqueue(n, now)?);
        }
        Ok(events)
    }

    /// Builds the record of a new item (no state change).
    pub fn new_item(&self, new: NewWorkItem, seq: u64, now: DateTime<Utc>) -> WorkItem {
        let mut item = WorkItem {
            id: new.id,
            route: new.route,
            language: new.language,
            product: new.product,
            priority: new.priority,
            tier: new.tier,
            channel: new.channel,
            medium: Medium::of(new.channel),
            enqueued_at: now,
            queued_since: now,
            seq,
            first_response_due: now,
            resolution_due: now,
            state: ItemState::Queued,
            declined: Vec::new(),
            promoted: false,
            at_risk: false,
            reminded: false,
            breached_first_response: false,
            breached_resolution: false,
            step: 0,
            transfers: Vec::new(),
            package: new.package,
        };
        let target = self.policy.sla.target(item.sla_priority());
        item.first_response_due = now + Policy::secs(target.first_response_seconds);
        item.resolution_due = now + Policy::secs(target.resolution_seconds);
        item
    }

    /// The person accepts an offer.
    pub fn accept(
        &mut self,
        item: &ItemId,
        agent: &AgentId,
        now: DateTime<Utc>,
    ) -> DispatchResult<Vec<Event>> {
        let it = self.items.get_mut(item).ok_or_else(|| unknown_item(item))?;
        let ItemState::Offered { agent: holder, expires_at } = &it.state else {
            return Err(wrong_state(it, "offered"));
        };
        if holder != agent {
            return Err(DispatchError::NotHolder { item: item.clone(), agent: agent.clone() });
        }
        self.offers.remove(&(*expires_at, item.clone()));
        it.state = ItemState::Assigned { agent: agent.clone(), accepted_at: now };
        self.dirty_items.insert(item.clone());
        Ok(vec![Event {
            at: now,
            kind: EventKind::Accepted { item: item.clone(), agent: agent.clone() },
        }])
    }

    /// The person declines an offer: it goes back to the queue and is not offered to them again.
    pub fn decline(
        &mut self,
        item: &ItemId,
        agent: &AgentId,
        now: DateTime<Utc>,
    ) -> DispatchResult<Vec<Event>> {
        let it = self.items.get(item).ok_or_else(|| unknown_item(item))?;
        match &it.state {
            ItemState::Offered { agent: holder, .. } if holder == agent => {}
            ItemState::Offered { .. } => {
                return Err(DispatchError::NotHolder { item: item.clone(), agent: agent.clone() });
            }
            _ => return Err(wrong_state(it, "offered")),
        }
        let mut events = Vec::new();
        self.return_offer(item, now, &mut events, false);
        Ok(events)
    }

    /// The person hands an accepted conversation to another route (and optionally language),
    /// with a note; it re-enters the queue keeping its SLA clocks, package and history.
    pub fn transfer(
        &mut self,
        item: &ItemId,
        agent: &AgentId,
        route: Route,
        language: Option<Language>,
        note: impl Into<String>,
        now: DateTime<Utc>,
    ) -> DispatchResult<Vec<Event>> {
        self.check_assigned(item, agent)?;
        self.release_holder(item, agent);
        let it = self.items.get_mut(item).ok_or_else(|| unknown_item(item))?;
        it.transfers.push(TransferNote {
            from: agent.clone(),
            at: now,
            from_route: it.route.clone(),
            note: note.into(),
        });
        it.route = route.clone();
        if let Some(l) = language {
            it.language = l;
        }
        it.state = ItemState::Queued;
        it.queued_since = now;
        it.step = 0;
        it.declined = vec![agent.clone()];
        self.requeue(item);
        Ok(vec![Event {
            at: now,
            kind: EventKind::Transferred { item: item.clone(), from: agent.clone(), route },
        }])
    }

    /// The person closes the conversation: capacity is freed, performance updated, and the
    /// person wraps up for the policy's wrap-up time.
    pub fn complete(
        &mut self,
        item: &ItemId,
        agent: &AgentId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> DispatchResult<Vec<Event>> {
        let accepted_at = self.check_assigned(item, agent)?;
        self.release_holder(item, agent);
        let wrap = self.policy.wrap_up_seconds;
        if let Some(a) = self.agents.get_mut(agent) {
            a.performance.record(outcome, (now - accepted_at).num_milliseconds() as f64 / 1000.0);
            if wrap > 0 && a.status == AgentStatus::Online {
                a.status = AgentStatus::WrapUp;
                a.wrap_up_until = Some(now + Policy::secs(wrap));
            }
        }
        if let Some(mut it) = self.items.remove(item) {
            it.state = ItemState::Completed { agent: agent.clone(), at: now };
            self.dirty_items.remove(item);
            self.finished.push(it);
        }
        self.completions.push_back(now);
        Ok(vec![Event {
            at: now,
            kind: EventKind::Completed { item: item.clone(), agent: agent.clone() },
        }])
    }

    /// The customer left while queued (or while an offer was pending).
    pub fn abandon(&mut self, item: &ItemId, now: DateTime<Utc>) -> DispatchResult<Vec<Event>> {
        let it = self.items.get(item).ok_or_else(|| unknown_item(item))?;
        match it.state.clone() {
            ItemState::Queued => self.dequeue(item),
            ItemState::Offered { agent, expires_at } => {
                self.offers.remove(&(expires_at, item.clone()));
                self.release_holder(item, &agent);
            }
            _ => return Err(wrong_state(it, "queued")),
        }
        if let Some(mut it) = self.items.remove(item) {
            it.state = ItemState::Abandoned { at: now };
            self.dirty_items.remove(item);
            self.finished.push(it);
        }
        Ok(vec![Event { at: now, kind: EventKind::Abandoned { item: item.clone() } }])
    }

    /// Advances the clocks to `now` and makes offers: ends wrap-ups, expires offers, widens
    /// workflow steps, sends SLA reminders, breach and prediction events, promotes starving
    /// items, then offers queued items to the best available people.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        self.end_wrap_ups(now, &mut events);
        self.expire_offers(now, &mut events);
        self.trim_window(now);
        self.check_sla(now, true, &mut events);
        self.assign(now, &mut events);
        events
    }

    /// Only the clocks that free people and work: ends wrap-ups and expires offers (no SLA
    /// checks, no new offers). The PostgreSQL backend uses it on the rows it has locked.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        self.end_wrap_ups(now, &mut events);
        self.expire_offers(now, &mut events);
        events
    }

    /// Only the per-item timers: workflow widening, SLA reminders and breaches, starvation
    /// promotion (no breach prediction, which needs the whole queue, and no offers). The
    /// PostgreSQL backend runs it on the items whose [`Policy::next_timer`] has come; every item
    /// is marked changed, so its next timer is written back.
    pub fn run_timers(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        self.check_sla(now, false, &mut events);
        self.dirty_items.extend(self.items.keys().cloned());
        events
    }

    /// The expected wait of a queued item.
    pub fn wait_estimate(&self, item: &ItemId) -> DispatchResult<WaitEstimate> {
        let it = self.items.get(item).ok_or_else(|| unknown_item(item))?;
        if it.state != ItemState::Queued {
            return Err(wrong_state(it, "queued"));
        }
        let position = self
            .queue
            .values()
            .take_while(|id| *id != item)
            .filter(|id| self.items.get(*id).is_some_and(|o| o.medium == it.medium))
            .count();
        let (expected, method) = self.expected_wait(position, it.medium);
        Ok(WaitEstimate {
            position,
            expected_wait_seconds: expected,
            method,
            offer_callback: expected > self.policy.callback_threshold_seconds,
        })
    }

    /// Expected wait for the item at `position` of a medium's queue.
    fn expected_wait(&self, position: usize, medium: Medium) -> (f64, EstimateMethod) {
        self.wait_model(medium).at(position)
    }

    /// What expected waits of a medium's queue are computed from, once per tick (Erlang C over
    /// thousands of servers is too slow to repeat for every queued item).
    fn wait_model(&self, medium: Medium) -> WaitModel {
        let servers: u32 = self
            .agents
            .values()
            .filter(|a| matches!(a.status, AgentStatus::Online | AgentStatus::WrapUp))
            .map(|a| u32::from(a.capacity.of(medium)))
            .sum();
        WaitModel::new(&self.policy, self.completions.len(), self.arrivals.len(), servers)
    }

    // ---- internals -------------------------------------------------------------------------

    fn agent_mut(&mut self, id: &AgentId) -> DispatchResult<&mut HumanAgent> {
        self.dirty_agents.insert(id.clone());
        self.agents.get_mut(id).ok_or_else(|| DispatchError::UnknownAgent { agent: id.clone() })
    }

    fn check_assigned(&self, item: &ItemId, agent: &AgentId) -> DispatchResult<DateTime<Utc>> {
        let it = self.items.get(item).ok_or_else(|| unknown_item(item))?;
        match &it.state {
            ItemState::Assigned { agent: holder, accepted_at } if holder == agent => {
                Ok(*accepted_at)
            }
            ItemState::Assigned { .. } => {
                Err(DispatchError::NotHolder { item: item.clone(), agent: agent.clone() })
            }
            _ => Err(wrong_state(it, "assigned")),
        }
    }

    /// Frees the holder's slot for the item's medium.
    fn release_holder(&mut self, item: &ItemId, agent: &AgentId) -> Medium {
        let medium = self.items.get(item).map(|i| i.medium).unwrap_or_default();
        if let Some(a) = self.agents.get_mut(agent) {
            a.load.remove(medium);
            self.dirty_agents.insert(agent.clone());
        }
        medium
    }

    /// Puts an item (whose state is `Queued`) at its place in the queue.
    fn requeue(&mut self, id: &ItemId) {
        let Some(item) = self.items.get(id) else { return };
        let key = self.policy.queue_key(item);
        if let Some(old) = self.keys.insert(id.clone(), key) {
            self.queue.remove(&old);
        }
        self.queue.insert(key, id.clone());
        self.dirty_items.insert(id.clone());
    }

    fn dequeue(&mut self, id: &ItemId) {
        if let Some(key) = self.keys.remove(id) {
            self.queue.remove(&key);
        }
    }

    /// An offer ends without acceptance: free the slot, remember who, back to the queue.
    fn return_offer(
        &mut self,
        id: &ItemId,
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
        expired: bool,
    ) {
        let Some(it) = self.items.get(id) else { return };
        let ItemState::Offered { agent, expires_at } = it.state.clone() else { return };
        self.offers.remove(&(expires_at, id.clone()));
        self.release_holder(id, &agent);
        if let Some(it) = self.items.get_mut(id) {
            it.state = ItemState::Queued;
            if !it.declined.contains(&agent) {
                it.declined.push(agent.clone());
            }
        }
        self.requeue(id);
        let kind = if expired {
            EventKind::OfferExpired { item: id.clone(), agent }
        } else {
            EventKind::Declined { item: id.clone(), agent }
        };
        events.push(Event { at: now, kind });
    }

    fn end_wrap_ups(&mut self, now: DateTime<Utc>, events: &mut Vec<Event>) {
        for a in self.agents.values_mut() {
            if a.status == AgentStatus::WrapUp && a.wrap_up_until.is_none_or(|t| t <= now) {
                a.status = AgentStatus::Online;
                a.wrap_up_until = None;
                self.dirty_agents.insert(a.id.clone());
                events
                    .push(Event { at: now, kind: EventKind::WrapUpEnded { agent: a.id.clone() } });
            }
        }
    }

    fn expire_offers(&mut self, now: DateTime<Utc>, events: &mut Vec<Event>) {
        while let Some((at, id)) = self.offers.first().cloned() {
            if at > now {
                break;
            }
            self.return_offer(&id, now, events, true);
        }
    }

    fn trim_window(&mut self, now: DateTime<Utc>) {
        let start = now - Policy::secs(self.policy.rate_window_seconds);
        for q in [&mut self.completions, &mut self.arrivals] {
            while q.front().is_some_and(|t| *t < start) {
                q.pop_front();
            }
        }
    }

    /// SLA timers, predicted breaches, workflow steps and starvation, for every live item.
    fn check_sla(&mut self, now: DateTime<Utc>, predict: bool, events: &mut Vec<Event>) {
        let reminder_at = self.policy.sla.reminder_at;
        let starvation = Policy::secs(self.policy.starvation_seconds);
        // Position per medium in dispatch order, for the breach prediction.
        let mut position: HashMap<Medium, usize> = HashMap::new();
        let models: HashMap<Medium, WaitModel> =
            Medium::ALL.iter().map(|&m| (m, self.wait_model(m))).collect();
        let order: Vec<ItemId> = self.queue.values().cloned().collect();
        let mut rekey = Vec::new();
        for id in &order {
            let Some(it) = self.items.get(id) else { continue };
            let p = position.entry(it.medium).or_insert(0);
            let (expected, _) = models
                .get(&it.medium)
                .map_or((f64::INFINITY, EstimateMethod::ErlangC), |m| m.at(*p));
            *p += 1;
            let step = self.policy.step_at(it.queued_since, now);
            let Some(it) = self.items.get_mut(id) else { continue };
            if step > it.step {
                it.step = step;
                self.dirty_items.insert(id.clone());
                events.push(Event { at: now, kind: EventKind::Widened { item: id.clone(), step } });
            }
            if predict
                && !it.at_risk
                && !it.breached_first_response
                && expected.is_finite()
                && now + Policy::secs(expected.ceil() as i64) > it.first_response_due
            {
                it.at_risk = true;
                rekey.push(id.clone());
                events.push(Event {
                    at: now,
                    kind: EventKind::BreachPredicted {
                        item: id.clone(),
                        expected_wait_seconds: expected,
                    },
                });
            }
            if !it.promoted && !it.bypass() && now - it.enqueued_at >= starvation {
                it.promoted = true;
                rekey.push(id.clone());
                events.push(Event { at: now, kind: EventKind::Promoted { item: id.clone() } });
            }
        }
        for id in rekey {
            self.requeue(&id);
        }
        // Timers run for every live item: first response until accepted, resolution until closed.
        for it in self.items.values_mut() {
            let answered = matches!(it.state, ItemState::Assigned { .. });
            let total = it.first_response_due - it.enqueued_at;
            let remind = it.enqueued_at
                + chrono::TimeDelta::milliseconds(
                    (total.num_milliseconds() as f64 * reminder_at) as i64,
                );
            if !answered && !it.reminded && now >= remind && now < it.first_response_due {
                it.reminded = true;
                self.dirty_items.insert(it.id.clone());
                events.push(Event {
                    at: now,
                    kind: EventKind::Reminder { item: it.id.clone(), due: it.first_response_due },
                });
            }
            if !answered && !it.breached_first_response && now >= it.first_response_due {
                it.breached_first_response = true;
                self.dirty_items.insert(it.id.clone());
                events.push(Event {
                    at: now,
                    kind: EventKind::Breached {
                        item: it.id.clone(),
                        target: SlaKind::FirstResponse,
                    },
                });
            }
            if !it.breached_resolution && now >= it.resolution_due {
                it.breached_resolution = true;
                self.dirty_items.insert(it.id.clone());
                events.push(Event {
                    at: now,
                    kind: EventKind::Breached { item: it.id.clone(), target: SlaKind::Resolution },
                });
            }
        }
    }

    /// Offers queued items, best first, to the best eligible available person each.
    fn assign(&mut self, now: DateTime<Utc>, events: &mut Vec<Event>) {
        let mut free: HashMap<Medium, u32> = HashMap::new();
        for a in self.agents.values().filter(|a| a.status == AgentStatus::Online) {
            for m in Medium::ALL {
                *free.entry(m).or_insert(0) += u32::from(a.free(m));
            }
        }
        // (route, language, medium, step) groups already found to have nobody free this round:
        // later items of the group with no declines are skipped without scanning the people.
        let mut exhausted: HashSet<(Route, Language, Medium, usize)> = HashSet::new();
        let order: Vec<(QueueKey, ItemId)> =
            self.queue.iter().map(|(k, id)| (*k, id.clone())).collect();
        let offer_for = Policy::secs(self.policy.offer_timeout_seconds);
        for (key, id) in order {
            if free.values().all(|&n| n == 0) {
                break;
            }
            let Some(it) = self.items.get(&id) else { continue };
            if free.get(&it.medium).copied().unwrap_or(0) == 0 {
                continue;
            }
            let group = (it.route.clone(), it.language, it.medium, it.step);
            if it.declined.is_empty() && exhausted.contains(&group) {
                continue;
            }
            let best = self
                .agents
                .values()
                .filter(|a| a.available(it.medium) && !it.declined.contains(&a.id))
                .filter(|a| self.policy.eligible(a, it, it.step))
                .map(|a| ((self.policy.agent_score(a, it) * 100.0).round() as i64, a))
                // Best score; among equals the longest since their last offer; then by id.
                .max_by(|(sa, a), (sb, b)| {
                    sa.cmp(sb)
                        .then_with(|| b.last_offered_at.cmp(&a.last_offered_at))
                        .then_with(|| b.id.cmp(&a.id))
                })
                .map(|(_, a)| a.id.clone());
            let Some(agent) = best else {
                if it.declined.is_empty() {
                    exhausted.insert(group);
                }
                continue;
            };
            let medium = it.medium;
            let expires_at = now + offer_for;
            self.queue.remove(&key);
            self.keys.remove(&id);
            if let Some(a) = self.agents.get_mut(&agent) {
                a.load.add(medium);
                a.last_offered_at = Some(now);
                self.dirty_agents.insert(agent.clone());
            }
            if let Some(n) = free.get_mut(&medium) {
                *n -= 1;
            }
            if let Some(it) = self.items.get_mut(&id) {
                it.state = ItemState::Offered { agent: agent.clone(), expires_at };
                self.dirty_items.insert(id.clone());
            }
            self.offers.insert((expires_at, id.clone()));
            events
                .push(Event { at: now, kind: EventKind::Offered { item: id, agent, expires_at } });
        }
    }
}

/// See [`Dispatcher::wait_model`].
#[derive(Debug, Clone, Copy)]
enum WaitModel {
    /// Completions per second over the window.
    Observed { rate: f64 },
    /// Erlang C's mean wait with the servers online and the target handle time.
    ErlangC { mean: f64, servers: u32, handle: f64 },
}

impl WaitModel {
    /// From what the policy's window observed (completions and arrivals in it) and the slots of
    /// the people online.
    fn new(policy: &Policy, completions: usize, arrivals: usize, servers: u32) -> Self {
        let window = policy.rate_window_seconds.max(1) as f64;
        // Five completions make a rate worth trusting; fewer, and Erlang C with the people online.
        if completions >= 5 {
            return Self::Observed { rate: completions as f64 / window };
        }
        let handle = policy.target_aht_seconds;
        let load = arrivals as f64 / window * handle;
        let mean = if servers == 0 {
            f64::INFINITY
        } else {
            crate::erlang::mean_wait(servers, load, handle)
        };
        Self::ErlangC { mean, servers, handle }
    }

    /// The expected wait of the item with `position` others ahead of it.
    fn at(self, position: usize) -> (f64, EstimateMethod) {
        match self {
            Self::Observed { rate } => {
                ((position as f64 + 1.0) / rate, EstimateMethod::ObservedRate)
            }
            // Behind `position` others, roughly `position / servers` handle times more.
            Self::ErlangC { mean, servers, handle } => (
                mean + position as f64 * handle / f64::from(servers.max(1)),
                EstimateMethod::ErlangC,
            ),
        }
    }
}

fn unknown_item(id: &ItemId) -> DispatchError {
    DispatchError::UnknownItem { item: id.clone() }
}

fn wrong_state(it: &WorkItem, expected: &'static str) -> DispatchError {
    DispatchError::WrongState { item: it.id.clone(), state: it.state.name(), expected }
}

/// The first id of `new` that is live already or appears twice in `new`.
pub(crate) fn first_duplicate(
    new: &[NewWorkItem],
    live: impl Fn(&ItemId) -> bool,
) -> Option<ItemId> {
    let mut seen = std::collections::HashSet::with_capacity(new.len());
    new.iter().find(|n| live(&n.id) || !seen.insert(&n.id)).map(|n| n.id.clone())
}

/// The customer-facing estimate of an item with `position` others ahead of it, from the counts a
/// backend observed over the policy's rate window (what [`Dispatcher::wait_estimate`] computes
/// from its own state).
pub(crate) fn estimate(
    policy: &Policy,
    position: usize,
    completions: usize,
    arrivals: usize,
    servers: u32,
) -> WaitEstimate {
    let (expected, method) = WaitModel::new(policy, completions, arrivals, servers).at(position);
    WaitEstimate {
        position,
        expected_wait_seconds: expected,
        method,
        offer_callback: expected > policy.callback_threshold_seconds,
    }
}
