//! The transcript dataset format, version [`FORMAT_VERSION`] (JSONL; see `docs/evals.md`).
//!
//! A file is one optional header line followed by one conversation per line:
//!
//! ```text
//! {"fenliu_eval": 1, "name": "scenarios", "license": "MIT OR Apache-2.0"}
//! {"id": "order-status-en", "customer": {"id": "james_li_5688"}, "channel": "web",
//!  "turns": [{"role": "user", "text": "Where is my order #W2611340?",
//!             "expect": {"route": "order", "tools": [{"name": "get_order",
//!                        "args": {"order_id": "#W2611340"}}], "facts": ["357962501027"]}}]}
//! ```
//!
//! Bad lines (broken JSON, invalid UTF-8, missing fields, unknown routes, duplicate ids) are
//! reported with their line number and skipped; the rest of the file loads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fenliu_agent::{Channel, CustomerTier, Language, Route};
use fenliu_orchestrator::ReplyKind;
use serde::{Deserialize, Serialize};

use crate::{EvalError, RowError, read_limited};

/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The optional first line of a dataset file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Format version; must be [`FORMAT_VERSION`].
    pub fenliu_eval: u32,
    /// Dataset name (defaults to the file stem).
    #[serde(default)]
    pub name: String,
    /// What the dataset is for.
    #[serde(default)]
    pub description: String,
    /// Where it comes from.
    #[serde(default)]
    pub source: String,
    /// Its licence.
    #[serde(default)]
    pub license: String,
}

/// The customer a conversation is with. Fields left out are taken from the shop (tier,
/// language) or the run's default customer (id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSpec {
    /// Customer id in the shop.
    #[serde(default)]
    pub id: Option<String>,
    /// Tier, overriding the shop's.
    #[serde(default)]
    pub tier: Option<CustomerTier>,
    /// Preferred language, overriding the shop's.
    #[serde(default)]
    pub language: Option<Language>,
}

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The customer: the text is sent to the orchestrator.
    User,
    /// A reference reply; not sent, kept for readers of the dataset.
    Assistant,
}

/// An expected tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedToolCall {
    /// Tool name.
    pub name: String,
    /// Arguments; compared as JSON values (object key order does not matter).
    #[serde(default)]
    pub args: serde_json::Value,
}

/// What should happen on one user turn. Every field is optional; only what is given is scored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The route the supervisor should choose.
    #[serde(default)]
    pub route: Option<Route>,
    /// How the turn should end (`answer`, `ask_slot`, `clarify`, `refusal`, `escalated`).
    #[serde(default)]
    pub kind: Option<ReplyKind>,
    /// Slot values the system should have understood: found in the conversation's slots after
    /// the turn or in an argument of the same name of a tool call of the turn.
    #[serde(default)]
    pub slots: BTreeMap<String, serde_json::Value>,
    /// The exact tool calls of the turn, in order (`[]`: no tool call).
    #[serde(default)]
    pub tools: Option<Vec<ExpectedToolCall>>,
    /// Whether the turn should hand the conversation to a person.
    #[serde(default)]
    pub escalate: Option<bool>,
    /// Strings the reply must contain (case-insensitive): order numbers, dates, amounts.
    #[serde(default)]
    pub facts: Vec<String>,
}

/// One turn of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSpec {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub text: String,
    /// Send this user turn only when the previous reply asked something (`ask_slot` or
    /// `clarify`); otherwise it is skipped. For scripted users answering confirmations.
    #[serde(default)]
    pub if_asked: bool,
    /// Labels of a user turn.
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// An action a τ-style task expects the system to carry out (τ-bench names and arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAction {
    /// Action name, e.g. `cancel_pending_order`.
    pub name: String,
    /// Its arguments.
    #[serde(default)]
    pub args: serde_json::Value,
}

