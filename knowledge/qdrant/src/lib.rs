//! Vector store on a Qdrant server, through `qdrant-client` (gRPC): fenliu's knowledge backend
//! once the knowledge base outgrows one process (`knowledge.backend = "qdrant"`).
//!
//! [`QdrantStore`] implements [`VectorStore`] and passes the shared conformance suite. Each
//! fenliu collection is the Qdrant collection `collection_prefix + name`, created on demand with
//! one unnamed dense vector of the requested dimension and cosine distance, and keyword payload
//! indexes on [`INDEXED_KEYS`] (tenant, document type, language, source) so filtered search stays
//! fast. Writes wait for the server to apply them, so a search right after an upsert sees it.
//!
//! This is the only crate that sees `qdrant-client`; its types do not leave the crate. Errors are
//! [`QdrantStoreError`] (converted into [`KnowledgeError`] at the trait boundary); the API key is
//! never printed (`Debug`, `Serialize` and error messages show `[REDACTED]`).
//!
//! # Version
//! `qdrant-client` 1.20 (the newest release; it builds on rustc 1.95). The client's own version
//! check is skipped (it prints to stdout from a helper thread); [`QdrantStore::health_check`]
//! reports the server version instead.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use fenliu_knowledge::{
    Condition as KbCondition, Filter as KbFilter, KnowledgeError, Point, ScoredPoint,
    SearchRequest, VectorStore, validate_points,
};
use qdrant_client::qdrant::{
    self, CountPoints, CreateCollection, CreateFieldIndexCollection, DeletePoints, Distance,
    FieldType, PointId, PointStruct, PointsIdsList, PointsSelector, Query, QueryPoints,
    SearchParams, UpsertPoints, VectorParams, VectorsConfig, WithPayloadSelector,
    r#match::MatchValue, point_id::PointIdOptions, points_selector::PointsSelectorOneOf,
    vectors_config,
};
use qdrant_client::{Qdrant, QdrantError};
use serde::{Deserialize, Serialize};
use tracing::info;

/// Payload keys indexed as keywords when a collection is created (the filter keys).
pub const INDEXED_KEYS: [&str; 4] = ["tenant", "doc_type", "language", "source"];
/// Longest fenliu collection name, and longest prefix.
const MAX_NAME_LEN: usize = 64;

/// An API key: shown as `[REDACTED]` by `Debug`, `Display`-free, serialised as `[REDACTED]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for ApiKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[REDACTED]")
    }
}

/// How to reach the Qdrant server (`[knowledge.qdrant]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantOptions {
    /// gRPC URL of the server, e.g. `http://127.0.0.1:6334` (`https://` for TLS). Required.
    pub url: String,
    /// API key sent as the `api-key` header (better from `FENLIU__KNOWLEDGE__QDRANT__API_KEY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    /// Prepended to every collection name, so several deployments can share a server.
    pub collection_prefix: String,
    /// Deadline of each request, in milliseconds.
    pub timeout_ms: u64,
    /// Deadline of establishing a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// HNSW search breadth sent with every search (`None`: the server's default).
    pub hnsw_ef: Option<u64>,
    /// Points per upsert request (large batches are split to stay under gRPC message limits).
    pub upsert_batch: usize,
}

impl Default for QdrantOptions {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_key: None,
            collection_prefix: "fenliu_".into(),
            timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            // The embedded backend's measured value (`fenliu bench knowledge`).
            hnsw_ef: Some(128),
            upsert_batch: 256,
        }
    }
}

