//! Model plumbing for evals: counting calls and tokens per turn ([`Metered`]), recording and
//! replaying model answers so reruns cost nothing ([`ReplayCache`], [`Replay`]), and caching
//! embeddings across conversations ([`CachedEmbedder`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fenliu_agent::{ChatModel, ChatRequest, ChatResponse, DynChatModel, ModelError};
use fenliu_knowledge::{DynEmbedder, KnowledgeError};
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Model calls and tokens, shared by every model of one conversation.
#[derive(Debug, Default)]
pub struct Meter {
    calls: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

/// A reading of a [`Meter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterReading {
    /// Model calls.
    pub calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

impl MeterReading {
    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: MeterReading) -> MeterReading {
        MeterReading {
            calls: self.calls.saturating_sub(earlier.calls),
            prompt_tokens: self.prompt_tokens.saturating_sub(earlier.prompt_tokens),
            completion_tokens: self.completion_tokens.saturating_sub(earlier.completion_tokens),
        }
    }
}

impl Meter {
    /// The counts so far.
    pub fn read(&self) -> MeterReading {
        MeterReading {
            calls: self.calls.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
        }
    }
}

/// A chat model that counts its calls and tokens on a [`Meter`].
pub struct Metered {
    inner: Arc<dyn DynChatModel>,
    meter: Arc<Meter>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn DynChatModel>, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl ChatModel for Metered {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        self.meter.calls.fetch_add(1, Ordering::Relaxed);
        let response = self.inner.chat(request).await?;
        self.meter
            .prompt_tokens
            .fetch_add(u64::from(response.usage.prompt_tokens), Ordering::Relaxed);
        self.meter
            .completion_tokens
            .fetch_add(u64::from(response.usage.completion_tokens), Ordering::Relaxed);
        Ok(response)
    }
}

/// One recorded answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    key: String,
    response: ChatResponse,
}

