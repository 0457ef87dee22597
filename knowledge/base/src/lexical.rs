//! The lexical half of hybrid retrieval: an in-memory BM25 index over chunk texts.
//!
//! Tokens: words of Latin-script text go through the `bm25` crate's English tokenizer
//! (lower-casing, stop words, Snowball stemming); runs of CJK characters, which have no spaces,
//! become character unigrams and bigrams, so "退货政策" matches "退货" and "政策" without a
//! segmenter. Scoring is Okapi BM25 over our own postings (term → chunk → term frequency), which
//! lets a search skip chunks outside the caller's filter and report how much of the query a chunk
//! covers — the `bm25` crate's scorer offers neither.
//!
//! The index is rebuilt from the catalogue at start-up and kept in step with every ingest.

use std::collections::HashMap;

use bm25::Tokenizer as _;

use crate::parse::is_cjk;

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;

/// Splits text into index terms (see the module documentation).
pub struct TermTokenizer {
    english: bm25::DefaultTokenizer,
}

impl std::fmt::Debug for TermTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TermTokenizer")
    }
}

impl Default for TermTokenizer {
    fn default() -> Self {
        Self { english: bm25::DefaultTokenizer::new(bm25::Language::English) }
    }
}

impl TermTokenizer {
    /// The terms of `text`, with repetitions.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut latin = String::new();
        let mut cjk: Vec<char> = Vec::new();
        for c in text.chars() {
            if is_cjk(c) {
                if !latin.is_empty() {
                    out.extend(self.english.tokenize(&std::mem::take(&mut latin)));
                }
                cjk.push(c);
            } else {
                if !cjk.is_empty() {
                    cjk_terms(&std::mem::take(&mut cjk), &mut out);
                }
                latin.push(c);
            }
        }
        if !latin.is_empty() {
            out.extend(self.english.tokenize(&latin));
        }
        cjk_terms(&cjk, &mut out);
        out
    }
}

fn cjk_terms(run: &[char], out: &mut Vec<String>) {
    out.extend(run.iter().map(|c| c.to_string()));
    out.extend(run.windows(2).map(|w| w.iter().collect::<String>()));
}

/// A lexical match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LexicalHit {
    /// Chunk id.
    pub id: u64,
    /// BM25 score.
    pub score: f32,
    /// Share of the query's IDF mass found in the chunk (0..1): 1 when every query term occurs.
    pub coverage: f32,
}

/// BM25 postings over chunks.
#[derive(Debug, Default)]
pub struct LexicalIndex {
    tokenizer: TermTokenizer,
    postings: HashMap<String, HashMap<u64, u32>>,
    lengths: HashMap<u64, u32>,
    total_length: u64,
}

impl LexicalIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of indexed chunks.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Indexes (or re-indexes) chunk `id`.
    pub fn insert(&mut self, id: u64, text: &str) {
        self.remove(id);
        let terms = self.tokenizer.terms(text);
        let length = u32::try_from(terms.len()).unwrap_or(u32::MAX);
        let mut counts: HashMap<String, u32> = HashMap::new();
        for t in terms {
            *counts.entry(t).or_default() += 1;
        }
        for (term, tf) in counts {
            self.postings.entry(term).or_default().insert(id, tf);
        }
        self.lengths.insert(id, length);
        self.total_length += u64::from(length);
    }

    /// Removes chunk `id` (no-op when absent).
    pub fn remove(&mut self, id: u64) {
        let Some(length) = self.lengths.remove(&id) else { return };
        self.total_length = self.total_length.saturating_sub(u64::from(length));
        self.postings.retain(|_, docs| {
            docs.remove(&id);
            !docs.is_empty()
        });
    }

    fn idf(&self, df: usize) -> f32 {
        let n = self.lengths.len() as f32;
        let df = df as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The best `limit` chunks for `query` among those `accept` lets through, best first.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        accept: impl Fn(u64) -> bool,
    ) -> Vec<LexicalHit> {
        if self.lengths.is_empty() || limit == 0 {
            return Vec::new();
        }
        let mut terms = self.tokenizer.terms(query);
        terms.sort();
        terms.dedup();
        let avg = self.total_length as f32 / self.lengths.len() as f32;
        let mut total_idf = 0.0f32;
        let mut scores: HashMap<u64, (f32, f32)> = HashMap::new();
        for term in &terms {
            let Some(docs) = self.postings.get(term) else {
                // Unknown terms still count against coverage, at the highest IDF.
                total_idf += self.idf(0);
                continue;
            };
            let idf = self.idf(docs.len());
            total_idf += idf;
            for (&id, &tf) in docs {
                if !accept(id) {
                    continue;
                }
                let len = self.lengths.get(&id).copied().unwrap_or(0) as f32;
                let tf = tf as f32;
                let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg.max(1.0)));
                let entry = scores.entry(id).or_default();
                entry.0 += s;
                entry.1 += idf;
            }
        }
        let mut hits: Vec<LexicalHit> = scores
            .into_iter()
            .map(|(id, (score, idf))| LexicalHit {
                id,
                score,
                coverage: if total_idf > 0.0 { idf / total_idf } else { 0.0 },
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        hits.truncate(limit);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_stem_english_and_split_chinese_into_bigrams() {
        let t = TermTokenizer::default();
        let terms = t.terms("Refunds are returned 退货政策");
        assert!(terms.contains(&"refund".to_owned()), "{terms:?}");
        assert!(!terms.contains(&"are".to_owned()), "stop word kept: {terms:?}");
        for want in ["退货", "货政", "政策", "退"] {
            assert!(terms.contains(&want.to_owned()), "{want} missing: {terms:?}");
        }
    }

    #[test]
    fn bm25_ranks_filters_and_forgets() {
        let mut index = LexicalIndex::new();
        index.insert(1, "Refunds take five to seven business days.");
        index.insert(2, "Shipping is free over fifty dollars.");
        index.insert(3, "退款在五到七个工作日内到账。");
        let hits = index.search("how long do refunds take", 10, |_| true);
        assert_eq!(hits.first().map(|h| h.id), Some(1));
        // "refund" and "take" occur, "long" does not.
        assert!(hits[0].coverage > 0.4 && hits[0].coverage < 1.0, "{hits:?}");
        assert!(index.search("refunds", 10, |id| id != 1).is_empty(), "filter ignored");
        assert_eq!(index.search("退款多久到账", 10, |_| true).first().map(|h| h.id), Some(3));
        index.remove(1);
        index.insert(2, "Refund policy updated.");
        assert_eq!(index.len(), 2);
        assert_eq!(index.search("refunds", 10, |_| true).first().map(|h| h.id), Some(2));
        assert!(index.search("", 10, |_| true).is_empty());
        assert!(index.search("zzz unknown", 10, |_| true).is_empty());
    }
}
