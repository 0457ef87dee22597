//! The knowledge base of fenliu: what the shop knows, searchable with citations.
//!
//! This crate owns ingestion and retrieval on top of the `fenliu-knowledge` contracts; the vector
//! backend (qdrant-edge embedded, a Qdrant server, or the in-memory store in tests) and the
//! embedder (MiniLM) are handed in, so nothing here knows about disks of vectors or models.
//!
//! # Layout
//! - [`parse`]: files → structured documents (Markdown, HTML, text, Q&A CSV/JSONL, catalogue JSON).
//! - [`chunk`]: structure-aware chunking with CJK-aware lengths and overlapping sentence windows.
//! - [`eval`]: hit@k and "no answer" accuracy on a labelled question set.
//! - [`lexical`]: the BM25 index (English stemming, CJK unigrams + bigrams).
//! - [`KnowledgeBase`] (this file): the catalogue of documents and chunks (persisted as one JSON
//!   file beside the vectors), ingestion with content-hash deduplication, updates and removals,
//!   and hybrid retrieval — dense and BM25 results fused by reciprocal rank fusion, filtered by
//!   tenant, document type and language, with a relevance threshold that yields
//!   [`Retrieval::NoAnswer`].
//!
//! # Consistency
//! Vectors are written before the catalogue. A crash in between leaves vectors the catalogue does
//! not know; retrieval ignores them and the next ingest of that document replaces them. When the
//! vector store holds fewer points than the catalogue has chunks (vectors deleted by hand, a new
//! backend), every document is marked for re-embedding at the next ingest.

pub mod chunk;
pub mod eval;
pub mod lexical;
pub mod parse;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use fenliu_knowledge::{
    Citation, DynEmbedder, DynVectorStore, Filter, Hit, KnowledgeError, Point, Retrieval,
    RetrievalQuery, Retriever, SearchRequest,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::chunk::ChunkLimits;
use crate::lexical::LexicalIndex;

/// Version of the catalogue file format.
const CATALOG_FORMAT: u32 = 1;
/// Files named like this are documentation of a data folder, not knowledge; directory walks
/// skip them (name them explicitly to ingest them).
const SKIPPED_NAMES: [&str; 3] = ["readme", "license", "attribution"];
/// Longest question accepted by [`KnowledgeBase::retrieve`], in characters.
pub const MAX_QUERY_CHARS: usize = 4_000;
/// Most hits one query may ask for.
pub const MAX_TOP_K: usize = 100;

/// Why a single file could not be ingested. The rest of the batch goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The extension is not one the knowledge base reads.
    #[error("unsupported format (use .md, .txt, .html, .csv, .jsonl or a .json catalogue)")]
    UnsupportedFormat,
    /// Nothing to index.
    #[error("empty: no text to index")]
    Empty,
    /// NUL bytes: a binary file.
    #[error("binary content, not text")]
    Binary,
    /// Not UTF-8.
    #[error("not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// First invalid byte.
        offset: usize,
    },
    /// The file's structure is wrong (bad CSV row, JSON that is not a catalogue, …).
    #[error("malformed: {0}")]
    Malformed(String),
    /// Larger than `max_file_bytes`.
    #[error("too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// File size.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The file could not be read.
    #[error("unreadable: {0}")]
    Io(String),
    /// Embedding or storing failed.
    #[error("indexing failed: {0}")]
    Index(String),
}

/// Errors of the knowledge base as a whole.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// The vector store or embedder failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// The catalogue file is unreadable or corrupt.
    #[error("knowledge catalogue {path}: {reason}")]
    Catalog {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another ingest is running on this knowledge base.
    #[error("an ingest is already running")]
    Busy,
    /// Invalid options.
    #[error("invalid ingest options: {0}")]
    Invalid(String),
}

