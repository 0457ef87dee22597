//! [`OpenAiEmbedder`]: an [`Embedder`] over `/embeddings`.

use std::fmt;
use std::sync::Arc;

use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput, EncodingFormat};
use fenliu_agent::ModelError;
use fenliu_knowledge::{Embedder, KnowledgeError, l2_normalize};
use tokio::time::Instant;

use super::{Client, OpenAiConfig, Resilience, build_client, map_error};
use crate::ModelLoadError;

/// How [`OpenAiEmbedder`] batches and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiEmbedderOptions {
    /// Dimension of the model's vectors (e.g. 1536 for `text-embedding-3-small`); every answer is
    /// checked against it.
    pub dimensions: usize,
    /// Texts per request. OpenAI accepts up to 2048 inputs and 300,000 tokens per request; 64
    /// keeps requests small enough to retry cheaply.
    pub batch_size: usize,
    /// Send `dimensions` in the request, asking the model to shorten its vectors (only
    /// `text-embedding-3` and later support it; other servers reject the field).
    pub request_dimensions: bool,
    /// Texts longer than this many characters are cut before sending: embedding models take at
    /// most 8192 tokens and reject longer inputs instead of truncating them.
    pub max_chars: usize,
}

impl OpenAiEmbedderOptions {
    /// Options for a model of this dimension, with default batching.
    pub fn new(dimensions: usize) -> Self {
        Self { dimensions, batch_size: 64, request_dimensions: false, max_chars: 8_000 }
    }
}

/// Embeddings from any OpenAI-compatible `/embeddings` endpoint (OpenAI, vLLM, Ollama, a fenliu
/// instance), L2-normalised.
///
/// Empty (or blank) texts are not sent, since OpenAI rejects empty inputs: they embed to the zero
/// vector. Requests are retried and time-limited as configured in [`OpenAiConfig`].
#[derive(Clone)]
pub struct OpenAiEmbedder {
    client: Client,
    config: Arc<OpenAiConfig>,
    options: OpenAiEmbedderOptions,
    model_id: String,
    resilience: Resilience,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("model_id", &self.model_id)
            .field("options", &self.options)
            .field("config", &self.config)
            .finish()
    }
}

impl OpenAiEmbedder {
    /// An embedder from its configuration; nothing is sent until the first call.
    pub fn new(
        config: OpenAiConfig,
        options: OpenAiEmbedderOptions,
    ) -> Result<Self, ModelLoadError> {
        if options.dimensions == 0 || options.batch_size == 0 || options.max_chars == 0 {
            return Err(ModelLoadError::Config(
                "embedder dimensions, batch_size and max_chars must be positive".into(),
            ));
        }
        if options.request_dimensions && u32::try_from(options.dimensions).is_err() {
            return Err(ModelLoadError::Config("embedder dimensions too large".into()));
        }
        let client = build_client(&config)?;
        Ok(Self {
            client,
            model_id: config.model_id(),
            resilience: Resilience::new(&config),
            config: Arc::new(config),
            options,
        })
    }

    async fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ModelError> {
        let expected = texts.len();
        let request = CreateEmbeddingRequest {
            model: self.config.model.clone(),
            input: EmbeddingInput::StringArray(texts),
            encoding_format: Some(EncodingFormat::Float),
            user: None,
            dimensions: if self.options.request_dimensions {
                u32::try_from(self.options.dimensions).ok()
            } else {
                None
            },
        };
        let deadline = Instant::now() + self.config.timeout;
        let key = &self.config.api_key;
        let answer = self
            .resilience
            .run(deadline, || async {
                self.client
                    .embeddings()
                    .create(request.clone())
                    .await
                    .map_err(|e| map_error(e, key))
            })
            .await?;
        if answer.data.len() != expected {
            return Err(ModelError::InvalidResponse(format!(
                "{} embeddings for {expected} inputs",
                answer.data.len()
            )));
        }
        // Answers carry their input's index; do not rely on their order.
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in answer.data {
            let index = usize::try_from(item.index).unwrap_or(usize::MAX);
            let Some(slot) = slots.get_mut(index).filter(|s| s.is_none()) else {
                return Err(ModelError::InvalidResponse(format!(
                    "embedding index {} is out of range or repeated",
                    item.index
                )));
            };
            let mut vector = item.embedding;
            if vector.len() != self.options.dimensions {
                return Err(ModelError::InvalidResponse(format!(
                    "the model returned {} dimensions, {} configured",
                    vector.len(),
                    self.options.dimensions
                )));
            }
            if !vector.iter().all(|x| x.is_finite()) {
                return Err(ModelError::InvalidResponse("embedding has non-finite values".into()));
            }
            l2_normalize(&mut vector);
            *slot = Some(vector);
        }
        Ok(slots.into_iter().flatten().collect())
    }
}

fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.options.dimensions
    }

    #[tracing::instrument(name = "openai.embed", skip_all, fields(model = %self.model_id, texts = texts.len()))]
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        let mut out = vec![vec![0.0; self.options.dimensions]; texts.len()];
        let to_send: Vec<(usize, String)> = texts
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.trim().is_empty())
            .map(|(i, t)| (i, cut(t, self.options.max_chars)))
            .collect();
        for batch in to_send.chunks(self.options.batch_size) {
            let vectors = self
                .embed_batch(batch.iter().map(|(_, t)| t.clone()).collect())
                .await
                .map_err(|e| KnowledgeError::Embedding { reason: e.to_string() })?;
            for ((index, _), vector) in batch.iter().zip(vectors) {
                out[*index] = vector;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("订单到了吗", 2), "订单");
        assert_eq!(cut("abc", 10), "abc");
    }

    #[test]
    fn zero_sizes_are_rejected() {
        let config = OpenAiConfig::new("http://localhost/v1", "m");
        let mut options = OpenAiEmbedderOptions::new(0);
        assert!(OpenAiEmbedder::new(config.clone(), options.clone()).is_err());
        options.dimensions = 8;
        options.batch_size = 0;
        assert!(OpenAiEmbedder::new(config, options).is_err());
    }
}