/// A multi-turn task judged by the final store state (τ-bench style).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// What the simulated user wants, in words (the LLM user's instructions).
    #[serde(default)]
    pub instruction: String,
    /// The write actions whose effect on the store is the expected final state.
    #[serde(default)]
    pub actions: Vec<ExpectedAction>,
    /// Most user turns an LLM user may take.
    #[serde(default)]
    pub max_turns: Option<u32>,
}

/// One conversation of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    /// Unique id within the dataset.
    pub id: String,
    /// The customer.
    #[serde(default)]
    pub customer: CustomerSpec,
    /// The channel.
    #[serde(default)]
    pub channel: Channel,
    /// Free labels (`en`, `zh`, `order`, a source name) for slicing reports.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The turns (the scripted user's messages and their labels).
    pub turns: Vec<TurnSpec>,
    /// A τ-style task, judged by the final state.
    #[serde(default)]
    pub task: Option<TaskSpec>,
}

impl Conversation {
    /// A single-turn routing example.
    pub fn single(id: String, text: String, route: Route, tags: Vec<String>) -> Self {
        Self {
            id,
            customer: CustomerSpec::default(),
            channel: Channel::Web,
            tags,
            turns: vec![TurnSpec {
                role: Role::User,
                text,
                if_asked: false,
                expect: Some(Expect { route: Some(route), ..Expect::default() }),
            }],
            task: None,
        }
    }
}

/// A loaded dataset: what could be used, and what could not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Name (header or file stem).
    pub name: String,
    /// The header, when the file had one.
    pub header: Option<Header>,
    /// Usable conversations, in file order.
    pub conversations: Vec<Conversation>,
    /// Rows that were skipped, with their line numbers.
    pub errors: Vec<RowError>,
}

/// Checks one conversation against the known routes; the problems, if any.
pub fn validate(c: &Conversation, routes: &BTreeSet<Route>) -> Result<(), String> {
    if c.id.trim().is_empty() {
        return Err("empty `id`".into());
    }
    if !c.turns.iter().any(|t| t.role == Role::User) {
        return Err("no user turn".into());
    }
    for (i, t) in c.turns.iter().enumerate() {
        if t.role == Role::User && t.text.trim().is_empty() {
            return Err(format!("turn {}: empty text", i + 1));
        }
        if let Some(route) = t.expect.as_ref().and_then(|e| e.route.as_ref())
            && !routes.contains(route)
        {
            return Err(format!("turn {}: unknown route `{route}`", i + 1));
        }
    }
    Ok(())
}

/// Reads a transcript dataset. `routes` are the routes labels may name.
pub fn load_transcripts(path: &Path, routes: &BTreeSet<Route>) -> Result<Dataset, EvalError> {
    let bytes = read_limited(path)?;
    let mut data = Dataset {
        name: path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        ..Dataset::default()
    };
    let mut ids = BTreeSet::new();
    let mut seen_content = false;
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let mut bad = |message: String| {
            data.errors.push(RowError { path: path.to_owned(), line, message });
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            bad("not valid UTF-8".into());
            continue;
        };
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() || text.starts_with("//") {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                bad(format!("broken JSON: {e}"));
                continue;
            }
        };
        if value.get("fenliu_eval").is_some() {
            if seen_content {
                bad("the header must be the first line".into());
                continue;
            }
            let header: Header = serde_json::from_value(value).map_err(|e| EvalError::BadFile {
                path: path.to_owned(),
                message: format!("line {line}: bad header: {e}"),
            })?;
            if header.fenliu_eval != FORMAT_VERSION {
                return Err(EvalError::BadFile {
                    path: path.to_owned(),
                    message: format!(
                        "format version {} is not supported (this build reads version \
                         {FORMAT_VERSION})",
                        header.fenliu_eval
                    ),
                });
            }
            if !header.name.is_empty() {
                data.name.clone_from(&header.name);
            }
            data.header = Some(header);
            seen_content = true;
            continue;
        }
        seen_content = true;
        let conversation: Conversation = match serde_json::from_value(value) {
            Ok(c) => c,
            Err(e) => {
                bad(e.to_string());
                continue;
            }
        };
        if let Err(e) = validate(&conversation, routes) {
            bad(format!("conversation `{}`: {e}", conversation.id));
            continue;
        }
        if !ids.insert(conversation.id.clone()) {
            bad(format!("duplicate conversation id `{}`", conversation.id));
            continue;
        }
        data.conversations.push(conversation);
    }
    Ok(data)
}

