//! The knowledge base in the server: its configuration (`[knowledge]`), opening the configured
//! vector backend, seeding the demo knowledge on first start, and the `fenliu ingest`,
//! `fenliu kb …` and `fenliu bench knowledge` commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use fenliu_knowledge::{DynEmbedder, DynVectorStore};
use fenliu_knowledge_base::eval::{evaluate, load_questions};
use fenliu_knowledge_base::{FileReport, FileStatus, IngestOptions, KbConfig, KnowledgeBase};
use fenliu_knowledge_edge::{EdgeOptions, EdgeStore};
use fenliu_knowledge_qdrant::{QdrantOptions, QdrantStore, QdrantStoreError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::Config;

/// Vector backends (a closed set, chosen by `knowledge.backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KnowledgeBackend {
    /// qdrant-edge in-process, files under `knowledge.path`: the embedded default.
    #[default]
    Edge,
    /// A Qdrant server over gRPC (`[knowledge.qdrant]`); the catalogue stays under `knowledge.path`.
    Qdrant,
}

/// `[knowledge]`: where the knowledge base lives and how it searches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// The vector backend.
    pub backend: KnowledgeBackend,
    /// Directory of the catalogue (`catalog.json`) and, for `edge`, the vectors (`vectors/`).
    pub path: PathBuf,
    /// Files and directories ingested at start when the tenant's knowledge base is empty
    /// (the demo shop's documents); later changes go through `fenliu ingest`.
    pub seed: Vec<PathBuf>,
    /// Retrieval and ingestion tuning.
    pub retrieval: KbConfig,
    /// qdrant-edge tuning.
    pub edge: EdgeOptions,
    /// The Qdrant server (`backend = "qdrant"`): url, api_key, collection_prefix, timeouts.
    pub qdrant: QdrantOptions,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            backend: KnowledgeBackend::Edge,
            path: PathBuf::from("data/kb"),
            seed: vec![
                PathBuf::from("data/demo/docs"),
                PathBuf::from("data/demo/products.json"),
                PathBuf::from("data/knowledge/telecom"),
            ],
            retrieval: KbConfig::default(),
            edge: EdgeOptions::default(),
            qdrant: QdrantOptions::default(),
        }
    }
}

