//! Declarative per-agent settings: `<dir>/<agent id>.toml` files an operator edits while the
//! service runs.
//!
//! A file may set, for the agent it is named after:
//! - `[thresholds]`: `min_confidence` (routing confidence below which the supervisor asks a
//!   clarifying question instead of routing to this agent), `max_clarifications` (questions before
//!   a person takes over when the unsure route is this agent's), `max_steps` (model calls per turn
//!   of the model-driven policy);
//! - `tools`: the agent's tool allow-list, which may only be *narrowed*: a tool that is not on the
//!   agent's built-in list (unknown, or another agent's) is an error;
//! - `[phrases]`: extra training phrases, `en = […]` and `zh = […]`;
//! - `[templates.en]` / `[templates.zh]`: replacements for the customer-facing texts the agent
//!   declares in [`AgentDescriptor::templates`], with `{placeholder}` variables (`{{` and `}}` for
//!   literal braces). A template name the agent does not declare, or a placeholder the template
//!   does not offer, is an error.
//!
//! [`load_dir`] reads and validates a whole directory at once: one bad file fails the whole load,
//! so a caller can keep its previous [`SettingsSet`] and report the errors. [`LiveSettings`] is the
//! cell a running service swaps a new set into; agents see their settings through
//! [`AgentContext::template`](crate::AgentContext::template) on the next turn.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::{AgentDescriptor, Language, TrainingPhrase};

/// Largest settings file read, in bytes; larger files are refused unread.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Most settings files in a directory.
pub const MAX_FILES: usize = 256;
/// Longest template, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 4_000;
/// Longest extra training phrase, in characters.
pub const MAX_PHRASE_CHARS: usize = 500;
/// Most extra training phrases per language.
pub const MAX_PHRASES: usize = 1_000;
/// Largest `max_steps` a file may set.
pub const MAX_STEPS: usize = 16;
/// Largest `max_clarifications` a file may set.
pub const MAX_CLARIFICATIONS: u8 = 5;

/// A customer-facing text an agent lets operators replace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSpec {
    /// Key under `[templates.en]` / `[templates.zh]`.
    pub name: String,
    /// Variables the agent fills in (`{order_id}`, …).
    pub placeholders: Vec<String>,
    /// When the text is shown, for whoever writes a replacement.
    pub description: String,
}

impl TemplateSpec {
    /// A spec from string slices.
    pub fn new(name: &str, placeholders: &[&str], description: &str) -> Self {
        Self {
            name: name.to_owned(),
            placeholders: placeholders.iter().map(|p| (*p).to_owned()).collect(),
            description: description.to_owned(),
        }
    }
}

/// Why settings could not be loaded; every error names the file and, where it can, the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// The directory or a file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key).
        message: String,
    },
    /// A value is well-formed but not allowed.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `tools` or `templates.en.order_status`.
        key: String,
        /// Why.
        message: String,
    },
}

/// Every error of one load, so an operator sees all of them at once.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsErrors(pub Vec<SettingsError>);

impl fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&texts.join("; "))
    }
}

impl std::error::Error for SettingsErrors {}