impl QdrantOptions {
    /// Options for `url` with every other value at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Checks the options without contacting the server; errors name the option.
    pub fn validate(&self) -> Result<(), QdrantStoreError> {
        let invalid = |option: &'static str, reason: String| {
            Err(QdrantStoreError::InvalidOption { option, reason })
        };
        let url = self.url.trim();
        if url.is_empty() {
            return invalid("url", "is required (e.g. http://127.0.0.1:6334)".into());
        }
        let rest = match url.split_once("://") {
            Some(("http" | "https", rest)) => rest,
            _ => {
                return invalid(
                    "url",
                    format!("must start with http:// or https://, got {:?}", shown(url)),
                );
            }
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty()
            || authority.contains('@')
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return invalid(
                "url",
                format!("must be http(s)://host[:port] without credentials, got {:?}", shown(url)),
            );
        }
        if let Some(key) = &self.api_key {
            // The key goes into a gRPC header; qdrant-client would echo a malformed one in its
            // error message, so it is checked here and never quoted.
            if key.0.is_empty() || !key.0.bytes().all(|b| b.is_ascii_graphic()) {
                return invalid(
                    "api_key",
                    "must be non-empty visible ASCII (no spaces or control characters)".into(),
                );
            }
        }
        if self.collection_prefix.len() > MAX_NAME_LEN || !valid_name_chars(&self.collection_prefix)
        {
            return invalid(
                "collection_prefix",
                format!(
                    "must be at most {MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {:?}",
                    shown(&self.collection_prefix)
                ),
            );
        }
        if self.timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return invalid(
                "timeout_ms",
                "timeout_ms and connect_timeout_ms must be positive".into(),
            );
        }
        if self.hnsw_ef == Some(0) {
            return invalid("hnsw_ef", "must be positive (or unset for the server default)".into());
        }
        if self.upsert_batch == 0 {
            return invalid("upsert_batch", "must be positive".into());
        }
        Ok(())
    }
}

/// At most 80 characters of an offending value, for error messages.
fn shown(s: &str) -> String {
    s.chars().take(80).collect()
}

fn valid_name_chars(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What can go wrong talking to Qdrant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QdrantStoreError {
    /// An option is unusable (checked before any request).
    #[error("invalid Qdrant option `{option}`: {reason}")]
    InvalidOption {
        /// The option (`url`, `api_key`, …).
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// No connection could be made.
    #[error("Qdrant at {url} is unreachable: {reason}")]
    Unreachable {
        /// The configured URL.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// The server refused the credentials.
    #[error(
        "Qdrant at {url} rejected the request as unauthorised (check knowledge.qdrant.api_key)"
    )]
    Unauthorized {
        /// The configured URL.
        url: String,
    },
    /// A request took longer than the configured deadline.
    #[error("Qdrant at {url} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The configured URL.
        url: String,
        /// The deadline.
        timeout_ms: u64,
    },
    /// The collection does not exist on the server.
    #[error("Qdrant collection `{0}` does not exist")]
    CollectionNotFound(String),
    /// The collection exists with another dimension.
    #[error("Qdrant collection `{collection}` has dimension {existing}, requested {requested}")]
    CollectionMismatch {
        /// Qdrant collection name.
        collection: String,
        /// Its dimension.
        existing: usize,
        /// Requested dimension.
        requested: usize,
    },
    /// The collection exists but is not usable by fenliu (distance, named vectors, …).
    #[error("Qdrant collection `{collection}` cannot be used: {reason}")]
    IncompatibleCollection {
        /// Qdrant collection name.
        collection: String,
        /// Why.
        reason: String,
    },
    /// The server rejected the request as invalid.
    #[error("Qdrant rejected the request: {0}")]
    Rejected(String),
    /// Any other server or protocol failure.
    #[error("Qdrant at {url} failed ({code}): {message}")]
    Server {
        /// The configured URL.
        url: String,
        /// gRPC status code or failure kind.
        code: String,
        /// Server message (secrets removed).
        message: String,
    },
}

impl From<QdrantStoreError> for KnowledgeError {
    fn from(e: QdrantStoreError) -> Self {
        match e {
            QdrantStoreError::CollectionNotFound(c) => Self::CollectionNotFound(c),
            QdrantStoreError::CollectionMismatch { collection, existing, requested } => {
                Self::CollectionMismatch { collection, existing, requested }
            }
            e @ (QdrantStoreError::InvalidOption { .. } | QdrantStoreError::Rejected(_)) => {
                Self::InvalidRequest(e.to_string())
            }
            e => Self::Backend(e.to_string()),
        }
    }
}