impl KnowledgeConfig {
    /// Checks values that are individually fine but unusable; messages name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("knowledge.path must not be empty".into());
        }
        let r = &self.retrieval;
        if !(0.0..=1.0).contains(&r.min_similarity)
            || !(0.0..=1.0).contains(&r.min_lexical_coverage)
        {
            return Err(
                "knowledge.retrieval.min_similarity and min_lexical_coverage must be in 0..=1"
                    .into(),
            );
        }
        if r.candidates == 0 || r.embed_batch == 0 || r.chunk_units < 8 {
            return Err("knowledge.retrieval: candidates and embed_batch must be positive, chunk_units at least 8".into());
        }
        if self.edge.hnsw_ef == 0 || self.edge.m == 0 {
            return Err("knowledge.edge.hnsw_ef and m must be positive".into());
        }
        if self.backend == KnowledgeBackend::Qdrant {
            if self.qdrant.url.trim().is_empty() {
                return Err(
                    "knowledge.qdrant.url is required when knowledge.backend = \"qdrant\" \
                            (e.g. http://127.0.0.1:6334)"
                        .into(),
                );
            }
            match self.qdrant.validate() {
                Err(QdrantStoreError::InvalidOption { option, reason }) => {
                    return Err(format!("knowledge.qdrant.{option} {reason}"));
                }
                Err(e) => return Err(format!("knowledge.qdrant: {e}")),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    fn catalog_path(&self) -> PathBuf {
        self.path.join("catalog.json")
    }

    fn vectors_path(&self) -> PathBuf {
        self.path.join("vectors")
    }
}

/// The configured vector store.
pub fn open_store(config: &KnowledgeConfig) -> anyhow::Result<Arc<dyn DynVectorStore>> {
    Ok(match config.backend {
        KnowledgeBackend::Edge => Arc::new(
            EdgeStore::open(config.vectors_path(), config.edge)
                .with_context(|| format!("opening {}", config.vectors_path().display()))?,
        ),
        KnowledgeBackend::Qdrant => {
            let store = QdrantStore::connect(config.qdrant.clone())
                .context("connecting to the Qdrant server (knowledge.qdrant)")?;
            let (url, prefix) = (&config.qdrant.url, &config.qdrant.collection_prefix);
            info!(%url, %prefix, "knowledge vectors on Qdrant");
            Arc::new(store)
        }
    })
}

/// Opens the knowledge base of `config` with `embedder`.
pub async fn open(
    config: &Config,
    embedder: Arc<dyn DynEmbedder>,
) -> anyhow::Result<Arc<KnowledgeBase>> {
    let k = &config.knowledge;
    let store = open_store(k)?;
    let kb = KnowledgeBase::open(embedder, store, k.retrieval.clone(), Some(k.catalog_path()))
        .await
        .with_context(|| format!("opening the knowledge base in {}", k.path.display()))?;
    Ok(Arc::new(kb))
}

/// Ingests `knowledge.seed` when the tenant has no documents yet (first start of the demo).
pub async fn seed_if_empty(config: &Config, kb: &KnowledgeBase) -> anyhow::Result<()> {
    let tenant = &config.shop.tenant;
    if !kb.documents(tenant).is_empty() || config.knowledge.seed.is_empty() {
        return Ok(());
    }
    let seed: Vec<PathBuf> = config.knowledge.seed.iter().filter(|p| p.exists()).cloned().collect();
    for missing in config.knowledge.seed.iter().filter(|p| !p.exists()) {
        warn!(path = %missing.display(), "knowledge seed path does not exist");
    }
    if seed.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let reports = kb.ingest(&seed, &IngestOptions::new(tenant.clone()), |_| {}).await?;
    let chunks: usize = reports.iter().map(|r| r.chunks).sum();
    for r in &reports {
        if let FileStatus::Failed(e) = &r.status {
            warn!(source = %r.source, error = %e, "seed document not ingested");
        }
    }
    info!(
        documents = reports.len(),
        chunks,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "knowledge base seeded"
    );
    Ok(())
}

/// Options of `fenliu ingest`.
#[derive(Debug, Clone)]
pub struct IngestArgs {
    /// Files and directories.
    pub paths: Vec<PathBuf>,
    /// Tenant (default: `shop.tenant`).
    pub tenant: Option<String>,
    /// Document type override.
    pub doc_type: Option<String>,
    /// Language override.
    pub language: Option<String>,
}

fn status_label(s: &FileStatus) -> String {
    match s {
        FileStatus::Added => "added".into(),
        FileStatus::Updated => "updated".into(),
        FileStatus::Unchanged => "unchanged".into(),
        FileStatus::Duplicate { of } => format!("duplicate of {of}"),
        FileStatus::Removed => "removed".into(),
        FileStatus::Failed(e) => format!("FAILED: {e}"),
    }
}

/// Prints the per-file summary table and the totals.
pub fn print_summary(reports: &[FileReport], elapsed: std::time::Duration) {
    println!(
        "{:<52} {:<9} {:<4} {:>6} {:>8} {:>7}  status",
        "source", "type", "lang", "chunks", "embedded", "removed"
    );
    for r in reports {
        let shown: String = if r.source.chars().count() > 52 {
            let tail: String =
                r.source.chars().rev().take(51).collect::<Vec<_>>().into_iter().rev().collect();
            format!("…{tail}")
        } else {
            r.source.clone()
        };
        println!(
            "{:<52} {:<9} {:<4} {:>6} {:>8} {:>7}  {}",
            shown,
            r.doc_type,
            r.language,
            r.chunks,
            r.embedded,
            r.removed,
            status_label(&r.status)
        );
    }
    let count = |f: fn(&FileStatus) -> bool| reports.iter().filter(|r| f(&r.status)).count();
    let embedded: usize = reports.iter().map(|r| r.embedded).sum();
    let secs = elapsed.as_secs_f64();
    println!(
        "{} files: {} added, {} updated, {} unchanged, {} removed, {} duplicates, {} failed; \
         {} chunks embedded in {:.1} s ({:.0} chunks/s)",
        reports.len(),
        count(|s| *s == FileStatus::Added),
        count(|s| *s == FileStatus::Updated),
        count(|s| *s == FileStatus::Unchanged),
        count(|s| *s == FileStatus::Removed),
        count(|s| matches!(s, FileStatus::Duplicate { .. })),
        count(|s| matches!(s, FileStatus::Failed(_))),
        embedded,
        secs,
        if secs > 0.0 { embedded as f64 / secs } else { 0.0 },
    );
}

/// `fenliu ingest`: ingests files with a progress bar and prints a summary table. Fails (after
/// ingesting everything else) when any file failed.
pub async fn ingest(config: &Config, args: &IngestArgs) -> anyhow::Result<()> {
    let embedder = crate::runtime::load_embedder(config)?;
    let kb = open(config, embedder).await?;
    let files = fenliu_knowledge_base::discover(&args.paths);
    let bar = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("ingesting {bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let options = IngestOptions {
        tenant: args.tenant.clone().unwrap_or_else(|| config.shop.tenant.clone()),
        doc_type: args.doc_type.clone(),
        language: args.language.clone(),
    };
    let started = Instant::now();
    let reports = kb
        .ingest(&args.paths, &options, |r| {
            bar.set_message(r.source.clone());
            if r.status != FileStatus::Removed {
                bar.inc(1);
            }
        })
        .await?;
    bar.finish_and_clear();
    print_summary(&reports, started.elapsed());
    let stats = kb.stats().await?;
    println!(
        "knowledge base {}: {} documents, {} chunks, {} vectors",
        config.knowledge.path.display(),
        stats.documents,
        stats.chunks,
        stats.vectors
    );
    let failed = reports.iter().filter(|r| matches!(r.status, FileStatus::Failed(_))).count();
    if failed > 0 {
        anyhow::bail!("{failed} file(s) could not be ingested (see the table)");
    }
    Ok(())
}

/// `fenliu kb eval`: hit@k and "no answer" accuracy on a labelled question set.
pub async fn eval(
    config: &Config,
    questions: &Path,
    k: usize,
    verbose: bool,
) -> anyhow::Result<()> {
    let embedder = crate::runtime::load_embedder(config)?;
    let kb = open(config, embedder).await?;
    seed_if_empty(config, &kb).await?;
    let questions = load_questions(questions)?;
    let report = evaluate(&kb, &config.shop.tenant, &questions, k).await?;
    for r in &report.results {
        if verbose || !r.correct() {
            println!(
                "{} {:<60} → {} (dense {:.2}, coverage {:.2}{})",
                if r.correct() { "ok  " } else { "MISS" },
                r.question.question.chars().take(60).collect::<String>(),
                r.first.as_deref().unwrap_or("-"),
                r.best_dense.unwrap_or(0.0),
                r.best_coverage.unwrap_or(0.0),
                if r.no_answer { ", no answer" } else { "" },
            );
        }
    }
    let (hits, n) = report.hits(None);
    let (en_hits, en) = report.hits(Some("en"));
    let (zh_hits, zh) = report.hits(Some("zh"));
    let (na, uncovered) = report.no_answers();
    println!("{:<28} {:>9} {:>7}", "set", "correct", "rate");
    println!(
        "{:<28} {:>9} {:>7.3}",
        format!("hit@{k} all"),
        format!("{hits}/{n}"),
        report.hit_rate(None)
    );
    println!(
        "{:<28} {:>9} {:>7.3}",
        format!("hit@{k} en"),
        format!("{en_hits}/{en}"),
        report.hit_rate(Some("en"))
    );
    println!(
        "{:<28} {:>9} {:>7.3}",
        format!("hit@{k} zh"),
        format!("{zh_hits}/{zh}"),
        report.hit_rate(Some("zh"))
    );
    let rate = if uncovered > 0 { na as f64 / uncovered as f64 } else { 0.0 };
    println!("{:<28} {:>9} {:>7.3}", "no answer (uncovered)", format!("{na}/{uncovered}"), rate);
    Ok(())
}

/// `fenliu kb backup DIR`: a consistent copy of the catalogue and (edge) the vectors.
pub async fn backup(config: &Config, dest: &Path) -> anyhow::Result<()> {
    if dest.exists() {
        anyhow::bail!("{} already exists", dest.display());
    }
    let k = &config.knowledge;
    let embedder = crate::runtime::load_embedder(config)?;
    match k.backend {
        KnowledgeBackend::Edge => {
            let store = Arc::new(EdgeStore::open(k.vectors_path(), k.edge)?);
            let kb = KnowledgeBase::open(
                embedder,
                store.clone(),
                k.retrieval.clone(),
                Some(k.catalog_path()),
            )
            .await?;
            store.backup(&dest.join("vectors"))?;
            kb.backup_catalog(&dest.join("catalog.json"))?;
        }
        KnowledgeBackend::Qdrant => {
            let kb = KnowledgeBase::open(
                embedder,
                open_store(k)?,
                k.retrieval.clone(),
                Some(k.catalog_path()),
            )
            .await?;
            std::fs::create_dir_all(dest)?;
            kb.backup_catalog(&dest.join("catalog.json"))?;
            println!(
                "the vectors stay on the Qdrant server at {} (collection {}{}): back them up with \
                 Qdrant's snapshots",
                k.qdrant.url, k.qdrant.collection_prefix, k.retrieval.collection
            );
        }
    }
    println!(
        "backed up {} to {} (restore: point knowledge.path at it)",
        k.path.display(),
        dest.display()
    );
    Ok(())
}

/// `fenliu kb stats`.
pub async fn stats(config: &Config) -> anyhow::Result<()> {
    let embedder = crate::runtime::load_embedder(config)?;
    let kb = open(config, embedder).await?;
    let s = kb.stats().await?;
    println!(
        "{} documents, {} chunks, {} vectors in {}",
        s.documents,
        s.chunks,
        s.vectors,
        config.knowledge.path.display()
    );
    Ok(())
}

/// `fenliu kb search QUESTION`: what `kb_search` returns for a question, with the scores the
/// "no answer" decision is made from.
pub async fn search(
    config: &Config,
    question: &str,
    doc_type: Option<String>,
    language: Option<String>,
    top_k: usize,
) -> anyhow::Result<()> {
    use fenliu_knowledge::{Retrieval, RetrievalQuery, Retriever as _};
    let embedder = crate::runtime::load_embedder(config)?;
    let kb = open(config, embedder).await?;
    let query = RetrievalQuery {
        tenant: config.shop.tenant.clone(),
        query: question.to_owned(),
        doc_type,
        language,
        top_k,
    };
    let outcome = kb.search(&query).await?;
    let answer = kb.retrieve(&query).await?;
    println!(
        "best dense similarity {:.3}, best lexical coverage {:.3}{} → {}",
        outcome.best_dense.unwrap_or(0.0),
        outcome.best_coverage.unwrap_or(0.0),
        if outcome.cjk { " (CJK question)" } else { "" },
        match answer {
            Retrieval::Hits { .. } => "hits",
            Retrieval::NoAnswer { .. } => "NO ANSWER",
        }
    );
    for (i, h) in outcome.hits.iter().enumerate() {
        let text: String = h.text.replace('\n', " ").chars().take(100).collect();
        println!(
            "{:>2}. {:.3}  {}  [{}, {}]\n    {text}",
            i + 1,
            h.score,
            h.citation,
            h.doc_type,
            h.language
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use fenliu_knowledge::{Filter, KnowledgeError};
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};

    use super::*;

    fn with(toml: &str) -> Result<Config, String> {
        Config::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn qdrant_is_selected_by_backend_with_its_options() {
        let c = with(
            "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"https://q.example:6334\"\n\
             api_key = \"top-secret\"\ncollection_prefix = \"shop_a_\"\ntimeout_ms = 2500",
        )
        .unwrap();
        let q = &c.knowledge.qdrant;
        assert_eq!(c.knowledge.backend, KnowledgeBackend::Qdrant);
        assert_eq!(q.url, "https://q.example:6334");
        assert_eq!(q.api_key.as_ref().map(|k| k.expose()), Some("top-secret"));
        assert_eq!((q.collection_prefix.as_str(), q.timeout_ms), ("shop_a_", 2500));
        assert_eq!(q.connect_timeout_ms, QdrantOptions::default().connect_timeout_ms);
        // The key shows neither in Debug (logs) nor when the configuration is serialised.
        assert!(!format!("{c:?}").contains("top-secret"));
        assert!(!serde_json::to_string(&c.knowledge).unwrap().contains("top-secret"));
        // The default stays embedded and needs no url.
        assert_eq!(with("").unwrap().knowledge.backend, KnowledgeBackend::Edge);
    }

    #[test]
    fn hostile_qdrant_configuration_names_the_key() {
        for (toml, key) in [
            ("[knowledge]\nbackend = \"qdrant\"", "knowledge.qdrant.url is required"),
            (
                "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"  \"",
                "knowledge.qdrant.url",
            ),
            (
                "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"localhost:6334\"",
                "knowledge.qdrant.url",
            ),
            (
                "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"ftp://h:6334\"",
                "knowledge.qdrant.url",
            ),
            (
                "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"http://u:pw@h:6334\"",
                "knowledge.qdrant.url",
            ),
            (
                "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"http://h:6334\"\ntimeout_ms = 0",
                "knowledge.qdrant.timeout_ms",
            ),
            (
                "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"http://h:6334\"\ncollection_prefix = \"../x\"",
                "knowledge.qdrant.collection_prefix",
            ),
            (
                "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"http://h:6334\"\napi_key = \"with space\"",
                "knowledge.qdrant.api_key",
            ),
            ("[knowledge.qdrant]\nurl = \"http://h:6334\"\nurll = \"x\"", "urll"),
            ("[knowledge.qdrant]\nurl = 6334", "url"),
            ("[knowledge]\nbackend = \"qdrant-server\"", "backend"),
            ("[knowledge]\nbackend = \"Qdrant\"", "backend"),
        ] {
            let err = with(toml).expect_err(toml);
            assert!(err.contains(key), "{toml:?}: {err}");
            assert!(!err.contains("with space"), "the api key was echoed: {err}");
        }
        // Qdrant options are only checked when Qdrant is the backend.
        assert!(with("[knowledge.qdrant]\nurl = \"ftp://unused\"").is_ok());
    }

    #[tokio::test]
    async fn the_qdrant_backend_opens_and_reports_an_unreachable_server() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = with(&format!(
            "[knowledge]\nbackend = \"qdrant\"\n[knowledge.qdrant]\nurl = \"http://127.0.0.1:{port}\""
        ))
        .unwrap();
        let store = open_store(&c.knowledge).unwrap();
        let e = store.count("kb", &Filter::default()).await.unwrap_err();
        assert!(
            matches!(&e, KnowledgeError::Backend(m) if m.contains("unreachable") && m.contains(&port.to_string())),
            "{e:?}"
        );
    }
}
