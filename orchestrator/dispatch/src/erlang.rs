//! Erlang C: the M/M/c queue behind contact-centre staffing.
//!
//! With arrivals at rate λ, mean handle time h and c agents, the offered load is A = λh Erlangs.
//! If A < c the queue is stable and
//! - the probability that a customer waits is `C(c, A)` ([`erlang_c`]);
//! - the share answered within t is `1 − C·e^(−(c−A)t/h)` ([`service_level`]);
//! - the mean wait (ASA) is `C·h/(c−A)` ([`mean_wait`]).
//!
//! `C` is computed from the Erlang B recursion `B(k) = A·B(k−1)/(k + A·B(k−1))`, then
//! `C = c·B/(c − A(1 − B))`: no factorials or powers, so it stays exact for thousands of agents.

use serde::Serialize;

/// Erlang B: the blocking probability of c servers and no queue, for load `a` Erlangs.
pub fn erlang_b(agents: u32, load: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=agents {
        b = load * b / (f64::from(k) + load * b);
    }
    b
}

/// The probability that a customer waits (Erlang C), for `agents` agents and `load` Erlangs.
/// 1 when the queue is unstable (`load ≥ agents`).
pub fn erlang_c(agents: u32, load: f64) -> f64 {
    let c = f64::from(agents);
    if load <= 0.0 {
        return 0.0;
    }
    if load >= c {
        return 1.0;
    }
    let b = erlang_b(agents, load);
    c * b / (c - load * (1.0 - b))
}

/// The share of customers answered within `target_seconds`.
pub fn service_level(agents: u32, load: f64, handle_seconds: f64, target_seconds: f64) -> f64 {
    let c = f64::from(agents);
    if load >= c {
        return 0.0;
    }
    1.0 - erlang_c(agents, load) * (-(c - load) * target_seconds / handle_seconds).exp()
}

/// The mean wait in seconds (average speed of answer, ASA); infinite when unstable.
pub fn mean_wait(agents: u32, load: f64, handle_seconds: f64) -> f64 {
    let c = f64::from(agents);
    if load >= c {
        return f64::INFINITY;
    }
    erlang_c(agents, load) * handle_seconds / (c - load)
}

/// A staffing question: arrivals, handle time, and the target "`service_level` of customers
/// answered within `target_seconds`".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Staffing {
    /// Arrivals per hour.
    pub arrivals_per_hour: f64,
    /// Mean handle time in seconds.
    pub handle_seconds: f64,
    /// Answer-time target in seconds.
    pub target_seconds: f64,
    /// Required share answered within the target, 0–1.
    pub service_level: f64,
}

/// One staffing level's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StaffingRow {
    /// Agents.
    pub agents: u32,
    /// Probability of waiting.
    pub probability_wait: f64,
    /// Share answered within the target.
    pub service_level: f64,
    /// Mean wait in seconds (ASA).
    pub mean_wait_seconds: f64,
    /// Agent occupancy, A/c.
    pub occupancy: f64,
}

impl Staffing {
    /// The offered load in Erlangs.
    pub fn load(&self) -> f64 {
        self.arrivals_per_hour * self.handle_seconds / 3600.0
    }

    /// The figures for `agents` agents.
    pub fn row(&self, agents: u32) -> StaffingRow {
        let load = self.load();
        StaffingRow {
            agents,
            probability_wait: erlang_c(agents, load),
            service_level: service_level(agents, load, self.handle_seconds, self.target_seconds),
            mean_wait_seconds: mean_wait(agents, load, self.handle_seconds),
            occupancy: if agents == 0 { f64::INFINITY } else { load / f64::from(agents) },
        }
    }

    /// The fewest agents that meet the service-level target (at least one more than the load, so
    /// the queue is stable). `None` if the inputs are not positive and finite.
    pub fn agents_needed(&self) -> Option<u32> {
        let load = self.load();
        let valid = [self.arrivals_per_hour, self.handle_seconds, self.service_level]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
            && self.target_seconds.is_finite()
            && self.target_seconds >= 0.0
            && self.service_level < 1.0;
        if !valid || load > f64::from(u32::MAX / 2) {
            return None;
        }
        // `load` is bounded above, so the cast is exact enough and cannot overflow.
        let mut agents = (load.floor() as u32).saturating_add(1);
        while self.row(agents).service_level < self.service_level {
            agents = agents.checked_add(1)?;
        }
        Some(agents)
    }

