//! Metrics of a run, computed from its records only (so a JSON report can be re-scored).
//!
//! Definitions (see `docs/evals.md`): routing metrics are over user turns labelled with a route;
//! out-of-scope precision/recall treat `out_of_scope` as the positive class; escalation
//! precision/recall are over turns labelled `escalate`; automation rate is the share of
//! conversations that ran to the end without any turn handed to a person; pass^k is τ-bench's
//! estimate: the mean over tasks of C(c, k) / C(n, k) for c passing trials out of n.

use std::collections::BTreeMap;

use fenliu_agent::Route;
use serde::{Deserialize, Serialize};

use crate::runner::{ConversationRecord, TurnRecord};

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    /// Precision (1 when nothing was predicted positive).
    pub precision: f64,
    /// Recall (1 when there were no positives).
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Labelled positives.
    pub support: usize,
}

impl Prf {
    /// From true positives, false positives and false negatives.
    pub fn from_counts(tp: usize, fp: usize, fn_: usize) -> Self {
        let precision = if tp + fp == 0 { 1.0 } else { tp as f64 / (tp + fp) as f64 };
        let recall = if tp + fn_ == 0 { 1.0 } else { tp as f64 / (tp + fn_) as f64 };
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self { precision, recall, f1, support: tp + fn_ }
    }
}

/// Latency percentiles of turns, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// A share with its numerator and denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// Numerator / denominator (None when nothing was measured).
    pub value: Option<f64>,
    /// Numerator.
    pub hits: usize,
    /// Denominator.
    pub total: usize,
}

impl Ratio {
    fn new(hits: usize, total: usize) -> Self {
        Self { value: (total > 0).then(|| hits as f64 / total as f64), hits, total }
    }
}

/// A τ-style task over its trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    /// Dataset.
    pub dataset: String,
    /// Task id.
    pub id: String,
    /// Trials run.
    pub trials: u32,
    /// Trials that passed.
    pub passed: u32,
}

/// Every metric of a run (or of one dataset of it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Conversations (trials included).
    pub conversations: usize,
    /// Conversations that could not be run to the end.
    pub failed_conversations: usize,
    /// User turns played.
    pub turns: usize,
    /// Turns with a route label.
    pub routed_turns: usize,
    /// Routing accuracy.
    pub accuracy: Option<f64>,
    /// Macro-averaged F1 over the routes the set labels (support > 0).
    pub macro_f1: Option<f64>,
    /// Per-route precision, recall, F1.
    pub per_route: BTreeMap<Route, Prf>,
    /// Confusions: true route → predicted route → turns.
    pub confusion: BTreeMap<Route, BTreeMap<Route, usize>>,
    /// Out-of-scope detection (positive class `out_of_scope`).
    pub out_of_scope: Option<Prf>,
    /// Escalation decisions on turns labelled `escalate`.
    pub escalation: Option<Prf>,
    /// Conversations completed without a person.
    pub automation_rate: Ratio,
    /// Turns whose tool calls equal the expected ones exactly.
    pub tool_call_exact_match: Ratio,
    /// Expected slot values understood.
    pub slot_accuracy: Ratio,
    /// Expected facts found in replies.
    pub fact_recall: Ratio,
    /// Turns ending as labelled (`answer`, `ask_slot`, …).
    pub kind_accuracy: Ratio,
    /// Model calls per turn.
    pub llm_calls_per_turn: f64,
    /// Prompt plus completion tokens per turn.
    pub tokens_per_turn: f64,
    /// Turn latency.
    pub latency_ms: Latency,
    /// Share of turns decided by each stage.
    pub stage_mix: BTreeMap<String, usize>,
    /// τ-style tasks.
    pub tasks: Vec<TaskScore>,
    /// pass^k for k = 1..=trials (τ-bench's estimator); empty without tasks.
    pub pass_k: BTreeMap<u32, f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn choose(n: u32, k: u32) -> f64 {
    if k > n {
        return 0.0;
    }
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// Whether a turn's tool calls equal the expected ones (names and arguments, in order).
pub fn tools_match(turn: &TurnRecord, expected: &[crate::format::ExpectedToolCall]) -> bool {
    turn.tools.len() == expected.len()
        && turn
            .tools
            .iter()
            .zip(expected)
            .all(|(got, want)| got.name == want.name && got.args == want.args)
}

/// Whether the slot `key` = `value` was understood in `turn`.
pub fn slot_found(turn: &TurnRecord, key: &str, value: &serde_json::Value) -> bool {
    let in_slots = find_key(&turn.slots, key).is_some_and(|v| values_equal(v, value));
    in_slots
        || turn.tools.iter().any(|t| find_key(&t.args, key).is_some_and(|v| values_equal(v, value)))
}

fn find_key<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(map) => map
            .get(key)
            .filter(|v| !v.is_null())
            .or_else(|| map.values().find_map(|inner| find_key(inner, key))),
        _ => None,
    }
}

