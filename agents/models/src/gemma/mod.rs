//! A local [`ChatModel`]: Gemma 3 270M (Q4_K_M GGUF) on candle, CPU only, nothing downloaded.
//!
//! # Layout
//! - `tokenizer`: the SentencePiece tokenizer rebuilt from the GGUF metadata.
//! - `model`: the transformer (Q8_0 weights, shared rotary tables, bounded context, KV cache).
//! - `sampling`: greedy / temperature + top-p with a seeded generator.
//! - this file: [`LocalGemma`], the chat template, generation with stop sequences, streaming on a
//!   blocking thread, usage accounting.
//!
//! # What the model can and cannot do
//! The file is the *pre-trained* 270M model (`google/gemma-3-270m`), not the instruction-tuned
//! one. It continues text; it never learned the chat template's turn markers. Inside the Gemma
//! template (the default, [`PromptFormat::GemmaChat`], right for an instruction-tuned file) it
//! tends to echo the user's message and drift into stray tokens from other languages after a
//! few words; few-shot examples given as earlier turns make it copy the answer pattern (the first
//! word is usually a valid label, often not the right one). [`PromptFormat::Transcript`]
//! (`User: …` / `Assistant:`) suits the base model better: "What is the capital of France?" gets
//! "The capital of France is Paris." there and an echo in the chat template. Either way:
//! - **Can**: continue text, short rephrasing and extraction that a template or person checks,
//!   produce one of a few spelled-out labels (accuracy is low: benchmark it on your data before
//!   routing on it), serve as an offline last resort that keeps the service answering.
//!   English is much stronger than Chinese.
//! - **Cannot**: follow instructions reliably, reason over several steps, call tools (requests
//!   that *require* a tool call are rejected with [`ModelError::InvalidRequest`]; tools offered
//!   with `ToolChoice::Auto` are ignored), know anything about our shop, write long answers
//!   without repeating itself.
//! - **Structured output** ([`ResponseFormat::JsonSchema`]) is best effort, not enforced: the
//!   schema is put in the prompt, the answer is started for the model (`{"<first required
//!   property>": ` and a quote when that property is a string), generation stops as soon as the
//!   first JSON object closes, and only a parseable object carrying the schema's required
//!   top-level properties is returned — anything else is [`ModelError::InvalidResponse`]. Types,
//!   enums and nested constraints are not validated; callers parse into their own types.
//!
//! # Costs
//! Measured on the 2-core machine (release build, medians of 5, 128-token prompt, 64 greedy
//! tokens), interleaved with llama.cpp (llama-cpp-python 0.3.36 built for this CPU with AVX-512,
//! `scripts/bench_reference.py`) on the same file and thread count:
//!
//! | threads | fenliu decode | llama.cpp decode | ratio | fenliu prompt | llama.cpp prompt |
//! |---|---|---|---|---|---|
//! | 1 | 93 tokens/s | 78 tokens/s | 1.20× | 349 tokens/s | 1,035 tokens/s |
//! | 2 | 100 tokens/s | 85 tokens/s | 1.16× | 509 tokens/s | 1,061 tokens/s |
//!
//! Load takes ~1.2 s (weights converted to Q8_0 in memory, tokenizer built from the metadata):
//! 271 MB of weights, ~0.3 GB resident. Decoding reads every weight once per token (the tied
//! 262,144-row output projection alone is 178 MB), so it is bound by memory bandwidth: the `q8`
//! kernel streams four rows at a time with a software prefetch. Prompt processing is a third of
//! llama.cpp's, which multiplies the file's smaller quantised rows with AVX-512 VNNI and repacked
//! weights; prompts here are short. The KV cache holds 18 layers × 2 × 256 floats per position
//! (~37 KB) and grows by doubling.
//!
//! Generation runs on a rayon pool of [`LocalGemmaOptions::threads`] threads — 1 by default
//! because with another busy process on the machine two compute threads collapse to a few tokens
//! per second. Requests are served one at a time. candle's own element-wise kernels use its
//! process-wide pool unless `CANDLE_NUM_THREADS=1`, which the `fenliu` binary sets (see
//! [`crate::default_compute_threads`]).

