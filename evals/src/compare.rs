//! `fenliu eval compare BASE.json NEW.json`: which metrics moved, and whether any moved past its
//! tolerance in the bad direction (a regression, for CI to fail on).

use std::fmt::Write as _;

use serde::Serialize;

use crate::metrics::Metrics;
use crate::report::Report;

/// How far each kind of metric may get worse before it counts as a regression.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Quality shares (accuracy, macro-F1, precision/recall, automation, exact match, pass^1):
    /// largest allowed drop, absolute (0.02 = two points).
    pub quality: f64,
    /// Per-route F1: largest allowed drop for routes with at least `min_support` labels.
    pub route_f1: f64,
    /// Routes with fewer labels are not checked one by one.
    pub min_support: usize,
    /// Tokens and LLM calls per turn: largest allowed relative increase (0.1 = 10 %).
    pub cost: f64,
    /// Median latency: largest allowed relative increase; `None` skips it (shared CI machines
    /// make latency noisy).
    pub latency: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { quality: 0.02, route_f1: 0.05, min_support: 10, cost: 0.10, latency: None }
    }
}

/// One compared metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    /// Metric name (`all: routing accuracy`, `bitext: route order F1`, …).
    pub metric: String,
    /// Baseline value.
    pub base: f64,
    /// New value.
    pub new: f64,
    /// Whether higher is better.
    pub higher_is_better: bool,
    /// Whether the change is past its tolerance in the bad direction.
    pub regression: bool,
}

/// The comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Every compared metric.
    pub deltas: Vec<Delta>,
    /// Datasets in the baseline that the new run does not have.
    pub missing_datasets: Vec<String>,
}

impl Comparison {
    /// The regressions.
    pub fn regressions(&self) -> Vec<&Delta> {
        self.deltas.iter().filter(|d| d.regression).collect()
    }

    /// Whether the new run is acceptable.
    pub fn passed(&self) -> bool {
        self.deltas.iter().all(|d| !d.regression) && self.missing_datasets.is_empty()
    }

    /// A table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{:<44} {:>9} {:>9} {:>9}  status", "metric", "base", "new", "delta");
        for d in &self.deltas {
            let status = if d.regression {
                "REGRESSION"
            } else if (d.new - d.base).abs() < 1e-9 {
                "="
            } else if (d.new > d.base) == d.higher_is_better {
                "better"
            } else {
                "worse (within tolerance)"
            };
            let _ = writeln!(
                out,
                "{:<44} {:>9.4} {:>9.4} {:>+9.4}  {status}",
                d.metric,
                d.base,
                d.new,
                d.new - d.base
            );
        }
        for m in &self.missing_datasets {
            let _ = writeln!(
                out,
                "dataset `{m}` is in the baseline but not in the new run: REGRESSION"
            );
        }
        let n = self.regressions().len() + self.missing_datasets.len();
        let _ = writeln!(
            out,
            "{}",
            if n == 0 { "no regression".to_owned() } else { format!("{n} regression(s)") }
        );
        out
    }
}

