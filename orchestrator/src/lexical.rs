//! Stage 1 of the supervisor: a linear model over hashed word and character n-grams.
//!
//! Microseconds per message, no model files, and it works for Chinese without word segmentation
//! because CJK text contributes character uni-, bi- and trigrams. Trained as multinomial logistic
//! regression (softmax) with class-balanced SGD, then calibrated by temperature scaling on held-out
//! predictions so that its confidence can be compared with a threshold.

use fenliu_agent::{Route, conversation::is_cjk};
use serde::{Deserialize, Serialize};

/// FNV-1a: stable across runs, platforms and Rust versions (unlike `DefaultHasher`), which the
/// saved model depends on.
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// How texts become feature indices. Stored with the model: a model only works with the
/// featurizer it was trained with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Featurizer {
    /// Number of hash buckets.
    pub buckets: u32,
}

impl Default for Featurizer {
    fn default() -> Self {
        Self { buckets: 1 << 15 }
    }
}

impl Featurizer {
    /// Sorted, de-duplicated feature indices of a text.
    pub fn features(&self, text: &str) -> Vec<u32> {
        let lower: String = text.chars().take(2_000).flat_map(char::to_lowercase).collect();
        let mut feats: Vec<u64> = Vec::with_capacity(64);
        let mut words: Vec<String> = Vec::new();
        let mut cjk_run: Vec<char> = Vec::new();
        let mut word = String::new();
        let flush_cjk = |run: &mut Vec<char>, feats: &mut Vec<u64>| {
            for n in 1..=3 {
                for w in run.windows(n) {
                    let s: String = w.iter().collect();
                    feats.push(fnv1a(s.as_bytes(), 0x11 + n as u64));
                }
            }
            run.clear();
        };
        for c in lower.chars().chain(std::iter::once(' ')) {
            if is_cjk(c) {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                cjk_run.push(c);
            } else {
                if !cjk_run.is_empty() {
                    flush_cjk(&mut cjk_run, &mut feats);
                }
                if c.is_alphanumeric() || c == '\'' {
                    word.push(c);
                } else if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
        }
        let words: Vec<String> = words.into_iter().map(|w| normalize_word(&w)).collect();
        for (i, w) in words.iter().enumerate() {
            feats.push(fnv1a(w.as_bytes(), 1));
            if let Some(next) = words.get(i + 1) {
                feats.push(fnv1a(format!("{w} {next}").as_bytes(), 2));
            }
            // Character trigrams inside words carry typos and inflections ("cancell", "tracking").
            let padded: Vec<char> = format!("<{w}>").chars().collect();
            if padded.len() > 4 {
                for n in 3..=4 {
                    for t in padded.windows(n) {
                        let s: String = t.iter().collect();
                        feats.push(fnv1a(s.as_bytes(), n as u64));
                    }
                }
            }
        }
        let mut idx: Vec<u32> = feats
            .into_iter()
            .map(|h| u32::try_from(h % u64::from(self.buckets.max(1))).unwrap_or(0))
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx
    }
}

/// Collapses tokens whose identity does not matter for routing: order ids, ticket ids, numbers.
fn normalize_word(w: &str) -> String {
    let digits = w.bytes().filter(u8::is_ascii_digit).count();
    if digits >= 5 && w.starts_with('w') {
        "<order_id>".into()
    } else if digits > 0 && digits * 2 >= w.len() {
        "<num>".into()
    } else {
        w.to_owned()
    }
}

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Passes over the data.
    pub epochs: usize,
    /// Initial learning rate.
    pub learning_rate: f32,
    /// L2 penalty (applied lazily to the weights an example touches).
    pub l2: f32,
    /// Seed of the example shuffle.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { epochs: 60, learning_rate: 0.5, l2: 1e-5, seed: 7 }
    }
}

/// A sparse feature vector: `(index, value)` pairs.
pub type SparseVector = Vec<(u32, f32)>;

/// A tiny deterministic PRNG (SplitMix64) for shuffling; no dependency needed for that.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }
}

/// Multinomial logistic regression over sparse vectors, with a calibrated temperature.
///
/// Both classifier stages use it: stage 1 on hashed n-grams ([`LexicalModel`]), stage 2 on
/// sentence embeddings (the semantic head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxModel {
    /// Routes, in weight-row order.
    pub routes: Vec<Route>,
    /// Input dimension.
    pub dims: usize,
    /// `routes.len() × dims` weights, row-major; stored as base64 of little-endian f16, which
    /// keeps the shipped artefact a third of its JSON-number size at a precision (≈3 digits)
    /// far below what moves a decision.
    #[serde(with = "f16_base64")]
    pub weights: Vec<f32>,
    /// One bias per route.
    pub bias: Vec<f32>,
    /// Softmax temperature from calibration (1.0 = uncalibrated).
    pub temperature: f32,
}

