//! The operators' per-agent settings files (`[agent_settings] dir`, one `<agent id>.toml` each),
//! loaded at start and reloaded while the server runs.
//!
//! At start a bad file stops the start with every error named. Afterwards the directory is
//! watched (inotify and friends through `notify`, and polled every `poll_ms` as a fallback for
//! file systems without events): when the files' contents change, the whole directory is loaded
//! and validated again; a good set is swapped into the orchestrator's [`LiveSettings`] and applies
//! from the next turn, a bad one is logged with every error, keeps the previous settings and is
//! reported in [`ReloadStatus`].

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use fenliu_agent::AgentDescriptor;
use fenliu_agent::settings::{LiveSettings, MAX_FILE_BYTES, SettingsSet, load_dir};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

/// `[agent_settings]`: where the per-agent settings files are and how changes are noticed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettingsConfig {
    /// The directory of `<agent id>.toml` files; a missing directory means no settings.
    pub dir: PathBuf,
    /// Reload the files when they change, without a restart.
    pub watch: bool,
    /// How often the directory is checked when no file-system event arrives, in milliseconds.
    pub poll_ms: u64,
}

impl Default for AgentSettingsConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("config/agents"), watch: true, poll_ms: 1_000 }
    }
}

impl AgentSettingsConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.dir.as_os_str().is_empty() {
            return Err("agent_settings.dir must not be empty".into());
        }
        if !(50..=3_600_000).contains(&self.poll_ms) {
            return Err(format!(
                "agent_settings.poll_ms must be in 50..=3600000, got {}",
                self.poll_ms
            ));
        }
        Ok(())
    }
}

/// What the last load of the settings directory did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReloadStatus {
    /// Successful loads so far (the start counts as the first).
    pub generation: u64,
    /// When the settings in force were loaded.
    pub loaded_at: Option<DateTime<Utc>>,
    /// Agents with a settings file in force.
    pub agents: Vec<String>,
    /// The errors of the last attempt, when it failed (the previous settings stay in force).
    pub last_error: Option<String>,
    /// When the last attempt failed.
    pub failed_at: Option<DateTime<Utc>>,
}

/// The running settings: the cell the orchestrator reads and the status of the last reload.
#[derive(Debug, Clone)]
pub struct SettingsHandle {
    /// The cell the orchestrator reads every turn.
    pub live: Arc<LiveSettings>,
    status: Arc<RwLock<ReloadStatus>>,
}

impl SettingsHandle {
    /// The status of the last load.
    pub fn status(&self) -> ReloadStatus {
        self.status.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Loads the settings directory for `descriptors`; every error in one message.
pub fn load(
    config: &AgentSettingsConfig,
    descriptors: &[AgentDescriptor],
) -> anyhow::Result<SettingsSet> {
    load_dir(&config.dir, descriptors)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("agent settings in {} (agent_settings.dir)", config.dir.display()))
}

/// Wraps a set loaded at start and, with `watch`, starts reloading it when the files change.
/// `seen` is the directory's [`fingerprint`] taken *before* `initial` was loaded, so that an edit
/// made while starting is not missed. Must run inside a tokio runtime; the watcher stops when the
/// orchestrator's cell is dropped.
pub fn start(
    config: &AgentSettingsConfig,
    descriptors: Vec<AgentDescriptor>,
    initial: SettingsSet,
    seen: u64,
) -> SettingsHandle {
    let status = ReloadStatus {
        generation: 1,
        loaded_at: Some(Utc::now()),
        agents: initial.agent_ids().map(str::to_owned).collect(),
        ..ReloadStatus::default()
    };
    info!(dir = %config.dir.display(), agents = ?status.agents, "agent settings loaded");
    let handle = SettingsHandle {
        live: Arc::new(LiveSettings::new(initial)),
        status: Arc::new(RwLock::new(status)),
    };
    if config.watch {
        let watcher = Watcher {
            dir: config.dir.clone(),
            descriptors,
            live: Arc::downgrade(&handle.live),
            status: handle.status.clone(),
            poll: Duration::from_millis(config.poll_ms),
            seen,
        };
        tokio::spawn(watcher.run());
    }
    handle
}

/// A fingerprint of the directory's settings files: names and contents (size and modification
/// time for files too large to read), so that edits within one clock tick are still noticed.
pub fn fingerprint(dir: &Path) -> u64 {
    let mut hasher = DefaultHasher::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for path in files {
        path.hash(&mut hasher);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                m.len().hash(&mut hasher);
                m.modified().ok().hash(&mut hasher);
            }
            Ok(_) => std::fs::read(&path).unwrap_or_default().hash(&mut hasher),
            Err(_) => 0u8.hash(&mut hasher),
        }
    }
    hasher.finish()
}

struct Watcher {
    dir: PathBuf,
    descriptors: Vec<AgentDescriptor>,
    live: Weak<LiveSettings>,
    status: Arc<RwLock<ReloadStatus>>,
    poll: Duration,
    seen: u64,
}

