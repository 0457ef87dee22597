//! Embedded vector store on qdrant-edge: fenliu's default knowledge backend.
//!
//! Each collection is one qdrant-edge shard in its own directory under the store's root
//! (`data/kb/vectors/<collection>`): a write-ahead log plus segments, persisted across restarts
//! with no server to run. [`EdgeStore`] implements [`VectorStore`] and passes the shared
//! conformance suite.
//!
//! # Indexing
//! qdrant-edge builds HNSW graphs only when `optimize()` is called, synchronously. Until then a
//! segment is searched exactly (about 0.5 ms at 10k MiniLM vectors). [`EdgeStore`] therefore calls
//! `optimize()` itself once `optimize_after` points have been written since the last call, and
//! searches with `hnsw_ef` from [`EdgeOptions`]; both defaults were chosen from the recall and
//! latency measured by `fenliu bench knowledge` on MiniLM embeddings (see `docs/architecture.md`).
//!
//! # Version
//! `qdrant-edge` is pinned to 0.7.2: 0.8.0 and 0.9.0 do not compile on rustc 1.95 (they use the
//! unstable `std::debug_assert_matches`). Upgrading is one line in `Cargo.toml`.
//!
//! qdrant-edge pulls `schemars` 0.8 while the rest of fenliu uses 1.x; this crate is the only one
//! depending on it, and none of its types leave this crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use fenliu_knowledge::{
    Condition as KbCondition, Filter as KbFilter, KnowledgeError, Point, Result, ScoredPoint,
    SearchRequest, VectorStore, validate_points,
};
use qdrant_edge::{
    Condition, CountRequest, CreateIndex, DEFAULT_VECTOR_NAME, Distance, EdgeConfigBuilder,
    EdgeOptimizersConfig, EdgeShard, EdgeVectorParams, FieldCondition, FieldIndexOperations,
    Filter, JsonPath, Match, MatchAny, MatchValue, PayloadFieldSchema, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStruct, QueryEnum, SearchParams, UpdateOperation,
    ValueVariants, WithPayloadInterface,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

/// Payload keys indexed as keywords, so filtered HNSW search stays fast.
pub const INDEXED_KEYS: [&str; 4] = ["tenant", "doc_type", "language", "source"];
/// Longest collection name (also a directory name).
const MAX_NAME_LEN: usize = 64;

/// Tuning of the embedded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeOptions {
    /// HNSW search breadth: higher is more exact and slower.
    pub hnsw_ef: usize,
    /// HNSW graph degree.
    pub m: usize,
    /// HNSW construction breadth.
    pub ef_construct: usize,
    /// Segments larger than this (KB of vectors) get an HNSW index when optimised; smaller ones
    /// are searched exactly. 384-dimensional f32 vectors take 1.5 KB each.
    pub indexing_threshold_kb: usize,
    /// Points written since the last optimisation that trigger the next one (0: never
    /// automatically; call [`EdgeStore::optimize`]).
    pub optimize_after: usize,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            hnsw_ef: 128,
            m: 16,
            ef_construct: 100,
            // ≈ 13k MiniLM vectors: below that exact search is under a millisecond anyway.
            indexing_threshold_kb: 20_000,
            optimize_after: 5_000,
        }
    }
}

struct Collection {
    shard: EdgeShard,
    dimensions: usize,
    /// Points written since the last `optimize()`.
    pending: Mutex<usize>,
}

/// Collections of vectors on local disk, one qdrant-edge shard each.
pub struct EdgeStore {
    root: PathBuf,
    options: EdgeOptions,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
}

impl std::fmt::Debug for EdgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStore")
            .field("root", &self.root)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Backend(e.to_string())
}

fn poisoned() -> KnowledgeError {
    KnowledgeError::Backend("edge store lock poisoned".into())
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(KnowledgeError::InvalidRequest(format!(
            "collection name must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {name:?}"
        )))
    }
}

fn keyword(value: &str) -> Match {
    Match::Value(MatchValue { value: ValueVariants::String(value.to_owned()) })
}

fn key_path(key: &str) -> Result<JsonPath> {
    key.parse::<JsonPath>()
        .map_err(|_| KnowledgeError::InvalidRequest(format!("invalid payload key {key:?}")))
}

