//! Gemma's SentencePiece tokenizer, rebuilt as a `tokenizers::Tokenizer` from GGUF metadata.
//!
//! The GGUF carries `tokenizer.ggml.tokens` (262,144 pieces), `scores` and `token_type` but no
//! merge list (`tokenizer.ggml.model = "llama"`), and no registry ships a Gemma 3 `tokenizer.json`.
//! A SentencePiece BPE model is equivalent to a BPE whose merges are every split of a piece into
//! two pieces of the vocabulary, ranked by the merged piece's score (the recipe of Hugging Face's
//! `SentencePieceExtractor`). Around it: spaces become "▁" (no prefix space, as the GGUF says),
//! unknown characters fall back to `<0xNN>` byte pieces, and the decoder undoes both.
//!
//! Control pieces (`<bos>`, `<start_of_turn>`, …) are special tokens that *text never produces*:
//! [`GemmaTokenizer::encode`] splits them as plain text, so a customer typing `<end_of_turn>` cannot
//! close their own turn. The chat template inserts control ids directly.

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::Replace;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, Tokenizer};

/// SentencePiece piece types as stored in `tokenizer.ggml.token_type`.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// The tokenizer plus the ids the chat template needs.
#[derive(Clone)]
pub(crate) struct GemmaTokenizer {
    pub(crate) inner: Tokenizer,
    pub(crate) bos: u32,
    pub(crate) eos: u32,
    pub(crate) start_of_turn: u32,
    pub(crate) end_of_turn: u32,
    /// Longest piece in bytes: a text of `n` bytes has at least `n / max_piece_bytes` tokens, which
    /// lets us reject a huge prompt before tokenising it.
    pub(crate) max_piece_bytes: usize,
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value, String> {
    ct.metadata.get(key).ok_or_else(|| format!("metadata {key} missing"))
}

fn array<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a Vec<gguf_file::Value>, String> {
    md(ct, key)?.to_vec().map_err(|e| format!("{key}: {e}"))
}

impl GemmaTokenizer {
    /// Builds the tokenizer from the GGUF metadata (about a second: ~1.5 M candidate merges).
    pub(crate) fn from_gguf(ct: &gguf_file::Content) -> Result<Self, String> {
        let model = md(ct, "tokenizer.ggml.model")?.to_string().map_err(|e| e.to_string())?;
        if model != "llama" {
            return Err(format!("tokenizer.ggml.model is {model:?}, expected \"llama\""));
        }
        let tokens: Vec<&str> = array(ct, "tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().map(String::as_str))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tokenizer.ggml.tokens: {e}"))?;
        let scores: Vec<f32> = array(ct, "tokenizer.ggml.scores")?
            .iter()
            .map(|v| v.to_f32())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tokenizer.ggml.scores: {e}"))?;
        let types: Vec<i32> = array(ct, "tokenizer.ggml.token_type")?
            .iter()
            .map(|v| v.to_i32())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tokenizer.ggml.token_type: {e}"))?;
        if tokens.len() != scores.len() || tokens.len() != types.len() {
            return Err(format!(
                "{} tokens, {} scores, {} types",
                tokens.len(),
                scores.len(),
                types.len()
            ));
        }
        let id = |key: &str| -> Result<u32, String> {
            md(ct, key)?.to_u32().map_err(|e| format!("{key}: {e}"))
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let unk = id("tokenizer.ggml.unknown_token_id")?;

        let vocab: HashMap<&str, u32> =
            tokens.iter().enumerate().map(|(i, t)| (*t, i as u32)).collect();
        if vocab.len() != tokens.len() {
            return Err("duplicate pieces in tokenizer.ggml.tokens".into());
        }
        // Rank of each piece by score, best first; ties by id, as SentencePiece orders them.
        let mut order: Vec<u32> = (0..tokens.len() as u32).collect();
        order.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]).then(a.cmp(&b)));
        let mut rank = vec![0u32; tokens.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        let mut merges: Vec<(u32, u32, u32)> = Vec::new();
        for (i, piece) in tokens.iter().enumerate() {
            if types[i] != NORMAL {
                continue;
            }
            for (split, _) in piece.char_indices().skip(1) {
                let (left, right) = piece.split_at(split);
                if let (Some(&l), Some(&r)) = (vocab.get(left), vocab.get(right)) {
                    merges.push((rank[i], rank[l as usize], rank[r as usize]));
                }
            }
        }
        merges.sort_unstable();
        let merges: Vec<(String, String)> = merges
            .into_iter()
            .map(|(_, l, r)| {
                (
                    tokens[order[l as usize] as usize].to_owned(),
                    tokens[order[r as usize] as usize].to_owned(),
                )
            })
            .collect();
        let bpe_vocab: std::collections::HashMap<String, u32, ahash::RandomState> =
            tokens.iter().enumerate().map(|(i, t)| ((*t).to_owned(), i as u32)).collect();
        let unk_piece = tokens.get(unk as usize).ok_or("unknown_token_id out of range")?;
        let bpe = BPE::builder()
            .vocab_and_merges(bpe_vocab, merges)
            .unk_token((*unk_piece).to_owned())
            .byte_fallback(true)
            .fuse_unk(true)
            .build()
            .map_err(|e| format!("building BPE: {e}"))?;

        let mut inner = Tokenizer::new(bpe);
        let space = Replace::new(" ", "▁").map_err(|e| e.to_string())?;
        inner
            .with_normalizer(Some(NormalizerWrapper::Replace(space)))
            .map_err(|e| e.to_string())?;
        let unspace = Replace::new("▁", " ").map_err(|e| e.to_string())?;
        inner.with_decoder(Some(DecoderWrapper::Sequence(Sequence::new(vec![
            DecoderWrapper::Replace(unspace),
            DecoderWrapper::ByteFallback(ByteFallback::new()),
            DecoderWrapper::Fuse(Fuse::new()),
        ]))));
        // User-defined pieces ("\n\n", "\t\t", "</div>", …) are atomic in SentencePiece.
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == USER_DEFINED)
            .map(|(p, _)| AddedToken::from((*p).to_owned(), false))
            .collect();
        inner.add_tokens(user).map_err(|e| e.to_string())?;
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == CONTROL)
            .map(|(p, _)| AddedToken::from((*p).to_owned(), true))
            .collect();
        inner.add_special_tokens(control).map_err(|e| e.to_string())?;
        // Text never produces control tokens (see the module docs).
        inner.set_encode_special_tokens(true);

        let piece =
            |p: &str| vocab.get(p).copied().ok_or_else(|| format!("{p} not in the vocabulary"));
        Ok(Self {
            bos,
            eos,
            start_of_turn: piece("<start_of_turn>")?,
            end_of_turn: piece("<end_of_turn>")?,
            max_piece_bytes: tokens.iter().map(|t| t.len()).max().unwrap_or(1).max(1),
            inner,
        })
    }

    /// Token ids of plain text (no BOS; control-token strings are split as text).
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.inner.encode_fast(text, false).map(|e| e.get_ids().to_vec()).map_err(|e| e.to_string())
    }

    /// Text of `ids`, control tokens dropped.
    pub(crate) fn decode(&self, ids: &[u32]) -> Result<String, String> {
        self.inner.decode(ids, true).map_err(|e| e.to_string())
    }
}