/// Recorded model answers keyed by the model id and the whole request (messages, tools, format,
/// sampling settings, seed), kept in a JSONL file. Reruns of an eval answer from the cache and
/// cost nothing; a replay-only run fails a turn on a miss instead of calling a model.
#[derive(Debug)]
pub struct ReplayCache {
    path: PathBuf,
    answers: Mutex<HashMap<String, ChatResponse>>,
    added: Mutex<Vec<Recorded>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ReplayCache {
    /// Opens (or starts) the cache at `path`. Damaged lines are skipped with a warning.
    pub fn open(path: &Path) -> Result<Self, EvalError> {
        let mut answers = HashMap::new();
        match std::fs::read(path) {
            Ok(bytes) => {
                for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<Recorded>(line) {
                        Ok(r) => {
                            answers.insert(r.key, r.response);
                        }
                        Err(e) => tracing::warn!(
                            path = %path.display(),
                            line = i + 1,
                            error = %e,
                            "skipping a damaged replay-cache line"
                        ),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EvalError::io(path, e)),
        }
        Ok(Self {
            path: path.to_owned(),
            answers: Mutex::new(answers),
            added: Mutex::new(Vec::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// The cache key of a request: a hash of the whole request. The model's id is not part
    /// of it, so a replay-only run needs no model configured; keep one cache file per model.
    pub fn key(request: &ChatRequest) -> String {
        let body = serde_json::to_string(request).unwrap_or_default();
        format!("{:016x}", fnv1a(body.as_bytes()))
    }

    fn get(&self, key: &str) -> Option<ChatResponse> {
        let found = self.answers.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        match found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    fn put(&self, key: String, response: ChatResponse) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), response.clone());
        self.added.lock().unwrap_or_else(|e| e.into_inner()).push(Recorded { key, response });
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Appends the answers recorded in this run to the file.
    pub fn save(&self) -> Result<usize, EvalError> {
        use std::io::Write as _;
        let added = std::mem::take(&mut *self.added.lock().unwrap_or_else(|e| e.into_inner()));
        if added.is_empty() {
            return Ok(0);
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| EvalError::io(&self.path, e))?;
        for r in &added {
            let line = serde_json::to_string(r).map_err(|e| EvalError::Report(e.to_string()))?;
            writeln!(file, "{line}").map_err(|e| EvalError::io(&self.path, e))?;
        }
        Ok(added.len())
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A chat model answering from a [`ReplayCache`]: hits are returned as recorded; misses go to
/// the live model and are recorded, or fail when there is none (replay-only).
pub struct Replay {
    id: String,
    live: Option<Arc<dyn DynChatModel>>,
    cache: Arc<ReplayCache>,
}

impl Replay {
    /// Replays `model_id`'s answers; `live` answers (and records) misses.
    pub fn new(
        model_id: impl Into<String>,
        live: Option<Arc<dyn DynChatModel>>,
        cache: Arc<ReplayCache>,
    ) -> Self {
        Self { id: model_id.into(), live, cache }
    }
}

impl ChatModel for Replay {
    fn model_id(&self) -> &str {
        &self.id
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        let key = ReplayCache::key(&request);
        if let Some(found) = self.cache.get(&key) {
            return Ok(found);
        }
        let Some(live) = &self.live else {
            return Err(ModelError::Unavailable(format!(
                "no recorded answer for this request in the replay cache {} (record it by \
                 running the eval once with a model)",
                self.cache.path.display()
            )));
        };
        let response = live.chat(request).await?;
        self.cache.put(key, response.clone());
        Ok(response)
    }
}

/// An embedder that remembers every text it embedded, shared across conversations: routing the
/// same phrases again (the k-NN stage, repeated messages) costs nothing.
pub struct CachedEmbedder {
    inner: Arc<dyn DynEmbedder>,
    cache: Mutex<HashMap<String, Vec<f32>>>,
}

impl CachedEmbedder {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn DynEmbedder>) -> Self {
        Self { inner, cache: Mutex::new(HashMap::new()) }
    }
}

impl fenliu_knowledge::Embedder for CachedEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        let missing: Vec<String> = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let mut m: Vec<String> =
                texts.iter().filter(|t| !cache.contains_key(*t)).cloned().collect();
            m.sort();
            m.dedup();
            m
        };
        if !missing.is_empty() {
            let vectors = self.inner.embed(&missing).await?;
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.extend(missing.into_iter().zip(vectors));
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        texts
            .iter()
            .map(|t| {
                cache.get(t).cloned().ok_or_else(|| KnowledgeError::Embedding {
                    reason: "the embedder returned too few vectors".into(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fenliu_agent::test_utils::ScriptedChatModel;

    #[tokio::test]
    async fn replay_records_then_answers_without_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let live: Arc<dyn DynChatModel> =
            Arc::new(ScriptedChatModel::new([ScriptedChatModel::text("first answer")]));
        let cache = Arc::new(ReplayCache::open(&path).unwrap());
        let model = Replay::new("m", Some(live), cache.clone());
        let request = ChatRequest::new(vec![fenliu_agent::ChatMessage::user("hi")]);
        let a = ChatModel::chat(&model, request.clone()).await.unwrap();
        assert_eq!(cache.save().unwrap(), 1);

        // A replay-only model on the saved file answers the same without any live model.
        std::fs::write(&path, format!("{}garbage\n", std::fs::read_to_string(&path).unwrap()))
            .unwrap();
        let cache = Arc::new(ReplayCache::open(&path).unwrap());
        let replay = Replay::new("m", None, cache.clone());
        let b = ChatModel::chat(&replay, request).await.unwrap();
        assert_eq!(a, b);
        let other = ChatRequest::new(vec![fenliu_agent::ChatMessage::user("other")]);
        let miss = ChatModel::chat(&replay, other).await.unwrap_err();
        assert!(miss.to_string().contains("replay cache"), "{miss}");
        assert_eq!(cache.stats(), (1, 1));

        let meter = Arc::new(Meter::default());
        let metered = Metered::new(Arc::new(replay), meter.clone());
        let request = ChatRequest::new(vec![fenliu_agent::ChatMessage::user("hi")]);
        ChatModel::chat(&metered, request).await.unwrap();
        assert_eq!(meter.read().calls, 1);
        assert_eq!(meter.read().since(MeterReading::default()).calls, 1);
    }
}
