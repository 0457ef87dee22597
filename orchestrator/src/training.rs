//! Training the supervisor: labelled examples in, a versioned router artefact out, with a
//! cross-validated report of what the cascade would do on unseen messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use fenliu_agent::{Language, Route};
use fenliu_knowledge::DynEmbedder;
use serde::{Deserialize, Serialize};

use crate::OrchestratorError;
use crate::lexical::{
    Featurizer, LexicalModel, SoftmaxModel, SparseVector, TrainOptions, routes_of,
};

/// Version of the artefact format; a loader refuses other versions with a clear error.
pub const ARTIFACT_VERSION: u32 = 1;

/// One labelled message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The message.
    pub text: String,
    /// Its route.
    pub route: Route,
    /// Where it comes from (`bitext`, `agent:order`, a file name, …).
    #[serde(default)]
    pub source: String,
}

/// A row that could not be read, with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// File.
    pub path: PathBuf,
    /// 1-based line (CSV: the record's line).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// Largest training file read: the shipped set is 0.4 MB.
const MAX_TRAINING_FILE: u64 = 256 * 1024 * 1024;

/// Reads labelled examples from a CSV (header with `text` and `route` columns) or JSONL
/// (`{"text": …, "route": …}` per line) file. Bad rows are reported and skipped; the rest load.
pub fn load_examples(path: &Path) -> Result<(Vec<Example>, Vec<RowError>), OrchestratorError> {
    let io = |e: std::io::Error| OrchestratorError::Config(format!("{}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_TRAINING_FILE {
        return Err(OrchestratorError::Config(format!("{} is larger than 256 MB", path.display())));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let source = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    let mut bad = |line: u64, message: String| {
        errors.push(RowError { path: path.to_owned(), line, message });
    };
    let jsonl = path.extension().is_some_and(|e| e == "jsonl" || e == "json");
    if jsonl {
        for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let line = i as u64 + 1;
            let Ok(text) = std::str::from_utf8(raw) else {
                bad(line, "not valid UTF-8".into());
                continue;
            };
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Example>(text) {
                Ok(mut e) if !e.text.trim().is_empty() => {
                    if e.source.is_empty() {
                        e.source.clone_from(&source);
                    }
                    examples.push(e);
                }
                Ok(_) => bad(line, "empty text".into()),
                Err(e) => bad(line, e.to_string()),
            }
        }
    } else {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes.as_slice());
        let headers = reader
            .headers()
            .map_err(|e| OrchestratorError::Config(format!("{}: {e}", path.display())))?
            .clone();
        let col =
            |name: &str| headers.iter().position(|h| h.trim_start_matches('\u{feff}') == name);
        let (Some(text_col), Some(route_col)) = (col("text"), col("route")) else {
            return Err(OrchestratorError::Config(format!(
                "{}: the header needs `text` and `route` columns",
                path.display()
            )));
        };
        let source_col = col("source");
        for record in reader.byte_records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    bad(e.position().map_or(0, |p| p.line()), e.to_string());
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            let field = |i: usize| record.get(i).map(std::str::from_utf8);
            match (field(text_col), field(route_col)) {
                (Some(Ok(text)), Some(Ok(route))) if !text.trim().is_empty() => {
                    match Route::new(route.trim()) {
                        Ok(route) => {
                            let source = match source_col.and_then(field) {
                                Some(Ok(s)) if !s.is_empty() => s.to_owned(),
                                _ => source.clone(),
                            };
                            examples.push(Example { text: text.to_owned(), route, source });
                        }
                        Err(e) => bad(line, e.to_string()),
                    }
                }
                (Some(Err(_)), _) | (_, Some(Err(_))) => bad(line, "not valid UTF-8".into()),
                (Some(Ok(_)), Some(Ok(_))) => bad(line, "empty text".into()),
                _ => bad(line, "missing column".into()),
            }
        }
    }
    Ok((examples, errors))
}

