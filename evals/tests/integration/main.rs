//! End-to-end evals: the real agents, the router's Gemma embedding from `models/`, the trained
//! router and the demo shop; the CI gate against the committed baseline; the HTML report in
//! headless Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::TimeZone;
use fenliu_agent::DynAgent;
use fenliu_evals::compare::{Thresholds, compare};
use fenliu_evals::format::Dataset;
use fenliu_evals::loaders::{DatasetKind, load};
use fenliu_evals::report::Report;
use fenliu_evals::runner::{RunOptions, System, run};
use fenliu_knowledge::DynEmbedder;
use fenliu_models::{GemmaEmbedder, LocalGemma, LocalGemmaOptions};
use fenliu_orchestrator::training::RouterArtifact;
use fenliu_tools_commerce::ShopData;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn system() -> System {
    let models = std::env::var_os("FENLIU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models"));
    // The supervisor's embedding, as the server configures it by default (`router.embedder`);
    // loaded once for the whole binary.
    static GEMMA: std::sync::OnceLock<GemmaEmbedder> = std::sync::OnceLock::new();
    let gemma = GEMMA.get_or_init(|| {
        let model = LocalGemma::load(&models.join(LocalGemma::FILE), LocalGemmaOptions::default())
            .expect("Gemma (run scripts/setup.sh first)");
        GemmaEmbedder::new(model, GemmaEmbedder::DEFAULT_LAYER).unwrap()
    });
    let embedder: Arc<dyn DynEmbedder> = Arc::new(gemma.clone());
    let agents: Vec<Arc<dyn DynAgent>> = vec![
        Arc::new(fenliu_agent_order::OrderAgent::new()),
        Arc::new(fenliu_agent_after_sales::AfterSalesAgent::new()),
        Arc::new(fenliu_agent_complaint::ComplaintAgent::new()),
    ];
    let artifact = RouterArtifact::load(&workspace().join("data/router/default.json")).unwrap();
    let shop = ShopData::load_dir(&workspace().join("data/demo")).unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
    System::new(agents, embedder, Some(artifact), shop, now)
}

fn load_all(system: &System, files: &[&str]) -> Vec<Dataset> {
    let routes = system.routes();
    files
        .iter()
        .map(|f| {
            let path = workspace().join(f);
            load(&path, DatasetKind::detect(&path), &routes, &system.shop).unwrap()
        })
        .collect()
}

const SOURCES: [&str; 5] = [
    "data/evals/sources/bitext.csv",
    "data/evals/sources/clinc150.json",
    "data/evals/sources/banking77.csv",
    "data/evals/sources/crosswoz.jsonl",
    "data/evals/sources/tau_retail_tasks.jsonl",
];

#[test]
fn every_shipped_dataset_loads_without_bad_rows() {
    let routes: std::collections::BTreeSet<fenliu_agent::Route> =
        fenliu_agent::Route::TAXONOMY.into_iter().collect();
    let shop = ShopData::load_dir(&workspace().join("data/demo")).unwrap();
    let mut files = vec!["data/evals/scenarios.jsonl"];
    files.extend(SOURCES);
    for f in files {
        let path = workspace().join(f);
        let kind = DatasetKind::detect(&path);
        let d = load(&path, kind, &routes, &shop).unwrap();
        assert!(d.errors.is_empty(), "{f}: {:#?}", d.errors);
        assert!(d.conversations.len() >= 18, "{f}: {}", d.conversations.len());
        eprintln!("{f}: {} conversations as {}", d.conversations.len(), kind.name());
    }
}