/// `[thresholds]` of a settings file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Routing confidence below which the supervisor asks a clarifying question rather than
    /// routing to this agent (replaces `router.min_confidence` and
    /// `router.route_min_confidence` for the agent's routes).
    pub min_confidence: Option<f32>,
    /// Clarifying questions before a person takes over, when the unsure route is this agent's
    /// (replaces `limits.max_clarifications`).
    pub max_clarifications: Option<u8>,
    /// Model calls per turn of the model-driven policy.
    pub max_steps: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PhrasesFile {
    en: Vec<String>,
    zh: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TemplatesFile {
    en: BTreeMap<String, String>,
    zh: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SettingsFile {
    thresholds: Thresholds,
    tools: Option<Vec<String>>,
    phrases: PhrasesFile,
    templates: TemplatesFile,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var(String),
}

/// A parsed `{placeholder}` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parses `text`: `{name}` is a variable, `{{` and `}}` are literal braces; anything else with
    /// a brace (unclosed, empty or malformed names) is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err("a lone `}` (write `}}` for a literal brace)".into()),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            Some(c) => {
                                return Err(format!(
                                    "placeholder `{{{name}{c}…` is not a name (letters, digits, \
                                     `_`; write `{{{{` for a literal brace)"
                                ));
                            }
                            None => return Err(format!("placeholder `{{{name}` is not closed")),
                        }
                    }
                    if name.is_empty() {
                        return Err("empty placeholder `{}`".into());
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Var(name));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Self { segments })
    }

    /// The placeholders used, in order of first use.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.segments {
            if let Segment::Var(v) = s
                && !out.contains(&v.as_str())
            {
                out.push(v);
            }
        }
        out
    }

    /// Renders with `vars`; `None` when a placeholder has no value (the caller then uses its
    /// built-in text).
    pub fn render(&self, vars: &[(&str, &dyn fmt::Display)]) -> Option<String> {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Text(t) => out.push_str(t),
                Segment::Var(v) => {
                    let (_, value) = vars.iter().find(|(name, _)| name == v)?;
                    out.push_str(&value.to_string());
                }
            }
        }
        Some(out)
    }
}

/// The validated settings of one agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSettings {
    /// Thresholds; `None` keeps the service-wide value.
    pub thresholds: Thresholds,
    /// The narrowed allow-list; `None` keeps the agent's own.
    pub tools: Option<Vec<String>>,
    /// Extra training phrases.
    pub phrases: Vec<TrainingPhrase>,
    templates: BTreeMap<(Language, String), Template>,
}