mod embed;
mod model;
mod q8;
mod sampling;
mod tokenizer;

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use fenliu_agent::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, ChatRole, ChatStream, FinishReason,
    ModelError, ResponseFormat, StreamEvent, ToolChoice, Usage,
};
use futures::Stream;

pub use embed::GemmaEmbedder;

use crate::ModelLoadError;
use model::{Gemma3, KvCache};
use sampling::Sampler;
use tokenizer::GemmaTokenizer;

/// How the local model runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalGemmaOptions {
    /// Compute threads (a dedicated rayon pool). 1 is the safe default on a shared machine; 2
    /// roughly doubles decode speed on an idle 2-core machine.
    pub threads: usize,
    /// Bounded context in tokens (prompt + answer). The model was trained for 32,768 but memory
    /// and prompt time grow with it; longer prompts are rejected with
    /// [`ModelError::InvalidRequest`].
    pub context_tokens: usize,
    /// Answer length when the request sets no `max_tokens`.
    pub default_max_tokens: u32,
    /// Temperature when the request sets none. 0 (greedy) keeps answers reproducible.
    pub default_temperature: f32,
    /// Nucleus mass when the request sets none.
    pub default_top_p: f32,
    /// How messages become the prompt.
    pub prompt_format: PromptFormat,
}

/// How a chat request is laid out for the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PromptFormat {
    /// Gemma 3's chat template: `<start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n`,
    /// system text folded into the first user turn. What instruction-tuned Gemma files expect.
    #[default]
    GemmaChat,
    /// A plain transcript (`User: …` / `Assistant: …`, system text on top) that a *pre-trained*
    /// model continues more naturally: the 270M base model never learned the turn markers and
    /// tends to echo the user or drift into stray tokens after them. Generation also stops at the
    /// next `\nUser:`.
    Transcript,
}

impl Default for LocalGemmaOptions {
    fn default() -> Self {
        Self {
            threads: 1,
            context_tokens: 2048,
            default_max_tokens: 256,
            default_temperature: 0.0,
            default_top_p: 0.95,
            prompt_format: PromptFormat::GemmaChat,
        }
    }
}

/// Timings and token ids of one generation, beside the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The answer, as [`ChatModel::chat`] returns it.
    pub response: ChatResponse,
    /// The sampled token ids, including a final end-of-turn token.
    pub completion_ids: Vec<u32>,
    /// Time spent on the prompt (tokenisation excluded).
    pub prompt_time: Duration,
    /// Time spent generating after the prompt.
    pub decode_time: Duration,
}

/// Gemma 3 270M on candle, implementing [`ChatModel`].
///
/// Cheap to clone (the weights are shared). Generation runs on a blocking thread and its own
/// rayon pool, never on the async runtime.
#[derive(Clone)]
pub struct LocalGemma {
    inner: Arc<Inner>,
}

struct Inner {
    model: Gemma3,
    tokenizer: GemmaTokenizer,
    pool: rayon::ThreadPool,
    options: LocalGemmaOptions,
    /// One generation at a time: the pool is sized for one, and the KV cache of a second would
    /// only add memory.
    busy: Mutex<()>,
    load_time: Duration,
}

impl std::fmt::Debug for LocalGemma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGemma")
            .field("model_id", &Self::MODEL_ID)
            .field("options", &self.inner.options)
            .field("context", &self.inner.model.context())
            .finish()
    }
}

/// A request turned into prompt ids, ready to run.
struct Prepared {
    prompt: Vec<u32>,
    /// Text the answer starts with (JSON mode), already in the prompt.
    answer_prefix: String,
    /// Required top-level properties of a JSON answer.
    required: Option<Vec<String>>,
    max_new: usize,
    stop: Vec<String>,
    /// The transcript prompt ends with `Assistant:`, so the answer's first word carries a space.
    strip_leading_space: bool,
    sampler: Sampler,
}

