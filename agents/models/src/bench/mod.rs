//! `fenliu bench models`: how fast the local models load and run on this machine.
//!
//! Every figure is the median of [`ModelBenchOptions::runs`] runs (with the fastest and slowest
//! beside it), so that one noisy run on a shared machine does not decide the result:
//! - Gemma: load time, prompt processing and greedy decoding in tokens/s, per thread count;
//! - MiniLM: load time and sentences/s at each batch size, per thread count, over a fixed set of
//!   real customer messages (English and Chinese, from the project's own training data) so that
//!   runs on different machines — and the reference script `scripts/bench_reference.py` for
//!   sentence-transformers and llama.cpp — embed the same texts.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::{LocalGemma, LocalGemmaOptions, MiniLmEmbedder, MiniLmOptions, ModelLoadError};

/// The texts the embedding benchmark embeds (one per line).
pub const SENTENCES: &str = include_str!("sentences.txt");

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBenchOptions {
    /// The `models/` directory that `scripts/setup.sh` fills.
    pub models_dir: PathBuf,
    /// Thread counts to measure each model with (each ≥ 1).
    pub threads: Vec<usize>,
    /// Runs per figure (≥ 1); the median is reported.
    pub runs: usize,
    /// Prompt length for the prompt-processing figure.
    pub prompt_tokens: usize,
    /// Greedy steps for the decoding figure.
    pub decode_tokens: usize,
    /// Embedding batch sizes (each ≥ 1).
    pub batch_sizes: Vec<usize>,
    /// Which models: Gemma, MiniLM or both.
    pub models: ModelSelection,
}

/// The models a benchmark covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelSelection {
    /// Gemma and MiniLM.
    #[default]
    All,
    /// The local chat model only.
    Gemma,
    /// The embedder only.
    MiniLm,
}

impl Default for ModelBenchOptions {
    fn default() -> Self {
        Self {
            models_dir: PathBuf::from("models"),
            threads: vec![1, 2],
            runs: 5,
            prompt_tokens: 128,
            decode_tokens: 64,
            batch_sizes: vec![1, 32],
            models: ModelSelection::All,
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// The model's id.
    pub model: String,
    /// What was measured: `load`, `prompt`, `decode` or `embed`.
    pub metric: &'static str,
    /// Compute threads.
    pub threads: usize,
    /// Texts per forward pass (embeddings only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Unit of the figures: `s`, `tokens/s` or `sentences/s`.
    pub unit: &'static str,
    /// Median over the runs.
    pub median: f64,
    /// Best run (lowest seconds, highest rate).
    pub best: f64,
    /// Worst run.
    pub worst: f64,
    /// Runs measured.
    pub runs: usize,
}

/// The result of [`run`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelBenchReport {
    /// Cores the machine reports.
    pub cores: usize,
    /// Resident memory at the end, in MB (Linux only).
    pub rss_mb: Option<u64>,
    /// Peak resident memory of the process, in MB (Linux only).
    pub peak_rss_mb: Option<u64>,
    /// The figures, in the order measured.
    pub measurements: Vec<Measurement>,
}

impl ModelBenchReport {
    /// The figures as a fixed-width table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<38} {:<7} {:>7} {:>5} {:>12} {:>10} {:>10}  unit\n",
            "model", "metric", "threads", "batch", "median", "best", "worst"
        );
        for m in &self.measurements {
            let batch = m.batch.map_or_else(|| "-".to_owned(), |b| b.to_string());
            let digits = if m.unit == "s" { 2 } else { 1 };
            out.push_str(&format!(
                "{:<38} {:<7} {:>7} {:>5} {:>12.digits$} {:>10.digits$} {:>10.digits$}  {}\n",
                m.model, m.metric, m.threads, batch, m.median, m.best, m.worst, m.unit
            ));
        }
        out.push_str(&format!(
            "cores: {}   rss: {} MB   peak rss: {} MB\n",
            self.cores,
            self.rss_mb.map_or_else(|| "?".to_owned(), |v| v.to_string()),
            self.peak_rss_mb.map_or_else(|| "?".to_owned(), |v| v.to_string()),
        ));
        out
    }
}

