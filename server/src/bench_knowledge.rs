//! `fenliu bench knowledge`: ingest throughput, search latency and recall of the embedded
//! (qdrant-edge) store against exact search, with and without payload filters.
//!
//! Vectors: real MiniLM embeddings of the shop's texts (the routing corpus in
//! `data/training/routes.csv` and the demo documents) up to `--real`; larger sizes add synthetic
//! points — mixtures of two real vectors plus noise, normalised — so that the neighbourhood
//! structure stays close to real embeddings. Queries are held-out real embeddings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fenliu_knowledge::{
    DynEmbedder, Filter, Point, RetrievalQuery, SearchRequest, VectorStore, l2_normalize,
};
use fenliu_knowledge_base::{IngestOptions, KbConfig, KnowledgeBase};
use fenliu_knowledge_edge::{EdgeOptions, EdgeStore};

use crate::config::Config;

/// Options of `fenliu bench knowledge`.
#[derive(Debug, Clone)]
pub struct BenchKnowledgeArgs {
    /// Collection sizes.
    pub sizes: Vec<usize>,
    /// Real MiniLM vectors embedded (the rest of each size is synthetic).
    pub real: usize,
    /// Queries per configuration.
    pub queries: usize,
    /// `hnsw_ef` values measured.
    pub ef: Vec<usize>,
    /// Documents ingested for the throughput figure.
    pub ingest: Vec<PathBuf>,
}

/// Deterministic xorshift, so every run measures the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 1_000_000) as f32 / 1_000_000.0
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn texts(root_files: &[PathBuf], limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    for f in root_files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        for line in text.lines() {
            // CSV: the message is the first field; documents: one line each.
            let t = line.split(",faq,").next().unwrap_or(line);
            let t = t.rsplit_once(',').map_or(t, |(a, _)| a).trim_matches('"').trim();
            if t.chars().count() >= 12 {
                out.push(t.to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    // A fixed shuffle so that queries and corpus mix sources.
    let mut rng = Rng(0x5EED);
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i + 1));
    }
    out.truncate(limit);
    out
}

const DOC_TYPES: [&str; 5] = ["policy", "faq", "product", "manual", "promotion"];

fn payload(i: usize) -> serde_json::Map<String, serde_json::Value> {
    // 80 % of points belong to the served tenant; doc types spread evenly.
    let tenant = if i % 5 == 4 { "other" } else { "demo" };
    let m = serde_json::json!({"tenant": tenant, "doc_type": DOC_TYPES[(i / 5) % 5]});
    m.as_object().cloned().unwrap_or_default()
}

