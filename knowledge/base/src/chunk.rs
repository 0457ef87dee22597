//! Structure-aware chunking: sections stay apart, small blocks are packed together, long blocks
//! are cut into sentence windows that overlap by one sentence. Lengths are counted in units that
//! approximate model tokens across scripts: one per CJK character, one per other word.

use unicode_segmentation::UnicodeSegmentation;

use crate::parse::{ParsedDoc, is_cjk};

/// Chunk size limits, in units (≈ tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// A chunk never exceeds this many units (sentences longer than it are cut).
    pub max_units: usize,
    /// Sentence windows overlap by this many sentences.
    pub overlap_sentences: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        // MiniLM was trained on 128-token inputs; 120 units plus the heading prefix stays close.
        Self { max_units: 120, overlap_sentences: 1 }
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Heading path of its section.
    pub section: String,
    /// Language declared by the section, if any.
    pub language: Option<String>,
    /// The passage as shown to readers.
    pub text: String,
}

/// Length of `text` in units: CJK characters count one each, other words one each.
pub fn units(text: &str) -> usize {
    let mut n = 0;
    let mut in_word = false;
    for c in text.chars() {
        if is_cjk(c) {
            n += 1;
            in_word = false;
        } else if c.is_alphanumeric() {
            if !in_word {
                n += 1;
            }
            in_word = true;
        } else {
            in_word = false;
        }
    }
    n
}

/// Cuts a parsed document into chunks.
pub fn chunk(doc: &ParsedDoc, limits: ChunkLimits) -> Vec<Chunk> {
    let max = limits.max_units.max(8);
    let mut out = Vec::new();
    for section in &doc.sections {
        let mut push = |text: String| {
            if !text.trim().is_empty() {
                out.push(Chunk {
                    section: section.heading.clone(),
                    language: section.language.clone(),
                    text,
                });
            }
        };
        if section.atomic {
            for block in &section.blocks {
                if units(block) <= max * 2 {
                    // Records (a Q&A pair, a product) stay whole up to twice the limit: cutting
                    // a question from its answer loses more than a long chunk costs.
                    push(block.clone());
                } else {
                    windows(block, max, limits.overlap_sentences).into_iter().for_each(&mut push);
                }
            }
            continue;
        }
        let mut current = String::new();
        let mut current_units = 0;
        for block in &section.blocks {
            let n = units(block);
            if n > max {
                if !current.is_empty() {
                    push(std::mem::take(&mut current));
                    current_units = 0;
                }
                windows(block, max, limits.overlap_sentences).into_iter().for_each(&mut push);
                continue;
            }
            if current_units + n > max && !current.is_empty() {
                push(std::mem::take(&mut current));
                current_units = 0;
            }
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(block);
            current_units += n;
        }
        push(current);
    }
    out
}

/// Sentence windows of at most `max` units, consecutive windows sharing `overlap` sentences.
fn windows(text: &str, max: usize, overlap: usize) -> Vec<String> {
    let mut sentences: Vec<String> = Vec::new();
    for s in text.split_sentence_bounds() {
        if units(s) > max {
            sentences.extend(hard_split(s, max));
        } else if !s.trim().is_empty() {
            sentences.push(s.to_owned());
        } else if let Some(last) = sentences.last_mut() {
            last.push_str(s);
        }
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < sentences.len() {
        let mut end = start;
        let mut total = 0;
        while end < sentences.len() && (end == start || total + units(&sentences[end]) <= max) {
            total += units(&sentences[end]);
            end += 1;
        }
        out.push(sentences[start..end].concat().trim().to_owned());
        if end >= sentences.len() {
            break;
        }
        // Step back `overlap` sentences, but always move forward.
        start = end.saturating_sub(overlap).max(start + 1);
    }
    out
}

/// Cuts a run-on "sentence" (no punctuation, e.g. a table dump) into pieces of `max` units.
fn hard_split(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in text.split_word_bounds() {
        if units(&current) + units(word) > max && !current.trim().is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.push_str(word);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Section;

    fn doc(sections: Vec<(&str, Vec<String>, bool)>) -> ParsedDoc {
        ParsedDoc {
            title: "t".into(),
            doc_type: "policy".into(),
            sections: sections
                .into_iter()
                .map(|(h, blocks, atomic)| Section {
                    heading: h.into(),
                    language: None,
                    blocks,
                    atomic,
                })
                .collect(),
        }
    }

    #[test]
    fn units_count_words_and_cjk_characters() {
        assert_eq!(units("Refunds take 5-7 days."), 5);
        assert_eq!(units("退货政策"), 4);
        assert_eq!(units("iPhone 退货 ok"), 4);
        assert_eq!(units(""), 0);
    }

    #[test]
    fn small_blocks_pack_and_sections_stay_apart() {
        let d = doc(vec![
            ("A", vec!["one two".into(), "three four".into()], false),
            ("B", vec!["five".into()], false),
        ]);
        let chunks = chunk(&d, ChunkLimits::default());
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].text, "one two\nthree four");
        assert_eq!(chunks[1].section, "B");
    }

    #[test]
    fn long_blocks_become_overlapping_sentence_windows() {
        let sentences: Vec<String> =
            (0..30).map(|i| format!("Sentence number {i} has six words. ")).collect();
        let d = doc(vec![("A", vec![sentences.concat()], false)]);
        let limits = ChunkLimits { max_units: 20, overlap_sentences: 1 };
        let chunks = chunk(&d, limits);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(units(&c.text) <= 20, "{} units: {}", units(&c.text), c.text);
        }
        // Consecutive windows share their boundary sentence.
        let last_of_first = chunks[0].text.rsplit(". ").next().unwrap_or_default().to_owned();
        assert!(chunks[1].text.starts_with(last_of_first.trim_end_matches('.')));
    }

    #[test]
    fn cjk_text_is_measured_by_characters() {
        let zh = "退货规则很简单。".repeat(40);
        let d = doc(vec![("退货", vec![zh], false)]);
        let chunks = chunk(&d, ChunkLimits { max_units: 50, overlap_sentences: 1 });
        assert!(chunks.len() >= 6, "{}", chunks.len());
        assert!(chunks.iter().all(|c| units(&c.text) <= 50));
    }

    #[test]
    fn unpunctuated_text_is_still_cut_and_records_stay_whole() {
        let run_on = "word ".repeat(500);
        let d = doc(vec![("A", vec![run_on], false), ("Q", vec!["Q: a?\nA: b.".into()], true)]);
        let chunks = chunk(&d, ChunkLimits { max_units: 50, overlap_sentences: 1 });
        assert!(chunks.iter().all(|c| units(&c.text) <= 50));
        assert_eq!(chunks.last().map(|c| c.text.as_str()), Some("Q: a?\nA: b."));
    }
}