/// Per-dimension standardisation of embeddings, fitted on a training set.
///
/// Hidden states of a language model have a few dimensions hundreds of times larger than the
/// rest; without this they would drown the others in the head's training. The standardised
/// vector is scaled by `1/√dims` so that its length is about 1, like the lexical stage's vectors,
/// and the same learning rate suits both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Mean of each dimension.
    pub mean: Vec<f32>,
    /// `1 / (standard deviation · √dims)` of each dimension (0 for a constant dimension).
    pub scale: Vec<f32>,
}

impl Standardizer {
    /// Fits the mean and spread of `vectors` (all of one length).
    pub fn fit<'a>(vectors: impl Iterator<Item = &'a [f32]> + Clone) -> Self {
        let dims = vectors.clone().next().map_or(0, <[f32]>::len);
        let mut mean = vec![0f64; dims];
        let mut n = 0f64;
        for v in vectors.clone() {
            mean.iter_mut().zip(v).for_each(|(m, x)| *m += f64::from(*x));
            n += 1.0;
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1.0));
        let mut var = vec![0f64; dims];
        for v in vectors {
            var.iter_mut()
                .zip(v)
                .zip(&mean)
                .for_each(|((s, x), m)| *s += (f64::from(*x) - m).powi(2));
        }
        let norm = (dims.max(1) as f64).sqrt();
        let scale = var
            .iter()
            .map(|s| {
                let std = (s / n.max(1.0)).sqrt();
                if std > 1e-12 { (1.0 / (std * norm)) as f32 } else { 0.0 }
            })
            .collect();
        Self { mean: mean.into_iter().map(|m| m as f32).collect(), scale }
    }

    /// The standardised sparse form of `embedding`; dimensions beyond the fitted ones are
    /// dropped.
    pub fn apply(&self, embedding: &[f32]) -> SparseVector {
        embedding
            .iter()
            .zip(self.mean.iter().zip(&self.scale))
            .enumerate()
            .map(|(i, (x, (m, s)))| (u32::try_from(i).unwrap_or(u32::MAX), (x - m) * s))
            .collect()
    }
}

/// Stage 2's classifier: a softmax head over sentence embeddings of one embedding model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemanticHead {
    /// The embedder it was trained on (`Embedder::model_id`); another embedder cannot use it.
    pub embedder: String,
    /// Whether the embedder reads Chinese (and so may judge mostly-Chinese messages; see
    /// [`embedding_covers`]).
    #[serde(default)]
    pub multilingual: bool,
    /// Standardisation of the embeddings, fitted on the training set; `None`: used as they are.
    #[serde(default)]
    pub standardizer: Option<Standardizer>,
    /// The classifier.
    pub model: SoftmaxModel,
}

impl SemanticHead {
    /// The sparse form of a dense embedding.
    pub fn vector(embedding: &[f32]) -> SparseVector {
        embedding
            .iter()
            .enumerate()
            .map(|(i, v)| (u32::try_from(i).unwrap_or(u32::MAX), *v))
            .collect()
    }

    /// Calibrated route probabilities of an embedding, best first.
    pub fn predict(&self, embedding: &[f32]) -> Vec<(Route, f32)> {
        match &self.standardizer {
            Some(s) => self.model.predict(&s.apply(embedding)),
            None => self.model.predict(&Self::vector(embedding)),
        }
    }
}

/// Per-route and overall quality of a cross-validation run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    /// Folds.
    pub folds: usize,
    /// Examples evaluated.
    pub examples: usize,
    /// Accuracy of the cascade's final route.
    pub accuracy: f32,
    /// Macro-averaged F1 over routes.
    pub macro_f1: f32,
    /// Precision, recall, F1 and support per route.
    pub per_route: BTreeMap<Route, RouteScore>,
    /// Share of messages decided by each stage (`lexical`, `semantic`, `llm`).
    pub stage_share: BTreeMap<String, f32>,
    /// Accuracy of the messages each stage decided.
    pub stage_accuracy: BTreeMap<String, f32>,
    /// Mean calibrated temperature of each stage across folds.
    pub temperatures: BTreeMap<String, f32>,
    /// Confusion counts: true route → predicted route → messages.
    pub confusion: BTreeMap<Route, BTreeMap<Route, usize>>,
    /// Every misrouted example, for debugging training data (`fenliu train --misrouted`); not
    /// saved with the artefact.
    #[serde(skip)]
    pub misrouted: Vec<Misrouted>,
}