/// Tuning of ingestion and retrieval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KbConfig {
    /// Vector collection holding the chunks.
    pub collection: String,
    /// Below this dense cosine similarity of the best candidate, the answer is "no answer"
    /// (unless the lexical match is strong, see `min_lexical_coverage`). Chosen from the labelled
    /// question set (`fenliu kb eval`).
    pub min_similarity: f32,
    /// A lexical match covering at least this share of the query's IDF mass also counts as
    /// relevant: exact product names and ids, and Chinese, where MiniLM is weak.
    pub min_lexical_coverage: f32,
    /// For questions written in CJK scripts: the "no answer" threshold on lexical coverage. The
    /// bundled MiniLM is an English model whose similarities between Chinese texts are high
    /// whatever they say, so for Chinese the decision rests on the words matched. A
    /// multilingual embedder would let this rise to the dense side again.
    pub min_lexical_coverage_cjk: f32,
    /// Weight of the dense ranking in the fusion for CJK questions (1 for others), for the same
    /// reason.
    pub dense_weight_cjk: f32,
    /// Reciprocal rank fusion constant (60 in the original paper).
    pub rrf_k: f32,
    /// Candidates taken from each of dense and lexical search before fusion.
    pub candidates: usize,
    /// Larger files are refused.
    pub max_file_bytes: u64,
    /// Chunk size in units (≈ tokens).
    pub chunk_units: usize,
    /// Texts embedded per call.
    pub embed_batch: usize,
}

impl Default for KbConfig {
    fn default() -> Self {
        Self {
            collection: "kb".into(),
            // Measured on data/knowledge/questions.jsonl with MiniLM: answerable English questions
            // score 0.44 and up, uncovered ones 0.29 and below.
            min_similarity: 0.38,
            min_lexical_coverage: 0.75,
            // Answerable Chinese questions cover 0.32 and up, uncovered ones 0.16 and below.
            min_lexical_coverage_cjk: 0.25,
            // MiniLM gives different Chinese questions near-identical vectors (the same best
            // similarity, 0.651, for unrelated questions): its ranking is noise for Chinese.
            dense_weight_cjk: 0.0,
            rrf_k: 60.0,
            candidates: 40,
            max_file_bytes: 20 * 1024 * 1024,
            chunk_units: ChunkLimits::default().max_units,
            embed_batch: 32,
        }
    }
}

/// A document as the catalogue remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocRecord {
    /// Tenant.
    pub tenant: String,
    /// Source path as ingested.
    pub source: String,
    /// Title.
    pub title: String,
    /// Document type.
    pub doc_type: String,
    /// Main language.
    pub language: String,
    /// SHA-256 of the file's bytes (hex); empty forces re-embedding at the next ingest.
    pub content_hash: String,
    /// First 12 hex digits of the hash, shown in citations.
    pub version: String,
    /// File modification time (or ingest time when unknown).
    pub updated_at: DateTime<Utc>,
    /// When this version was ingested.
    pub ingested_at: DateTime<Utc>,
    /// Its chunks, in order.
    pub chunk_ids: Vec<u64>,
}

/// A chunk as the catalogue remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Tenant.
    pub tenant: String,
    /// Source document.
    pub source: String,
    /// Heading path.
    pub section: String,
    /// Position in the document.
    pub index: u32,
    /// Passage text.
    pub text: String,
    /// Document type.
    pub doc_type: String,
    /// Language.
    pub language: String,
    /// Document version.
    pub version: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Catalog {
    format: u32,
    embedder: String,
    dimensions: usize,
    /// Keyed by `tenant \u{1f} source`.
    docs: BTreeMap<String, DocRecord>,
    chunks: HashMap<u64, ChunkRecord>,
}

fn doc_key(tenant: &str, source: &str) -> String {
    format!("{tenant}\u{1f}{source}")
}

#[derive(Debug, Default)]
struct State {
    catalog: Catalog,
    lexical: LexicalIndex,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// New document.
    Added,
    /// Changed document: old chunks removed, new ones indexed.
    Updated,
    /// Same content as already indexed.
    Unchanged,
    /// Same content as another document of the tenant.
    Duplicate {
        /// The document already holding it.
        of: String,
    },
    /// The document is gone from disk and was removed.
    Removed,
    /// Not ingested; what was indexed before stays.
    Failed(IngestError),
}

/// Outcome for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// Source path.
    pub source: String,
    /// What happened.
    pub status: FileStatus,
    /// Document type (empty when failed).
    pub doc_type: String,
    /// Language (empty when failed).
    pub language: String,
    /// Chunks of the current version.
    pub chunks: usize,
    /// Chunks embedded in this run (new or changed text).
    pub embedded: usize,
    /// Chunks deleted in this run.
    pub removed: usize,
    /// Identical chunks inside the document dropped.
    pub deduplicated: usize,
}

