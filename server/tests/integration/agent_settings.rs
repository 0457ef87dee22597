//! Per-agent configuration end to end: the settings directory edited while the server runs
//! (a good edit applies to the next turn, a bad one keeps the previous settings and is reported),
//! and `[agents.order] policy = "model_driven"` with a hosted model reached over loopback HTTP.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fenliu_server::app::MessageResponse;
use fenliu_server::bench_turns::{MockStats, mock_openai};
use fenliu_server::config::{AgentConfig, AgentPolicy};
use fenliu_server::runtime::Runtime;
use serde_json::json;

use super::test_config;

/// A server on 127.0.0.1:0 whose settings handle the test keeps.
struct Running {
    base: String,
    client: reqwest::Client,
    settings: fenliu_server::agent_settings::SettingsHandle,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(dir: tempfile::TempDir, config: fenliu_server::config::Config) -> Self {
        let runtime = Runtime::build(&config).await.expect("runtime (run scripts/setup.sh first)");
        let settings = runtime.settings.clone();
        let app = fenliu_server::app::router(runtime, &config.server);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, client: reqwest::Client::new(), settings, _dir: dir }
    }

    async fn say(&self, customer: &str, text: &str) -> MessageResponse {
        let r = self
            .client
            .post(format!("{}/v1/messages", self.base))
            .json(&json!({"customer_id": customer, "text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    }
}

/// Polls `check` until it holds or `timeout` passes; returns whether it held.
async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

const COMPLAIN: &str = "I want to make a complaint";

#[tokio::test]
async fn edited_settings_apply_to_the_next_turn_and_bad_edits_keep_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let agents_dir = dir.path().join("agents");
    std::fs::create_dir(&agents_dir).unwrap();
    std::fs::write(
        agents_dir.join("complaint.toml"),
        "[templates.en]\nask_details = \"Version one: what happened?\"\n",
    )
    .unwrap();
    let mut config = test_config(dir.path());
    config.agent_settings.dir = agents_dir.clone();
    config.agent_settings.poll_ms = 100;
    let running = Running::start(dir, config).await;
    let s = &running;
    assert_eq!(s.settings.status().generation, 1);
    assert_eq!(s.settings.status().agents, vec!["complaint".to_owned()]);
    let first = s.say("james_li_5688", COMPLAIN).await;
    assert_eq!(first.reply, "Version one: what happened?", "{first:?}");

    // A good edit: the next turn uses it, no restart.
    std::fs::write(
        agents_dir.join("complaint.toml"),
        "[templates.en]\nask_details = \"Version two: tell me everything.\"\n",
    )
    .unwrap();
    let applied = eventually(Duration::from_secs(20), || async move {
        s.say("james_li_5688", COMPLAIN).await.reply == "Version two: tell me everything."
    })
    .await;
    assert!(applied, "the edit was not applied: {:?}", s.settings.status());
    assert_eq!(s.settings.status().generation, 2);

    // A bad edit (an unknown placeholder) is reported and the previous settings stay in force.
    std::fs::write(
        agents_dir.join("complaint.toml"),
        "[templates.en]\nask_details = \"Version three for {customer_email}\"\n",
    )
    .unwrap();
    let reported =
        eventually(
            Duration::from_secs(20),
            || async move { s.settings.status().last_error.is_some() },
        )
        .await;
    let status = s.settings.status();
    assert!(reported, "the bad edit was not reported: {status:?}");
    let error = status.last_error.unwrap();
    assert!(
        error.contains("complaint.toml")
            && error.contains("templates.en.ask_details")
            && error.contains("{customer_email}"),
        "{error}"
    );
    assert_eq!(status.generation, 2);
    assert_eq!(s.say("james_li_5688", COMPLAIN).await.reply, "Version two: tell me everything.");

    // A file for an agent that does not exist is refused as a whole, too.
    // (Written before the complaint file is emptied, so no intermediate state is valid.)
    std::fs::write(agents_dir.join("loyalty.toml"), "").unwrap();
    std::fs::write(agents_dir.join("complaint.toml"), "").unwrap();
    let reported = eventually(Duration::from_secs(20), || async move {
        s.settings.status().last_error.is_some_and(|e| e.contains("loyalty.toml"))
    })
    .await;
    assert!(reported, "{:?}", s.settings.status());
    assert_eq!(s.say("james_li_5688", COMPLAIN).await.reply, "Version two: tell me everything.");

    // Fixed: the empty complaint file applies, and the built-in text is back.
    std::fs::remove_file(agents_dir.join("loyalty.toml")).unwrap();
    let applied = eventually(Duration::from_secs(20), || async move {
        s.settings.status().last_error.is_none() && s.settings.status().generation == 3
    })
    .await;
    assert!(applied, "{:?}", s.settings.status());
    let reply = s.say("james_li_5688", COMPLAIN).await.reply;
    assert!(reply.starts_with("I'm sorry something went wrong."), "{reply}");
}

#[tokio::test]
async fn a_bad_settings_file_stops_the_start_with_every_error_named() {
    let dir = tempfile::tempdir().unwrap();
    let agents_dir = dir.path().join("agents");
    std::fs::create_dir(&agents_dir).unwrap();
    std::fs::write(agents_dir.join("order.toml"), "tools = [\"get_order\", \"create_ticket\"]")
        .unwrap();
    std::fs::write(agents_dir.join("faq.toml"), "[thresholds]\nmin_confidence = \"high\"").unwrap();
    let mut config = test_config(dir.path());
    config.agent_settings.dir = agents_dir;
    let err = format!("{:#}", Runtime::build(&config).await.err().expect("must fail"));
    assert!(err.contains("agent_settings.dir"), "{err}");
    assert!(err.contains("order.toml") && err.contains("`create_ticket`"), "{err}");
    assert!(err.contains("faq.toml"), "{err}");
}

#[tokio::test]
async fn the_model_driven_order_agent_answers_from_its_tool_call_over_http() {
    let stats = Arc::new(MockStats::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = mock_openai(stats.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let provider: fenliu_models::ProviderConfig = toml::from_str(&format!(
        "kind = \"openai\"\nbase_url = \"{mock}\"\nmodel = \"mock\"\nmax_retries = 0"
    ))
    .unwrap();
    config.models.providers.insert("hosted".into(), provider);
    config.models.roles.insert("order".into(), "hosted".into());
    config.agents.insert("order".into(), AgentConfig { policy: AgentPolicy::ModelDriven });
    let s = Running::start(dir, config).await;

    let out = s.say("james_li_5688", "Where is my order #W2611340?").await;
    assert_eq!(out.agent.as_deref(), Some("order"), "{out:?}");
    // The mock's words, with the tracking number it could only have read from the tool result.
    assert!(out.reply.starts_with("Order #W2611340 is"), "{}", out.reply);
    assert!(out.reply.contains("FedEx 357962501027"), "{}", out.reply);
    let calls: Vec<&str> = out.tool_calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(calls, ["get_order"], "{out:?}");
    assert_eq!(out.tool_calls[0].arguments["order_id"], "#W2611340");
    // The tool call and the answer: two model calls that offered the order agent's tools.
    assert_eq!(stats.with_tools.load(Ordering::Relaxed), 2);
}