/// The CI gate: a small eval compared with `data/evals/baseline.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate() {
    let system = system();
    let mut files = vec!["data/evals/scenarios.jsonl"];
    files.extend(SOURCES);
    let datasets = load_all(&system, &files);
    let options = RunOptions { jobs: 2, limit: Some(40), ..RunOptions::default() };
    let result = run(Arc::new(system), &datasets, &options).await.unwrap();
    let report = Report::new(result);
    print!("{}", report.table());
    let out = workspace().join("target/evals");
    let [json, _, html] = report.write_all(&out, "gate").unwrap();
    println!("reports: {} {}", json.display(), html.display());
    assert_eq!(report.overall.failed_conversations, 0, "{:#?}", report.errors);

    let baseline_path = workspace().join("data/evals/baseline.json");
    let mut slim = report.clone();
    slim.conversations.clear();
    slim.info.started_at.clear();
    if std::env::var_os("FENLIU_EVAL_UPDATE_BASELINE").is_some() {
        std::fs::write(&baseline_path, serde_json::to_string_pretty(&slim).unwrap() + "\n")
            .unwrap();
        println!("baseline written to {}", baseline_path.display());
        return;
    }
    let baseline = Report::load(&baseline_path).expect(
        "data/evals/baseline.json (regenerate: FENLIU_EVAL_UPDATE_BASELINE=1 cargo test -p \
         fenliu-evals --test integration gate)",
    );
    let thresholds = Thresholds { quality: 0.05, route_f1: 0.10, ..Thresholds::default() };
    let c = compare(&baseline, &slim, &thresholds);
    print!("{}", c.table());
    assert!(
        c.passed(),
        "the eval regressed against data/evals/baseline.json; if the change is intended, \
         regenerate it: FENLIU_EVAL_UPDATE_BASELINE=1 cargo test -p fenliu-evals --test \
         integration gate"
    );
}

/// A conversation that cannot run (unknown customer) is recorded as failed; the rest run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_conversation_fails_alone() {
    let system = Arc::new(system());
    let mut datasets = load_all(&system, &["data/evals/scenarios.jsonl"]);
    let mut stranger = datasets[0].conversations[0].clone();
    stranger.id = "stranger".into();
    stranger.customer.id = Some("nobody_0000".into());
    datasets[0].conversations.push(stranger);
    let options = RunOptions { jobs: 2, ..RunOptions::default() };
    let report = Report::new(run(system, &datasets, &options).await.unwrap());
    assert_eq!(report.overall.failed_conversations, 1);
    assert_eq!(report.overall.conversations, 19);
    let failed = report.errors.iter().find(|e| e.category == "run").unwrap();
    assert_eq!(failed.conversation, "stranger");
    assert!(failed.got.contains("nobody_0000"), "{failed:?}");
}

/// A router model that always answers `out_of_scope`, counting its calls.
struct FixedRouter(std::sync::atomic::AtomicUsize);

impl fenliu_agent::ChatModel for FixedRouter {
    fn model_id(&self) -> &str {
        "fixed-router"
    }

    async fn chat(
        &self,
        _request: fenliu_agent::ChatRequest,
    ) -> Result<fenliu_agent::ChatResponse, fenliu_agent::ModelError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(fenliu_agent::ChatResponse {
            message: fenliu_agent::ChatMessage::assistant(
                r#"{"route": "out_of_scope", "confidence": 0.9}"#,
            ),
            finish_reason: fenliu_agent::FinishReason::Stop,
            usage: fenliu_agent::Usage { prompt_tokens: 100, completion_tokens: 12 },
            model: "fixed-router".into(),
        })
    }
}

/// The LLM stage's calls and tokens are recorded per turn; a replay cache records them and a
/// replay-only rerun gives the same turns without calling the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_calls_are_metered_and_replayed() {
    use fenliu_evals::models::{Replay, ReplayCache};
    let dir = tempfile::tempdir().unwrap();
    let cache_path = dir.path().join("replay.jsonl");
    let live = Arc::new(FixedRouter(Default::default()));
    let mut datasets = load_all(&system(), &["data/evals/scenarios.jsonl"]);
    datasets[0].conversations.retain(|c| c.id == "out-of-scope-en" || c.id == "order-status-zh");
    let strip = |mut r: fenliu_evals::runner::EvalRun| {
        for c in &mut r.conversations {
            for t in &mut c.turns {
                t.latency_ms = 0.0;
            }
        }
        r.conversations
    };
    let run_with = |model: Arc<dyn fenliu_agent::DynChatModel>| {
        let mut s = system();
        // Every classifier decision goes on to the LLM stage.
        s.router.lexical_threshold = 1.0;
        s.router.semantic_threshold = 1.0;
        s.router_model = Some(model);
        let datasets = datasets.clone();
        async move {
            let options = RunOptions { jobs: 1, ..RunOptions::default() };
            run(Arc::new(s), &datasets, &options).await.unwrap()
        }
    };
    let cache = Arc::new(ReplayCache::open(&cache_path).unwrap());
    let recorded =
        run_with(Arc::new(Replay::new("fixed-router", Some(live.clone()), cache.clone()))).await;
    assert_eq!(cache.save().unwrap(), 2);
    let calls = live.0.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(calls, 2, "one LLM call per conversation");
    let m = Report::new(recorded.clone()).overall;
    assert_eq!(m.llm_calls_per_turn, 1.0);
    assert_eq!(m.tokens_per_turn, 112.0);
    assert!(recorded.conversations.iter().all(|c| c.turns[0].stage == "llm"));

    let replay_cache = Arc::new(ReplayCache::open(&cache_path).unwrap());
    let replayed = run_with(Arc::new(Replay::new("replay", None, replay_cache.clone()))).await;
    assert_eq!(live.0.load(std::sync::atomic::Ordering::SeqCst), calls, "no live call");
    assert_eq!(replay_cache.stats(), (2, 0));
    assert_eq!(strip(recorded), strip(replayed));
}

