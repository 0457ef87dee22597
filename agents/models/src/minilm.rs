//! `all-MiniLM-L6-v2` on candle.
//!
//! # Costs
//! Sentences/s from `fenliu bench models` (release, medians of 5, the same 256 texts), in two
//! rounds interleaved with sentence-transformers (PyTorch CPU, `scripts/bench_reference.py`) on
//! the 2-core machine:
//!
//! | threads | batch | fenliu | sentence-transformers | ratio |
//! |---|---|---|---|---|
//! | 1 | 1 | 150 / 138 | 129 / 140 | 1.16× / 0.99× |
//! | 1 | 32 | 239 / 233 | 222 / 234 | 1.08× / 1.00× |
//! | 2 | 1 | 300 / 270 | 138 / 164 | 2.18× / 1.64× |
//! | 2 | 32 | 469 / 470 | 378 / 404 | 1.24× / 1.16× |
//!
//! Two choices make these: linear weights are stored column-major, so the transposed weight
//! each product needs is a contiguous matrix the gemm crate reads in place instead of re-packing
//! it (half the time at batch 1 before); and with two threads, batches run side by side rather
//! than splitting one small batch's products across threads.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use fenliu_knowledge::{Embedder, KnowledgeError, l2_normalize};
use rayon::prelude::*;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use crate::ModelLoadError;

/// How the embedder runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniLmOptions {
    /// Longest input in tokens; longer texts are truncated. The model was trained with 256.
    pub max_tokens: usize,
    /// Texts per forward pass. Larger batches amortise overhead (≈2.5× throughput at 32 vs 1).
    pub batch_size: usize,
    /// Compute threads: `0` uses rayon's global pool (every core); `n` runs the model on a
    /// dedicated pool of `n` threads, so that embedding cannot take every core from the server.
    /// Batches run side by side, one per thread.
    pub threads: usize,
}

impl Default for MiniLmOptions {
    fn default() -> Self {
        Self { max_tokens: 256, batch_size: 32, threads: 0 }
    }
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    options: MiniLmOptions,
    /// The dedicated pool when `options.threads > 0`.
    pool: Option<rayon::ThreadPool>,
    /// The token id padding positions carry (masked out of attention and pooling).
    pad_id: u32,
}

/// The `all-MiniLM-L6-v2` sentence embedder: 384-dimensional, unit-length vectors.
///
/// Cheap to clone (the weights are shared). Embedding runs on tokio's blocking pool so that it never
/// stalls the async runtime.
#[derive(Clone)]
pub struct MiniLmEmbedder {
    inner: Arc<Inner>,
    model_id: String,
    dimensions: usize,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("model_id", &self.model_id)
            .field("dimensions", &self.dimensions)
            .field("options", &self.inner.options)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ModelLoadError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelLoadError::Missing { path: path.to_owned() },
        _ => ModelLoadError::Invalid { path: path.to_owned(), reason: e.to_string() },
    })
}

fn invalid(path: &Path, reason: impl ToString) -> ModelLoadError {
    ModelLoadError::Invalid { path: path.to_owned(), reason: reason.to_string() }
}

impl MiniLmEmbedder {
    /// Directory name of the model under `models/`, as `scripts/setup.sh` lays it out.
    pub const DIR_NAME: &'static str = "all-minilm-l6-v2";

    /// The model's identity, stored with anything trained on its vectors (router heads, indexes).
    pub const MODEL_ID: &'static str = "sentence-transformers/all-MiniLM-L6-v2";

    /// Loads the model from a directory holding `config.json`, `tokenizer.json` and
    /// `model.safetensors` (the layout `scripts/setup.sh` produces).
    pub fn load(dir: &Path, options: MiniLmOptions) -> Result<Self, ModelLoadError> {
        let config_path = dir.join("config.json");
        let config: Config =
            serde_json::from_slice(&read(&config_path)?).map_err(|e| invalid(&config_path, e))?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_bytes(read(&tokenizer_path)?)
            .map_err(|e| invalid(&tokenizer_path, e))?;
        // The shipped tokenizer pads every input to 128 tokens. We pad ourselves, batch by batch,
        // to the longest text of each batch (texts sorted by length): several times faster for
        // chat-length messages.
        let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);
        tokenizer.with_padding(None);
        let max_tokens = options.max_tokens.clamp(8, config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| invalid(&tokenizer_path, e))?;

