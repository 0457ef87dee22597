//! An in-memory Qdrant that speaks the real gRPC protocol: the tonic services generated into
//! `qdrant-client` (`collections_server`, `points_server`, `qdrant_server`), served on
//! 127.0.0.1:0, so the backend's whole wire path (request building, protobuf encoding, HTTP/2,
//! status codes, response decoding) runs in CI where no Qdrant server can.
//!
//! It implements just what `QdrantStore` sends — collections with one unnamed dense vector,
//! keyword payload indexes, upsert, delete by id, exact cosine `query` with `must` keyword
//! filters and a score threshold, exact `count`, the health check — and answers everything else
//! `UNIMPLEMENTED`, so a request the backend starts sending that this server does not understand
//! fails a test instead of passing silently. Status codes follow Qdrant's: `NOT_FOUND` for a
//! missing collection, `ALREADY_EXISTS`, `INVALID_ARGUMENT` for wrong dimensions,
//! `PERMISSION_DENIED` for a wrong or missing API key.
#![allow(deprecated)] // The generated traits mention deprecated request types (search, …).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use ::qdrant_client::qdrant::points_server::{Points, PointsServer};
use ::qdrant_client::qdrant::qdrant_server::{Qdrant, QdrantServer};
use ::qdrant_client::qdrant::*;
use tonic::{Request, Response, Status};

/// One stored collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Collection {
    /// Vector dimension.
    pub(crate) size: u64,
    /// `Distance` as sent.
    pub(crate) distance: i32,
    /// Payload indexes: field → `FieldType`.
    pub(crate) indexes: BTreeMap<String, i32>,
    /// Points by id.
    pub(crate) points: BTreeMap<u64, (Vec<f32>, HashMap<String, Value>)>,
}

/// What the server holds and saw.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Collections by (qualified) name.
    pub(crate) collections: BTreeMap<String, Collection>,
    /// Number of upsert requests received.
    pub(crate) upsert_requests: usize,
}

/// Server behaviour.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeConfig {
    /// Required `api-key` header (none: no authentication).
    pub(crate) api_key: Option<String>,
    /// Added to every implemented request (for deadline tests).
    pub(crate) delay: Duration,
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
    config: FakeConfig,
}

/// A running fake server.
pub(crate) struct FakeQdrant {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// Its state, for assertions and for seeding odd collections.
    pub(crate) state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeQdrant {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeQdrant {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub(crate) async fn start(config: FakeConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let service = Service { state: state.clone(), config };
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(QdrantServer::new(service.clone()))
                .add_service(CollectionsServer::new(service.clone()))
                .add_service(PointsServer::new(service))
                .serve_with_incoming(incoming)
                .await;
        });
        Self { url: format!("http://{addr}"), state, task }
    }

    /// A copy of collection `name`, if it exists.
    pub(crate) fn collection(&self, name: &str) -> Option<Collection> {
        self.state.lock().expect("state").collections.get(name).cloned()
    }
}