/// Writes a dataset in the transcript format (header first).
pub fn write_transcripts(path: &Path, data: &Dataset) -> Result<(), EvalError> {
    let header = data.header.clone().unwrap_or_else(|| Header {
        fenliu_eval: FORMAT_VERSION,
        name: data.name.clone(),
        ..Header::default()
    });
    let mut out = serde_json::to_string(&header).map_err(|e| EvalError::Report(e.to_string()))?;
    out.push('\n');
    for c in &data.conversations {
        out.push_str(&serde_json::to_string(c).map_err(|e| EvalError::Report(e.to_string()))?);
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| EvalError::io(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn routes() -> BTreeSet<Route> {
        Route::TAXONOMY.into_iter().collect()
    }

    #[test]
    fn bad_lines_are_reported_with_numbers_and_the_rest_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let mut bytes = Vec::new();
        bytes.extend(b"{\"fenliu_eval\": 1, \"name\": \"t\"}\n");
        bytes.extend(br#"{"id":"a","turns":[{"role":"user","text":"where is my order","expect":{"route":"order"}}]}"#);
        bytes.extend(b"\n{\"id\": \"b\", \"turns\": [\n");
        bytes.extend(b"{\"id\":\"c\",\"turns\":[{\"role\":\"user\",\"text\":\"\xff\xfe\"}]}\n");
        bytes.extend(
            br#"{"id":"d","turns":[{"role":"user","text":"hi","expect":{"route":"weather"}}]}"#,
        );
        bytes.extend(b"\n");
        bytes.extend(br#"{"turns":[{"role":"user","text":"no id"}]}"#);
        bytes.extend(b"\n");
        bytes.extend(br#"{"id":"a","turns":[{"role":"user","text":"again"}]}"#);
        bytes.extend(b"\n\n");
        bytes.extend(br#"{"id":"e","turns":[{"role":"user","text":"  "}]}"#);
        std::fs::write(&path, bytes).unwrap();
        let d = load_transcripts(&path, &routes()).unwrap();
        assert_eq!(d.name, "t");
        assert_eq!(d.conversations.len(), 1);
        let lines: Vec<u64> = d.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 9], "{:#?}", d.errors);
        assert!(d.errors[0].message.contains("broken JSON"));
        assert!(d.errors[1].message.contains("UTF-8"));
        assert!(d.errors[2].message.contains("unknown route `weather`"));
        assert!(d.errors[3].message.contains("missing field `id`"));
        assert!(d.errors[4].message.contains("duplicate"));
        assert!(d.errors[5].message.contains("empty text"));
    }

    #[test]
    fn other_versions_are_refused_and_round_trips_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.jsonl");
        std::fs::write(&path, "{\"fenliu_eval\": 2}\n").unwrap();
        let err = load_transcripts(&path, &routes()).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");

        let data = Dataset {
            name: "rt".into(),
            conversations: vec![Conversation::single(
                "x".into(),
                "我的订单到哪了".into(),
                Route::ORDER,
                vec!["zh".into()],
            )],
            ..Dataset::default()
        };
        let out = dir.path().join("rt.jsonl");
        write_transcripts(&out, &data).unwrap();
        let back = load_transcripts(&out, &routes()).unwrap();
        assert_eq!(back.conversations, data.conversations);
        assert!(back.errors.is_empty());
        assert!(load_transcripts(&dir.path().join("missing.jsonl"), &routes()).is_err());
    }
}