        let weights_path = dir.join("model.safetensors");
        let device = Device::Cpu;
        let mut tensors = candle_core::safetensors::load_buffer(&read(&weights_path)?, &device)
            .map_err(|e| invalid(&weights_path, e))?;
        // Linear layers multiply by the transposed weight. Stored column-major, that transpose is
        // a contiguous matrix the gemm crate reads in place; row-major, it re-packs the whole
        // matrix on every product, which was half the time at batch 1.
        for (name, tensor) in tensors.iter_mut() {
            if tensor.rank() == 2 && name.ends_with(".weight") && !name.contains("embeddings") {
                *tensor = tensor
                    .t()
                    .and_then(|t| t.contiguous())
                    .and_then(|t| t.t())
                    .map_err(|e| invalid(&weights_path, e))?;
            }
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).map_err(|e| invalid(&weights_path, e))?;

        let dimensions = config.hidden_size;
        let pool = match options.threads {
            0 => None,
            threads => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("minilm-{i}"))
                    .build()
                    .map_err(|e| ModelLoadError::Config(format!("minilm thread pool: {e}")))?,
            ),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                device,
                options: MiniLmOptions {
                    max_tokens,
                    batch_size: options.batch_size.max(1),
                    threads: options.threads,
                },
                pool,
                pad_id,
            }),
            model_id: MiniLmEmbedder::MODEL_ID.to_owned(),
            dimensions,
        })
    }

    /// Embeds texts on the calling thread. Prefer the async [`Embedder::embed`] inside a runtime.
    ///
    /// Texts are tokenized once, then batched in order of length (as sentence-transformers does)
    /// so that short texts are not padded to the length of a long neighbour; the vectors come
    /// back in the order of `texts`.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelLoadError> {
        let run = || {
            let encodings = self
                .inner
                .tokenizer
                .encode_batch(texts.to_vec(), true)
                .map_err(|e| ModelLoadError::Inference(format!("tokenizing: {e}")))?;
            let mut order: Vec<usize> = (0..encodings.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
            // Batches run side by side, one per thread: for a model this small, splitting one
            // batch's matrix products across threads keeps them waiting on each other.
            let batches: Vec<&[usize]> = order.chunks(self.inner.options.batch_size).collect();
            let vectors = batches
                .par_iter()
                .map(|batch| {
                    let batch_encodings: Vec<&Encoding> =
                        batch.iter().map(|&i| &encodings[i]).collect();
                    self.inner.embed_batch(&batch_encodings)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = vec![Vec::new(); encodings.len()];
            for (batch, vectors) in batches.iter().zip(vectors) {
                for (&i, vector) in batch.iter().zip(vectors) {
                    out[i] = vector;
                }
            }
            Ok(out)
        };
        match &self.inner.pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }
}

impl Inner {
    /// One forward pass over already tokenized texts, padded here to the longest of them.
    fn embed_batch(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, ModelLoadError> {
        if encodings.is_empty() {
            return Ok(Vec::new());
        }
        let rows = encodings.len();
        let cols = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let mut ids = vec![self.pad_id; rows * cols];
        let mut mask = vec![0u32; rows * cols];
        for (r, e) in encodings.iter().enumerate() {
            let n = e.get_ids().len();
            ids[r * cols..r * cols + n].copy_from_slice(e.get_ids());
            mask[r * cols..r * cols + n].copy_from_slice(e.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (rows, cols), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, cols), &self.device)?;
        let type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;

        // Mean pooling over real tokens only (padding masked out), as sentence-transformers does.
        let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?;
        let counts = mask_f.sum(1)?.clamp(1e-9, f64::MAX)?;
        let pooled = summed.broadcast_div(&counts)?;
        let mut vectors: Vec<Vec<f32>> = pooled.to_vec2()?;
        vectors.iter_mut().for_each(|v| l2_normalize(v));
        Ok(vectors)
    }
}

impl Embedder for MiniLmEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        let this = self.clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || this.embed_blocking(&texts))
            .await
            .map_err(|e| KnowledgeError::Embedding {
                reason: format!("embedding task failed: {e}"),
            })?
            .map_err(|e| KnowledgeError::Embedding { reason: e.to_string() })
    }
}