    /// Rows for staffing levels around the answer: from `before` below it to `after` above it
    /// (unstable levels, at or below the load, are left out).
    pub fn table(&self, needed: u32, before: u32, after: u32) -> Vec<StaffingRow> {
        let min_stable = (self.load().floor() as u32).saturating_add(1);
        (needed.saturating_sub(before).max(min_stable).max(1)..=needed.saturating_add(after))
            .map(|c| self.row(c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn erlang_b_matches_the_closed_form() {
        // B(2, 1) = (1/2) / (1 + 1 + 1/2) = 0.2
        close(erlang_b(2, 1.0), 0.2, 1e-12);
        close(erlang_b(1, 1.0), 0.5, 1e-12);
    }

    #[test]
    fn erlang_c_matches_small_closed_forms() {
        // M/M/1: P(wait) = ρ, mean wait = ρ h / (1 − ρ).
        close(erlang_c(1, 0.5), 0.5, 1e-12);
        close(mean_wait(1, 0.5, 60.0), 60.0, 1e-9);
        // M/M/2, A = 1: C = (1/2 · 2) / (1 + 1 + 1) = 1/3.
        close(erlang_c(2, 1.0), 1.0 / 3.0, 1e-12);
        assert_eq!(erlang_c(3, 3.0), 1.0);
        assert_eq!(erlang_c(3, 0.0), 0.0);
        assert!(mean_wait(3, 3.5, 60.0).is_infinite());
    }

    #[test]
    fn textbook_example_100_calls_per_half_hour() {
        // The classic example: 100 calls in 30 minutes (200/h), 180 s handle time, 80% in 20 s.
        // Load 10 Erlangs; 13 agents reach only 79.56%, so 14 are needed. Reference values
        // computed independently with the factorial form of Erlang C in Python.
        let s = Staffing {
            arrivals_per_hour: 200.0,
            handle_seconds: 180.0,
            target_seconds: 20.0,
            service_level: 0.8,
        };
        close(s.load(), 10.0, 1e-12);
        assert_eq!(s.agents_needed(), Some(14));
        for (agents, pw, sl, asa) in [
            (12, 0.44939, 0.64016, 40.4449),
            (13, 0.28527, 0.79559, 17.1162),
            (14, 0.17413, 0.88835, 7.8359),
        ] {
            let r = s.row(agents);
            close(r.probability_wait, pw, 1e-5);
            close(r.service_level, sl, 1e-5);
            close(r.mean_wait_seconds, asa, 1e-3);
        }
    }

    #[test]
    fn large_loads_stay_finite() {
        let s = Staffing {
            arrivals_per_hour: 60_000.0,
            handle_seconds: 300.0,
            target_seconds: 20.0,
            service_level: 0.9,
        };
        let n = s.agents_needed().unwrap();
        // Load 5,000 Erlangs: 5,027 agents (Python, Erlang B recursion).
        assert_eq!(n, 5027);
        assert!(s.row(n).service_level >= 0.9);
        assert!(s.row(n - 1).service_level < 0.9);
    }

    #[test]
    fn invalid_inputs_have_no_answer() {
        let mut s = Staffing {
            arrivals_per_hour: 0.0,
            handle_seconds: 180.0,
            target_seconds: 20.0,
            service_level: 0.8,
        };
        assert_eq!(s.agents_needed(), None);
        s.arrivals_per_hour = 100.0;
        s.service_level = 1.0;
        assert_eq!(s.agents_needed(), None);
        s.service_level = f64::NAN;
        assert_eq!(s.agents_needed(), None);
    }

    #[test]
    fn table_is_centred_and_stable() {
        let s = Staffing {
            arrivals_per_hour: 200.0,
            handle_seconds: 180.0,
            target_seconds: 20.0,
            service_level: 0.8,
        };
        let rows = s.table(13, 3, 3);
        let agents: Vec<u32> = rows.iter().map(|r| r.agents).collect();
        assert_eq!(agents, vec![11, 12, 13, 14, 15, 16]);
        assert_eq!(s.table(14, 10, 1).first().map(|r| r.agents), Some(11));
        assert!(rows.windows(2).all(|w| w[0].service_level < w[1].service_level));
    }
}