impl AgentSettings {
    /// Parses and validates one file's text for the agent `descriptor`; `path` is used in errors.
    pub fn parse(
        path: &Path,
        text: &str,
        descriptor: &AgentDescriptor,
    ) -> Result<Self, SettingsErrors> {
        let file: SettingsFile = toml::from_str(text).map_err(|e| {
            SettingsErrors(vec![SettingsError::Parse {
                path: path.to_owned(),
                message: e.message().to_owned()
                    + &e.span().map(|s| format!(" (at byte {})", s.start)).unwrap_or_default(),
            }])
        })?;
        let mut errors = Vec::new();
        let mut invalid = |key: String, message: String| {
            errors.push(SettingsError::Invalid { path: path.to_owned(), key, message });
        };

        let t = &file.thresholds;
        if let Some(v) = t.min_confidence
            && !(0.0..=1.0).contains(&v)
        {
            invalid("thresholds.min_confidence".into(), format!("must be in [0, 1], got {v}"));
        }
        if let Some(v) = t.max_clarifications
            && v > MAX_CLARIFICATIONS
        {
            invalid(
                "thresholds.max_clarifications".into(),
                format!("must be at most {MAX_CLARIFICATIONS}, got {v}"),
            );
        }
        if let Some(v) = t.max_steps
            && !(1..=MAX_STEPS).contains(&v)
        {
            invalid("thresholds.max_steps".into(), format!("must be in 1..={MAX_STEPS}, got {v}"));
        }

        let mut tools: Option<Vec<String>> = None;
        if let Some(list) = &file.tools {
            let mut narrowed: Vec<String> = Vec::new();
            for tool in list {
                if !descriptor.tools.contains(tool) {
                    invalid(
                        "tools".into(),
                        format!(
                            "`{tool}` is not on the `{}` agent's allow-list ({}); a settings file \
                             may only narrow it",
                            descriptor.id,
                            descriptor.tools.join(", ")
                        ),
                    );
                } else if !narrowed.contains(tool) {
                    narrowed.push(tool.clone());
                }
            }
            tools = Some(narrowed);
        }

        let mut phrases = Vec::new();
        for (language, list) in [(Language::En, &file.phrases.en), (Language::Zh, &file.phrases.zh)]
        {
            let key = format!("phrases.{}", language.code());
            if list.len() > MAX_PHRASES {
                invalid(key.clone(), format!("at most {MAX_PHRASES} phrases, got {}", list.len()));
                continue;
            }
            for (i, p) in list.iter().enumerate() {
                let text = p.trim();
                if text.is_empty() {
                    invalid(format!("{key}[{i}]"), "empty phrase".into());
                } else if text.chars().count() > MAX_PHRASE_CHARS {
                    invalid(
                        format!("{key}[{i}]"),
                        format!("longer than {MAX_PHRASE_CHARS} characters"),
                    );
                } else if Language::detect(text) != language {
                    invalid(
                        format!("{key}[{i}]"),
                        format!("{text:?} is not written in {}", language_name(language)),
                    );
                } else {
                    phrases.push(TrainingPhrase { text: text.to_owned(), language });
                }
            }
        }

        let mut templates = BTreeMap::new();
        for (language, map) in
            [(Language::En, &file.templates.en), (Language::Zh, &file.templates.zh)]
        {
            for (name, text) in map {
                let key = format!("templates.{}.{name}", language.code());
                let Some(spec) = descriptor.templates.iter().find(|s| s.name == *name) else {
                    let names: Vec<&str> =
                        descriptor.templates.iter().map(|s| s.name.as_str()).collect();
                    invalid(
                        key,
                        format!(
                            "the `{}` agent has no template `{name}` (templates: {})",
                            descriptor.id,
                            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                        ),
                    );
                    continue;
                };
                if text.trim().is_empty() {
                    invalid(key, "empty template".into());
                    continue;
                }
                if text.chars().count() > MAX_TEMPLATE_CHARS {
                    invalid(key, format!("longer than {MAX_TEMPLATE_CHARS} characters"));
                    continue;
                }
                match Template::parse(text) {
                    Err(e) => invalid(key, e),
                    Ok(template) => {
                        let unknown: Vec<&str> = template
                            .placeholders()
                            .into_iter()
                            .filter(|p| !spec.placeholders.iter().any(|s| s == p))
                            .collect();
                        if unknown.is_empty() {
                            templates.insert((language, name.clone()), template);
                        } else {
                            invalid(
                                key,
                                format!(
                                    "unknown placeholder {} (this template offers: {})",
                                    unknown
                                        .iter()
                                        .map(|u| format!("{{{u}}}"))
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                    if spec.placeholders.is_empty() {
                                        "none".to_owned()
                                    } else {
                                        spec.placeholders
                                            .iter()
                                            .map(|p| format!("{{{p}}}"))
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    }
                                ),
                            );
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(Self { thresholds: file.thresholds, tools, phrases, templates })
        } else {
            Err(SettingsErrors(errors))
        }
    }

    /// The replacement for template `name` in `language`, if the file sets one.
    pub fn template(&self, language: Language, name: &str) -> Option<&Template> {
        self.templates.get(&(language, name.to_owned()))
    }

    /// How many templates the file replaces.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }
}

fn language_name(language: Language) -> &'static str {
    match language {
        Language::En => "English (it has Chinese characters)",
        Language::Zh => "Chinese (it has no Chinese characters)",
    }
}

/// One turn's template overrides (reply language and the agent's settings), owned so that an
/// agent's text builder can keep it without borrowing the [`AgentContext`](crate::AgentContext).
#[derive(Debug, Clone, Default)]
pub struct TemplateOverrides {
    language: Language,
    settings: Option<Arc<AgentSettings>>,
}

impl TemplateOverrides {
    /// Overrides in `language` from `settings`.
    pub fn new(language: Language, settings: Option<Arc<AgentSettings>>) -> Self {
        Self { language, settings }
    }

    /// The operator's text for template `name`, rendered with `vars`; `None`: use the built-in.
    pub fn text(&self, name: &str, vars: &[(&str, &dyn fmt::Display)]) -> Option<String> {
        self.settings.as_ref()?.template(self.language, name)?.render(vars)
    }
}

/// The settings of every agent that has a file, by agent id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsSet {
    agents: BTreeMap<String, Arc<AgentSettings>>,
}

impl SettingsSet {
    /// No settings: every agent runs with its built-in behaviour.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A set from validated settings (tests, programmatic configuration).
    pub fn from_agents(agents: impl IntoIterator<Item = (String, AgentSettings)>) -> Self {
        Self { agents: agents.into_iter().map(|(id, s)| (id, Arc::new(s))).collect() }
    }

    /// One agent's settings.
    pub fn get(&self, agent: &str) -> Option<&Arc<AgentSettings>> {
        self.agents.get(agent)
    }

    /// Agent ids with settings.
    pub fn agent_ids(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }

    /// Every extra training phrase, with the agent it belongs to.
    pub fn phrases(&self) -> impl Iterator<Item = (&str, &TrainingPhrase)> {
        self.agents.iter().flat_map(|(id, s)| s.phrases.iter().map(move |p| (id.as_str(), p)))
    }
}

/// Reads every `*.toml` file of `dir` as the settings of the agent its stem names, and validates
/// all of them against `descriptors`. A missing directory is an empty set; any error (an unknown
/// agent, a bad value, a file over [`MAX_FILE_BYTES`]) fails the whole load. Other files (the
/// editor's backups, `README.md`) are ignored.
pub fn load_dir(
    dir: &Path,
    descriptors: &[AgentDescriptor],
) -> Result<SettingsSet, SettingsErrors> {
    let io = |path: &Path, e: std::io::Error| {
        SettingsErrors(vec![SettingsError::Io { path: path.to_owned(), message: e.to_string() }])
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SettingsSet::empty()),
        Err(e) => return Err(io(dir, e)),
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.len() > MAX_FILES {
        return Err(SettingsErrors(vec![SettingsError::Io {
            path: dir.to_owned(),
            message: format!("{} settings files; at most {MAX_FILES}", files.len()),
        }]));
    }
    let mut agents = BTreeMap::new();
    let mut errors = Vec::new();
    for path in files {
        match load_file(&path, descriptors) {
            Ok((id, settings)) => {
                agents.insert(id, Arc::new(settings));
            }
            Err(SettingsErrors(e)) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(SettingsSet { agents }) } else { Err(SettingsErrors(errors)) }
}

fn load_file(
    path: &Path,
    descriptors: &[AgentDescriptor],
) -> Result<(String, AgentSettings), SettingsErrors> {
    let one = |e: SettingsError| SettingsErrors(vec![e]);
    let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
    let Some(descriptor) = descriptors.iter().find(|d| d.id == id) else {
        let known: Vec<&str> = descriptors.iter().map(|d| d.id.as_str()).collect();
        return Err(one(SettingsError::Invalid {
            path: path.to_owned(),
            key: "(file name)".into(),
            message: format!(
                "no agent `{id}` is registered (agents: {}); name the file after the agent",
                known.join(", ")
            ),
        }));
    };
    let io = |e: std::io::Error| {
        one(SettingsError::Io { path: path.to_owned(), message: e.to_string() })
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(one(SettingsError::Io {
            path: path.to_owned(),
            message: format!("{len} bytes; settings files are at most {MAX_FILE_BYTES} bytes"),
        }));
    }
    let mut bytes = Vec::new();
    // The file may grow after the size check: read at most one byte past the limit.
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE_BYTES + 1), &mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(one(SettingsError::Io {
            path: path.to_owned(),
            message: format!("settings files are at most {MAX_FILE_BYTES} bytes"),
        }));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        one(SettingsError::Parse { path: path.to_owned(), message: "not UTF-8 text".into() })
    })?;
    Ok((id, AgentSettings::parse(path, &text, descriptor)?))
}