/// Collections of vectors on a Qdrant server.
pub struct QdrantStore {
    client: Qdrant,
    options: QdrantOptions,
    /// Dimension of every collection seen so far, by fenliu name.
    dimensions: RwLock<HashMap<String, usize>>,
}

impl std::fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantStore").field("options", &self.options).finish_non_exhaustive()
    }
}

type StoreResult<T> = Result<T, QdrantStoreError>;

fn keyword(key: &str, value: MatchValue) -> qdrant::Condition {
    qdrant::Condition {
        condition_one_of: Some(qdrant::condition::ConditionOneOf::Field(qdrant::FieldCondition {
            key: key.to_owned(),
            r#match: Some(qdrant::Match { match_value: Some(value) }),
            ..Default::default()
        })),
    }
}

/// Our filter as Qdrant's. Values are keyword (exact) matches; `qdrant-client`'s `From<String>`
/// would turn values containing whitespace into full-text matches.
fn to_filter(filter: &KbFilter) -> Result<Option<qdrant::Filter>, KnowledgeError> {
    if filter.must.is_empty() {
        return Ok(None);
    }
    let must = filter
        .must
        .iter()
        .map(|c| {
            let key = match c {
                KbCondition::Equals { key, .. } | KbCondition::AnyOf { key, .. } => key,
            };
            if key.trim().is_empty() {
                return Err(KnowledgeError::InvalidRequest("empty payload key in filter".into()));
            }
            Ok(match c {
                KbCondition::Equals { key, value } => {
                    keyword(key, MatchValue::Keyword(value.clone()))
                }
                KbCondition::AnyOf { key, values } => keyword(
                    key,
                    MatchValue::Keywords(qdrant::RepeatedStrings { strings: values.clone() }),
                ),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(qdrant::Filter { must, ..Default::default() }))
}

fn check_name(name: &str) -> Result<(), KnowledgeError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_name_chars(name) {
        return Err(KnowledgeError::InvalidRequest(format!(
            "collection name must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {:?}",
            shown(name)
        )));
    }
    Ok(())
}

fn point_id(id: u64) -> PointId {
    PointId { point_id_options: Some(PointIdOptions::Num(id)) }
}

impl QdrantStore {
    /// A store for the server in `options` (validated first). No request is made yet: the
    /// connection opens on first use; call [`Self::health_check`] to fail fast.
    pub fn connect(options: QdrantOptions) -> StoreResult<Self> {
        options.validate()?;
        let mut config = Qdrant::from_url(options.url.trim())
            .timeout(Duration::from_millis(options.timeout_ms))
            .connect_timeout(Duration::from_millis(options.connect_timeout_ms))
            .skip_compatibility_check();
        if let Some(key) = &options.api_key {
            config.set_api_key(key.expose());
        }
        let client = Qdrant::new(config).map_err(|e| QdrantStoreError::InvalidOption {
            option: "url",
            reason: format!("{:?} is not a valid URI: {e}", shown(&options.url)),
        })?;
        Ok(Self { client, options, dimensions: RwLock::new(HashMap::new()) })
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &QdrantOptions {
        &self.options
    }

    /// The Qdrant collection behind fenliu collection `name`.
    pub fn qualified(&self, name: &str) -> String {
        format!("{}{name}", self.options.collection_prefix)
    }

    /// Asks the server for its version (the cheapest request): a clear error now instead of on
    /// the first search.
    pub async fn health_check(&self) -> StoreResult<String> {
        let reply = self.client.health_check().await.map_err(|e| self.classify(e, None))?;
        Ok(reply.version)
    }

    /// Deletes fenliu collection `name` with all its points; `false` when it did not exist.
    pub async fn drop_collection(&self, name: &str) -> Result<bool, KnowledgeError> {
        check_name(name)?;
        if let Ok(mut cache) = self.dimensions.write() {
            cache.remove(name);
        }
        let qualified = self.qualified(name);
        match self.client.delete_collection(qualified.as_str()).await {
            Ok(reply) => Ok(reply.result),
            Err(e) => match self.classify(e, Some(&qualified)) {
                QdrantStoreError::CollectionNotFound(_) => Ok(false),
                e => Err(e.into()),
            },
        }
    }

    /// Maps a client error to ours, naming the collection for "not found" and scrubbing the API
    /// key out of every message.
    fn classify(&self, error: QdrantError, collection: Option<&str>) -> QdrantStoreError {
        use tonic::Code;
        let url = self.options.url.trim().to_owned();
        let scrub = |message: &str| match &self.options.api_key {
            Some(key) if !key.0.is_empty() => message.replace(&key.0, "[REDACTED]"),
            _ => message.to_owned(),
        };
        let status = match error {
            QdrantError::ResponseError { status }
            | QdrantError::ResourceExhaustedError { status, .. } => status,
            QdrantError::InvalidUri(e) => {
                return QdrantStoreError::InvalidOption {
                    option: "url",
                    reason: format!("not a valid URI: {e}"),
                };
            }
            other => {
                return QdrantStoreError::Server {
                    url,
                    code: "client".into(),
                    message: scrub(&other.to_string()),
                };
            }
        };
        let message = scrub(status.message());
        match status.code() {
            Code::NotFound if collection.is_some() => {
                QdrantStoreError::CollectionNotFound(collection.unwrap_or_default().to_owned())
            }
            Code::Unauthenticated | Code::PermissionDenied => {
                QdrantStoreError::Unauthorized { url }
            }
            Code::DeadlineExceeded => {
                QdrantStoreError::Timeout { url, timeout_ms: self.options.timeout_ms }
            }
            Code::Cancelled if message.contains("Timeout expired") => {
                QdrantStoreError::Timeout { url, timeout_ms: self.options.timeout_ms }
            }
            Code::Unavailable => QdrantStoreError::Unreachable { url, reason: message },
            // The client reports connection failures as `Internal("Failed to connect to …")`.
            Code::Internal if message.starts_with("Failed to connect") => {
                let reason = if message.contains("ConnectionRefused") {
                    "connection refused".to_owned()
                } else if message.contains("timed out") || message.contains("Elapsed") {
                    format!("no connection within {} ms", self.options.connect_timeout_ms)
                } else {
                    message
                };
                QdrantStoreError::Unreachable { url, reason }
            }
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                QdrantStoreError::Rejected(message)
            }
            code => QdrantStoreError::Server { url, code: format!("{code:?}"), message },
        }
    }

    fn cached(&self, name: &str) -> Option<usize> {
        self.dimensions.read().ok().and_then(|c| c.get(name).copied())
    }

    fn remember(&self, name: &str, dimensions: usize) {
        if let Ok(mut cache) = self.dimensions.write() {
            cache.insert(name.to_owned(), dimensions);
        }
    }

    fn forget_if_missing<T>(&self, name: &str, result: StoreResult<T>) -> StoreResult<T> {
        if let Err(QdrantStoreError::CollectionNotFound(_)) = &result
            && let Ok(mut cache) = self.dimensions.write()
        {
            // Dropped on the server behind our back: ask again next time.
            cache.remove(name);
        }
        result
    }

    /// The dimension of collection `name` from the server (`None`: it does not exist); errors
    /// when it is not a single cosine vector.
    async fn fetch_dimensions(&self, name: &str) -> StoreResult<Option<usize>> {
        let qualified = self.qualified(name);
        let info = match self.client.collection_info(qualified.as_str()).await {
            Ok(info) => info,
            Err(e) => {
                return match self.classify(e, Some(&qualified)) {
                    QdrantStoreError::CollectionNotFound(_) => Ok(None),
                    e => Err(e),
                };
            }
        };
        let incompatible = |reason: &str| QdrantStoreError::IncompatibleCollection {
            collection: qualified.clone(),
            reason: reason.to_owned(),
        };
        let params = info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config)
            .ok_or_else(|| incompatible("the server reported no vector configuration"))?;
        let params = match params {
            vectors_config::Config::Params(p) => p,
            vectors_config::Config::ParamsMap(_) => {
                return Err(incompatible("it has named vectors; fenliu uses one unnamed vector"));
            }
        };
        if params.distance != Distance::Cosine as i32 {
            let distance = Distance::try_from(params.distance)
                .map(|d| d.as_str_name().to_owned())
                .unwrap_or_else(|_| params.distance.to_string());
            return Err(incompatible(&format!("distance is {distance}, fenliu needs Cosine")));
        }
        let dims = usize::try_from(params.size)
            .map_err(|_| incompatible("its dimension does not fit this platform"))?;
        self.remember(name, dims);
        Ok(Some(dims))
    }

    /// The dimension of an existing collection (cached after the first request).
    async fn dimensions_of(&self, name: &str) -> Result<usize, KnowledgeError> {
        check_name(name)?;
        if let Some(d) = self.cached(name) {
            return Ok(d);
        }
        self.fetch_dimensions(name)
            .await?
            .ok_or_else(|| KnowledgeError::CollectionNotFound(self.qualified(name)))
    }

    async fn create(&self, name: &str, dimensions: usize) -> StoreResult<()> {
        let qualified = self.qualified(name);
        let size = u64::try_from(dimensions).map_err(|_| {
            QdrantStoreError::Rejected(format!("dimension {dimensions} is too large"))
        })?;
        let request = CreateCollection {
            collection_name: qualified.clone(),
            vectors_config: Some(VectorsConfig {
                config: Some(vectors_config::Config::Params(VectorParams {
                    size,
                    distance: Distance::Cosine as i32,
                    ..Default::default()
                })),
            }),
            ..Default::default()
        };
        if let Err(e) = self.client.create_collection(request).await {
            // Another process may have created it in between (Qdrant answers ALREADY_EXISTS, or
            // INVALID_ARGUMENT "… already exists" in older versions): the caller re-reads it.
            let raced = matches!(&e, QdrantError::ResponseError { status }
                if status.code() == tonic::Code::AlreadyExists
                    || status.message().contains("already exists"));
            if !raced {
                return Err(self.classify(e, Some(&qualified)));
            }
        }
        for key in INDEXED_KEYS {
            let index = CreateFieldIndexCollection {
                collection_name: qualified.clone(),
                wait: Some(true),
                field_name: key.to_owned(),
                field_type: Some(FieldType::Keyword as i32),
                ..Default::default()
            };
            self.client
                .create_field_index(index)
                .await
                .map_err(|e| self.classify(e, Some(&qualified)))?;
        }
        info!(collection = %qualified, dimensions, "qdrant collection created");
        Ok(())
    }
}

impl VectorStore for QdrantStore {
    async fn ensure_collection(&self, name: &str, dimensions: usize) -> Result<(), KnowledgeError> {
        check_name(name)?;
        if dimensions == 0 {
            return Err(KnowledgeError::InvalidRequest("zero dimensions".into()));
        }
        let existing = match self.fetch_dimensions(name).await? {
            Some(d) => d,
            None => {
                self.create(name, dimensions).await?;
                self.fetch_dimensions(name)
                    .await?
                    .ok_or_else(|| KnowledgeError::CollectionNotFound(self.qualified(name)))?
            }
        };
        if existing != dimensions {
            return Err(KnowledgeError::CollectionMismatch {
                collection: self.qualified(name),
                existing,
                requested: dimensions,
            });
        }
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), KnowledgeError> {
        let dims = self.dimensions_of(collection).await?;
        // Everything is checked before the first request, so bad input writes nothing.
        validate_points(collection, dims, &points)?;
        let qualified = self.qualified(collection);
        let mut points = points.into_iter().peekable();
        while points.peek().is_some() {
            let batch: Vec<PointStruct> = points
                .by_ref()
                .take(self.options.upsert_batch)
                .map(|p| PointStruct {
                    id: Some(point_id(p.id)),
                    payload: p.payload.into_iter().map(|(k, v)| (k, v.into())).collect(),
                    vectors: Some(p.vector.into()),
                })
                .collect();
            let request = UpsertPoints {
                collection_name: qualified.clone(),
                wait: Some(true),
                points: batch,
                ..Default::default()
            };
            let result = self
                .client
                .upsert_points(request)
                .await
                .map_err(|e| self.classify(e, Some(&qualified)));
            self.forget_if_missing(collection, result)?;
        }
        Ok(())
    }

    async fn delete(&self, collection: &str, ids: &[u64]) -> Result<(), KnowledgeError> {
        self.dimensions_of(collection).await?;
        if ids.is_empty() {
            return Ok(());
        }
        let qualified = self.qualified(collection);
        let request = DeletePoints {
            collection_name: qualified.clone(),
            wait: Some(true),
            points: Some(PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                    ids: ids.iter().copied().map(point_id).collect(),
                })),
            }),
            ..Default::default()
        };
        let result = self
            .client
            .delete_points(request)
            .await
            .map_err(|e| self.classify(e, Some(&qualified)));
        self.forget_if_missing(collection, result)?;
        Ok(())
    }

    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<ScoredPoint>, KnowledgeError> {
        let dims = self.dimensions_of(collection).await?;
        if request.vector.len() != dims {
            return Err(KnowledgeError::DimensionMismatch {
                collection: collection.to_owned(),
                expected: dims,
                got: request.vector.len(),
            });
        }
        if request.vector.iter().any(|x| !x.is_finite()) {
            return Err(KnowledgeError::InvalidRequest("query vector is not finite".into()));
        }
        if request.score_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(KnowledgeError::InvalidRequest("score threshold is not finite".into()));
        }
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let qualified = self.qualified(collection);
        let query = QueryPoints {
            collection_name: qualified.clone(),
            query: Some(Query::new_nearest(request.vector.clone())),
            filter: to_filter(&request.filter)?,
            params: Some(SearchParams { hnsw_ef: self.options.hnsw_ef, ..Default::default() }),
            score_threshold: request.score_threshold,
            limit: Some(u64::try_from(request.limit).unwrap_or(u64::MAX)),
            with_payload: Some(WithPayloadSelector::from(true)),
            ..Default::default()
        };
        let result = self.client.query(query).await.map_err(|e| self.classify(e, Some(&qualified)));
        let response = self.forget_if_missing(collection, result)?;
        response
            .result
            .into_iter()
            .map(|hit| {
                let id = match hit.id.and_then(|id| id.point_id_options) {
                    Some(PointIdOptions::Num(id)) => id,
                    other => {
                        return Err(KnowledgeError::Backend(format!(
                            "Qdrant collection `{qualified}` returned a point id fenliu did not \
                             write: {other:?}"
                        )));
                    }
                };
                let payload = hit.payload.into_iter().map(|(k, v)| (k, v.into_json())).collect();
                Ok(ScoredPoint { id, score: hit.score, payload })
            })
            .collect()
    }

    async fn count(&self, collection: &str, filter: &KbFilter) -> Result<usize, KnowledgeError> {
        self.dimensions_of(collection).await?;
        let qualified = self.qualified(collection);
        let request = CountPoints {
            collection_name: qualified.clone(),
            filter: to_filter(filter)?,
            exact: Some(true),
            ..Default::default()
        };
        let result =
            self.client.count(request).await.map_err(|e| self.classify(e, Some(&qualified)));
        let count = self.forget_if_missing(collection, result)?.result.map_or(0, |r| r.count);
        usize::try_from(count)
            .map_err(|_| KnowledgeError::Backend(format!("count {count} does not fit usize")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn option_error(options: &QdrantOptions) -> &'static str {
        match options.validate() {
            Err(QdrantStoreError::InvalidOption { option, .. }) => option,
            other => panic!("expected an invalid option, got {other:?}"),
        }
    }

    #[test]
    fn hostile_urls_are_refused_before_any_request() {
        for bad in [
            "",
            "   ",
            "127.0.0.1:6334",
            "ftp://h:1",
            "http://",
            "http:///path",
            "http://user:pw@h:6334",
            "http://h :6334",
            "http://h\n:6334",
            "grpc://h:6334",
        ] {
            assert_eq!(option_error(&QdrantOptions::new(bad)), "url", "{bad:?} accepted");
            assert!(QdrantStore::connect(QdrantOptions::new(bad)).is_err(), "{bad:?} connected");
        }
        assert!(QdrantOptions::new("http://127.0.0.1:6334").validate().is_ok());
        assert!(QdrantOptions::new("https://xyz.cloud.qdrant.io:6334").validate().is_ok());
        // A long value is cut in the message, not echoed whole.
        let long = format!("ftp://{}", "h".repeat(10_000));
        let message = QdrantOptions::new(long).validate().unwrap_err().to_string();
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn other_options_are_checked_and_name_themselves() {
        let ok = QdrantOptions::new("http://h:6334");
        for (options, option) in [
            (QdrantOptions { api_key: Some(ApiKey::new("")), ..ok.clone() }, "api_key"),
            (QdrantOptions { api_key: Some(ApiKey::new("a b")), ..ok.clone() }, "api_key"),
            (QdrantOptions { api_key: Some(ApiKey::new("k\r\nx: y")), ..ok.clone() }, "api_key"),
            (QdrantOptions { api_key: Some(ApiKey::new("ключ")), ..ok.clone() }, "api_key"),
            (QdrantOptions { collection_prefix: "../".into(), ..ok.clone() }, "collection_prefix"),
            (
                QdrantOptions { collection_prefix: "p".repeat(65), ..ok.clone() },
                "collection_prefix",
            ),
            (QdrantOptions { timeout_ms: 0, ..ok.clone() }, "timeout_ms"),
            (QdrantOptions { connect_timeout_ms: 0, ..ok.clone() }, "timeout_ms"),
            (QdrantOptions { hnsw_ef: Some(0), ..ok.clone() }, "hnsw_ef"),
            (QdrantOptions { upsert_batch: 0, ..ok.clone() }, "upsert_batch"),
        ] {
            assert_eq!(option_error(&options), option, "{options:?}");
        }
        assert!(QdrantOptions { collection_prefix: String::new(), ..ok }.validate().is_ok());
    }

    #[test]
    fn the_api_key_never_shows() {
        let options = QdrantOptions {
            api_key: Some(ApiKey::new("s3cr3t-key")),
            ..QdrantOptions::new("http://h:6334")
        };
        let debug = format!("{options:?}");
        assert!(!debug.contains("s3cr3t") && debug.contains("[REDACTED]"), "{debug}");
        let json = serde_json::to_string(&options).unwrap();
        assert!(!json.contains("s3cr3t") && json.contains("[REDACTED]"), "{json}");
        let store = QdrantStore::connect(options).unwrap();
        assert!(!format!("{store:?}").contains("s3cr3t"));
        // A server message quoting the key is scrubbed.
        let e = store.classify(
            QdrantError::ResponseError { status: tonic::Status::internal("bad key s3cr3t-key") },
            None,
        );
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let bad = QdrantOptions {
            api_key: Some(ApiKey::new("s3cr3t key")),
            ..QdrantOptions::new("http://h:6334")
        };
        assert!(!bad.validate().unwrap_err().to_string().contains("s3cr3t"));
    }

    #[test]
    fn filters_are_exact_keyword_matches() {
        assert_eq!(to_filter(&KbFilter::default()).unwrap(), None);
        let f = to_filter(&KbFilter::default().eq("source", "a b.md")).unwrap().unwrap();
        let Some(qdrant::condition::ConditionOneOf::Field(field)) = &f.must[0].condition_one_of
        else {
            panic!("not a field condition: {f:?}");
        };
        // Not `Text`: a value with a space must still match exactly.
        assert_eq!(
            field.r#match.as_ref().and_then(|m| m.match_value.clone()),
            Some(MatchValue::Keyword("a b.md".into()))
        );
        assert!(to_filter(&KbFilter::default().eq(" ", "x")).is_err(), "empty key accepted");
    }

    #[test]
    fn collection_names_are_checked() {
        for bad in ["", "a/b", "../x", "a b", "ä", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_name("kb-minilm_1").is_ok());
    }
}