/// An example the cross-validated cascade routed elsewhere than its label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Misrouted {
    /// The message.
    pub text: String,
    /// Its label.
    pub label: Route,
    /// What the cascade chose.
    pub predicted: Route,
    /// The stage that chose it (`llm`: no stage was sure, scored with the best guess).
    pub stage: &'static str,
    /// Where the example comes from.
    pub source: String,
}

/// Precision, recall and F1 of one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteScore {
    /// Precision.
    pub precision: f32,
    /// Recall.
    pub recall: f32,
    /// F1.
    pub f1: f32,
    /// Examples of this route.
    pub support: usize,
}

/// The trained supervisor, saved as JSON and loaded by the server at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterArtifact {
    /// [`ARTIFACT_VERSION`].
    pub version: u32,
    /// When it was trained.
    pub trained_at: DateTime<Utc>,
    /// Example counts per source.
    pub sources: BTreeMap<String, usize>,
    /// Example counts per route.
    pub routes: BTreeMap<Route, usize>,
    /// Stage 1.
    pub lexical: LexicalModel,
    /// Stage 2, when an embedder was available at training.
    pub semantic: Option<SemanticHead>,
    /// Cross-validation of the same configuration, if run.
    pub report: Option<CvReport>,
}

impl RouterArtifact {
    /// Writes the artefact as compact JSON.
    pub fn save(&self, path: &Path) -> Result<(), OrchestratorError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| OrchestratorError::Config(format!("{}: {e}", dir.display())))?;
        }
        let json =
            serde_json::to_vec(self).map_err(|e| OrchestratorError::Config(e.to_string()))?;
        std::fs::write(path, json)
            .map_err(|e| OrchestratorError::Config(format!("{}: {e}", path.display())))
    }

    /// Reads and checks an artefact.
    pub fn load(path: &Path) -> Result<Self, OrchestratorError> {
        let bytes = std::fs::read(path).map_err(|e| {
            OrchestratorError::Config(format!("router model {}: {e}", path.display()))
        })?;
        let artifact: Self = serde_json::from_slice(&bytes).map_err(|e| {
            OrchestratorError::Config(format!("router model {}: {e}", path.display()))
        })?;
        if artifact.version != ARTIFACT_VERSION {
            return Err(OrchestratorError::Config(format!(
                "router model {} has format version {}, this build reads {ARTIFACT_VERSION}; run `fenliu train`",
                path.display(),
                artifact.version
            )));
        }
        let m = &artifact.lexical.model;
        if m.weights.len() != m.routes.len() * m.dims
            || m.dims != artifact.lexical.featurizer.buckets as usize
        {
            return Err(OrchestratorError::Config(format!(
                "router model {} is inconsistent",
                path.display()
            )));
        }
        Ok(artifact)
    }
}

/// Thresholds of the cascade used in training reports (the server takes them from config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CascadeThresholds {
    /// Stage 1 decides alone at or above this confidence.
    pub lexical: f32,
    /// Stage 2 decides at or above this confidence (or when it agrees with stage 1).
    pub semantic: f32,
    /// Whether the sentence embedding judges mostly-Chinese messages (see [`embedding_covers`]).
    #[serde(default)]
    pub semantic_cjk: bool,
}

impl Default for CascadeThresholds {
    fn default() -> Self {
        Self { lexical: 0.9, semantic: 0.8, semantic_cjk: false }
    }
}

