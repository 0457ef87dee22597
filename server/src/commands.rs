//! `fenliu train` and `fenliu route`: training the supervisor and checking it from outside.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use fenliu_orchestrator::training::{
    CvReport, Example, embed_examples, load_examples, phrase_examples, train_artifact,
    write_misrouted,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::Config;
use crate::runtime::{build_supervisor, load_router_embedder, load_training_embedder, registry};

/// Options of `fenliu train`.
#[derive(Debug, Clone)]
pub struct TrainArgs {
    /// Labelled CSV/JSONL files.
    pub data: Vec<PathBuf>,
    /// Where to write the artefact.
    pub out: PathBuf,
    /// Folds of the cross-validation report (0: none).
    pub folds: usize,
    /// Train the lexical stage only (no embedder needed).
    pub no_embed: bool,
    /// Where to write the cross-validation's misrouted examples as CSV.
    pub misrouted: Option<PathBuf>,
}

/// Trains the router from files plus every registered agent's phrases and writes the artefact.
pub async fn train(config: &Config, args: &TrainArgs) -> anyhow::Result<()> {
    let mut examples: Vec<Example> = Vec::new();
    let mut bad_rows = 0;
    for path in &args.data {
        let (rows, errors) = load_examples(path)?;
        for e in errors.iter().take(20) {
            eprintln!("skipped {e}");
        }
        if errors.len() > 20 {
            eprintln!("… and {} more bad rows in {}", errors.len() - 20, path.display());
        }
        bad_rows += errors.len();
        eprintln!("{}: {} examples", path.display(), rows.len());
        examples.extend(rows);
    }
    let registry = registry()?;
    let settings = crate::runtime::agent_settings(config, &registry)?;
    let phrases = phrase_examples(&registry.training_phrases_with(&settings));
    eprintln!("agents' (with config/agents) and built-in phrases: {} examples", phrases.len());
    examples.extend(phrases);

    let embedder = if args.no_embed {
        None
    } else {
        Some(load_training_embedder(config, fenliu_models::default_compute_threads())?)
    };
    let embeddings = match &embedder {
        Some(embedder) => {
            let bar = ProgressBar::new(examples.len() as u64).with_style(
                ProgressStyle::with_template(
                    "embedding {bar:40} {pos}/{len} [{elapsed_precise}, eta {eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            // One cache file per embedder, so switching `router.embedder` keeps both.
            let key: String = embedder
                .model_id()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let cache_path =
                config.models.dir.join(".cache").join(format!("train-embeddings-{key}.bin"));
            let mut cache = EmbeddingCache::load(&cache_path, embedder.model_id());
            let missing: Vec<Example> =
                examples.iter().filter(|e| !cache.contains(&e.text)).cloned().collect();
            let cached = examples.len() - missing.len();
            bar.set_position(cached as u64);
            let vectors = embed_examples(embedder.as_ref(), &missing, |done, _| {
                bar.set_position((cached + done) as u64)
            })
            .await?;
            bar.finish();
            eprintln!("embedded {} new texts, {cached} from the cache", missing.len());
            for (e, v) in missing.iter().zip(vectors) {
                cache.insert(&e.text, v);
            }
            if let Err(e) = cache.save(&cache_path) {
                eprintln!("could not save the embedding cache {}: {e}", cache_path.display());
            }
            Some(
                examples
                    .iter()
                    .map(|e| cache.get(&e.text).cloned().unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let folds = (args.folds > 1).then_some(args.folds);
    let thresholds = config.router.thresholds();
    let spinner = ProgressBar::new_spinner().with_message(match folds {
        Some(k) => format!("cross-validating ({k} folds) and training"),
        None => "training".to_owned(),
    });
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let model_id = embedder.as_ref().map(|e| e.model_id().to_owned());
    let artifact = tokio::task::spawn_blocking(move || {
        let emb = model_id.as_deref().zip(embeddings.as_deref());
        train_artifact(&examples, emb, folds, thresholds)
    })
    .await??;
    spinner.finish_and_clear();
    artifact.save(&args.out)?;
    if let Some(report) = &artifact.report {
        print_report(report);
        if let Some(path) = &args.misrouted {
            write_misrouted(path, &report.misrouted)?;
            println!("wrote {} misrouted examples to {}", report.misrouted.len(), path.display());
        }
    }
    println!(
        "wrote {} ({} examples, {} bad rows skipped, semantic head: {})",
        args.out.display(),
        artifact.routes.values().sum::<usize>(),
        bad_rows,
        artifact.semantic.as_ref().map_or("none", |h| h.embedder.as_str())
    );
    Ok(())
}

/// Prints a cross-validation report as a table.
pub fn print_report(r: &CvReport) {
    println!("{}-fold cross-validation on {} examples", r.folds, r.examples);
    println!("{:<14} {:>9} {:>9} {:>9} {:>8}", "route", "precision", "recall", "f1", "support");
    for (route, s) in &r.per_route {
        println!(
            "{:<14} {:>9.3} {:>9.3} {:>9.3} {:>8}",
            route.as_str(),
            s.precision,
            s.recall,
            s.f1,
            s.support
        );
    }
    println!("accuracy {:.3}   macro-F1 {:.3}", r.accuracy, r.macro_f1);
    for (stage, share) in &r.stage_share {
        let acc = r.stage_accuracy.get(stage).map_or("-".to_owned(), |a| format!("{a:.3}"));
        println!("decided by {stage:<9} {:>6.1}%   accuracy {acc}", share * 100.0);
    }
    let mut confusions: Vec<(usize, String)> = r
        .confusion
        .iter()
        .flat_map(|(truth, row)| {
            row.iter()
                .filter(move |(p, _)| *p != truth)
                .map(move |(p, n)| (*n, format!("{truth} → {p}")))
        })
        .collect();
    confusions.sort_by_key(|c| std::cmp::Reverse(c.0));
    let top: Vec<String> =
        confusions.iter().take(6).map(|(n, what)| format!("{what} ({n})")).collect();
    println!("most frequent confusions: {}", top.join(", "));
    let temps: Vec<String> = r.temperatures.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    println!("calibrated temperatures: {}", temps.join(", "));
}

/// One line of `fenliu route --json`.
#[derive(Debug, Serialize)]
struct RouteLine<'a> {
    message: &'a str,
    route: String,
    confidence: f32,
    stage: String,
    reason: String,
    runner_up: Vec<(String, f32)>,
}

/// Routes messages (arguments, or stdin lines) offline and prints one result per message.
pub async fn route(config: &Config, messages: Vec<String>, json: bool) -> anyhow::Result<()> {
    let registry = registry()?;
    let supervisor = build_supervisor(config, &registry, load_router_embedder(config, 1)?).await?;
    let supervisor = Arc::new(supervisor);
    let messages: Vec<String> = if messages.is_empty() {
        std::io::stdin().lock().lines().collect::<Result<_, _>>().context("reading stdin")?
    } else {
        messages
    };
    if !json {
        println!("{:<50} {:<13} {:>5} {:<9} runner-up", "message", "route", "conf", "stage");
    }
    for message in messages.iter().filter(|m| !m.trim().is_empty()) {
        let d = supervisor.route(message, None).await?;
        let runner_up: Vec<(String, f32)> =
            d.alternatives.iter().map(|(r, c)| (r.to_string(), *c)).collect();
        if json {
            let line = RouteLine {
                message,
                route: d.route.to_string(),
                confidence: d.confidence,
                stage: d.stage.clone(),
                reason: d.reason.clone(),
                runner_up,
            };
            println!("{}", serde_json::to_string(&line)?);
        } else {
            let shown: String = message.chars().take(48).collect();
            let alt = runner_up.first().map(|(r, c)| format!("{r} {c:.2}")).unwrap_or_default();
            println!(
                "{:<50} {:<13} {:>5.2} {:<9} {alt}",
                shown,
                d.route.as_str(),
                d.confidence,
                d.stage
            );
        }
    }
    Ok(())
}

/// Embeddings of training texts from earlier runs, keyed by the embedder and a hash of the text,
/// so retraining after a threshold or phrase change only embeds what is new. Lives under
/// `models/.cache/` (git-ignored); a file of another embedder or a damaged file is ignored.
struct EmbeddingCache {
    model_id: String,
    vectors: std::collections::HashMap<u64, Vec<f32>>,
}

impl EmbeddingCache {
    fn key(text: &str) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in text.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    fn load(path: &std::path::Path, model_id: &str) -> Self {
        let mut cache = Self { model_id: model_id.to_owned(), vectors: Default::default() };
        let Ok(bytes) = std::fs::read(path) else { return cache };
        let Some((header, body)) = bytes.split_first_chunk::<8>() else { return cache };
        let id_len = usize::try_from(u64::from_le_bytes(*header)).unwrap_or(usize::MAX);
        let Some((id, mut rest)) = body.split_at_checked(id_len) else { return cache };
        if id != model_id.as_bytes() {
            return cache;
        }
        while let Some((head, tail)) = rest.split_first_chunk::<12>() {
            let key = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
            let dims = u32::from_le_bytes(head[8..].try_into().unwrap_or_default()) as usize;
            let Some((data, tail)) = tail.split_at_checked(dims * 4) else { break };
            let v = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            cache.vectors.insert(key, v);
            rest = tail;
        }
        cache
    }

    fn contains(&self, text: &str) -> bool {
        self.vectors.contains_key(&Self::key(text))
    }

    fn get(&self, text: &str) -> Option<&Vec<f32>> {
        self.vectors.get(&Self::key(text))
    }

    fn insert(&mut self, text: &str, v: Vec<f32>) {
        self.vectors.insert(Self::key(text), v);
    }

    fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = Vec::with_capacity(self.vectors.len() * (12 + 384 * 4));
        out.extend((self.model_id.len() as u64).to_le_bytes());
        out.extend(self.model_id.as_bytes());
        for (key, v) in &self.vectors {
            out.extend(key.to_le_bytes());
            out.extend(u32::try_from(v.len()).unwrap_or(0).to_le_bytes());
            v.iter().for_each(|x| out.extend(x.to_le_bytes()));
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(tmp, path)
    }
}

/// Options of `fenliu bench route`.
#[derive(Debug, Clone)]
pub struct BenchRouteArgs {
    /// Labelled messages to route (CSV/JSONL, as for training).
    pub data: PathBuf,
    /// Messages sampled from the file.
    pub messages: usize,
    /// Print JSON instead of a table.
    pub json: bool,
}

/// Latency of one stage: how many decisions, p50 and p99 in microseconds.
#[derive(Debug, Serialize)]
struct StageLatency {
    stage: String,
    decisions: usize,
    share: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Routes a sample of labelled messages one at a time and reports latency per deciding stage and
/// messages per second. Run it with `RAYON_NUM_THREADS=1` for the one-core figure.
pub async fn bench_route(config: &Config, args: &BenchRouteArgs) -> anyhow::Result<()> {
    let registry = registry()?;
    let supervisor = build_supervisor(config, &registry, load_router_embedder(config, 1)?).await?;
    let (examples, _) = load_examples(&args.data)?;
    // An even spread over the file, so every route and source is represented.
    let step = (examples.len() / args.messages.max(1)).max(1);
    let sample: Vec<&Example> = examples.iter().step_by(step).take(args.messages).collect();
    anyhow::ensure!(!sample.is_empty(), "no messages in {}", args.data.display());
    // Warm-up: first calls pay for lazy initialisation.
    for e in sample.iter().take(10) {
        supervisor.route(&e.text, None).await?;
    }
    let mut by_stage: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let started = std::time::Instant::now();
    for e in &sample {
        let t = std::time::Instant::now();
        let d = supervisor.route(&e.text, None).await?;
        by_stage.entry(d.stage).or_default().push(t.elapsed().as_secs_f64() * 1e6);
    }
    let total = started.elapsed().as_secs_f64();
    let percentile = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or(0.0)
    };
    let mut all: Vec<f64> = by_stage.values().flatten().copied().collect();
    let mut rows: Vec<StageLatency> = by_stage
        .into_iter()
        .map(|(stage, mut v)| StageLatency {
            decisions: v.len(),
            share: v.len() as f64 / sample.len() as f64,
            p50_us: percentile(&mut v, 0.5),
            p99_us: percentile(&mut v, 0.99),
            stage,
        })
        .collect();
    rows.push(StageLatency {
        stage: "all".into(),
        decisions: all.len(),
        share: 1.0,
        p50_us: percentile(&mut all, 0.5),
        p99_us: percentile(&mut all, 0.99),
    });
    let per_second = sample.len() as f64 / total;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "messages": sample.len(), "messages_per_second": per_second, "stages": rows })
        );
    } else {
        println!(
            "{:<10} {:>9} {:>7} {:>10} {:>10}",
            "stage", "decisions", "share", "p50 µs", "p99 µs"
        );
        for r in &rows {
            println!(
                "{:<10} {:>9} {:>6.1}% {:>10.0} {:>10.0}",
                r.stage,
                r.decisions,
                r.share * 100.0,
                r.p50_us,
                r.p99_us
            );
        }
        println!("{} messages in {total:.2} s: {per_second:.0} messages/s", sample.len());
    }
    Ok(())
}
