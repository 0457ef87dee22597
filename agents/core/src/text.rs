//! Rules that read customer messages, shared by every specialist: keyword matching that works for
//! English (word boundaries) and Chinese (no spaces), and reading a yes/no confirmation.

/// Longest message rules scan: real requests say what they want early, and a hostile 1 MB message
/// must not cost more than a normal one.
pub const MAX_SCAN_CHARS: usize = 2_000;

/// How an ASCII keyword must sit in the text. Chinese keywords always match anywhere, as Chinese
/// has no spaces between words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// A whole word (`ok` matches "ok" but not "okay").
    Word,
    /// The start of a word (`arriv` matches "arrive", "arrival").
    Prefix,
}

/// Whether `keyword` occurs in the lowercased text `lower`.
pub fn contains_keyword(lower: &str, keyword: &str, how: Match) -> bool {
    if !keyword.is_ascii() {
        return lower.contains(keyword);
    }
    let is_word = |c: char| c.is_alphanumeric() && c.is_ascii();
    lower.match_indices(keyword).any(|(i, k)| {
        let starts = lower[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let ends = lower[i + k.len()..].chars().next().is_none_or(|c| !is_word(c));
        starts && (how == Match::Prefix || ends)
    })
}

/// The first [`MAX_SCAN_CHARS`] characters, lowercased.
pub fn head_lower(message: &str) -> String {
    message.chars().take(MAX_SCAN_CHARS).flat_map(char::to_lowercase).collect()
}

/// Reads a confirmation: `Some(true)` for yes, `Some(false)` for no, `None` when unclear (or when
/// the message is long enough to be about something else).
pub fn confirmation(message: &str) -> Option<bool> {
    const NO: &[&str] = &[
        "no",
        "nope",
        "don't",
        "do not",
        "not now",
        "stop",
        "wait",
        "never mind",
        "不",
        "别",
        "算了",
        "否",
    ];
    const YES: &[&str] = &[
        "yes",
        "y",
        "yeah",
        "yep",
        "sure",
        "ok",
        "okay",
        "confirm",
        "go ahead",
        "please do",
        "do it",
        "open it",
        "是",
        "好",
        "对",
        "确认",
        "可以",
        "行",
        "嗯",
        "提交",
    ];
    let lower = message.trim().to_lowercase();
    let lower = lower.trim_end_matches(['.', '!', '。', '！']);
    if lower.chars().count() > 80 {
        return None;
    }
    let says = |words: &[&str]| words.iter().any(|w| contains_keyword(lower, w, Match::Word));
    // Negation first: "不确认" and "no, don't" are refusals even though they contain a yes-word.
    if says(NO) {
        Some(false)
    } else if says(YES) {
        Some(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords() {
        assert!(contains_keyword("where will it arrive", "arriv", Match::Prefix));
        assert!(!contains_keyword("where will it arrive", "arriv", Match::Word));
        assert!(!contains_keyword("relationship advice", "ship", Match::Prefix));
        assert!(contains_keyword("我的快递到哪了", "快递", Match::Word));
        assert_eq!(head_lower(&"A".repeat(10_000)).len(), MAX_SCAN_CHARS);
    }

    #[test]
    fn confirmations() {
        for yes in ["yes", "Yes please", "ok", "确认", "好的", "是的", "go ahead.", "提交"]
        {
            assert_eq!(confirmation(yes), Some(true), "{yes}");
        }
        for no in ["no", "No, don't", "不要", "算了", "不确认", "wait", "never mind"] {
            assert_eq!(confirmation(no), Some(false), "{no}");
        }
        for unclear in ["what?", "", "tell me more about the refund", "yesterday it was late"] {
            assert_eq!(confirmation(unclear), None, "{unclear}");
        }
        assert_eq!(
            confirmation(&"yes ".repeat(100)),
            None,
            "long messages are about something else"
        );
    }
}