fn invalid_request(reason: impl Into<String>) -> ModelError {
    ModelError::InvalidRequest(reason.into())
}

fn inference(e: impl std::fmt::Display) -> ModelError {
    ModelError::Unavailable(format!("local inference failed: {e}"))
}

/// Byte index just past the first complete JSON object in `text` (which starts at its first
/// `{`), or `None` while it is still open.
fn json_object_end(text: &str) -> Option<(usize, usize)> {
    let start = text.find('{')?;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text[start..].char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some((start, start + i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string: text that
/// must be held back from the stream until we know it is not the start of a stop sequence.
fn held_suffix(text: &str, stop: &[String]) -> usize {
    let mut held = 0;
    for s in stop {
        for (i, _) in text.char_indices() {
            let tail = &text[i..];
            if tail.len() < s.len() && s.starts_with(tail) {
                held = held.max(tail.len());
                break;
            }
        }
    }
    held
}

impl LocalGemma {
    /// The model file under `models/`, as `scripts/setup.sh` lays it out.
    pub const FILE: &'static str = "gemma-3-270m/gemma-3-270m-q4_k_m.gguf";

    /// The model's identity in responses and configuration.
    pub const MODEL_ID: &'static str = "local:gemma-3-270m";

    /// Loads the GGUF at `path`: weights, tokenizer and chat-template ids.
    pub fn load(path: &Path, options: LocalGemmaOptions) -> Result<Self, ModelLoadError> {
        let started = Instant::now();
        let invalid = |reason: String| ModelLoadError::Invalid { path: path.to_owned(), reason };
        // `unsafe_code` is forbidden, so no mmap: tensors are read one at a time through a
        // buffered file and converted, so the 253 MB file is never resident as a whole.
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ModelLoadError::Missing { path: path.to_owned() },
            _ => invalid(e.to_string()),
        })?;
        let mut reader = std::io::BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| invalid(format!("not a GGUF file: {e}")))?;
        let arch = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "gemma3" {
            return Err(invalid(format!("architecture {arch:?}, expected \"gemma3\"")));
        }
        let tokenizer = GemmaTokenizer::from_gguf(&content).map_err(invalid)?;
        let context = options.context_tokens.max(16);
        let model = Gemma3::load(&content, &mut reader, context)
            .map_err(|e| invalid(format!("loading weights: {e}")))?;
        if tokenizer.inner.get_vocab_size(true) != model.vocab_size() {
            return Err(invalid(format!(
                "tokenizer has {} pieces, embedding {} rows",
                tokenizer.inner.get_vocab_size(true),
                model.vocab_size()
            )));
        }
        let threads = options.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("fenliu-gemma-{i}"))
            .build()
            .map_err(|e| ModelLoadError::Config(format!("gemma thread pool: {e}")))?;
        let options = LocalGemmaOptions { threads, context_tokens: model.context(), ..options };
        tracing::info!(
            path = %path.display(),
            threads,
            context = model.context(),
            weight_mb = model.weight_bytes() / (1 << 20),
            kernel = q8::Kernel::detect().name(),
            load_ms = started.elapsed().as_millis() as u64,
            "local gemma loaded"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                pool,
                options,
                busy: Mutex::new(()),
                load_time: started.elapsed(),
            }),
        })
    }

    /// The options in force (threads at least 1, context bounded by the model's).
    pub fn options(&self) -> &LocalGemmaOptions {
        &self.inner.options
    }

    /// How long [`LocalGemma::load`] took.
    pub fn load_time(&self) -> Duration {
        self.inner.load_time
    }

    /// Bytes held by the (Q8_0) weight matrices.
    pub fn weight_bytes(&self) -> usize {
        self.inner.model.weight_bytes()
    }

    /// Token ids of plain text, as the chat template encodes message content (no BOS; control
    /// tokens typed as text are split as text).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.inner.tokenizer.encode(text).map_err(invalid_request)
    }

    /// Text of token ids, control tokens dropped.
    pub fn detokenize(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner.tokenizer.decode(ids).map_err(inference)
    }

    /// The id of a vocabulary piece (`"<start_of_turn>"`, `"▁Hello"`), if it exists.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.inner.tokenizer.inner.token_to_id(piece)
    }

    /// The prompt ids the chat template produces for `request` (what [`ChatModel::chat`] feeds
    /// the model).
    pub fn prompt_ids(&self, request: &ChatRequest) -> Result<Vec<u32>, ModelError> {
        self.prepare(request).map(|p| p.prompt)
    }

    fn prepare(&self, request: &ChatRequest) -> Result<Prepared, ModelError> {
        let tk = &self.inner.tokenizer;
        let context = self.inner.model.context();
        if request.messages.is_empty() {
            return Err(invalid_request("no messages"));
        }
        if !request.tools.is_empty()
            && matches!(request.tool_choice, ToolChoice::Required | ToolChoice::Named(_))
        {
            return Err(invalid_request("the local gemma model cannot call tools"));
        }
        // A text of n bytes has at least n / max_piece_bytes tokens: refuse hopeless prompts
        // before spending time tokenising them.
        let bytes: usize = request.messages.iter().map(|m| m.content.len()).sum();
        if bytes / tk.max_piece_bytes >= context {
            return Err(invalid_request(format!(
                "prompt of {bytes} bytes exceeds the local model's context of {context} tokens"
            )));
        }

        // Gemma has two roles; system text opens the first user turn, tool results are user
        // turns, consecutive messages of one role share a turn.
        let mut turns: Vec<(&str, String)> = Vec::new();
        let mut system = String::new();
        for m in &request.messages {
            let (role, text) = match m.role {
                ChatRole::System => {
                    if !system.is_empty() {
                        system.push_str("\n\n");
                    }
                    system.push_str(&m.content);
                    continue;
                }
                ChatRole::User => ("user", m.content.clone()),
                ChatRole::Tool => ("user", format!("Tool result: {}", m.content)),
                ChatRole::Assistant => ("model", m.content.clone()),
            };
            match turns.last_mut() {
                Some((r, t)) if *r == role => {
                    t.push_str("\n\n");
                    t.push_str(&text);
                }
                _ => turns.push((role, text)),
            }
        }
        if !system.is_empty() {
            match turns.iter_mut().find(|(r, _)| *r == "user") {
                Some((_, t)) => *t = format!("{system}\n\n{t}"),
                None => turns.insert(0, ("user", system)),
            }
        }

        let (mut answer_prefix, mut required) = (String::new(), None);
        if let ResponseFormat::JsonSchema { schema, .. } = &request.response_format {
            let names: Vec<String> = schema
                .get("required")
                .and_then(|r| r.as_array())
                .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let instruction = format!(
                "\n\nAnswer with one JSON object matching this JSON Schema, and nothing else:\n{schema}"
            );
            match turns.iter_mut().rev().find(|(r, _)| *r == "user") {
                Some((_, t)) => t.push_str(&instruction),
                None => turns.push(("user", instruction.trim_start().to_owned())),
            }
            answer_prefix.push('{');
            if let Some(first) = names.first() {
                let is_string = schema
                    .pointer(&format!(
                        "/properties/{}/type",
                        first.replace('~', "~0").replace('/', "~1")
                    ))
                    .and_then(|t| t.as_str())
                    == Some("string");
                answer_prefix.push_str(&serde_json::Value::String(first.clone()).to_string());
                answer_prefix.push_str(": ");
                if is_string {
                    answer_prefix.push('"');
                }
            }
            required = Some(names);
        }

        let mut prompt = vec![tk.bos];
        let encode = |text: &str| tk.encode(text).map_err(invalid_request);
        let mut stop: Vec<String> =
            request.stop.iter().filter(|s| !s.is_empty()).cloned().collect();
        match self.inner.options.prompt_format {
            PromptFormat::GemmaChat => {
                for (role, text) in &turns {
                    prompt.push(tk.start_of_turn);
                    prompt.extend(encode(&format!("{role}\n{text}"))?);
                    prompt.push(tk.end_of_turn);
                    prompt.extend(encode("\n")?);
                }
                prompt.push(tk.start_of_turn);
                prompt.extend(encode(&format!("model\n{answer_prefix}"))?);
            }
            PromptFormat::Transcript => {
                let mut text = String::new();
                for (role, turn) in &turns {
                    let speaker = if *role == "user" { "User" } else { "Assistant" };
                    text.push_str(&format!("{speaker}: {}\n", turn.trim()));
                }
                // No trailing space: SentencePiece words carry their leading space ("▁refund"),
                // so a prompt ending in a space pushes the model towards digits and symbols.
                text.push_str("Assistant:");
                if !answer_prefix.is_empty() {
                    text.push(' ');
                    text.push_str(&answer_prefix);
                }
                prompt.extend(encode(&text)?);
                stop.push("\nUser:".to_owned());
            }
        }
        if prompt.len() >= context {
            return Err(invalid_request(format!(
                "prompt has {} tokens; the local model's context is {context} tokens",
                prompt.len()
            )));
        }

        let o = &self.inner.options;
        let max_new = match request.max_tokens.unwrap_or(o.default_max_tokens) {
            0 => return Err(invalid_request("max_tokens must be at least 1")),
            n => (n as usize).min(context - prompt.len()),
        };
        let temperature = request.temperature.unwrap_or(o.default_temperature);
        let top_p = request.top_p.unwrap_or(o.default_top_p);
        if !temperature.is_finite() || temperature < 0.0 || !(top_p > 0.0 && top_p <= 1.0) {
            return Err(invalid_request(format!(
                "temperature {temperature} or top_p {top_p} out of range"
            )));
        }
        let seed = request.seed.unwrap_or_else(rand::random);
        let strip_leading_space = self.inner.options.prompt_format == PromptFormat::Transcript
            && answer_prefix.is_empty();
        Ok(Prepared {
            prompt,
            answer_prefix,
            required,
            max_new,
            stop,
            strip_leading_space,
            sampler: Sampler::new(seed, temperature, top_p),
        })
    }

    /// Runs `request` on the calling thread, calling `on_delta` with each piece of text as it
    /// becomes final; `on_delta` returning `false` cancels. Prefer [`ChatModel::chat`] inside a
    /// runtime.
    pub fn generate_blocking(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn FnMut(&str) -> bool + Send),
    ) -> Result<Generation, ModelError> {
        let prepared = self.prepare(request)?;
        self.run(prepared, on_delta)
    }

    fn run(
        &self,
        mut p: Prepared,
        on_delta: &mut (dyn FnMut(&str) -> bool + Send),
    ) -> Result<Generation, ModelError> {
        let _busy = self.inner.busy.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &*self.inner;
        inner.pool.install(|| {
            let tk = &inner.tokenizer;
            let mut cache = KvCache::default();
            let started = Instant::now();
            let mut logits = inner.model.forward(&p.prompt, &mut cache).map_err(inference)?;
            let prompt_time = started.elapsed();
            let started = Instant::now();

            let mut ids: Vec<u32> = Vec::new();
            let mut text = p.answer_prefix.clone();
            let mut emitted = 0usize;
            let mut finish = FinishReason::Length;
            let mut json_end = None;
            loop {
                let token = p.sampler.sample(&logits);
                ids.push(token);
                if token == tk.eos || token == tk.end_of_turn {
                    finish = FinishReason::Stop;
                    break;
                }
                let generated: Vec<u32> =
                    ids.iter().copied().filter(|&t| t != tk.eos && t != tk.end_of_turn).collect();
                let decoded = tk.decode(&generated).map_err(inference)?;
                let decoded = match p.strip_leading_space {
                    true => decoded.strip_prefix(' ').unwrap_or(&decoded),
                    false => &decoded,
                };
                text = format!("{}{decoded}", p.answer_prefix);
                // A stop sequence or the end of the JSON object ends the answer there.
                let stop_at = p.stop.iter().filter_map(|s| text.find(s.as_str())).min();
                if let Some(at) = stop_at {
                    text.truncate(at);
                    finish = FinishReason::Stop;
                }
                if p.required.is_some()
                    && let Some((_, end)) = json_object_end(&text)
                {
                    text.truncate(end);
                    json_end = Some(end);
                    finish = FinishReason::Stop;
                }
                if stop_at.is_some() || json_end.is_some() {
                    break;
                }
                // Emit what can no longer change: not a half-decoded character, not the start
                // of a stop sequence.
                // (Byte-fallback pieces of an unfinished character decode as U+FFFD each.)
                let unheld = text.len() - held_suffix(&text, &p.stop);
                let safe = text[..unheld].trim_end_matches('\u{FFFD}').len();
                if safe > emitted && text.is_char_boundary(safe) && text.is_char_boundary(emitted) {
                    if !on_delta(&text[emitted..safe]) {
                        return Err(ModelError::Cancelled);
                    }
                    emitted = safe;
                }
                if ids.len() >= p.max_new || cache.len() >= inner.model.context() {
                    break;
                }
                logits = inner.model.forward(&[token], &mut cache).map_err(inference)?;
            }
            if text.len() > emitted && text.is_char_boundary(emitted) && !on_delta(&text[emitted..])
            {
                return Err(ModelError::Cancelled);
            }
            let decode_time = started.elapsed();

            if let Some(required) = &p.required {
                let Some((start, end)) = json_object_end(&text) else {
                    let shown: String = text.chars().take(120).collect();
                    return Err(ModelError::InvalidResponse(format!(
                        "no complete JSON object in {shown:?}"
                    )));
                };
                let value: serde_json::Value = serde_json::from_str(&text[start..end])
                    .map_err(|e| ModelError::InvalidResponse(format!("{e} in {text:?}")))?;
                if let Some(missing) = required.iter().find(|k| value.get(k.as_str()).is_none()) {
                    return Err(ModelError::InvalidResponse(format!(
                        "JSON answer misses required property {missing:?}: {value}"
                    )));
                }
            }
            let usage = Usage {
                prompt_tokens: u32::try_from(p.prompt.len()).unwrap_or(u32::MAX),
                completion_tokens: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            };
            Ok(Generation {
                response: ChatResponse {
                    message: ChatMessage::assistant(text),
                    finish_reason: finish,
                    usage,
                    model: Self::MODEL_ID.to_owned(),
                },
                completion_ids: ids,
                prompt_time,
                decode_time,
            })
        })
    }

    /// Width of the hidden state [`LocalGemma::hidden_mean`] returns.
    pub fn hidden_size(&self) -> usize {
        self.inner.model.hidden_size()
    }

    /// Number of transformer layers.
    pub fn layer_count(&self) -> usize {
        self.inner.model.layer_count()
    }

    /// Mean-pooled hidden state of `text` (at most `max_tokens` tokens after BOS) after `layer`
    /// layers (`0` = embeddings, the layer count = the final normalised output).
    pub fn hidden_mean(
        &self,
        text: &str,
        max_tokens: usize,
        layer: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let inner = &*self.inner;
        let mut ids = vec![inner.tokenizer.bos];
        let mut body = self.tokenize(text)?;
        body.truncate(max_tokens.min(inner.model.context() - 1));
        ids.extend(body);
        inner.pool.install(|| inner.model.pooled(&ids, layer).map_err(inference))
    }

    /// Measures prompt and decode speed: a prompt of `prompt_tokens` tokens, then `decode_tokens`
    /// greedy steps, `runs` times. Returns the tokens per second of every run.
    pub fn benchmark(
        &self,
        prompt_tokens: usize,
        decode_tokens: usize,
        runs: usize,
    ) -> Result<GemmaRates, ModelError> {
        let filler = "The customer asked where the parcel is and whether it can be delivered to the office instead. ";
        let mut ids = vec![self.inner.tokenizer.bos];
        while ids.len() < prompt_tokens {
            ids.extend(self.tokenize(filler)?);
        }
        ids.truncate(prompt_tokens.max(1));
        if ids.len() + decode_tokens > self.inner.model.context() {
            return Err(invalid_request("benchmark exceeds the context"));
        }
        let _busy = self.inner.busy.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &*self.inner;
        let mut prompt_rates = Vec::new();
        let mut decode_rates = Vec::new();
        for _ in 0..runs.max(1) {
            inner.pool.install(|| -> Result<(), ModelError> {
                let mut cache = KvCache::default();
                let t = Instant::now();
                let mut logits = inner.model.forward(&ids, &mut cache).map_err(inference)?;
                prompt_rates.push(ids.len() as f64 / t.elapsed().as_secs_f64());
                let mut sampler = Sampler::new(0, 0.0, 1.0);
                let t = Instant::now();
                for _ in 0..decode_tokens {
                    let token = sampler.sample(&logits);
                    logits = inner.model.forward(&[token], &mut cache).map_err(inference)?;
                }
                decode_rates.push(decode_tokens as f64 / t.elapsed().as_secs_f64());
                Ok(())
            })?;
        }
        Ok(GemmaRates { prompt: prompt_rates, decode: decode_rates })
    }
}