impl SoftmaxModel {
    /// Trains on `(vector, route index)` examples with class-balanced SGD.
    pub fn train(
        routes: Vec<Route>,
        dims: usize,
        data: &[(SparseVector, usize)],
        opts: &TrainOptions,
    ) -> Self {
        let k = routes.len();
        // Class-balanced weights: a rare route's examples weigh more, so it is not drowned out.
        let mut counts = vec![0usize; k];
        data.iter().for_each(|(_, y)| counts[*y] += 1);
        let max = counts.iter().copied().max().unwrap_or(1) as f32;
        let class_weight: Vec<f32> =
            counts.iter().map(|&c| if c == 0 { 0.0 } else { (max / c as f32).sqrt() }).collect();

        let mut model = Self {
            routes,
            dims,
            weights: vec![0.0; k * dims],
            bias: vec![0.0; k],
            temperature: 1.0,
        };
        let mut order: Vec<usize> = (0..data.len()).collect();
        let mut rng = SplitMix(opts.seed);
        let mut step = 0f32;
        let mut probs = vec![0f32; k];
        for _ in 0..opts.epochs {
            rng.shuffle(&mut order);
            for &i in &order {
                let (x, y) = &data[i];
                if x.is_empty() {
                    continue;
                }
                model.logits_into(x, &mut probs);
                softmax(&mut probs, 1.0);
                let lr = opts.learning_rate / (1.0 + step * 1e-4);
                step += 1.0;
                for (r, p) in probs.iter().enumerate() {
                    let g = (p - if r == *y { 1.0 } else { 0.0 }) * class_weight[*y];
                    let row = &mut model.weights[r * dims..(r + 1) * dims];
                    for &(f, v) in x {
                        if let Some(w) = row.get_mut(f as usize) {
                            *w -= lr * (g * v + opts.l2 * *w);
                        }
                    }
                    model.bias[r] -= lr * g * 0.1;
                }
            }
        }
        model
    }

    fn logits_into(&self, x: &[(u32, f32)], out: &mut [f32]) {
        for (r, o) in out.iter_mut().enumerate() {
            let row = &self.weights[r * self.dims..(r + 1) * self.dims];
            *o = self.bias[r]
                + x.iter().map(|&(f, v)| row.get(f as usize).map_or(0.0, |w| w * v)).sum::<f32>();
        }
    }

    /// Raw logits (before temperature).
    pub fn logits(&self, x: &[(u32, f32)]) -> Vec<f32> {
        let mut out = vec![0f32; self.routes.len()];
        self.logits_into(x, &mut out);
        out
    }

    /// Calibrated route probabilities, best first.
    pub fn predict(&self, x: &[(u32, f32)]) -> Vec<(Route, f32)> {
        rank(&self.routes, self.logits(x), self.temperature)
    }

    /// Fits the softmax temperature minimising the negative log-likelihood of held-out
    /// `(logits, true route index)` pairs (temperature scaling, Guo et al. 2017).
    pub fn fit_temperature(held_out: &[(Vec<f32>, usize)]) -> f32 {
        let nll = |t: f32| -> f32 {
            held_out
                .iter()
                .map(|(z, y)| {
                    let mut p = z.clone();
                    softmax(&mut p, t);
                    -(p.get(*y).copied().unwrap_or(0.0).max(1e-9)).ln()
                })
                .sum()
        };
        let mut best = (1.0f32, f32::INFINITY);
        let mut t = 0.05f32;
        while t <= 5.0 {
            let v = nll(t);
            if v < best.1 {
                best = (t, v);
            }
            t *= 1.05;
        }
        best.0
    }
}

/// Routes with their probabilities, best first.
pub fn rank(routes: &[Route], mut logits: Vec<f32>, temperature: f32) -> Vec<(Route, f32)> {
    softmax(&mut logits, temperature);
    let mut ranked: Vec<(Route, f32)> = routes.iter().cloned().zip(logits).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

/// Stage 1: the softmax model over hashed n-grams of the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LexicalModel {
    /// The featurizer it was trained with.
    pub featurizer: Featurizer,
    /// The classifier.
    pub model: SoftmaxModel,
}

impl LexicalModel {
    /// The sparse vector of a text: its features, L2-normalised.
    pub fn vector(featurizer: &Featurizer, text: &str) -> SparseVector {
        let feats = featurizer.features(text);
        let v = if feats.is_empty() { 0.0 } else { 1.0 / (feats.len() as f32).sqrt() };
        feats.into_iter().map(|f| (f, v)).collect()
    }