fn unsupported(method: &str) -> Status {
    Status::unimplemented(format!("the test server does not implement {method}"))
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

fn done() -> PointsOperationResponse {
    PointsOperationResponse {
        result: Some(UpdateResult {
            operation_id: Some(0),
            status: UpdateStatus::Completed as i32,
        }),
        ..Default::default()
    }
}

fn dense(vectors: Option<Vectors>) -> Result<Vec<f32>, Status> {
    match vectors.and_then(|v| v.vectors_options) {
        Some(vectors::VectorsOptions::Vector(v)) => match v.vector {
            Some(vector::Vector::Dense(d)) => Ok(d.data),
            None if !v.data.is_empty() => Ok(v.data),
            _ => Err(Status::invalid_argument("only dense vectors are supported")),
        },
        _ => Err(Status::invalid_argument("only one unnamed vector is supported")),
    }
}

fn numeric_id(id: Option<PointId>) -> Result<u64, Status> {
    match id.and_then(|id| id.point_id_options) {
        Some(point_id::PointIdOptions::Num(n)) => Ok(n),
        _ => Err(Status::invalid_argument("the test server stores numeric ids only")),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}

/// Qdrant's keyword match: the payload value is the string, or an array containing it.
fn keyword_matches(value: Option<&Value>, accept: &dyn Fn(&str) -> bool) -> bool {
    match value.and_then(|v| v.kind.as_ref()) {
        Some(value::Kind::StringValue(s)) => accept(s),
        Some(value::Kind::ListValue(list)) => list
            .values
            .iter()
            .any(|v| matches!(&v.kind, Some(value::Kind::StringValue(s)) if accept(s))),
        _ => false,
    }
}

/// Whether `payload` passes `filter` (only `must` keyword conditions are understood).
fn passes(filter: Option<&Filter>, payload: &HashMap<String, Value>) -> Result<bool, Status> {
    let Some(filter) = filter else { return Ok(true) };
    if !filter.should.is_empty() || !filter.must_not.is_empty() || filter.min_should.is_some() {
        return Err(unsupported("should/must_not filters"));
    }
    for condition in &filter.must {
        let Some(condition::ConditionOneOf::Field(field)) = &condition.condition_one_of else {
            return Err(unsupported("non-field conditions"));
        };
        let value = payload.get(&field.key);
        let ok = match field.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
            Some(r#match::MatchValue::Keyword(k)) => keyword_matches(value, &|s| s == k),
            Some(r#match::MatchValue::Keywords(ks)) => {
                keyword_matches(value, &|s| ks.strings.iter().any(|k| k == s))
            }
            _ => return Err(unsupported("match kinds other than keyword(s)")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Service {
    /// Authentication and the configured delay, like a real server's interceptor.
    async fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if let Some(key) = &self.config.api_key {
            let sent = request.metadata().get("api-key").and_then(|v| v.to_str().ok());
            if sent != Some(key.as_str()) {
                return Err(Status::permission_denied("Invalid api-key"));
            }
        }
        if !self.config.delay.is_zero() {
            tokio::time::sleep(self.config.delay).await;
        }
        Ok(())
    }

    fn with<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Collection) -> Result<R, Status>,
    ) -> Result<R, Status> {
        let mut state = self.state.lock().map_err(|_| Status::internal("poisoned"))?;
        let c = state.collections.get_mut(name).ok_or_else(|| not_found(name))?;
        f(c)
    }
}

#[tonic::async_trait]
impl Qdrant for Service {
    async fn health_check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckReply>, Status> {
        self.admit(&request).await?;
        Ok(Response::new(HealthCheckReply {
            title: "fenliu test qdrant".into(),
            version: "1.20.0".into(),
            commit: None,
        }))
    }
}

#[tonic::async_trait]
impl Collections for Service {
    async fn get(
        &self,
        request: Request<GetCollectionInfoRequest>,
    ) -> Result<Response<GetCollectionInfoResponse>, Status> {
        self.admit(&request).await?;
        let name = request.into_inner().collection_name;
        let info = self.with(&name, |c| {
            Ok(CollectionInfo {
                status: CollectionStatus::Green as i32,
                points_count: Some(c.points.len() as u64),
                config: Some(CollectionConfig {
                    params: Some(CollectionParams {
                        shard_number: 1,
                        vectors_config: Some(VectorsConfig {
                            config: Some(vectors_config::Config::Params(VectorParams {
                                size: c.size,
                                distance: c.distance,
                                ..Default::default()
                            })),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })?;
        Ok(Response::new(GetCollectionInfoResponse { result: Some(info), time: 0.0 }))
    }

    async fn create(
        &self,
        request: Request<CreateCollection>,
    ) -> Result<Response<CollectionOperationResponse>, Status> {
        self.admit(&request).await?;
        let request = request.into_inner();
        let name = request.collection_name;
        let params = match request.vectors_config.and_then(|v| v.config) {
            Some(vectors_config::Config::Params(p)) => p,
            _ => return Err(Status::invalid_argument("one unnamed vector expected")),
        };
        if name.is_empty() || params.size == 0 {
            return Err(Status::invalid_argument("Validation error: empty name or size 0"));
        }
        let mut state = self.state.lock().map_err(|_| Status::internal("poisoned"))?;
        if state.collections.contains_key(&name) {
            return Err(Status::already_exists(format!(
                "Wrong input: Collection `{name}` already exists!"
            )));
        }
        state.collections.insert(
            name,
            Collection { size: params.size, distance: params.distance, ..Default::default() },
        );
        Ok(Response::new(CollectionOperationResponse { result: true, time: 0.0 }))
    }

    async fn delete(
        &self,
        request: Request<DeleteCollection>,
    ) -> Result<Response<CollectionOperationResponse>, Status> {
        self.admit(&request).await?;
        let name = request.into_inner().collection_name;
        let mut state = self.state.lock().map_err(|_| Status::internal("poisoned"))?;
        let existed = state.collections.remove(&name).is_some();
        Ok(Response::new(CollectionOperationResponse { result: existed, time: 0.0 }))
    }

    async fn collection_exists(
        &self,
        request: Request<CollectionExistsRequest>,
    ) -> Result<Response<CollectionExistsResponse>, Status> {
        self.admit(&request).await?;
        let name = request.into_inner().collection_name;
        let exists = self
            .state
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .collections
            .contains_key(&name);
        Ok(Response::new(CollectionExistsResponse {
            result: Some(CollectionExists { exists }),
            time: 0.0,
        }))
    }

    async fn list(
        &self,
        _: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        Err(unsupported("list"))
    }
    async fn update(
        &self,
        _: Request<UpdateCollection>,
    ) -> Result<Response<CollectionOperationResponse>, Status> {
        Err(unsupported("update"))
    }
    async fn update_aliases(
        &self,
        _: Request<ChangeAliases>,
    ) -> Result<Response<CollectionOperationResponse>, Status> {
        Err(unsupported("update_aliases"))
    }
    async fn list_collection_aliases(
        &self,
        _: Request<ListCollectionAliasesRequest>,
    ) -> Result<Response<ListAliasesResponse>, Status> {
        Err(unsupported("list_collection_aliases"))
    }
    async fn list_aliases(
        &self,
        _: Request<ListAliasesRequest>,
    ) -> Result<Response<ListAliasesResponse>, Status> {
        Err(unsupported("list_aliases"))
    }
    async fn collection_cluster_info(
        &self,
        _: Request<CollectionClusterInfoRequest>,
    ) -> Result<Response<CollectionClusterInfoResponse>, Status> {
        Err(unsupported("collection_cluster_info"))
    }
    async fn update_collection_cluster_setup(
        &self,
        _: Request<UpdateCollectionClusterSetupRequest>,
    ) -> Result<Response<UpdateCollectionClusterSetupResponse>, Status> {
        Err(unsupported("update_collection_cluster_setup"))
    }
    async fn create_shard_key(
        &self,
        _: Request<CreateShardKeyRequest>,
    ) -> Result<Response<CreateShardKeyResponse>, Status> {
        Err(unsupported("create_shard_key"))
    }
    async fn delete_shard_key(
        &self,
        _: Request<DeleteShardKeyRequest>,
    ) -> Result<Response<DeleteShardKeyResponse>, Status> {
        Err(unsupported("delete_shard_key"))
    }
    async fn list_shard_keys(
        &self,
        _: Request<ListShardKeysRequest>,
    ) -> Result<Response<ListShardKeysResponse>, Status> {
        Err(unsupported("list_shard_keys"))
    }
}

#[tonic::async_trait]
impl Points for Service {
    async fn upsert(
        &self,
        request: Request<UpsertPoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        self.admit(&request).await?;
        let request = request.into_inner();
        if let Ok(mut state) = self.state.lock() {
            state.upsert_requests += 1;
        }
        self.with(&request.collection_name, |c| {
            // Validate the whole batch first: Qdrant rejects it without applying any point.
            let mut batch = Vec::with_capacity(request.points.len());
            for p in request.points {
                let id = numeric_id(p.id)?;
                let v = dense(p.vectors)?;
                if v.len() as u64 != c.size {
                    return Err(Status::invalid_argument(format!(
                        "Wrong input: Vector dimension error: expected dim: {}, got {}",
                        c.size,
                        v.len()
                    )));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(Status::invalid_argument("Wrong input: non-finite vector"));
                }
                batch.push((id, v, p.payload));
            }
            for (id, v, payload) in batch {
                c.points.insert(id, (v, payload));
            }
            Ok(())
        })?;
        Ok(Response::new(done()))
    }

    async fn delete(
        &self,
        request: Request<DeletePoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        self.admit(&request).await?;
        let request = request.into_inner();
        let ids = match request.points.and_then(|p| p.points_selector_one_of) {
            Some(points_selector::PointsSelectorOneOf::Points(list)) => list
                .ids
                .into_iter()
                .map(|id| numeric_id(Some(id)))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(unsupported("delete by filter")),
        };
        self.with(&request.collection_name, |c| {
            for id in ids {
                c.points.remove(&id);
            }
            Ok(())
        })?;
        Ok(Response::new(done()))
    }

    async fn create_field_index(
        &self,
        request: Request<CreateFieldIndexCollection>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        self.admit(&request).await?;
        let request = request.into_inner();
        let field_type =
            request.field_type.ok_or_else(|| Status::invalid_argument("field type required"))?;
        self.with(&request.collection_name, |c| {
            c.indexes.insert(request.field_name, field_type);
            Ok(())
        })?;
        Ok(Response::new(done()))
    }

    async fn query(
        &self,
        request: Request<QueryPoints>,
    ) -> Result<Response<QueryResponse>, Status> {
        self.admit(&request).await?;
        let request = request.into_inner();
        if !request.prefetch.is_empty() || request.using.is_some() || request.offset.is_some() {
            return Err(unsupported("prefetch, named vectors or offsets"));
        }
        let vector = match request.query.and_then(|q| q.variant) {
            Some(query::Variant::Nearest(VectorInput {
                variant: Some(vector_input::Variant::Dense(d)),
            })) => d.data,
            _ => return Err(unsupported("queries other than nearest to a dense vector")),
        };
        let limit = usize::try_from(request.limit.unwrap_or(10)).unwrap_or(usize::MAX);
        let with_payload = matches!(
            request.with_payload.and_then(|w| w.selector_options),
            Some(with_payload_selector::SelectorOptions::Enable(true))
        );
        let filter = request.filter;
        let threshold = request.score_threshold;
        let hits = self.with(&request.collection_name, |c| {
            if vector.len() as u64 != c.size {
                return Err(Status::invalid_argument(format!(
                    "Wrong input: Vector dimension error: expected dim: {}, got {}",
                    c.size,
                    vector.len()
                )));
            }
            let mut hits = Vec::new();
            for (id, (v, payload)) in &c.points {
                if !passes(filter.as_ref(), payload)? {
                    continue;
                }
                let score = cosine(&vector, v);
                if threshold.is_some_and(|t| score < t) {
                    continue;
                }
                hits.push(ScoredPoint {
                    id: Some(PointId {
                        point_id_options: Some(point_id::PointIdOptions::Num(*id)),
                    }),
                    payload: if with_payload { payload.clone() } else { HashMap::new() },
                    score,
                    ..Default::default()
                });
            }
            hits.sort_by(|a, b| b.score.total_cmp(&a.score));
            hits.truncate(limit);
            Ok(hits)
        })?;
        Ok(Response::new(QueryResponse { result: hits, ..Default::default() }))
    }

    async fn count(
        &self,
        request: Request<CountPoints>,
    ) -> Result<Response<CountResponse>, Status> {
        self.admit(&request).await?;
        let request = request.into_inner();
        let filter = request.filter;
        let count = self.with(&request.collection_name, |c| {
            let mut n = 0u64;
            for (_, payload) in c.points.values() {
                if passes(filter.as_ref(), payload)? {
                    n += 1;
                }
            }
            Ok(n)
        })?;
        Ok(Response::new(CountResponse {
            result: Some(CountResult { count }),
            ..Default::default()
        }))
    }

    async fn update_vectors(
        &self,
        _: Request<UpdatePointVectors>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("update_vectors"))
    }
    async fn delete_vectors(
        &self,
        _: Request<DeletePointVectors>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("delete_vectors"))
    }
    async fn set_payload(
        &self,
        _: Request<SetPayloadPoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("set_payload"))
    }
    async fn overwrite_payload(
        &self,
        _: Request<SetPayloadPoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("overwrite_payload"))
    }
    async fn delete_payload(
        &self,
        _: Request<DeletePayloadPoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("delete_payload"))
    }
    async fn clear_payload(
        &self,
        _: Request<ClearPayloadPoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("clear_payload"))
    }
    async fn delete_field_index(
        &self,
        _: Request<DeleteFieldIndexCollection>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("delete_field_index"))
    }
    async fn create_vector_name(
        &self,
        _: Request<CreateVectorNameRequest>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("create_vector_name"))
    }
    async fn delete_vector_name(
        &self,
        _: Request<DeleteVectorNameRequest>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        Err(unsupported("delete_vector_name"))
    }
    async fn search_batch(
        &self,
        _: Request<SearchBatchPoints>,
    ) -> Result<Response<SearchBatchResponse>, Status> {
        Err(unsupported("search_batch"))
    }
    async fn search_groups(
        &self,
        _: Request<SearchPointGroups>,
    ) -> Result<Response<SearchGroupsResponse>, Status> {
        Err(unsupported("search_groups"))
    }
    async fn recommend(
        &self,
        _: Request<RecommendPoints>,
    ) -> Result<Response<RecommendResponse>, Status> {
        Err(unsupported("recommend"))
    }
    async fn recommend_batch(
        &self,
        _: Request<RecommendBatchPoints>,
    ) -> Result<Response<RecommendBatchResponse>, Status> {
        Err(unsupported("recommend_batch"))
    }
    async fn recommend_groups(
        &self,
        _: Request<RecommendPointGroups>,
    ) -> Result<Response<RecommendGroupsResponse>, Status> {
        Err(unsupported("recommend_groups"))
    }
    async fn discover(
        &self,
        _: Request<DiscoverPoints>,
    ) -> Result<Response<DiscoverResponse>, Status> {
        Err(unsupported("discover"))
    }
    async fn discover_batch(
        &self,
        _: Request<DiscoverBatchPoints>,
    ) -> Result<Response<DiscoverBatchResponse>, Status> {
        Err(unsupported("discover_batch"))
    }
    async fn update_batch(
        &self,
        _: Request<UpdateBatchPoints>,
    ) -> Result<Response<UpdateBatchResponse>, Status> {
        Err(unsupported("update_batch"))
    }
    async fn query_batch(
        &self,
        _: Request<QueryBatchPoints>,
    ) -> Result<Response<QueryBatchResponse>, Status> {
        Err(unsupported("query_batch"))
    }
    async fn query_groups(
        &self,
        _: Request<QueryPointGroups>,
    ) -> Result<Response<QueryGroupsResponse>, Status> {
        Err(unsupported("query_groups"))
    }
    async fn search_matrix_pairs(
        &self,
        _: Request<SearchMatrixPoints>,
    ) -> Result<Response<SearchMatrixPairsResponse>, Status> {
        Err(unsupported("search_matrix_pairs"))
    }
    async fn search_matrix_offsets(
        &self,
        _: Request<SearchMatrixPoints>,
    ) -> Result<Response<SearchMatrixOffsetsResponse>, Status> {
        Err(unsupported("search_matrix_offsets"))
    }
    async fn get(&self, _: Request<GetPoints>) -> Result<Response<GetResponse>, Status> {
        Err(unsupported("get"))
    }
    async fn search(&self, _: Request<SearchPoints>) -> Result<Response<SearchResponse>, Status> {
        Err(unsupported("search"))
    }
    async fn scroll(&self, _: Request<ScrollPoints>) -> Result<Response<ScrollResponse>, Status> {
        Err(unsupported("scroll"))
    }
    async fn facet(&self, _: Request<FacetCounts>) -> Result<Response<FacetResponse>, Status> {
        Err(unsupported("facet"))
    }
}