/// Options of one ingest run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    /// Tenant the documents belong to.
    pub tenant: String,
    /// Override of the detected document type.
    pub doc_type: Option<String>,
    /// Override of the detected language.
    pub language: Option<String>,
}

impl IngestOptions {
    /// Options for `tenant` with detection on.
    pub fn new(tenant: impl Into<String>) -> Self {
        Self { tenant: tenant.into(), doc_type: None, language: None }
    }
}

/// Size of the knowledge base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KbStats {
    /// Documents.
    pub documents: usize,
    /// Chunks.
    pub chunks: usize,
    /// Points in the vector collection.
    pub vectors: usize,
}

/// The knowledge base: catalogue, lexical index, and the vector store and embedder it was given.
pub struct KnowledgeBase {
    embedder: Arc<dyn DynEmbedder>,
    store: Arc<dyn DynVectorStore>,
    config: KbConfig,
    catalog_path: Option<PathBuf>,
    state: RwLock<State>,
    ingesting: AtomicBool,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("config", &self.config)
            .field("catalog_path", &self.catalog_path)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stable chunk id: a hash of tenant, source and text (and the occurrence, for repeats).
fn chunk_id(tenant: &str, source: &str, text: &str) -> u64 {
    let mut h = Sha256::new();
    for part in [tenant, source, text] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // 63 bits: some clients treat ids as signed.
    u64::from_le_bytes(bytes) & (u64::MAX >> 1)
}

fn lock_poisoned() -> KnowledgeError {
    KnowledgeError::Backend("knowledge base state lock poisoned".into())
}

/// Normalises a path into the source name stored in citations (`/` separators, no `./`).
pub fn source_name(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    let s = s.trim_start_matches("./").trim_end_matches('/');
    if s.is_empty() { ".".into() } else { s.to_owned() }
}

/// The files `paths` stand for: files as given, directories walked recursively (sorted; hidden
/// files, unsupported extensions and README/LICENSE/ATTRIBUTION files skipped). Missing paths
/// are kept so that the ingest reports them (or removes their documents).
pub fn discover(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else {
                let lower = name.to_ascii_lowercase();
                if parse::Format::of(&path).is_some()
                    && !SKIPPED_NAMES.iter().any(|s| lower.starts_with(s))
                {
                    out.push(path);
                }
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out);
        } else {
            out.push(p.clone());
        }
    }
    out
}