    /// Trains on `(text, route)` examples; routes are taken from the examples, sorted.
    pub fn train(
        examples: &[(String, Route)],
        featurizer: Featurizer,
        opts: &TrainOptions,
    ) -> Self {
        let routes = routes_of(examples.iter().map(|(_, r)| r));
        let data: Vec<(SparseVector, usize)> = examples
            .iter()
            .filter_map(|(t, r)| {
                Some((Self::vector(&featurizer, t), routes.iter().position(|x| x == r)?))
            })
            .collect();
        let model = SoftmaxModel::train(routes, featurizer.buckets as usize, &data, opts);
        Self { featurizer, model }
    }

    /// Raw logits of a text.
    pub fn logits(&self, text: &str) -> Vec<f32> {
        self.model.logits(&Self::vector(&self.featurizer, text))
    }

    /// Calibrated route probabilities, best first.
    pub fn predict(&self, text: &str) -> Vec<(Route, f32)> {
        self.model.predict(&Self::vector(&self.featurizer, text))
    }
}

/// The sorted, distinct routes of some labels.
pub fn routes_of<'a>(labels: impl Iterator<Item = &'a Route>) -> Vec<Route> {
    let mut routes: Vec<Route> = labels.cloned().collect();
    routes.sort();
    routes.dedup();
    routes
}

/// In-place softmax of logits divided by `temperature`.
pub fn softmax(z: &mut [f32], temperature: f32) {
    let t = temperature.max(1e-3);
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = ((*v - max) / t).exp();
        sum += *v;
    }
    if sum > 0.0 {
        z.iter_mut().for_each(|v| *v /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<(String, Route)> {
        let mut d = Vec::new();
        for (route, texts) in [
            (
                Route::ORDER,
                &[
                    "where is my order",
                    "track my package",
                    "订单到哪了",
                    "my parcel is late",
                    "查一下物流",
                    "when will my order arrive",
                ][..],
            ),
            (
                Route::COMPLAINT,
                &[
                    "your staff was rude",
                    "I want to complain",
                    "我要投诉",
                    "terrible service",
                    "服务态度太差了",
                    "this is unacceptable",
                ][..],
            ),
            (
                Route::OUT_OF_SCOPE,
                &[
                    "tell me a joke",
                    "what's the weather",
                    "明天天气怎么样",
                    "book a flight",
                    "讲个笑话",
                    "play music",
                ][..],
            ),
        ] {
            d.extend(texts.iter().map(|t| (t.to_string(), route.clone())));
        }
        d
    }

    #[test]
    fn features_are_stable_and_cover_chinese() {
        let f = Featurizer::default();
        assert_eq!(f.features("Where is my order?"), f.features("where IS my order"));
        assert!(!f.features("我的订单").is_empty());
        assert!(f.features("").is_empty());
        assert_eq!(
            f.features("order W2611340"),
            f.features("order w1234567"),
            "order ids collapse"
        );
        // Bounded work on hostile input.
        assert!(f.features(&"字".repeat(1 << 20)).len() < 10_000);
    }

    #[test]
    fn learns_and_generalises_a_little() {
        let m = LexicalModel::train(&data(), Featurizer::default(), &TrainOptions::default());
        assert_eq!(m.predict("where is my order")[0].0, Route::ORDER);
        assert_eq!(m.predict("我要投诉你们")[0].0, Route::COMPLAINT);
        assert_eq!(m.predict("tell me a joke please")[0].0, Route::OUT_OF_SCOPE);
        let p = m.predict("where is my order");
        assert!((p.iter().map(|x| x.1).sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn training_is_deterministic() {
        let a =
            LexicalModel::train(&data(), Featurizer { buckets: 1024 }, &TrainOptions::default());
        let b =
            LexicalModel::train(&data(), Featurizer { buckets: 1024 }, &TrainOptions::default());
        assert_eq!(a, b);
    }

    #[test]
    fn temperature_fit_sharpens_underconfident_logits() {
        // Always right but with small margins: the best temperature is below 1.
        let held: Vec<(Vec<f32>, usize)> = (0..50).map(|_| (vec![0.5, 0.0, 0.0], 0usize)).collect();
        assert!(SoftmaxModel::fit_temperature(&held) < 1.0);
    }
}

/// Serde codec for weight vectors: base64 of little-endian IEEE half floats.
mod f16_base64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)?;
        if bytes.len() % 2 != 0 {
            return Err(serde::de::Error::custom("weight data has an odd number of bytes"));
        }
        Ok(bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect())
    }
}