/// Runs the benchmark and prints its tables.
pub async fn run(config: &Config, args: &BenchKnowledgeArgs) -> anyhow::Result<()> {
    let embedder = crate::runtime::load_embedder(config)?;

    // 1. Ingest throughput on the demo documents (MiniLM + qdrant-edge, fresh directory).
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EdgeStore::open(dir.path().join("vectors"), EdgeOptions::default())?);
    let kb = KnowledgeBase::open(embedder.clone(), store, KbConfig::default(), None).await?;
    let started = Instant::now();
    let reports = kb.ingest(&args.ingest, &IngestOptions::new("demo"), |_| {}).await?;
    let ingest_time = started.elapsed();
    let chunks: usize = reports.iter().map(|r| r.chunks).sum();
    println!("## ingest (MiniLM on this machine, qdrant-edge)");
    println!("{:>6} {:>7} {:>9} {:>9}", "files", "chunks", "seconds", "chunks/s");
    println!(
        "{:>6} {:>7} {:>9.2} {:>9.1}",
        reports.len(),
        chunks,
        ingest_time.as_secs_f64(),
        chunks as f64 / ingest_time.as_secs_f64().max(1e-9)
    );

    // Hybrid end to end on the demo knowledge base: embedding the question included.
    let questions = [
        "What is your return policy?",
        "How long does a refund take?",
        "Do you deliver to Canada?",
        "退货政策是什么？",
        "手机摔坏了能保修吗？",
        "My phone shows no signal",
    ];
    let mut hybrid = Vec::new();
    for i in 0..120 {
        let q = RetrievalQuery::new("demo", questions[i % questions.len()]);
        let t = Instant::now();
        kb.search(&q).await?;
        hybrid.push(t.elapsed());
    }
    hybrid.sort();
    println!(
        "hybrid retrieval on the demo knowledge base (query embedding + dense + BM25 + fusion): \
         p50 {:.2} ms, p99 {:.2} ms\n",
        percentile(&hybrid, 0.5),
        percentile(&hybrid, 0.99)
    );

    // 2. Real vectors.
    let sources = [
        PathBuf::from("data/training/routes.csv"),
        PathBuf::from("data/training/handwritten.csv"),
        PathBuf::from("data/demo/docs/faq.csv"),
    ];
    let want = args.real + args.queries;
    let corpus = texts(&sources, want);
    anyhow::ensure!(corpus.len() > args.queries * 2, "not enough texts for the benchmark");
    eprintln!("bench: embedding {} real texts with {}", corpus.len(), embedder.model_id());
    let vectors = embed_all(embedder.as_ref(), &corpus).await?;
    let (queries, real) = vectors.split_at(args.queries);
    println!(
        "## vector search (qdrant-edge 0.7.2; {} real MiniLM vectors, the rest synthetic; {} queries; k = 10)",
        real.len(),
        queries.len()
    );
    println!(
        "{:>7} {:<18} {:>6} {:>9} {:>9} {:>10} {:>10}",
        "points", "filter", "ef", "p50 ms", "p99 ms", "recall@10", "index s"
    );
    for &size in &args.sizes {
        let dir = tempfile::tempdir()?;
        let mut rng = Rng(0xC0FFEE ^ size as u64);
        let points: Vec<Point> = (0..size)
            .map(|i| {
                let vector = if i < real.len() {
                    real[i].clone()
                } else {
                    let a = &real[rng.below(real.len())];
                    let b = &real[rng.below(real.len())];
                    let w = 0.55 + 0.4 * rng.unit();
                    let mut v: Vec<f32> = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| w * x + (1.0 - w) * y + 0.03 * (rng.unit() - 0.5))
                        .collect();
                    l2_normalize(&mut v);
                    v
                };
                Point { id: i as u64, vector, payload: payload(i) }
            })
            .collect();
        let options = EdgeOptions { optimize_after: 0, ..config.knowledge.edge };
        let store = EdgeStore::open(dir.path(), options)?;
        let dims = embedder.dimensions();
        store.ensure_collection("bench", dims).await?;
        let t = Instant::now();
        for batch in points.chunks(2_000) {
            store.upsert("bench", batch.to_vec()).await?;
        }
        let upsert = t.elapsed();
        let t = Instant::now();
        store.optimize("bench")?;
        let index_time = t.elapsed();
        let (_, indexed) = store.info("bench")?;
        eprintln!(
            "bench: {size} points upserted in {:.1} s ({:.0}/s), optimised in {:.1} s, {indexed} indexed",
            upsert.as_secs_f64(),
            size as f64 / upsert.as_secs_f64().max(1e-9),
            index_time.as_secs_f64()
        );
        for (label, filter) in [
            ("none", Filter::default()),
            ("tenant", Filter::default().eq("tenant", "demo")),
            ("tenant+doc_type", Filter::default().eq("tenant", "demo").eq("doc_type", "policy")),
        ] {
            // Exact reference, also timed.
            let mut exact_ids = Vec::with_capacity(queries.len());
            let mut exact_times = Vec::with_capacity(queries.len());
            for q in queries {
                let request = SearchRequest {
                    vector: q.clone(),
                    limit: 10,
                    filter: filter.clone(),
                    score_threshold: None,
                };
                let t = Instant::now();
                let hits = store.search_exact("bench", &request)?;
                exact_times.push(t.elapsed());
                exact_ids.push(hits.into_iter().map(|h| h.id).collect::<Vec<_>>());
            }
            exact_times.sort();
            println!(
                "{:>7} {:<18} {:>6} {:>9.3} {:>9.3} {:>10} {:>10}",
                size,
                label,
                "exact",
                percentile(&exact_times, 0.5),
                percentile(&exact_times, 0.99),
                "1.000",
                "-"
            );
            for &ef in &args.ef {
                let mut times = Vec::with_capacity(queries.len());
                let (mut found, mut total) = (0usize, 0usize);
                // One warm-up pass loads the segment; then the measured pass.
                for pass in 0..2 {
                    for (q, exact) in queries.iter().zip(&exact_ids) {
                        let request = SearchRequest {
                            vector: q.clone(),
                            limit: 10,
                            filter: filter.clone(),
                            score_threshold: None,
                        };
                        let t = Instant::now();
                        let hits = store.search_with_ef("bench", &request, ef)?;
                        if pass == 1 {
                            times.push(t.elapsed());
                            found += hits.iter().filter(|h| exact.contains(&h.id)).count();
                            total += exact.len();
                        }
                    }
                }
                times.sort();
                println!(
                    "{:>7} {:<18} {:>6} {:>9.3} {:>9.3} {:>10.3} {:>10.1}",
                    size,
                    label,
                    ef,
                    percentile(&times, 0.5),
                    percentile(&times, 0.99),
                    found as f64 / total.max(1) as f64,
                    index_time.as_secs_f64()
                );
            }
        }
    }
    Ok(())
}

async fn embed_all(embedder: &dyn DynEmbedder, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
    let cache_path = Path::new("models/.cache/bench-knowledge.json");
    let key = format!("{}:{}", embedder.model_id(), texts.len());
    if let Ok(bytes) = std::fs::read(cache_path)
        && let Ok((k, v)) = serde_json::from_slice::<(String, Vec<Vec<f32>>)>(&bytes)
        && k == key
        && v.len() == texts.len()
    {
        return Ok(v);
    }
    let mut out = Vec::with_capacity(texts.len());
    let started = Instant::now();
    for batch in texts.chunks(64) {
        out.extend(embedder.embed(batch).await.context("embedding the benchmark corpus")?);
    }
    eprintln!(
        "bench: embedded {} texts in {:.1} s ({:.0}/s)",
        texts.len(),
        started.elapsed().as_secs_f64(),
        texts.len() as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    if let Some(dir) = cache_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(cache_path, serde_json::to_vec(&(key, &out))?);
    Ok(out)
}