impl KnowledgeBase {
    /// Opens the knowledge base: creates the vector collection if needed, loads the catalogue
    /// from `catalog_path` (when given and present) and rebuilds the lexical index.
    pub async fn open(
        embedder: Arc<dyn DynEmbedder>,
        store: Arc<dyn DynVectorStore>,
        config: KbConfig,
        catalog_path: Option<PathBuf>,
    ) -> Result<Self, KbError> {
        if config.collection.trim().is_empty() || config.candidates == 0 || config.embed_batch == 0
        {
            return Err(KbError::Invalid(
                "collection, candidates and embed_batch must be set".into(),
            ));
        }
        store.ensure_collection(&config.collection, embedder.dimensions()).await?;
        let mut catalog = match &catalog_path {
            Some(path) if path.exists() => {
                let bytes = std::fs::read(path)
                    .map_err(|e| KbError::Catalog { path: path.clone(), reason: e.to_string() })?;
                let catalog: Catalog = serde_json::from_slice(&bytes)
                    .map_err(|e| KbError::Catalog { path: path.clone(), reason: e.to_string() })?;
                if catalog.format != CATALOG_FORMAT {
                    return Err(KbError::Catalog {
                        path: path.clone(),
                        reason: format!(
                            "format {} (this build reads {CATALOG_FORMAT}); re-ingest into an empty \
                             directory",
                            catalog.format
                        ),
                    });
                }
                catalog
            }
            _ => Catalog::default(),
        };
        let model = embedder.model_id().to_owned();
        let vectors = store.count(&config.collection, &Filter::default()).await?;
        let stale_model = !catalog.embedder.is_empty() && catalog.embedder != model;
        if stale_model || vectors < catalog.chunks.len() {
            warn!(
                catalog_model = %catalog.embedder,
                model = %model,
                vectors,
                chunks = catalog.chunks.len(),
                "knowledge vectors out of date: every document is re-embedded at the next ingest"
            );
            for doc in catalog.docs.values_mut() {
                doc.content_hash.clear();
            }
        }
        catalog.format = CATALOG_FORMAT;
        catalog.embedder = model;
        catalog.dimensions = embedder.dimensions();
        let mut lexical = LexicalIndex::new();
        for (id, chunk) in &catalog.chunks {
            lexical.insert(*id, &index_text(chunk));
        }
        info!(
            documents = catalog.docs.len(),
            chunks = catalog.chunks.len(),
            vectors,
            "knowledge base open"
        );
        Ok(Self {
            embedder,
            store,
            config,
            catalog_path,
            state: RwLock::new(State { catalog, lexical }),
            ingesting: AtomicBool::new(false),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KbConfig {
        &self.config
    }

    /// Documents, chunks and vectors.
    pub async fn stats(&self) -> Result<KbStats, KbError> {
        let (documents, chunks) = {
            let state = self.state.read().map_err(|_| lock_poisoned())?;
            (state.catalog.docs.len(), state.catalog.chunks.len())
        };
        let vectors = self.store.count(&self.config.collection, &Filter::default()).await?;
        Ok(KbStats { documents, chunks, vectors })
    }

    /// The documents of `tenant`, by source.
    pub fn documents(&self, tenant: &str) -> Vec<DocRecord> {
        self.state
            .read()
            .map(|s| s.catalog.docs.values().filter(|d| d.tenant == tenant).cloned().collect())
            .unwrap_or_default()
    }

    /// The chunks of one document, in order.
    pub fn chunks_of(&self, tenant: &str, source: &str) -> Vec<ChunkRecord> {
        let Ok(state) = self.state.read() else { return Vec::new() };
        let Some(doc) = state.catalog.docs.get(&doc_key(tenant, source)) else {
            return Vec::new();
        };
        doc.chunk_ids.iter().filter_map(|id| state.catalog.chunks.get(id).cloned()).collect()
    }

    /// Ingests `paths` (files and directories) for `options.tenant`, calling `on_file` after each
    /// file. Changed documents replace their chunks; documents under a given directory (or a
    /// given file path) that no longer exist on disk are removed. A failing file is reported
    /// and the rest goes on; what was indexed before for it stays.
    pub async fn ingest(
        &self,
        paths: &[PathBuf],
        options: &IngestOptions,
        mut on_file: impl FnMut(&FileReport),
    ) -> Result<Vec<FileReport>, KbError> {
        if options.tenant.trim().is_empty() {
            return Err(KbError::Invalid("tenant is empty".into()));
        }
        if self.ingesting.swap(true, Ordering::AcqRel) {
            return Err(KbError::Busy);
        }
        let result = self.ingest_inner(paths, options, &mut on_file).await;
        self.ingesting.store(false, Ordering::Release);
        result
    }

    async fn ingest_inner(
        &self,
        paths: &[PathBuf],
        options: &IngestOptions,
        on_file: &mut dyn FnMut(&FileReport),
    ) -> Result<Vec<FileReport>, KbError> {
        let tenant = options.tenant.as_str();
        let files = discover(paths);
        let mut reports = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for file in &files {
            let source = source_name(file);
            seen.insert(source.clone());
            let report = if !file.exists() {
                // A missing file the catalogue knows is a deletion; otherwise an error.
                if self.has_doc(tenant, &source) {
                    continue;
                }
                failed(&source, IngestError::Io("no such file or directory".into()))
            } else {
                self.ingest_file(file, &source, options).await?
            };
            on_file(&report);
            reports.push(report);
        }
        // Removals: documents under a given directory or path that were not seen on disk.
        let roots: Vec<String> = paths.iter().map(|p| source_name(p)).collect();
        let gone: Vec<String> = {
            let state = self.state.read().map_err(|_| lock_poisoned())?;
            state
                .catalog
                .docs
                .values()
                .filter(|d| d.tenant == tenant && !seen_on_disk(&d.source, &seen))
                .filter(|d| {
                    roots.iter().any(|r| {
                        d.source == *r || r == "." || d.source.starts_with(&format!("{r}/"))
                    })
                })
                .map(|d| d.source.clone())
                .collect()
        };
        for source in gone {
            let removed = self.remove_doc(tenant, &source).await?;
            let report = FileReport {
                source,
                status: FileStatus::Removed,
                doc_type: String::new(),
                language: String::new(),
                chunks: 0,
                embedded: 0,
                removed,
                deduplicated: 0,
            };
            on_file(&report);
            reports.push(report);
        }
        self.save()?;
        Ok(reports)
    }

    fn has_doc(&self, tenant: &str, source: &str) -> bool {
        self.state.read().is_ok_and(|s| s.catalog.docs.contains_key(&doc_key(tenant, source)))
    }

    async fn ingest_file(
        &self,
        file: &Path,
        source: &str,
        options: &IngestOptions,
    ) -> Result<FileReport, KbError> {
        let size = match std::fs::metadata(file) {
            Ok(m) => m.len(),
            Err(e) => return Ok(failed(source, IngestError::Io(e.to_string()))),
        };
        if size > self.config.max_file_bytes {
            return Ok(failed(
                source,
                IngestError::TooLarge { size, limit: self.config.max_file_bytes },
            ));
        }
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => return Ok(failed(source, IngestError::Io(e.to_string()))),
        };
        let updated_at = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        self.ingest_bytes(source, &bytes, updated_at, options).await
    }

    /// Ingests one document given as bytes (`source` decides the format by its extension).
    pub async fn ingest_bytes(
        &self,
        source: &str,
        bytes: &[u8],
        updated_at: DateTime<Utc>,
        options: &IngestOptions,
    ) -> Result<FileReport, KbError> {
        let tenant = options.tenant.as_str();
        if bytes.len() as u64 > self.config.max_file_bytes {
            return Ok(failed(
                source,
                IngestError::TooLarge {
                    size: bytes.len() as u64,
                    limit: self.config.max_file_bytes,
                },
            ));
        }
        let content_hash = sha256_hex(bytes);
        let key = doc_key(tenant, source);
        let (previous, duplicate_of) = {
            let state = self.state.read().map_err(|_| lock_poisoned())?;
            let previous = state.catalog.docs.get(&key).cloned();
            let duplicate_of = state
                .catalog
                .docs
                .values()
                .find(|d| {
                    d.tenant == tenant && d.source != source && d.content_hash == content_hash
                })
                .map(|d| d.source.clone());
            (previous, duplicate_of)
        };
        if let Some(prev) = &previous
            && prev.content_hash == content_hash
        {
            return Ok(FileReport {
                source: source.to_owned(),
                status: FileStatus::Unchanged,
                doc_type: prev.doc_type.clone(),
                language: prev.language.clone(),
                chunks: prev.chunk_ids.len(),
                embedded: 0,
                removed: 0,
                deduplicated: 0,
            });
        }
        if let Some(of) = duplicate_of {
            return Ok(FileReport {
                source: source.to_owned(),
                status: FileStatus::Duplicate { of },
                doc_type: String::new(),
                language: String::new(),
                chunks: 0,
                embedded: 0,
                removed: 0,
                deduplicated: 0,
            });
        }
        let path = Path::new(source);
        let parsed = match parse::parse(path, bytes) {
            Ok(p) => p,
            Err(e) => return Ok(failed(source, e)),
        };
        let doc_type = options.doc_type.clone().unwrap_or_else(|| parsed.doc_type.clone());
        let file_language = options.language.clone().or_else(|| parse::language_from_name(path));
        let limits = ChunkLimits { max_units: self.config.chunk_units, ..ChunkLimits::default() };
        let chunks = chunk::chunk(&parsed, limits);
        let version: String = content_hash.chars().take(12).collect();

        // Records in catalogue order, identical chunks dropped.
        let mut records: Vec<(u64, ChunkRecord)> = Vec::with_capacity(chunks.len());
        let mut ids = HashSet::new();
        let mut deduplicated = 0;
        for c in chunks {
            let id = chunk_id(tenant, source, &c.text);
            if !ids.insert(id) {
                deduplicated += 1;
                continue;
            }
            let language = c
                .language
                .clone()
                .or_else(|| file_language.clone())
                .unwrap_or_else(|| parse::detect_language(&c.text).to_owned());
            records.push((
                id,
                ChunkRecord {
                    tenant: tenant.to_owned(),
                    source: source.to_owned(),
                    section: c.section,
                    index: u32::try_from(records.len()).unwrap_or(u32::MAX),
                    text: c.text,
                    doc_type: doc_type.clone(),
                    language,
                    version: version.clone(),
                },
            ));
        }
        let doc_language = majority_language(&records);
        let old_ids: HashSet<u64> =
            previous.as_ref().map(|p| p.chunk_ids.iter().copied().collect()).unwrap_or_default();
        // Unchanged chunk texts keep their vectors unless the previous version is marked stale.
        let stale = previous.as_ref().is_some_and(|p| p.content_hash.is_empty());
        let to_embed: Vec<&(u64, ChunkRecord)> =
            records.iter().filter(|(id, _)| stale || !old_ids.contains(id)).collect();
        let new_ids: HashSet<u64> = records.iter().map(|(id, _)| *id).collect();
        let to_remove: Vec<u64> = old_ids.difference(&new_ids).copied().collect();

        for batch in to_embed.chunks(self.config.embed_batch) {
            let texts: Vec<String> =
                batch.iter().map(|(_, r)| embed_text(&parsed.title, r)).collect();
            let vectors = match self.embedder.embed(&texts).await {
                Ok(v) if v.len() == texts.len() => v,
                Ok(v) => {
                    return Ok(failed(
                        source,
                        IngestError::Index(format!(
                            "embedder returned {} of {} vectors",
                            v.len(),
                            texts.len()
                        )),
                    ));
                }
                Err(e) => return Ok(failed(source, IngestError::Index(e.to_string()))),
            };
            let points = batch
                .iter()
                .zip(vectors)
                .map(|((id, r), vector)| Point { id: *id, vector, payload: payload(r) })
                .collect();
            if let Err(e) = self.store.upsert(&self.config.collection, points).await {
                return Ok(failed(source, IngestError::Index(e.to_string())));
            }
        }
        if !to_remove.is_empty() {
            self.store.delete(&self.config.collection, &to_remove).await?;
        }
        let now = Utc::now();
        {
            let mut state = self.state.write().map_err(|_| lock_poisoned())?;
            for id in &to_remove {
                state.catalog.chunks.remove(id);
                state.lexical.remove(*id);
            }
            for (id, record) in &records {
                state.lexical.insert(*id, &index_text(record));
                state.catalog.chunks.insert(*id, record.clone());
            }
            state.catalog.docs.insert(
                key,
                DocRecord {
                    tenant: tenant.to_owned(),
                    source: source.to_owned(),
                    title: parsed.title.clone(),
                    doc_type: doc_type.clone(),
                    language: doc_language.clone(),
                    content_hash,
                    version,
                    updated_at,
                    ingested_at: now,
                    chunk_ids: records.iter().map(|(id, _)| *id).collect(),
                },
            );
        }
        Ok(FileReport {
            source: source.to_owned(),
            status: if previous.is_some() { FileStatus::Updated } else { FileStatus::Added },
            doc_type,
            language: doc_language,
            chunks: records.len(),
            embedded: to_embed.len(),
            removed: to_remove.len(),
            deduplicated,
        })
    }

    /// Removes one document and its chunks; returns how many chunks went.
    pub async fn remove_doc(&self, tenant: &str, source: &str) -> Result<usize, KbError> {
        let ids = {
            let state = self.state.read().map_err(|_| lock_poisoned())?;
            match state.catalog.docs.get(&doc_key(tenant, source)) {
                Some(d) => d.chunk_ids.clone(),
                None => return Ok(0),
            }
        };
        self.store.delete(&self.config.collection, &ids).await?;
        let mut state = self.state.write().map_err(|_| lock_poisoned())?;
        for id in &ids {
            state.catalog.chunks.remove(id);
            state.lexical.remove(*id);
        }
        state.catalog.docs.remove(&doc_key(tenant, source));
        Ok(ids.len())
    }

    /// Writes the catalogue (atomically: temporary file, then rename).
    pub fn save(&self) -> Result<(), KbError> {
        let Some(path) = &self.catalog_path else { return Ok(()) };
        let catalog_err = |e: &dyn std::fmt::Display| KbError::Catalog {
            path: path.clone(),
            reason: e.to_string(),
        };
        let bytes = {
            let state = self.state.read().map_err(|_| lock_poisoned())?;
            serde_json::to_vec(&state.catalog).map_err(|e| catalog_err(&e))?
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| catalog_err(&e))?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| catalog_err(&e))?;
        std::fs::rename(&tmp, path).map_err(|e| catalog_err(&e))?;
        Ok(())
    }

    /// Copies the catalogue to `path` (the vector backend backs up its own files).
    pub fn backup_catalog(&self, path: &Path) -> Result<(), KbError> {
        let bytes = {
            let state = self.state.read().map_err(|_| lock_poisoned())?;
            serde_json::to_vec(&state.catalog)
                .map_err(|e| KbError::Catalog { path: path.to_owned(), reason: e.to_string() })?
        };
        std::fs::write(path, bytes)
            .map_err(|e| KbError::Catalog { path: path.to_owned(), reason: e.to_string() })
    }

    /// Hybrid search with every candidate's scores, for evaluation and debugging: the fused
    /// hits (up to `top_k`) and the best dense similarity and lexical coverage.
    pub async fn search(&self, query: &RetrievalQuery) -> Result<SearchOutcome, KnowledgeError> {
        let text = query.query.trim();
        if text.is_empty() {
            return Err(KnowledgeError::InvalidRequest("query is empty".into()));
        }
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(KnowledgeError::InvalidRequest(format!(
                "query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        if query.top_k == 0 || query.top_k > MAX_TOP_K {
            return Err(KnowledgeError::InvalidRequest(format!("top_k must be 1..={MAX_TOP_K}")));
        }
        if query.tenant.trim().is_empty() {
            return Err(KnowledgeError::InvalidRequest("tenant is empty".into()));
        }
        let mut filter = Filter::default().eq("tenant", query.tenant.clone());
        if let Some(t) = &query.doc_type {
            filter = filter.eq("doc_type", t.clone());
        }
        if let Some(l) = &query.language {
            filter = filter.eq("language", l.clone());
        }
        let candidates = self.config.candidates.max(query.top_k);
        let vector = self
            .embedder
            .embed(&[text.to_owned()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| KnowledgeError::Embedding { reason: "no vector returned".into() })?;
        let dense = self
            .store
            .search(
                &self.config.collection,
                &SearchRequest {
                    vector,
                    limit: candidates,
                    filter: filter.clone(),
                    score_threshold: None,
                },
            )
            .await?;
        let state = self.state.read().map_err(|_| lock_poisoned())?;
        let chunks = &state.catalog.chunks;
        let lexical = state.lexical.search(text, candidates, |id| {
            chunks.get(&id).is_some_and(|c| {
                c.tenant == query.tenant
                    && query.doc_type.as_ref().is_none_or(|t| &c.doc_type == t)
                    && query.language.as_ref().is_none_or(|l| &c.language == l)
            })
        });
        // Reciprocal rank fusion over the two rankings; ids unknown to the catalogue (vectors
        // written by an interrupted ingest) are skipped.
        let k = self.config.rrf_k.max(1.0);
        let cjk = parse::detect_language(text) == "zh";
        let dense_weight = if cjk { self.config.dense_weight_cjk.clamp(0.0, 1.0) } else { 1.0 };
        let mut fused: HashMap<u64, Candidate> = HashMap::new();
        for (rank, hit) in dense.iter().filter(|h| chunks.contains_key(&h.id)).enumerate() {
            let c = fused.entry(hit.id).or_default();
            c.rrf += dense_weight / (k + rank as f32 + 1.0);
        }
        for (rank, hit) in lexical.iter().enumerate() {
            let c = fused.entry(hit.id).or_default();
            c.rrf += 1.0 / (k + rank as f32 + 1.0);
        }
        let best_dense = dense.iter().find(|h| chunks.contains_key(&h.id)).map(|h| h.score);
        let best_coverage = lexical.first().map(|h| h.coverage);
        let mut ranked: Vec<(u64, Candidate)> = fused.into_iter().collect();
        ranked.sort_by(|a, b| b.1.rrf.total_cmp(&a.1.rrf).then(a.0.cmp(&b.0)));
        let top = (1.0 + dense_weight) / (k + 1.0);
        let hits = ranked
            .into_iter()
            .filter_map(|(id, c)| {
                let r = chunks.get(&id)?;
                Some(Hit {
                    text: r.text.clone(),
                    score: (c.rrf / top).min(1.0),
                    doc_type: r.doc_type.clone(),
                    language: r.language.clone(),
                    citation: Citation {
                        source: r.source.clone(),
                        section: r.section.clone(),
                        chunk: r.index,
                        version: r.version.clone(),
                    },
                })
            })
            .take(query.top_k)
            .collect();
        Ok(SearchOutcome { hits, best_dense, best_coverage, cjk })
    }

    /// Whether an outcome clears the relevance threshold: for CJK questions on lexical coverage
    /// alone, for others on dense similarity or a strong lexical match.
    pub fn is_relevant(&self, outcome: &SearchOutcome) -> bool {
        let c = &self.config;
        let coverage = |min: f32| outcome.best_coverage.is_some_and(|v| v >= min);
        !outcome.hits.is_empty()
            && if outcome.cjk {
                coverage(c.min_lexical_coverage_cjk)
            } else {
                outcome.best_dense.is_some_and(|s| s >= c.min_similarity)
                    || coverage(c.min_lexical_coverage)
            }
    }
}

/// Scores of one fused candidate.
#[derive(Debug, Default, Clone, Copy)]
struct Candidate {
    rrf: f32,
}

/// Hits with the scores the relevance decision is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// Fused hits, best first; `score` is the fused rank score scaled to 0..1 (1 = first in both
    /// rankings).
    pub hits: Vec<Hit>,
    /// Best dense cosine similarity among candidates.
    pub best_dense: Option<f32>,
    /// Best lexical coverage among candidates.
    pub best_coverage: Option<f32>,
    /// Whether the question is written in a CJK script (decides which threshold applies).
    pub cjk: bool,
}

impl Retriever for KnowledgeBase {
    async fn retrieve(&self, query: &RetrievalQuery) -> fenliu_knowledge::Result<Retrieval> {
        let outcome = self.search(query).await?;
        if self.is_relevant(&outcome) {
            Ok(Retrieval::Hits { hits: outcome.hits })
        } else {
            Ok(Retrieval::NoAnswer { best_score: outcome.best_dense })
        }
    }
}

fn seen_on_disk(source: &str, seen: &HashSet<String>) -> bool {
    seen.contains(source) && Path::new(source).exists()
}

fn failed(source: &str, error: IngestError) -> FileReport {
    FileReport {
        source: source.to_owned(),
        status: FileStatus::Failed(error),
        doc_type: String::new(),
        language: String::new(),
        chunks: 0,
        embedded: 0,
        removed: 0,
        deduplicated: 0,
    }
}

fn majority_language(records: &[(u64, ChunkRecord)]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, r) in records {
        *counts.entry(r.language.as_str()).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(l, _)| l.to_owned()).unwrap_or_default()
}

/// The text embedded for a chunk: the heading path gives the passage its context ("Refunds"
/// under "Returns, Exchanges and Refunds"); records (Q&A, products) carry their own.
fn embed_text(title: &str, r: &ChunkRecord) -> String {
    if r.doc_type == "faq" || r.doc_type == "product" {
        r.text.clone()
    } else if r.section.is_empty() {
        format!("{title}\n{}", r.text)
    } else {
        format!("{}\n{}", r.section, r.text)
    }
}

/// The text indexed lexically: the passage and its heading path.
fn index_text(r: &ChunkRecord) -> String {
    format!("{}\n{}", r.section, r.text)
}

fn payload(r: &ChunkRecord) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("tenant", &r.tenant),
        ("source", &r.source),
        ("doc_type", &r.doc_type),
        ("language", &r.language),
        ("section", &r.section),
        ("version", &r.version),
        ("text", &r.text),
    ] {
        m.insert(k.into(), serde_json::Value::String(v.clone()));
    }
    m.insert("chunk".into(), serde_json::Value::from(r.index));
    m
}
