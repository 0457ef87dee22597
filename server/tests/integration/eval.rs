//! `fenliu eval` and `fenliu eval compare` as a user runs them.

use std::process::Output;

use super::workspace;

async fn fenliu(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fenliu"))
        .args(args)
        .current_dir(workspace())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn eval_reports_bad_rows_and_compare_fails_only_on_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let mut rows = b"{\"fenliu_eval\": 1}\n".to_vec();
    rows.extend(br#"{"id": "ok", "turns": [{"role": "user", "text": "agent please", "expect": {"route": "human", "escalate": true}}]}"#);
    rows.extend(b"\n{\"id\": \"broken\", \"turns\": [\n");
    rows.extend(br#"{"id": "weather", "turns": [{"role": "user", "text": "hi", "expect": {"route": "weather"}}]}"#);
    rows.extend(
        b"\n{\"id\": \"latin1\", \"turns\": [{\"role\": \"user\", \"text\": \"caf\xe9\"}]}\n",
    );
    rows.extend(br#"{"turns": [{"role": "user", "text": "no id"}]}"#);
    std::fs::write(&bad, rows).unwrap();
    let out_dir = dir.path().display().to_string();
    let scenarios = workspace().join("data/evals/scenarios.jsonl").display().to_string();
    let bad_path = bad.display().to_string();
    let run = fenliu(&[
        "eval", "--quiet", "--data", &scenarios, "--data", &bad_path, "--out", &out_dir, "--name",
        "base",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    // Bad rows are named with their line numbers; the run continues with the rest.
    for line in [
        format!("{bad_path}:3: broken JSON"),
        format!("{bad_path}:4: conversation `weather`: turn 1: unknown route `weather`"),
        format!("{bad_path}:5: not valid UTF-8"),
        format!("{bad_path}:6: missing field `id`"),
    ] {
        assert!(stderr.contains(&line), "{line}\n{stderr}");
    }
    assert!(
        stdout.contains("routing accuracy") && stdout.contains("4 bad rows skipped"),
        "{stdout}"
    );
    for ext in ["json", "md", "html"] {
        assert!(dir.path().join(format!("base.{ext}")).is_file(), "{ext} report");
    }
    let base = dir.path().join("base.json");
    let base_s = base.display().to_string();

    // Identical runs pass.
    let same = fenliu(&["eval", "compare", &base_s, &base_s]).await;
    let table = String::from_utf8_lossy(&same.stdout);
    assert!(same.status.success(), "{table}");
    assert!(table.contains("no regression"), "{table}");

    // An injected regression fails with exit code 1 and names the metric.
    let mut report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    let accuracy = report["overall"]["accuracy"].as_f64().unwrap();
    report["overall"]["accuracy"] = serde_json::json!(accuracy - 0.10);
    report["overall"]["automation_rate"]["value"] = serde_json::json!(0.1);
    let worse = dir.path().join("worse.json");
    std::fs::write(&worse, serde_json::to_vec(&report).unwrap()).unwrap();
    let regressed = fenliu(&["eval", "compare", &base_s, &worse.display().to_string()]).await;
    let table = String::from_utf8_lossy(&regressed.stdout);
    assert_eq!(regressed.status.code(), Some(1), "{table}");
    assert!(table.contains("all: routing accuracy") && table.contains("REGRESSION"), "{table}");
    assert!(table.contains("2 regression(s)"), "{table}");

    // Not a report: a clear error, not a panic.
    let junk = fenliu(&["eval", "compare", &base_s, &bad_path]).await;
    assert!(!junk.status.success());
    assert!(String::from_utf8_lossy(&junk.stderr).contains("not JSON"));
}