/// Runs twice with the same seed: the same turns (latencies aside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_deterministic_and_tasks_are_judged_by_state() {
    let system = Arc::new(system());
    let datasets = load_all(&system, &["data/evals/scenarios.jsonl"]);
    let options = RunOptions { jobs: 2, trials: 2, ..RunOptions::default() };
    let strip = |mut r: fenliu_evals::runner::EvalRun| {
        for c in &mut r.conversations {
            for t in &mut c.turns {
                t.latency_ms = 0.0;
            }
        }
        r.conversations
    };
    let a = strip(run(system.clone(), &datasets, &options).await.unwrap());
    let b = strip(run(system.clone(), &datasets, &options).await.unwrap());
    assert_eq!(a, b);
    let report = Report::new(fenliu_evals::runner::EvalRun {
        conversations: a.clone(),
        info: Default::default(),
        bad_rows: vec![],
    });
    // Every scripted scenario with a task ends in the expected state.
    let tasks = &report.overall.tasks;
    assert!(tasks.len() >= 5, "{tasks:?}");
    assert!(tasks.iter().all(|t| t.trials == 2 && t.passed == 2), "{:#?}", report.errors);
    assert_eq!(report.overall.pass_k.get(&2), Some(&1.0));
    let cancel = a.iter().find(|c| c.id == "cancel-with-confirmation-en").unwrap();
    assert_eq!(cancel.turns[1].tools[0].name, "cancel_order");
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"].iter().find_map(
        |name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file())
            })
        },
    )
}

fn headless(browser: &Path, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .unwrap()
}

/// The HTML report opened in headless Chromium: the charts are in the rendered page, and a
/// screenshot is written to target/evals/report-screenshot.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIP: html_report_renders_in_headless_chromium: no chromium on PATH (apt-get install chromium)"
        );
        return;
    };
    let system = Arc::new(system());
    let datasets = load_all(&system, &["data/evals/scenarios.jsonl", SOURCES[0]]);
    let options = RunOptions { jobs: 2, limit: Some(30), ..RunOptions::default() };
    let report = Report::new(run(system, &datasets, &options).await.unwrap());
    let out = workspace().join("target/evals");
    let [_, _, html] = report.write_all(&out, "chromium").unwrap();
    let url = format!("file://{}", html.canonicalize().unwrap().display());

    let dom = headless(&browser, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<svg").count(), 4, "four charts in the rendered page");
    for id in ["confusion", "routes", "latency", "stages"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "chart {id}");
    }
    assert!(dom.contains("Confusion matrix") && dom.contains("<rect"), "chart contents rendered");

    let png = out.join("report-screenshot.png");
    let _ = std::fs::remove_file(&png);
    let shot = headless(
        &browser,
        &["--window-size=1280,1800", &format!("--screenshot={}", png.display()), &url],
    );
    let bytes = std::fs::read(&png)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&shot.stderr)));
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    assert!(bytes.len() > 20_000, "a page with charts, not a blank one: {} bytes", bytes.len());
    println!("screenshot of the HTML report: {} ({} bytes)", png.display(), bytes.len());
}