/// Speeds measured by [`LocalGemma::benchmark`], one entry per run.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmaRates {
    /// Prompt processing, tokens per second.
    pub prompt: Vec<f64>,
    /// Greedy decoding, tokens per second.
    pub decode: Vec<f64>,
}

impl ChatModel for LocalGemma {
    fn model_id(&self) -> &str {
        Self::MODEL_ID
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.generate_blocking(&request, &mut |_| true).map(|g| g.response)
        })
        .await
        .map_err(inference)?
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ModelError> {
        let this = self.clone();
        // Prepare first so that a bad request fails the call itself, not the stream.
        let prepared = {
            let this = this.clone();
            tokio::task::spawn_blocking(move || this.prepare(&request))
                .await
                .map_err(inference)??
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<StreamEvent, ModelError>>(64);
        tokio::task::spawn_blocking(move || {
            let delta_tx = tx.clone();
            // A dropped receiver is the caller cancelling: stop generating.
            let mut on_delta = move |text: &str| {
                delta_tx.blocking_send(Ok(StreamEvent::Delta { text: text.to_owned() })).is_ok()
            };
            let last = match this.run(prepared, &mut on_delta) {
                Ok(g) => Ok(StreamEvent::Done {
                    finish_reason: g.response.finish_reason,
                    usage: g.response.usage,
                }),
                Err(ModelError::Cancelled) => return,
                Err(e) => Err(e),
            };
            let _ = tx.blocking_send(last);
        });
        Ok(Box::pin(ReceiverStream(rx)) as ChatStream)
    }
}

/// The receiving end of the generation thread's channel, as a stream.
struct ReceiverStream(tokio::sync::mpsc::Receiver<Result<StreamEvent, ModelError>>);

impl Stream for ReceiverStream {
    type Item = Result<StreamEvent, ModelError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_close_where_braces_balance() {
        assert_eq!(json_object_end(r#"{"a": "}{", "b": {"c": 1}} tail"#), Some((0, 26)));
        assert_eq!(json_object_end(r#"sure: {"a": "x\"}"} "#), Some((6, 19)));
        assert_eq!(json_object_end(r#"{"a": {"#), None);
        assert_eq!(json_object_end("no json"), None);
    }

    #[test]
    fn stop_prefixes_are_held_back() {
        let stop = vec!["\nUser:".to_owned()];
        assert_eq!(held_suffix("hello\nUs", &stop), 3);
        assert_eq!(held_suffix("hello", &stop), 0);
        assert_eq!(held_suffix("你好\n", &stop), 1);
    }
}
