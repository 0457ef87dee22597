//! Next-token choice: greedy at temperature 0, otherwise temperature + nucleus (top-p) sampling
//! from a seeded generator, so the same seed gives the same tokens.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Nucleus sampling looks at this many of the most likely tokens. Sorting all 262,144 logits per
/// token would cost more than the rest of sampling; beyond the top 1,024 the remaining mass of a
/// trained model is negligible for any `top_p < 1`.
const TOP_P_CANDIDATES: usize = 1024;

pub(crate) struct Sampler {
    rng: StdRng,
    temperature: f32,
    top_p: f32,
}

impl Sampler {
    pub(crate) fn new(seed: u64, temperature: f32, top_p: f32) -> Self {
        Self { rng: StdRng::seed_from_u64(seed), temperature, top_p }
    }

    /// Picks a token id from `logits`.
    pub(crate) fn sample(&mut self, logits: &[f32]) -> u32 {
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .fold(
                    (0usize, f32::NEG_INFINITY),
                    |best, (i, &l)| if l > best.1 { (i, l) } else { best },
                )
                .0 as u32
        };
        // NaN temperatures are rejected before sampling; anything not above 0 is greedy.
        if self.temperature <= 0.0 || self.temperature.is_nan() || logits.is_empty() {
            return argmax();
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let inv_t = 1.0 / self.temperature;
        let mut candidates: Vec<(u32, f32)> = if self.top_p < 1.0 {
            let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
            let n = TOP_P_CANDIDATES.min(idx.len());
            if n < idx.len() {
                idx.select_nth_unstable_by(n - 1, |&a, &b| {
                    logits[b as usize].total_cmp(&logits[a as usize])
                });
                idx.truncate(n);
            }
            idx.sort_unstable_by(|&a, &b| {
                logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b))
            });
            idx.into_iter().map(|i| (i, ((logits[i as usize] - max) * inv_t).exp())).collect()
        } else {
            logits.iter().enumerate().map(|(i, &l)| (i as u32, ((l - max) * inv_t).exp())).collect()
        };
        if self.top_p < 1.0 {
            let total: f32 = candidates.iter().map(|c| c.1).sum();
            let mut kept = 0.0;
            let mut keep = candidates.len();
            for (n, c) in candidates.iter().enumerate() {
                kept += c.1;
                if kept >= self.top_p.max(0.0) * total {
                    keep = n + 1;
                    break;
                }
            }
            candidates.truncate(keep.max(1));
        }
        let total: f32 = candidates.iter().map(|c| c.1).sum();
        if total <= 0.0 || !total.is_finite() {
            return argmax();
        }
        let mut target = self.rng.random::<f32>() * total;
        for &(id, p) in &candidates {
            if target < p {
                return id;
            }
            target -= p;
        }
        candidates.last().map_or_else(argmax, |c| c.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_seeded() {
        let logits = [0.1, 3.0, 2.9, -1.0];
        assert_eq!(Sampler::new(1, 0.0, 1.0).sample(&logits), 1);
        let a: Vec<u32> = {
            let mut s = Sampler::new(9, 1.0, 0.95);
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(9, 1.0, 0.95);
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().all(|&t| t == 1 || t == 2), "{a:?}");
        // A tiny nucleus keeps only the best token.
        let mut s = Sampler::new(3, 1.0, 0.01);
        assert!((0..10).all(|_| s.sample(&logits) == 1));
    }
}