/// Runs the benchmark, calling `progress` before each step.
pub fn run(
    options: &ModelBenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ModelBenchReport, ModelLoadError> {
    validate(options)?;
    let mut measurements = Vec::new();
    if options.models != ModelSelection::MiniLm {
        bench_gemma(options, progress, &mut measurements)?;
    }
    if options.models != ModelSelection::Gemma {
        bench_minilm(options, progress, &mut measurements)?;
    }
    Ok(ModelBenchReport {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rss_mb: proc_status_mb("VmRSS:"),
        peak_rss_mb: proc_status_mb("VmHWM:"),
        measurements,
    })
}

fn validate(options: &ModelBenchOptions) -> Result<(), ModelLoadError> {
    let bad = |what: &str| Err(ModelLoadError::Config(format!("bench models: {what}")));
    if options.runs == 0 {
        return bad("runs must be at least 1");
    }
    if options.threads.is_empty() || options.threads.contains(&0) {
        return bad("thread counts must be at least 1");
    }
    if options.threads.iter().any(|&t| t > 256) {
        return bad("thread counts above 256 are not sensible");
    }
    if options.batch_sizes.is_empty() || options.batch_sizes.contains(&0) {
        return bad("batch sizes must be at least 1");
    }
    if options.prompt_tokens == 0 || options.decode_tokens == 0 {
        return bad("prompt and decode tokens must be at least 1");
    }
    Ok(())
}

fn bench_gemma(
    options: &ModelBenchOptions,
    progress: &mut dyn FnMut(&str),
    out: &mut Vec<Measurement>,
) -> Result<(), ModelLoadError> {
    let path = options.models_dir.join(LocalGemma::FILE);
    for &threads in &options.threads {
        let gemma_options = LocalGemmaOptions { threads, ..LocalGemmaOptions::default() };
        let mut load_times = Vec::new();
        let mut model = None;
        for run in 1..=options.runs {
            progress(&format!("gemma: load {run}/{} ({threads} threads)", options.runs));
            // Drop the previous copy first so that two are never resident at once.
            drop(model.take());
            let loaded = LocalGemma::load(&path, gemma_options.clone())?;
            load_times.push(loaded.load_time().as_secs_f64());
            model = Some(loaded);
        }
        out.push(measure(LocalGemma::MODEL_ID, "load", threads, None, "s", load_times));
        let Some(model) = model else { continue };
        progress(&format!(
            "gemma: {} prompt + {} decode tokens × {} ({threads} threads)",
            options.prompt_tokens, options.decode_tokens, options.runs
        ));
        let rates = model
            .benchmark(options.prompt_tokens, options.decode_tokens, options.runs)
            .map_err(|e| ModelLoadError::Inference(e.to_string()))?;
        out.push(measure(LocalGemma::MODEL_ID, "prompt", threads, None, "tokens/s", rates.prompt));
        out.push(measure(LocalGemma::MODEL_ID, "decode", threads, None, "tokens/s", rates.decode));
    }
    Ok(())
}

fn bench_minilm(
    options: &ModelBenchOptions,
    progress: &mut dyn FnMut(&str),
    out: &mut Vec<Measurement>,
) -> Result<(), ModelLoadError> {
    let dir = options.models_dir.join(MiniLmEmbedder::DIR_NAME);
    let texts: Vec<String> = SENTENCES.lines().map(str::to_owned).collect();
    for &threads in &options.threads {
        let mut load_times = Vec::new();
        for run in 1..=options.runs {
            progress(&format!("minilm: load {run}/{} ({threads} threads)", options.runs));
            let started = Instant::now();
            MiniLmEmbedder::load(&dir, MiniLmOptions { threads, ..MiniLmOptions::default() })?;
            load_times.push(started.elapsed().as_secs_f64());
        }
        out.push(measure(MiniLmEmbedder::MODEL_ID, "load", threads, None, "s", load_times));
        for &batch_size in &options.batch_sizes {
            let embedder = MiniLmEmbedder::load(
                &dir,
                MiniLmOptions { threads, batch_size, ..MiniLmOptions::default() },
            )?;
            // One untimed pass warms caches and the allocator.
            embedder.embed_blocking(&texts[..batch_size.min(texts.len())])?;
            let mut rates = Vec::new();
            for run in 1..=options.runs {
                progress(&format!(
                    "minilm: {} sentences, batch {batch_size}, run {run}/{} ({threads} threads)",
                    texts.len(),
                    options.runs
                ));
                let started = Instant::now();
                let vectors = embedder.embed_blocking(&texts)?;
                rates.push(vectors.len() as f64 / started.elapsed().as_secs_f64());
            }
            out.push(measure(
                MiniLmEmbedder::MODEL_ID,
                "embed",
                threads,
                Some(batch_size),
                "sentences/s",
                rates,
            ));
        }
    }
    Ok(())
}

/// Median, best and worst of `values`; for seconds lower is better, for rates higher.
fn measure(
    model: &str,
    metric: &'static str,
    threads: usize,
    batch: Option<usize>,
    unit: &'static str,
    mut values: Vec<f64>,
) -> Measurement {
    values.sort_by(f64::total_cmp);
    let runs = values.len();
    let median = median_sorted(&values);
    let (low, high) =
        (values.first().copied().unwrap_or(0.0), values.last().copied().unwrap_or(0.0));
    let (best, worst) = if unit == "s" { (low, high) } else { (high, low) };
    Measurement { model: model.to_owned(), metric, threads, batch, unit, median, best, worst, runs }
}

/// The median of sorted values (the mean of the middle two for an even count); 0 when empty.
fn median_sorted(values: &[f64]) -> f64 {
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn proc_status_mb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median_sorted(&[]), 0.0);
        assert_eq!(median_sorted(&[3.0]), 3.0);
        assert_eq!(median_sorted(&[1.0, 2.0, 10.0]), 2.0);
        assert_eq!(median_sorted(&[1.0, 2.0, 4.0, 10.0]), 3.0);
    }

    #[test]
    fn best_is_lowest_for_seconds_and_highest_for_rates() {
        let load = measure("m", "load", 1, None, "s", vec![3.0, 1.0, 2.0]);
        assert_eq!((load.best, load.worst, load.median), (1.0, 3.0, 2.0));
        let rate = measure("m", "embed", 1, Some(1), "sentences/s", vec![30.0, 10.0, 20.0]);
        assert_eq!((rate.best, rate.worst, rate.median), (30.0, 10.0, 20.0));
    }

    #[test]
    fn nonsense_options_are_refused_before_anything_loads() {
        let cases = [
            ModelBenchOptions { runs: 0, ..ModelBenchOptions::default() },
            ModelBenchOptions { threads: vec![], ..ModelBenchOptions::default() },
            ModelBenchOptions { threads: vec![1, 0], ..ModelBenchOptions::default() },
            ModelBenchOptions { threads: vec![100_000], ..ModelBenchOptions::default() },
            ModelBenchOptions { batch_sizes: vec![0], ..ModelBenchOptions::default() },
            ModelBenchOptions { prompt_tokens: 0, ..ModelBenchOptions::default() },
        ];
        for options in cases {
            let err = run(&options, &mut |_| {}).unwrap_err();
            assert!(matches!(err, ModelLoadError::Config(_)), "{options:?}: {err}");
        }
    }

    #[test]
    fn a_missing_models_directory_names_the_setup_script() {
        let options = ModelBenchOptions {
            models_dir: PathBuf::from("/nonexistent/models"),
            runs: 1,
            ..ModelBenchOptions::default()
        };
        let err = run(&options, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("setup.sh"), "{err}");
    }

    #[test]
    fn the_sentence_set_is_real_and_mixed() {
        let lines: Vec<&str> = SENTENCES.lines().collect();
        assert_eq!(lines.len(), 256);
        assert!(lines.iter().all(|l| !l.trim().is_empty()));
        assert!(lines.iter().any(|l| l.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))));
        assert!(lines.iter().any(|l| l.is_ascii()));
    }

    #[test]
    fn the_table_lists_every_measurement() {
        let report = ModelBenchReport {
            cores: 2,
            rss_mb: Some(400),
            peak_rss_mb: Some(500),
            measurements: vec![
                measure("gemma", "decode", 1, None, "tokens/s", vec![18.0]),
                measure("minilm", "embed", 2, Some(32), "sentences/s", vec![150.0, 170.0]),
            ],
        };
        let table = report.table();
        assert!(table.contains("decode") && table.contains("18.0"), "{table}");
        assert!(table.contains("160.0") && table.contains("32"), "{table}");
        assert!(table.contains("peak rss: 500 MB"), "{table}");
    }
}