fn to_filter(filter: &KbFilter) -> Result<Option<Filter>> {
    if filter.must.is_empty() {
        return Ok(None);
    }
    let conditions = filter
        .must
        .iter()
        .map(|c| {
            Ok(match c {
                KbCondition::Equals { key, value } => {
                    Condition::Field(FieldCondition::new_match(key_path(key)?, keyword(value)))
                }
                KbCondition::AnyOf { key, values } => Condition::Field(FieldCondition::new_match(
                    key_path(key)?,
                    Match::Any(MatchAny {
                        any: qdrant_edge::AnyVariants::Strings(values.iter().cloned().collect()),
                    }),
                )),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Filter { must: Some(conditions), ..Filter::default() }))
}

impl EdgeStore {
    /// A store rooted at `root` (created if missing); collections found there are opened on
    /// first use.
    pub fn open(root: impl Into<PathBuf>, options: EdgeOptions) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(backend)?;
        Ok(Self { root, options, collections: RwLock::new(HashMap::new()) })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn get(&self, name: &str) -> Result<Arc<Collection>> {
        check_name(name)?;
        if let Some(c) = self.collections.read().map_err(|_| poisoned())?.get(name) {
            return Ok(c.clone());
        }
        let path = self.root.join(name);
        if !path.join("edge_config.json").exists() {
            return Err(KnowledgeError::CollectionNotFound(name.to_owned()));
        }
        let mut guard = self.collections.write().map_err(|_| poisoned())?;
        if let Some(c) = guard.get(name) {
            return Ok(c.clone());
        }
        let shard = EdgeShard::load(&path, None).map_err(|e| {
            let e = e.to_string();
            if e.contains("WouldBlock") {
                // The write-ahead log is locked: another process (or store) has it open.
                backend(format!(
                    "collection `{name}` in {} is in use by another process (a running `fenliu \
                     serve`?); stop it first",
                    self.root.display()
                ))
            } else {
                backend(e)
            }
        })?;
        let dimensions = shard
            .config()
            .vectors
            .get(DEFAULT_VECTOR_NAME)
            .map(|v| v.size)
            .ok_or_else(|| backend(format!("collection `{name}` has no default vector")))?;
        info!(collection = name, dimensions, "edge collection loaded");
        let c = Arc::new(Collection { shard, dimensions, pending: Mutex::new(0) });
        guard.insert(name.to_owned(), c.clone());
        Ok(c)
    }

    fn create(&self, name: &str, dimensions: usize) -> Result<Arc<Collection>> {
        let path = self.root.join(name);
        std::fs::create_dir_all(&path).map_err(backend)?;
        let hnsw = qdrant_edge::HnswIndexConfig {
            m: self.options.m,
            ef_construct: self.options.ef_construct,
            ..qdrant_edge::HnswIndexConfig::default()
        };
        let config = EdgeConfigBuilder::new()
            .vector(
                DEFAULT_VECTOR_NAME,
                EdgeVectorParams::builder(dimensions, Distance::Cosine).build(),
            )
            .hnsw_config(hnsw)
            .optimizers(EdgeOptimizersConfig {
                indexing_threshold: Some(self.options.indexing_threshold_kb),
                ..EdgeOptimizersConfig::default()
            })
            .build();
        let shard = EdgeShard::new(&path, config).map_err(backend)?;
        for key in INDEXED_KEYS {
            shard
                .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(
                    CreateIndex {
                        field_name: key_path(key)?,
                        field_schema: Some(PayloadFieldSchema::FieldType(
                            PayloadSchemaType::Keyword,
                        )),
                    },
                )))
                .map_err(backend)?;
        }
        info!(collection = name, dimensions, "edge collection created");
        Ok(Arc::new(Collection { shard, dimensions, pending: Mutex::new(0) }))
    }

    /// Builds HNSW indexes and merges segments of `collection` now (synchronous; seconds for
    /// tens of thousands of points). Returns whether anything was optimised.
    pub fn optimize(&self, collection: &str) -> Result<bool> {
        let c = self.get(collection)?;
        let done = c.shard.optimize().map_err(backend)?;
        if let Ok(mut pending) = c.pending.lock() {
            *pending = 0;
        }
        Ok(done)
    }

    /// Points and indexed vectors of `collection`.
    pub fn info(&self, collection: &str) -> Result<(usize, usize)> {
        let c = self.get(collection)?;
        let info = c.shard.info();
        Ok((info.points_count, info.indexed_vectors_count))
    }

    /// Flushes every open collection to disk.
    pub fn flush(&self) -> Result<()> {
        for c in self.collections.read().map_err(|_| poisoned())?.values() {
            c.shard.flush();
        }
        Ok(())
    }

    /// Copies the whole store (every collection) into `dest`, which must not exist yet. Writes
    /// are held back while copying, so the copy is consistent. Restore by pointing
    /// `[knowledge] path` at the copy (or copying it back) while the server is stopped.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(KnowledgeError::InvalidRequest(format!(
                "backup target {} already exists",
                dest.display()
            )));
        }
        // Holding the write lock keeps every writer (upsert/delete go through `get`) out.
        let guard = self.collections.write().map_err(|_| poisoned())?;
        for c in guard.values() {
            c.shard.flush();
        }
        copy_dir(&self.root, dest).map_err(backend)?;
        drop(guard);
        Ok(())
    }

    fn maybe_optimize(&self, name: &str, c: &Collection, written: usize) -> Result<()> {
        if self.options.optimize_after == 0 {
            return Ok(());
        }
        let due = match c.pending.lock() {
            Ok(mut pending) => {
                *pending += written;
                *pending >= self.options.optimize_after
            }
            Err(_) => return Err(poisoned()),
        };
        if due {
            let started = std::time::Instant::now();
            c.shard.optimize().map_err(backend)?;
            if let Ok(mut pending) = c.pending.lock() {
                *pending = 0;
            }
            debug!(collection = name, ms = started.elapsed().as_millis() as u64, "optimised");
        }
        Ok(())
    }

    /// Exact (brute-force) search, bypassing HNSW: the reference for recall measurements.
    pub fn search_exact(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<ScoredPoint>> {
        self.search_with(collection, request, true, self.options.hnsw_ef)
    }

    /// HNSW search with another `hnsw_ef` than the configured one (benchmarks sweep it).
    pub fn search_with_ef(
        &self,
        collection: &str,
        request: &SearchRequest,
        hnsw_ef: usize,
    ) -> Result<Vec<ScoredPoint>> {
        self.search_with(collection, request, false, hnsw_ef.max(1))
    }

    fn search_with(
        &self,
        collection: &str,
        request: &SearchRequest,
        exact: bool,
        hnsw_ef: usize,
    ) -> Result<Vec<ScoredPoint>> {
        let c = self.get(collection)?;
        if request.vector.len() != c.dimensions {
            return Err(KnowledgeError::DimensionMismatch {
                collection: collection.to_owned(),
                expected: c.dimensions,
                got: request.vector.len(),
            });
        }
        if request.vector.iter().any(|x| !x.is_finite()) {
            return Err(KnowledgeError::InvalidRequest("query vector is not finite".into()));
        }
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let search = qdrant_edge::SearchRequest {
            query: QueryEnum::Nearest(qdrant_edge::NamedQuery::default_dense(
                request.vector.clone(),
            )),
            filter: to_filter(&request.filter)?,
            params: Some(SearchParams { hnsw_ef: Some(hnsw_ef), exact, ..SearchParams::default() }),
            limit: request.limit,
            offset: 0,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: None,
            score_threshold: request.score_threshold,
        };
        let hits = c.shard.search(search).map_err(backend)?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let id = match h.id {
                    PointId::NumId(id) => id,
                    PointId::Uuid(_) => return None,
                };
                let payload = h.payload.map(|p| p.0.into_iter().collect()).unwrap_or_default();
                Some(ScoredPoint { id, score: h.score, payload })
            })
            .collect())
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl VectorStore for EdgeStore {
    async fn ensure_collection(&self, name: &str, dimensions: usize) -> Result<()> {
        check_name(name)?;
        if dimensions == 0 {
            return Err(KnowledgeError::InvalidRequest("zero dimensions".into()));
        }
        let existing = match self.get(name) {
            Ok(c) => Some(c),
            Err(KnowledgeError::CollectionNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        match existing {
            Some(c) if c.dimensions != dimensions => Err(KnowledgeError::CollectionMismatch {
                collection: name.to_owned(),
                existing: c.dimensions,
                requested: dimensions,
            }),
            Some(_) => Ok(()),
            None => {
                let mut guard = self.collections.write().map_err(|_| poisoned())?;
                if guard.contains_key(name) {
                    return Ok(());
                }
                let c = self.create(name, dimensions)?;
                guard.insert(name.to_owned(), c);
                Ok(())
            }
        }
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()> {
        let c = self.get(collection)?;
        validate_points(collection, c.dimensions, &points)?;
        if points.is_empty() {
            return Ok(());
        }
        let written = points.len();
        let points: Vec<_> = points
            .into_iter()
            .map(|p| PointStruct::new(p.id, p.vector, serde_json::Value::Object(p.payload)).into())
            .collect();
        c.shard
            .update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                PointInsertOperations::PointsList(points),
            )))
            .map_err(backend)?;
        self.maybe_optimize(collection, &c, written)
    }

    async fn delete(&self, collection: &str, ids: &[u64]) -> Result<()> {
        let c = self.get(collection)?;
        if ids.is_empty() {
            return Ok(());
        }
        c.shard
            .update(UpdateOperation::PointOperation(PointOperations::DeletePoints {
                ids: ids.iter().map(|id| PointId::NumId(*id)).collect(),
            }))
            .map_err(backend)
    }

    async fn search(&self, collection: &str, request: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        self.search_with(collection, request, false, self.options.hnsw_ef)
    }

    async fn count(&self, collection: &str, filter: &KbFilter) -> Result<usize> {
        let c = self.get(collection)?;
        c.shard.count(CountRequest { filter: to_filter(filter)?, exact: true }).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn collection_names_cannot_escape_the_root() {
        for bad in ["", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_name("kb-minilm_1").is_ok());
    }
}