fn values_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(x), Some(y)) => x.trim().eq_ignore_ascii_case(y.trim()),
        _ => a == b,
    }
}

/// Computes the metrics of `records`.
pub fn compute(records: &[ConversationRecord]) -> Metrics {
    let mut m = Metrics { conversations: records.len(), ..Metrics::default() };
    let mut correct = 0;
    let mut latencies = Vec::new();
    let (mut llm_calls, mut tokens) = (0u64, 0u64);
    let (mut esc_tp, mut esc_fp, mut esc_fn, mut esc_labelled) = (0, 0, 0, 0);
    let (mut tool_hits, mut tool_total) = (0, 0);
    let (mut slot_hits, mut slot_total) = (0, 0);
    let (mut fact_hits, mut fact_total) = (0, 0);
    let (mut kind_hits, mut kind_total) = (0, 0);
    let mut automated = 0;
    let mut tasks: BTreeMap<(String, String), TaskScore> = BTreeMap::new();
    for r in records {
        if r.error.is_some() {
            m.failed_conversations += 1;
        } else if !r.turns.iter().any(|t| t.escalated) {
            automated += 1;
        }
        if let Some(task) = &r.task {
            let score = tasks.entry((r.dataset.clone(), r.id.clone())).or_insert(TaskScore {
                dataset: r.dataset.clone(),
                id: r.id.clone(),
                trials: 0,
                passed: 0,
            });
            score.trials += 1;
            score.passed += u32::from(task.passed);
        } else if r.error.is_some() && r.tags.iter().any(|t| t == "tau_retail") {
            let score = tasks.entry((r.dataset.clone(), r.id.clone())).or_insert(TaskScore {
                dataset: r.dataset.clone(),
                id: r.id.clone(),
                trials: 0,
                passed: 0,
            });
            score.trials += 1;
        }
        for t in &r.turns {
            m.turns += 1;
            latencies.push(t.latency_ms);
            llm_calls += t.llm_calls;
            tokens += t.prompt_tokens + t.completion_tokens;
            *m.stage_mix.entry(t.stage.clone()).or_default() += 1;
            let Some(e) = &t.expect else { continue };
            if let Some(route) = &e.route {
                m.routed_turns += 1;
                correct += usize::from(*route == t.route);
                *m.confusion
                    .entry(route.clone())
                    .or_default()
                    .entry(t.route.clone())
                    .or_default() += 1;
            }
            if let Some(want) = e.escalate {
                esc_labelled += 1;
                match (want, t.escalated) {
                    (true, true) => esc_tp += 1,
                    (false, true) => esc_fp += 1,
                    (true, false) => esc_fn += 1,
                    (false, false) => {}
                }
            }
            if let Some(expected) = &e.tools {
                tool_total += 1;
                tool_hits += usize::from(tools_match(t, expected));
            }
            for (k, v) in &e.slots {
                slot_total += 1;
                slot_hits += usize::from(slot_found(t, k, v));
            }
            let reply = t.reply.to_lowercase();
            for f in &e.facts {
                fact_total += 1;
                fact_hits += usize::from(reply.contains(&f.to_lowercase()));
            }
            if let Some(kind) = e.kind {
                kind_total += 1;
                kind_hits += usize::from(kind == t.kind);
            }
        }
    }
    if m.routed_turns > 0 {
        m.accuracy = Some(correct as f64 / m.routed_turns as f64);
        let mut routes: Vec<Route> = m.confusion.keys().cloned().collect();
        routes.extend(m.confusion.values().flat_map(|row| row.keys().cloned()));
        routes.sort();
        routes.dedup();
        for route in routes {
            let tp = m.confusion.get(&route).and_then(|r| r.get(&route)).copied().unwrap_or(0);
            let row: usize = m.confusion.get(&route).map_or(0, |r| r.values().sum());
            let col: usize = m.confusion.values().filter_map(|r| r.get(&route)).sum();
            m.per_route.insert(route, Prf::from_counts(tp, col - tp, row - tp));
        }
        // Averaged over the routes the set labels: a route that only appears as a wrong
        // prediction already costs the labelled routes' recall, and counting it again as an F1 of
        // zero made one slip in a single-route set (all out-of-scope, say) halve its macro-F1.
        let labelled: Vec<f64> =
            m.per_route.values().filter(|p| p.support > 0).map(|p| p.f1).collect();
        m.macro_f1 =
            (!labelled.is_empty()).then(|| labelled.iter().sum::<f64>() / labelled.len() as f64);
        // Only where out-of-scope messages are labelled: a set without any says nothing about
        // detecting them (its false alarms show in the confusions).
        m.out_of_scope = m.per_route.get(&Route::OUT_OF_SCOPE).copied().filter(|p| p.support > 0);
    }
    if esc_labelled > 0 {
        m.escalation = Some(Prf::from_counts(esc_tp, esc_fp, esc_fn));
    }
    m.automation_rate = Ratio::new(automated, records.len());
    m.tool_call_exact_match = Ratio::new(tool_hits, tool_total);
    m.slot_accuracy = Ratio::new(slot_hits, slot_total);
    m.fact_recall = Ratio::new(fact_hits, fact_total);
    m.kind_accuracy = Ratio::new(kind_hits, kind_total);
    if m.turns > 0 {
        m.llm_calls_per_turn = llm_calls as f64 / m.turns as f64;
        m.tokens_per_turn = tokens as f64 / m.turns as f64;
    }
    latencies.sort_by(f64::total_cmp);
    m.latency_ms = Latency {
        p50: percentile(&latencies, 0.5),
        p90: percentile(&latencies, 0.9),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or(0.0),
        mean: if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().sum::<f64>() / latencies.len() as f64
        },
    };
    m.tasks = tasks.into_values().collect();
    if let Some(n) = m.tasks.iter().map(|t| t.trials).min().filter(|n| *n > 0) {
        for k in 1..=n {
            let sum: f64 = m.tasks.iter().map(|t| choose(t.passed, k) / choose(t.trials, k)).sum();
            m.pass_k.insert(k, sum / m.tasks.len() as f64);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::format::{Expect, ExpectedToolCall};
    use crate::runner::{TaskResult, ToolCallLog};
    use fenliu_orchestrator::ReplyKind;

    fn turn(expected: Route, got: Route, escalated: bool) -> TurnRecord {
        TurnRecord {
            text: "t".into(),
            expect: Some(Expect { route: Some(expected), ..Expect::default() }),
            route: got,
            confidence: 0.9,
            stage: "lexical".into(),
            kind: ReplyKind::Answer,
            agent: None,
            reply: "Your order #W1 shipped".into(),
            tools: vec![],
            escalated,
            escalation_reason: None,
            slots: serde_json::Value::Null,
            latency_ms: 1.0,
            llm_calls: 1,
            prompt_tokens: 10,
            completion_tokens: 5,
        }
    }

    fn record(id: &str, turns: Vec<TurnRecord>, task: Option<bool>) -> ConversationRecord {
        ConversationRecord {
            dataset: "d".into(),
            id: id.into(),
            trial: 0,
            tags: vec![],
            customer: "c".into(),
            turns,
            task: task.map(|passed| TaskResult { passed, diff: vec![] }),
            error: None,
        }
    }

    #[test]
    fn routing_scores_match_hand_counts() {
        let records = vec![
            record("a", vec![turn(Route::ORDER, Route::ORDER, false)], None),
            record("b", vec![turn(Route::ORDER, Route::OUT_OF_SCOPE, false)], None),
            record("c", vec![turn(Route::OUT_OF_SCOPE, Route::OUT_OF_SCOPE, false)], None),
            record("d", vec![turn(Route::HUMAN, Route::HUMAN, true)], None),
        ];
        let m = compute(&records);
        assert_eq!(m.accuracy, Some(0.75));
        let order = m.per_route[&Route::ORDER];
        assert_eq!((order.precision, order.recall, order.support), (1.0, 0.5, 2));
        let oos = m.out_of_scope.unwrap();
        assert_eq!((oos.precision, oos.recall), (0.5, 1.0));
        assert_eq!(m.confusion[&Route::ORDER][&Route::OUT_OF_SCOPE], 1);
        assert_eq!(m.automation_rate.value, Some(0.75));
        assert_eq!(m.llm_calls_per_turn, 1.0);
        assert_eq!(m.tokens_per_turn, 15.0);
        assert_eq!(m.stage_mix["lexical"], 4);
        let f1 = (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0;
        assert!((m.macro_f1.unwrap() - f1).abs() < 1e-9);
    }

    #[test]
    fn macro_f1_averages_the_labelled_routes_only() {
        // A single-route set with one slip: the stray prediction lowers the labelled route's
        // recall, and does not count a second time as a route with F1 0.
        let records = vec![
            record("a", vec![turn(Route::OUT_OF_SCOPE, Route::OUT_OF_SCOPE, false)], None),
            record("b", vec![turn(Route::OUT_OF_SCOPE, Route::ORDER, false)], None),
        ];
        let m = compute(&records);
        let oos_f1 = 2.0 * 1.0 * 0.5 / 1.5;
        assert!((m.macro_f1.unwrap() - oos_f1).abs() < 1e-9, "{:?}", m.macro_f1);
        assert_eq!(m.per_route[&Route::ORDER].f1, 0.0);
    }

    #[test]
    fn tools_slots_facts_and_escalation() {
        let mut t = turn(Route::ORDER, Route::ORDER, false);
        t.tools = vec![ToolCallLog {
            name: "get_order".into(),
            args: serde_json::json!({"order_id": "#W1"}),
            ok: true,
            error: None,
        }];
        let e = t.expect.as_mut().unwrap();
        e.tools = Some(vec![ExpectedToolCall {
            name: "get_order".into(),
            args: serde_json::json!({"order_id": "#W1"}),
        }]);
        e.slots.insert("order_id".into(), serde_json::json!("#w1"));
        e.facts = vec!["#W1".into(), "delivered".into()];
        e.escalate = Some(true);
        let m = compute(&[record("a", vec![t], None)]);
        assert_eq!(m.tool_call_exact_match.value, Some(1.0));
        assert_eq!(m.slot_accuracy.value, Some(1.0));
        assert_eq!(m.fact_recall.value, Some(0.5));
        let esc = m.escalation.unwrap();
        assert_eq!((esc.recall, esc.support), (0.0, 1));
    }

    #[test]
    fn pass_k_follows_tau_bench() {
        let mut records = Vec::new();
        for (id, passes) in [("x", [true, true]), ("y", [true, false])] {
            for (trial, p) in passes.into_iter().enumerate() {
                let mut r = record(id, vec![], Some(p));
                r.trial = trial as u32;
                records.push(r);
            }
        }
        let m = compute(&records);
        assert_eq!(m.pass_k[&1], 0.75);
        assert_eq!(m.pass_k[&2], 0.5);
        assert!(compute(&[]).accuracy.is_none());
    }
}