/// The settings a running service reads on every turn and swaps as a whole on reload.
#[derive(Debug, Default)]
pub struct LiveSettings {
    current: RwLock<Arc<SettingsSet>>,
}

impl LiveSettings {
    /// A cell holding `set`.
    pub fn new(set: SettingsSet) -> Self {
        Self { current: RwLock::new(Arc::new(set)) }
    }

    /// The current set (a cheap snapshot: a turn keeps using it even if a reload happens).
    pub fn current(&self) -> Arc<SettingsSet> {
        // A poisoned lock only means a writer panicked between two whole-set swaps.
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the whole set; turns that start afterwards see it.
    pub fn replace(&self, set: SettingsSet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::Route;

    fn order() -> AgentDescriptor {
        AgentDescriptor::new(
            "order",
            vec![Route::ORDER],
            "Orders: status, tracking, cancellations.",
            &["where is my order", "我的订单到哪了"],
            &["get_order", "list_orders", "cancel_order"],
        )
        .with_templates(vec![
            TemplateSpec::new("status", &["order_id", "status"], "an order's status"),
            TemplateSpec::new("ask_order_id", &[], "asks for the order number"),
        ])
    }

    fn parse(text: &str) -> Result<AgentSettings, String> {
        AgentSettings::parse(Path::new("order.toml"), text, &order()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_file_parses_and_renders() {
        let s = parse(
            r#"
            tools = ["get_order", "list_orders", "get_order"]
            [thresholds]
            min_confidence = 0.6
            max_clarifications = 2
            max_steps = 3
            [phrases]
            en = ["where's my parcel"]
            zh = ["我的包裹在哪"]
            [templates.en]
            status = "Order {order_id}: {status} {{literally}}"
            [templates.zh]
            ask_order_id = "请提供订单号。"
            "#,
        )
        .unwrap();
        assert_eq!(s.tools, Some(vec!["get_order".to_owned(), "list_orders".to_owned()]));
        assert_eq!(s.thresholds.min_confidence, Some(0.6));
        assert_eq!(s.thresholds.max_clarifications, Some(2));
        assert_eq!(s.thresholds.max_steps, Some(3));
        assert_eq!(s.phrases.len(), 2);
        assert_eq!(s.phrases[1].language, Language::Zh);
        assert_eq!(s.template_count(), 2);
        let t = s.template(Language::En, "status").unwrap();
        let rendered = t.render(&[("order_id", &"#W1"), ("status", &"shipped")]).unwrap();
        assert_eq!(rendered, "Order #W1: shipped {literally}");
        // A value the agent forgot to pass: no text rather than a half-rendered one.
        assert_eq!(t.render(&[("order_id", &"#W1")]), None);
        assert!(s.template(Language::Zh, "status").is_none());
        assert!(s.template(Language::En, "ask_order_id").is_none());
        // An empty file is valid and changes nothing.
        assert_eq!(parse("").unwrap(), AgentSettings::default());
        // So is an explicitly empty allow-list (the agent may call no tool).
        assert_eq!(parse("tools = []").unwrap().tools, Some(Vec::new()));
    }

    #[test]
    fn widened_or_unknown_tools_are_refused() {
        let err = parse(r#"tools = ["get_order", "create_ticket"]"#).unwrap_err();
        assert!(err.contains("tools") && err.contains("`create_ticket`"), "{err}");
        assert!(err.contains("only narrow"), "{err}");
        let err = parse(r#"tools = ["rm_rf"]"#).unwrap_err();
        assert!(err.contains("`rm_rf`"), "{err}");
    }

    #[test]
    fn bad_templates_are_refused_with_the_key_named() {
        let err = parse("[templates.en]\nstatus = \"Order {order_id} for {customer_email}\"")
            .unwrap_err();
        assert!(err.contains("templates.en.status") && err.contains("{customer_email}"), "{err}");
        assert!(err.contains("{order_id}, {status}"), "{err}");
        let err = parse("[templates.en]\nrefund = \"x\"").unwrap_err();
        assert!(err.contains("no template `refund`") && err.contains("status"), "{err}");
        for bad in ["Order {order_id", "Order {}", "Order }", "Order {order id}", "{{{"] {
            let err = parse(&format!("[templates.en]\nstatus = {bad:?}")).unwrap_err();
            assert!(err.contains("templates.en.status"), "{bad}: {err}");
        }
        let err = parse("[templates.en]\nstatus = \"  \"").unwrap_err();
        assert!(err.contains("empty template"), "{err}");
        let err = parse("[templates.fr]\nstatus = \"x\"").unwrap_err();
        assert!(err.contains("fr"), "{err}");
        let long = "x".repeat(MAX_TEMPLATE_CHARS + 1);
        let err = parse(&format!("[templates.en]\nstatus = \"{long}\"")).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn wrong_types_unknown_keys_and_out_of_range_values_are_refused() {
        let err = parse("[thresholds]\nmin_confidence = \"high\"").unwrap_err();
        assert!(err.contains("order.toml"), "{err}");
        assert!(err.contains("invalid type") || err.contains("expected"), "{err}");
        let err = parse("tools = \"get_order\"").unwrap_err();
        assert!(err.contains("sequence") || err.contains("expected"), "{err}");
        let err = parse("[thresholds]\nmin_confidenc = 0.5").unwrap_err();
        assert!(err.contains("min_confidenc"), "{err}");
        let err = parse("policy = \"model_driven\"").unwrap_err();
        assert!(err.contains("policy"), "{err}");
        let err =
            parse("[thresholds]\nmin_confidence = 1.5\nmax_steps = 0\nmax_clarifications = 9")
                .unwrap_err();
        assert!(err.contains("thresholds.min_confidence"), "{err}");
        assert!(err.contains("thresholds.max_steps"), "{err}");
        assert!(err.contains("thresholds.max_clarifications"), "{err}");
        let err = parse("[thresholds]\nmin_confidence = nan").unwrap_err();
        assert!(err.contains("thresholds.min_confidence"), "{err}");
        let err = parse("[thresholds]\nmax_clarifications = -1").unwrap_err();
        assert!(err.contains("order.toml"), "{err}");
        let err = parse("this is not toml = = =").unwrap_err();
        assert!(err.contains("order.toml"), "{err}");
    }

    #[test]
    fn phrases_must_be_in_their_language() {
        let err =
            parse("[phrases]\nzh = [\"where is it\"]\nen = [\"我的订单\", \" \"]").unwrap_err();
        assert!(err.contains("phrases.zh[0]"), "{err}");
        assert!(err.contains("phrases.en[0]") && err.contains("phrases.en[1]"), "{err}");
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_directory_is_loaded_and_validated_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        let descriptors = vec![order()];
        // Missing directory: nothing configured.
        let set = load_dir(&dir.path().join("absent"), &descriptors).unwrap();
        assert_eq!(set.agent_ids().count(), 0);

        write(dir.path(), "order.toml", "[templates.en]\nask_order_id = \"Number please.\"");
        write(dir.path(), "README.md", "not settings");
        write(dir.path(), "order.toml~", "garbage = = =");
        let set = load_dir(dir.path(), &descriptors).unwrap();
        assert_eq!(set.agent_ids().collect::<Vec<_>>(), vec!["order"]);
        assert!(set.get("order").unwrap().template(Language::En, "ask_order_id").is_some());

        // An unknown agent fails the whole load, naming the file.
        write(dir.path(), "loyalty.toml", "");
        let err = load_dir(dir.path(), &descriptors).unwrap_err().to_string();
        assert!(err.contains("loyalty.toml") && err.contains("no agent `loyalty`"), "{err}");
        std::fs::remove_file(dir.path().join("loyalty.toml")).unwrap();

        // A huge file is refused unread.
        let huge = format!("# {}\n", "x".repeat(MAX_FILE_BYTES as usize));
        write(dir.path(), "order.toml", &huge);
        let err = load_dir(dir.path(), &descriptors).unwrap_err().to_string();
        assert!(err.contains("order.toml") && err.contains("at most"), "{err}");

        // Not UTF-8.
        std::fs::write(dir.path().join("order.toml"), [0xff, 0xfe, 0x00]).unwrap();
        let err = load_dir(dir.path(), &descriptors).unwrap_err().to_string();
        assert!(err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn live_settings_swap_whole_sets() {
        let live = LiveSettings::new(SettingsSet::empty());
        let before = live.current();
        let settings = parse("tools = [\"get_order\"]").unwrap();
        live.replace(SettingsSet::from_agents([("order".to_owned(), settings)]));
        assert!(before.get("order").is_none(), "a snapshot does not change under a reader");
        assert_eq!(
            live.current().get("order").unwrap().tools.as_deref(),
            Some(&["get_order".to_owned()][..])
        );
        assert_eq!(live.current().phrases().count(), 0);
    }
}