/// Whether stage 2 may judge `text`. The shipped embedder (MiniLM) learned English only and gives
/// unrelated Chinese sentences near-identical vectors, so unless `semantic_cjk` says the
/// embedder is multilingual, a message with more Chinese characters than Latin-script words is
/// routed on the n-gram model (which reads Chinese through character n-grams) and the LLM stage.
pub fn embedding_covers(text: &str, semantic_cjk: bool) -> bool {
    if semantic_cjk {
        return true;
    }
    let cjk = text.chars().filter(|c| fenliu_agent::conversation::is_cjk(*c)).count();
    let latin_words =
        text.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| w.len() >= 2).count();
    cjk <= latin_words
}

/// Combines the two stages' calibrated distributions as independent evidence: their product,
/// renormalised (a product of experts). Routes one stage does not know get a small floor rather
/// than zero, so an extension route known only to one stage can still win.
pub fn combine(lexical: &[(Route, f32)], semantic: &[(Route, f32)]) -> Vec<(Route, f32)> {
    const FLOOR: f32 = 1e-3;
    let p = |ranked: &[(Route, f32)], r: &Route| {
        ranked.iter().find(|(x, _)| x == r).map_or(FLOOR, |(_, p)| p.max(FLOOR))
    };
    let mut routes: Vec<&Route> = lexical.iter().chain(semantic).map(|(r, _)| r).collect();
    routes.sort();
    routes.dedup();
    let mut out: Vec<(Route, f32)> =
        routes.into_iter().map(|r| (r.clone(), p(lexical, r) * p(semantic, r))).collect();
    let total: f32 = out.iter().map(|(_, v)| v).sum();
    if total > 0.0 {
        out.iter_mut().for_each(|(_, v)| *v /= total);
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// What the cascade decides from the two classifier stages alone: stage 1 when it is sure enough
/// alone, else stage 2 when the combined evidence of both is. `None` when neither is: that message
/// needs the LLM stage.
pub fn cascade(
    lexical: &[(Route, f32)],
    semantic: Option<&[(Route, f32)]>,
    thresholds: CascadeThresholds,
) -> Option<(Route, f32, &'static str)> {
    let (l_route, l_conf) = lexical.first()?.clone();
    if l_conf >= thresholds.lexical {
        return Some((l_route, l_conf, "lexical"));
    }
    let combined = combine(lexical, semantic?);
    let (route, conf) = combined.first()?.clone();
    (conf >= thresholds.semantic).then_some((route, conf, "semantic"))
}

/// The best guess when no stage is sure: the top of the combined evidence.
pub fn best_guess(
    lexical: &[(Route, f32)],
    semantic: Option<&[(Route, f32)]>,
) -> Option<(Route, f32)> {
    match semantic {
        Some(sem) => combine(lexical, sem).first().cloned(),
        None => lexical.first().cloned(),
    }
}

/// Stratified fold of an example: a stable hash of its text, so folds never change between runs.
fn fold_of(text: &str, folds: usize) -> usize {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    usize::try_from(h % folds.max(1) as u64).unwrap_or(0)
}

struct Fitted {
    lexical: LexicalModel,
    semantic: Option<(Standardizer, SoftmaxModel)>,
}

/// Trains both stages on `train` (indices into `examples`), calibrating each stage's temperature
/// on a fifth of `train` held out from fitting, then refitting on all of `train`.
fn fit(
    examples: &[Example],
    embeddings: Option<&[Vec<f32>]>,
    train: &[usize],
    routes: &[Route],
    opts: &TrainOptions,
) -> Fitted {
    let featurizer = Featurizer::default();
    let label = |i: usize| routes.iter().position(|r| *r == examples[i].route).unwrap_or(0);
    let lex_data = |idx: &[usize]| -> Vec<(SparseVector, usize)> {
        idx.iter()
            .map(|&i| (LexicalModel::vector(&featurizer, &examples[i].text), label(i)))
            .collect()
    };
    let sem_data =
        |idx: &[usize], emb: &[Vec<f32>], std: &Standardizer| -> Vec<(SparseVector, usize)> {
            idx.iter().map(|&i| (std.apply(&emb[i]), label(i))).collect()
        };
    let (calib, fit_part): (Vec<usize>, Vec<usize>) =
        train.iter().partition(|&&i| fold_of(&format!("calib{}", examples[i].text), 5) == 0);

    let dims = featurizer.buckets as usize;
    let probe = SoftmaxModel::train(routes.to_vec(), dims, &lex_data(&fit_part), opts);
    let held: Vec<(Vec<f32>, usize)> =
        lex_data(&calib).iter().map(|(x, y)| (probe.logits(x), *y)).collect();
    let mut lexical = SoftmaxModel::train(routes.to_vec(), dims, &lex_data(train), opts);
    lexical.temperature = SoftmaxModel::fit_temperature(&held);

    let semantic = embeddings.map(|emb| {
        let sem_opts = TrainOptions { epochs: 80, learning_rate: 0.5, ..opts.clone() };
        let dims = emb.first().map_or(0, Vec::len);
        // Fitted on the training part only, as everything else the head learns.
        let std = Standardizer::fit(train.iter().map(|&i| emb[i].as_slice()));
        let probe =
            SoftmaxModel::train(routes.to_vec(), dims, &sem_data(&fit_part, emb, &std), &sem_opts);
        let held: Vec<(Vec<f32>, usize)> =
            sem_data(&calib, emb, &std).iter().map(|(x, y)| (probe.logits(x), *y)).collect();
        let mut model =
            SoftmaxModel::train(routes.to_vec(), dims, &sem_data(train, emb, &std), &sem_opts);
        model.temperature = SoftmaxModel::fit_temperature(&held);
        (std, model)
    });
    Fitted { lexical: LexicalModel { featurizer, model: lexical }, semantic }
}

/// Embeds every example's text, in batches, reporting progress through `progress(done, total)`.
pub async fn embed_examples(
    embedder: &dyn DynEmbedder,
    examples: &[Example],
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>, OrchestratorError> {
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(256) {
        let texts: Vec<String> = chunk.iter().map(|e| e.text.clone()).collect();
        out.extend(embedder.embed(&texts).await?);
        progress(out.len(), examples.len());
    }
    Ok(out)
}

/// k-fold cross-validation of the cascade (stages 1 and 2; what they leave undecided is counted
/// as the LLM stage's share and scored with the better-ranked classifier's guess).
pub fn cross_validate(
    examples: &[Example],
    embeddings: Option<&[Vec<f32>]>,
    folds: usize,
    thresholds: CascadeThresholds,
    opts: &TrainOptions,
) -> CvReport {
    let routes = routes_of(examples.iter().map(|e| &e.route));
    let folds = folds.max(2);
    let mut predicted: Vec<(usize, Route, &'static str)> = Vec::with_capacity(examples.len());
    let mut temps: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for k in 0..folds {
        let (test, train): (Vec<usize>, Vec<usize>) =
            (0..examples.len()).partition(|&i| fold_of(&examples[i].text, folds) == k);
        let fitted = fit(examples, embeddings, &train, &routes, opts);
        temps.entry("lexical".into()).or_default().push(fitted.lexical.model.temperature);
        if let Some((_, s)) = &fitted.semantic {
            temps.entry("semantic".into()).or_default().push(s.temperature);
        }
        for i in test {
            let lex = fitted.lexical.predict(&examples[i].text);
            let sem = match (&fitted.semantic, embeddings) {
                (Some((std, m)), Some(emb))
                    if embedding_covers(&examples[i].text, thresholds.semantic_cjk) =>
                {
                    Some(m.predict(&std.apply(&emb[i])))
                }
                _ => None,
            };
            let (route, stage) = match cascade(&lex, sem.as_deref(), thresholds) {
                Some((route, _, stage)) => (route, stage),
                None => {
                    let best =
                        best_guess(&lex, sem.as_deref()).map_or(Route::OUT_OF_SCOPE, |(r, _)| r);
                    (best, "llm")
                }
            };
            predicted.push((i, route, stage));
        }
    }
    score(examples, &routes, &predicted, folds, temps)
}

fn score(
    examples: &[Example],
    routes: &[Route],
    predicted: &[(usize, Route, &'static str)],
    folds: usize,
    temps: BTreeMap<String, Vec<f32>>,
) -> CvReport {
    let n = predicted.len().max(1) as f32;
    let mut per_route = BTreeMap::new();
    for route in routes {
        let tp =
            predicted.iter().filter(|(i, p, _)| p == route && examples[*i].route == *route).count()
                as f32;
        let pred = predicted.iter().filter(|(_, p, _)| p == route).count() as f32;
        let support = predicted.iter().filter(|(i, _, _)| examples[*i].route == *route).count();
        let precision = if pred > 0.0 { tp / pred } else { 0.0 };
        let recall = if support > 0 { tp / support as f32 } else { 0.0 };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        per_route.insert(route.clone(), RouteScore { precision, recall, f1, support });
    }
    let correct = predicted.iter().filter(|(i, p, _)| examples[*i].route == *p).count() as f32;
    let mut confusion: BTreeMap<Route, BTreeMap<Route, usize>> = BTreeMap::new();
    for (i, p, _) in predicted {
        *confusion.entry(examples[*i].route.clone()).or_default().entry(p.clone()).or_default() +=
            1;
    }
    let mut stage_share = BTreeMap::new();
    let mut stage_accuracy = BTreeMap::new();
    for stage in ["lexical", "semantic", "llm"] {
        let of: Vec<_> = predicted.iter().filter(|(_, _, s)| *s == stage).collect();
        stage_share.insert(stage.to_owned(), of.len() as f32 / n);
        if !of.is_empty() {
            let ok = of.iter().filter(|(i, p, _)| examples[*i].route == *p).count() as f32;
            stage_accuracy.insert(stage.to_owned(), ok / of.len() as f32);
        }
    }
    let misrouted = predicted
        .iter()
        .filter(|(i, p, _)| examples[*i].route != *p)
        .map(|(i, p, stage)| Misrouted {
            text: examples[*i].text.clone(),
            label: examples[*i].route.clone(),
            predicted: p.clone(),
            stage,
            source: examples[*i].source.clone(),
        })
        .collect();
    CvReport {
        misrouted,
        folds,
        examples: predicted.len(),
        accuracy: correct / n,
        macro_f1: per_route.values().map(|s| s.f1).sum::<f32>() / per_route.len().max(1) as f32,
        per_route,
        stage_share,
        stage_accuracy,
        temperatures: temps
            .into_iter()
            .map(|(k, v)| (k, v.iter().sum::<f32>() / v.len().max(1) as f32))
            .collect(),
        confusion,
    }
}

/// Writes misrouted examples as CSV (`text,label,predicted,stage,source`), sorted by label,
/// then prediction, so that patterns group together.
pub fn write_misrouted(path: &Path, rows: &[Misrouted]) -> Result<(), OrchestratorError> {
    let io = |e: csv::Error| OrchestratorError::Config(format!("{}: {e}", path.display()));
    let mut rows: Vec<&Misrouted> = rows.iter().collect();
    rows.sort_by(|a, b| (&a.label, &a.predicted, &a.text).cmp(&(&b.label, &b.predicted, &b.text)));
    let mut w = csv::Writer::from_path(path).map_err(io)?;
    w.write_record(["text", "label", "predicted", "stage", "source"]).map_err(io)?;
    for r in rows {
        w.write_record([
            r.text.as_str(),
            r.label.as_str(),
            r.predicted.as_str(),
            r.stage,
            &r.source,
        ])
        .map_err(io)?;
    }
    w.flush().map_err(|e| OrchestratorError::Config(format!("{}: {e}", path.display())))
}

/// Trains the artefact on all examples (and cross-validates it first when `folds` is given).
pub fn train_artifact(
    examples: &[Example],
    embeddings: Option<(&str, &[Vec<f32>])>,
    folds: Option<usize>,
    thresholds: CascadeThresholds,
) -> Result<RouterArtifact, OrchestratorError> {
    if examples.is_empty() {
        return Err(OrchestratorError::Config("no training examples".into()));
    }
    let opts = TrainOptions::default();
    let routes = routes_of(examples.iter().map(|e| &e.route));
    let report =
        folds.map(|k| cross_validate(examples, embeddings.map(|(_, e)| e), k, thresholds, &opts));
    let all: Vec<usize> = (0..examples.len()).collect();
    let fitted = fit(examples, embeddings.map(|(_, e)| e), &all, &routes, &opts);
    let mut sources = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for e in examples {
        *sources.entry(e.source.clone()).or_insert(0) += 1;
        *counts.entry(e.route.clone()).or_insert(0) += 1;
    }
    Ok(RouterArtifact {
        version: ARTIFACT_VERSION,
        trained_at: Utc::now(),
        sources,
        routes: counts,
        lexical: fitted.lexical,
        semantic: fitted.semantic.zip(embeddings).map(|((std, model), (id, _))| SemanticHead {
            embedder: id.to_owned(),
            multilingual: thresholds.semantic_cjk,
            standardizer: Some(std),
            model,
        }),
        report,
    })
}

/// Labels every phrase of every registered agent and built-in route as examples.
pub fn phrase_examples(phrases: &[(Route, fenliu_agent::TrainingPhrase)]) -> Vec<Example> {
    phrases
        .iter()
        .map(|(route, p)| Example {
            text: p.text.clone(),
            route: route.clone(),
            source: format!("phrases:{}", if p.language == Language::Zh { "zh" } else { "en" }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_are_reported_with_lines_and_the_rest_loads() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, b"text,route\nwhere is my order,order\n,order\nhello,NOT A ROUTE\n\"bad \xff utf8\",faq\ntell a joke,out_of_scope\n").unwrap();
        let (ok, bad) = load_examples(&csv).unwrap();
        assert_eq!(ok.len(), 2, "{ok:?}");
        assert_eq!(bad.iter().map(|e| e.line).collect::<Vec<_>>(), vec![3, 4, 5], "{bad:?}");

        let jsonl = dir.path().join("d.jsonl");
        std::fs::write(
            &jsonl,
            b"{\"text\":\"hi\",\"route\":\"faq\"}\n{broken\n\n{\"text\":\"x\"}\n",
        )
        .unwrap();
        let (ok, bad) = load_examples(&jsonl).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(bad.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 4]);

        let headerless = dir.path().join("h.csv");
        std::fs::write(&headerless, b"a,b\n1,2\n").unwrap();
        assert!(load_examples(&headerless).is_err());
        assert!(load_examples(&dir.path().join("missing.csv")).is_err());
    }

    #[test]
    fn standardizer_centres_scales_and_survives_odd_input() {
        // Dimension 0 is a huge outlier, as in a language model's residual stream; 2 is constant.
        let vectors = [vec![1000.0, 1.0, 5.0], vec![3000.0, 3.0, 5.0]];
        let s = Standardizer::fit(vectors.iter().map(Vec::as_slice));
        let a = s.apply(&vectors[0]);
        let b = s.apply(&vectors[1]);
        let norm = 1.0 / 3f32.sqrt();
        for (i, want) in [(0, -norm), (1, -norm), (2, 0.0)] {
            assert!((a[i].1 - want).abs() < 1e-5, "{a:?}");
            assert!((b[i].1 + want).abs() < 1e-5, "{b:?}");
        }
        // A shorter or longer vector than the fitted ones is cut to what both have, never a panic.
        assert_eq!(s.apply(&[1.0]).len(), 1);
        assert_eq!(s.apply(&[1.0, 2.0, 3.0, 4.0]).len(), 3);
        let empty = Standardizer::fit(std::iter::empty::<&[f32]>());
        assert!(empty.apply(&[1.0, 2.0]).is_empty());
        // A head without a standardizer (artefacts from before it existed) reads vectors raw.
        let model = SoftmaxModel::train(
            vec![Route::ORDER, Route::FAQ],
            2,
            &[(vec![(0, 1.0)], 0), (vec![(1, 1.0)], 1)],
            &TrainOptions::default(),
        );
        let raw =
            SemanticHead { embedder: "e".into(), multilingual: false, standardizer: None, model };
        assert_eq!(raw.predict(&[1.0, 0.0])[0].0, Route::ORDER);
        assert_eq!(raw.predict(&[0.0, 1.0])[0].0, Route::FAQ);
        let old: SemanticHead = serde_json::from_value(serde_json::json!({
            "embedder": "e",
            "model": serde_json::to_value(&raw.model).unwrap(),
        }))
        .unwrap();
        assert_eq!((old.multilingual, old.standardizer), (false, None));
    }

    #[test]
    fn cascade_stages() {
        let t = CascadeThresholds::default();
        let sure = [(Route::ORDER, 0.95), (Route::FAQ, 0.05)];
        let unsure = [(Route::ORDER, 0.7), (Route::FAQ, 0.3)];
        let other = [(Route::FAQ, 0.7), (Route::ORDER, 0.3)];
        assert_eq!(cascade(&sure, None, t).map(|d| d.2), Some("lexical"));
        // Two moderately sure stages that agree make a sure decision (0.49 / (0.49 + 0.09)).
        let agreed = cascade(&unsure, Some(&unsure), t).unwrap();
        assert_eq!((agreed.0, agreed.2), (Route::ORDER, "semantic"));
        assert!((agreed.1 - 0.49 / 0.58).abs() < 1e-4);
        assert_eq!(cascade(&unsure, Some(&other), t), None, "disagreement goes to the LLM");
        assert_eq!(cascade(&unsure, None, t), None);
        assert_eq!(best_guess(&unsure, Some(&other)).map(|g| g.1), Some(0.5));
    }

    #[test]
    fn cross_validation_scores_a_separable_set() {
        let mut examples = Vec::new();
        for i in 0..40 {
            examples.push(Example {
                text: format!("where is my order number {i}"),
                route: Route::ORDER,
                source: "t".into(),
            });
            examples.push(Example {
                text: format!("tell me joke number {i}"),
                route: Route::OUT_OF_SCOPE,
                source: "t".into(),
            });
        }
        let report = cross_validate(
            &examples,
            None,
            5,
            CascadeThresholds::default(),
            &TrainOptions::default(),
        );
        assert_eq!(report.examples, 80);
        assert!(report.macro_f1 > 0.95, "{report:?}");
        let artifact = train_artifact(&examples, None, None, CascadeThresholds::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.json");
        artifact.save(&path).unwrap();
        let loaded = RouterArtifact::load(&path).unwrap();
        // Weights are stored as f16: equal to within half-precision rounding.
        for (a, b) in loaded.lexical.model.weights.iter().zip(&artifact.lexical.model.weights) {
            assert!((a - b).abs() <= b.abs() * 1e-3 + 1e-4, "{a} vs {b}");
        }
        assert_eq!(loaded.lexical.model.routes, artifact.lexical.model.routes);
        assert_eq!(
            loaded.lexical.predict("where is my order number 3")[0].0,
            artifact.lexical.predict("where is my order number 3")[0].0
        );
        std::fs::write(&path, b"{}").unwrap();
        assert!(RouterArtifact::load(&path).is_err());
    }
}