fn compare_metrics(
    scope: &str,
    base: &Metrics,
    new: &Metrics,
    t: &Thresholds,
    out: &mut Vec<Delta>,
) {
    let mut quality = |name: &str, b: Option<f64>, n: Option<f64>, tol: f64| {
        if let Some(b) = b {
            let n = n.unwrap_or(0.0);
            out.push(Delta {
                metric: format!("{scope}: {name}"),
                base: b,
                new: n,
                higher_is_better: true,
                regression: n < b - tol - 1e-12,
            });
        }
    };
    quality("routing accuracy", base.accuracy, new.accuracy, t.quality);
    quality("macro-F1", base.macro_f1, new.macro_f1, t.quality);
    quality(
        "out-of-scope precision",
        base.out_of_scope.map(|p| p.precision),
        new.out_of_scope.map(|p| p.precision),
        t.quality,
    );
    quality(
        "out-of-scope recall",
        base.out_of_scope.map(|p| p.recall),
        new.out_of_scope.map(|p| p.recall),
        t.quality,
    );
    quality(
        "escalation precision",
        base.escalation.map(|p| p.precision),
        new.escalation.map(|p| p.precision),
        t.quality,
    );
    quality(
        "escalation recall",
        base.escalation.map(|p| p.recall),
        new.escalation.map(|p| p.recall),
        t.quality,
    );
    quality("automation rate", base.automation_rate.value, new.automation_rate.value, t.quality);
    quality(
        "tool-call exact match",
        base.tool_call_exact_match.value,
        new.tool_call_exact_match.value,
        t.quality,
    );
    quality("slot accuracy", base.slot_accuracy.value, new.slot_accuracy.value, t.quality);
    quality("fact recall", base.fact_recall.value, new.fact_recall.value, t.quality);
    quality("reply kind accuracy", base.kind_accuracy.value, new.kind_accuracy.value, t.quality);
    quality("pass^1", base.pass_k.get(&1).copied(), new.pass_k.get(&1).copied(), t.quality);
    for (route, b) in base.per_route.iter().filter(|(_, s)| s.support >= t.min_support) {
        let n = new.per_route.get(route).map(|s| s.f1);
        quality(&format!("route {route} F1"), Some(b.f1), n, t.route_f1);
    }
    let mut cost = |name: &str, b: f64, n: f64, tol: Option<f64>| {
        let Some(tol) = tol else { return };
        out.push(Delta {
            metric: format!("{scope}: {name}"),
            base: b,
            new: n,
            higher_is_better: false,
            // A small absolute floor so 0 → 0.001 is not a regression.
            regression: n > b * (1.0 + tol) + 1e-3,
        });
    };
    cost("LLM calls / turn", base.llm_calls_per_turn, new.llm_calls_per_turn, Some(t.cost));
    cost("tokens / turn", base.tokens_per_turn, new.tokens_per_turn, Some(t.cost));
    cost("latency p50 ms", base.latency_ms.p50, new.latency_ms.p50, t.latency);
    if new.failed_conversations > base.failed_conversations {
        out.push(Delta {
            metric: format!("{scope}: failed conversations"),
            base: base.failed_conversations as f64,
            new: new.failed_conversations as f64,
            higher_is_better: false,
            regression: true,
        });
    }
}

/// Compares `new` with `base`: overall, and per dataset present in both.
pub fn compare(base: &Report, new: &Report, thresholds: &Thresholds) -> Comparison {
    let mut c = Comparison::default();
    compare_metrics("all", &base.overall, &new.overall, thresholds, &mut c.deltas);
    for (name, b) in &base.per_dataset {
        match new.per_dataset.get(name) {
            Some(n) => compare_metrics(name, b, n, thresholds, &mut c.deltas),
            None => c.missing_datasets.push(name.clone()),
        }
    }
    c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metrics::Prf;
    use fenliu_agent::Route;

    fn report(accuracy: f64, tokens: f64) -> Report {
        let mut m =
            Metrics { accuracy: Some(accuracy), tokens_per_turn: tokens, ..Metrics::default() };
        m.per_route.insert(Route::ORDER, Prf { f1: accuracy, support: 20, ..Prf::default() });
        Report {
            format: crate::report::REPORT_FORMAT.into(),
            version: 1,
            info: Default::default(),
            overall: m.clone(),
            per_dataset: [("d".to_owned(), m)].into(),
            errors: vec![],
            bad_rows: vec![],
            conversations: vec![],
        }
    }

    #[test]
    fn identical_runs_pass_and_drops_past_tolerance_fail() {
        let t = Thresholds::default();
        let base = report(0.9, 100.0);
        assert!(compare(&base, &base, &t).passed());
        assert!(compare(&base, &report(0.885, 100.0), &t).passed(), "within 2 points");
        let worse = compare(&base, &report(0.8, 100.0), &t);
        assert!(!worse.passed());
        assert!(worse.table().contains("REGRESSION"));
        assert!(compare(&base, &report(0.95, 100.0), &t).passed(), "improvements pass");
        assert!(!compare(&base, &report(0.9, 120.0), &t).passed(), "cost up 20%");
        let mut other = report(0.9, 100.0);
        other.per_dataset.clear();
        assert!(!compare(&base, &other, &t).passed(), "a dataset disappeared");
    }
}