impl Watcher {
    async fn run(self) {
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
        // File-system events only wake the loop early; the poll below notices changes without them.
        let _fs_watcher = {
            use notify::Watcher as _;
            let mut w =
                notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
                    let _ = tx.send(());
                });
            match &mut w {
                Ok(w) => {
                    if let Err(e) = w.watch(&self.dir, notify::RecursiveMode::NonRecursive) {
                        warn!(dir = %self.dir.display(), error = %e, "cannot watch the agent settings directory; polling it");
                    }
                }
                Err(e) => warn!(error = %e, "no file-system events; polling the agent settings"),
            }
            w.ok()
        };
        let mut last = self.seen;
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = events.recv() => {
                    // An editor writes in several steps: let them settle, then drain the burst.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while events.try_recv().is_ok() {}
                }
            }
            if self.live.strong_count() == 0 {
                return;
            }
            let dir = self.dir.clone();
            let descriptors = self.descriptors.clone();
            let Ok(loaded) = tokio::task::spawn_blocking(move || {
                let now = fingerprint(&dir);
                // A change between the fingerprint and the load is seen on the next check.
                (now != last).then(|| (now, load_dir(&dir, &descriptors)))
            })
            .await
            else {
                continue;
            };
            let Some((now, loaded)) = loaded else { continue };
            last = now;
            let Some(live) = self.live.upgrade() else { return };
            let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
            match loaded {
                Ok(set) => {
                    status.generation += 1;
                    status.loaded_at = Some(Utc::now());
                    status.agents = set.agent_ids().map(str::to_owned).collect();
                    status.last_error = None;
                    status.failed_at = None;
                    live.replace(set);
                    info!(dir = %self.dir.display(), agents = ?status.agents, generation = status.generation, "agent settings reloaded");
                }
                Err(e) => {
                    status.last_error = Some(e.to_string());
                    status.failed_at = Some(Utc::now());
                    error!(dir = %self.dir.display(), errors = %e, "agent settings NOT reloaded; the previous settings stay in force");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn shipped_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/agents")
    }

    fn descriptors() -> Vec<AgentDescriptor> {
        crate::runtime::agents().iter().map(|a| a.descriptor()).collect()
    }

    /// The shipped example files change nothing as shipped, and every example in them is valid
    /// once uncommented: the keys, tools, templates and placeholders they document exist.
    #[test]
    fn shipped_examples_are_inert_and_valid_when_uncommented() {
        let config = AgentSettingsConfig { dir: shipped_dir(), ..AgentSettingsConfig::default() };
        let set = load(&config, &descriptors()).unwrap();
        let ids: Vec<String> = descriptors().into_iter().map(|d| d.id).collect();
        let shipped: Vec<&str> = set.agent_ids().collect();
        assert_eq!(shipped.len(), ids.len(), "one example per agent: {shipped:?} vs {ids:?}");
        for id in set.agent_ids() {
            let s = set.get(id).unwrap();
            assert!(s.tools.is_none() && s.phrases.is_empty() && s.template_count() == 0, "{id}");
        }

        let dir = tempfile::tempdir().unwrap();
        for id in &ids {
            let text = std::fs::read_to_string(shipped_dir().join(format!("{id}.toml"))).unwrap();
            let uncommented: Vec<&str> = text
                .lines()
                .map(|l| match l.strip_prefix("# ") {
                    Some(rest)
                        if rest.starts_with('[')
                            || rest.split_once(" = ").is_some_and(|(k, _)| {
                                k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                            }) =>
                    {
                        rest
                    }
                    _ => l,
                })
                .collect();
            std::fs::write(dir.path().join(format!("{id}.toml")), uncommented.join("\n")).unwrap();
        }
        let config = AgentSettingsConfig { dir: dir.path().to_owned(), ..config };
        let set = load(&config, &descriptors()).unwrap_or_else(|e| panic!("{e:#}"));
        for id in &ids {
            let s = set.get(id).unwrap();
            assert!(s.tools.is_some(), "{id}: tools example");
            assert!(s.thresholds.min_confidence.is_some(), "{id}: thresholds example");
            assert!(!s.phrases.is_empty(), "{id}: phrases example");
            assert_eq!(s.template_count(), 2, "{id}: one template example per language");
        }
        // Every template an agent declares is documented in its example file.
        for d in descriptors() {
            let text =
                std::fs::read_to_string(shipped_dir().join(format!("{}.toml", d.id))).unwrap();
            for t in &d.templates {
                assert!(
                    text.contains(&format!("#   {}: ", t.name)),
                    "{}: {} undocumented",
                    d.id,
                    t.name
                );
            }
        }
    }

    async fn until(handle: &SettingsHandle, pred: impl Fn(&ReloadStatus) -> bool) {
        for _ in 0..400 {
            if pred(&handle.status()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out: {:?}", handle.status());
    }

    #[tokio::test]
    async fn the_watcher_swaps_good_sets_and_keeps_the_previous_on_errors() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentSettingsConfig { dir: dir.path().to_owned(), watch: true, poll_ms: 50 };
        let handle = start(&config, descriptors(), SettingsSet::empty(), fingerprint(dir.path()));
        let min_confidence = |h: &SettingsHandle| {
            h.live.current().get("faq").and_then(|s| s.thresholds.min_confidence)
        };

        std::fs::write(dir.path().join("faq.toml"), "[thresholds]\nmin_confidence = 0.7").unwrap();
        until(&handle, |s| s.generation == 2).await;
        assert_eq!(min_confidence(&handle), Some(0.7));
        assert_eq!(handle.status().agents, vec!["faq".to_owned()]);

        std::fs::write(dir.path().join("faq.toml"), "[thresholds]\nmin_confidence = 7.0").unwrap();
        until(&handle, |s| s.last_error.is_some()).await;
        let status = handle.status();
        assert!(status.last_error.unwrap().contains("thresholds.min_confidence"));
        assert_eq!(status.generation, 2);
        assert_eq!(min_confidence(&handle), Some(0.7), "the previous settings stay in force");

        std::fs::remove_file(dir.path().join("faq.toml")).unwrap();
        until(&handle, |s| s.generation == 3).await;
        assert_eq!(min_confidence(&handle), None);
        assert!(handle.status().last_error.is_none());
    }
}
