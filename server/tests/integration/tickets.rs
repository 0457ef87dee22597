//! Tickets as routed work over HTTP: a repair ticket opened by the after-sales agent in a real
//! conversation goes through its department queue, is claimed, worked, transferred; the customer
//! hears of each change in the conversation; hostile staff calls get typed errors.

use std::time::Duration;

use fenliu_agent::ConversationStore;
use fenliu_server::tickets::{NOTIFIER, TicketsConfig, deliver_once, spawn_background, sweep_once};
use fenliu_store_sql::SqlStore;
use fenliu_tools_commerce::ticket_tools::extract_ticket_id;
use serde_json::{Value, json};

use super::{Server, called, play, send};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn notices(store: &SqlStore, conversation: &str) -> Vec<String> {
    let state = ConversationStore::load(store, conversation).await.unwrap().unwrap();
    state
        .turns
        .into_iter()
        .filter(|t| t.agent.as_deref() == Some(NOTIFIER))
        .map(|t| t.text)
        .collect()
}

#[tokio::test]
async fn a_repair_ticket_is_routed_worked_transferred_and_the_customer_hears_of_it() {
    let s = Server::start().await;
    let turns = play(
        &s,
        "noah_brown_6181",
        &["The mouse from order W7678072 stopped working, it double clicks", "repair", "yes"],
    )
    .await;
    assert!(called(&turns, "create_ticket"), "{:?}", turns.last().map(|t| &t.reply));
    let conversation = turns[0].conversation_id.clone();
    let id = extract_ticket_id(&turns.last().unwrap().reply).expect("ticket id in the reply");
    let url = |path: &str| format!("{}/v1/tickets/{path}", s.base);

    // The after-sales queue holds it, with the conversation it came from.
    let (status, queue) = send(s.client.get(url("queues/after_sales?status=open"))).await;
    assert_eq!(status, 200, "{queue}");
    let listed = queue["tickets"].as_array().unwrap();
    let ticket = listed.iter().find(|t| t["id"] == id.as_str()).expect("ticket in its queue");
    assert_eq!(ticket["conversation_id"], conversation.as_str());
    assert_eq!(ticket["status"], "open");

    // Claim, then work it; refusals are typed.
    let claim = json!({"agent_id": "ann", "department": "after_sales"});
    let (status, t) = send(s.client.post(url(&format!("{id}/assign"))).json(&claim)).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        (t["status"].as_str(), t["assignee"].as_str()),
        (Some("assigned"), Some("human:ann"))
    );
    let (status, e) = send(s.client.post(url(&format!("{id}/assign"))).json(&claim)).await;
    assert_eq!((status, code(&e)), (409, "wrong_state"), "claimed twice");
    let status_body = |department: &str, to: &str, note: &str| json!({"agent_id": "ann", "department": department, "status": to, "note": note});
    let post_status = |b: Value| send(s.client.post(url(&format!("{id}/status"))).json(&b));
    let (status, e) = post_status(status_body("quality", "in_progress", "")).await;
    assert_eq!((status, code(&e)), (409, "wrong_department"), "{e}");
    let (status, e) = post_status(status_body("after_sales", "closed", "")).await;
    assert_eq!((status, code(&e)), (409, "wrong_state"), "{e}");
    let (status, e) = post_status(status_body("after_sales", "flying", "")).await;
    assert_eq!((status, code(&e)), (422, "invalid_request"), "bad status: {e}");
    let (status, e) = post_status(status_body("marketing", "in_progress", "")).await;
    assert_eq!((status, code(&e)), (422, "invalid_request"), "bad department: {e}");
    let (status, e) =
        post_status(status_body("after_sales", "in_progress", &"n".repeat(3_000))).await;
    assert_eq!((status, code(&e)), (422, "invalid_request"), "oversized note: {e}");
    let (status, e) =
        send(s.client.post(url(&format!("{id}/status"))).json(&json!({"agent_id": "ann"}))).await;
    assert_eq!((status, code(&e)), (422, "invalid_request"), "missing fields: {e}");
    let (status, t) = post_status(status_body("after_sales", "in_progress", "label sent")).await;
    assert_eq!((status, t["status"].as_str()), (200, Some("in_progress")), "{t}");

    // Transfer to logistics: open there, nobody owns it, the old queue no longer acts on it.
    let transfer = json!({"agent_id": "ann", "department": "after_sales", "to": "logistics",
                          "note": "customer prefers a return"});
    let (status, t) = send(s.client.post(url(&format!("{id}/transfer"))).json(&transfer)).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!((t["department"].as_str(), t["status"].as_str()), (Some("logistics"), Some("open")));
    assert!(t["assignee"].is_null());
    let (status, e) = post_status(status_body("after_sales", "assigned", "")).await;
    assert_eq!((status, code(&e)), (409, "wrong_department"));
    let (_, queue) = send(s.client.get(url("queues/logistics"))).await;
    assert!(queue["tickets"].as_array().unwrap().iter().any(|t| t["id"] == id.as_str()));
    let (_, queue) = send(s.client.get(url("queues/after-sales"))).await;
    assert!(!queue["tickets"].as_array().unwrap().iter().any(|t| t["id"] == id.as_str()));

    let (status, h) = send(s.client.get(url(&format!("{id}/history")))).await;
    assert_eq!(status, 200, "{h}");
    let kinds: Vec<&str> =
        h["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "assigned", "status", "transferred"]);
    let last = &h["history"][3];
    assert_eq!(
        (last["from_department"].as_str(), last["to_department"].as_str()),
        (Some("after_sales"), Some("logistics"))
    );
    assert_eq!(last["actor"], "human:ann");
    assert_eq!(last["note"], "customer prefers a return");

    // Hostile and unknown names.
    for (path, want) in [
        ("T-999999".to_owned(), (404, "unknown_ticket")),
        ("T-999999/history".to_owned(), (404, "unknown_ticket")),
        ("abc".to_owned(), (422, "invalid_id")),
        ("queues/marketing".to_owned(), (404, "unknown_department")),
        ("queues/logistics?status=bogus".to_owned(), (422, "invalid_status")),
        ("queues/logistics?limit=0".to_owned(), (422, "invalid_request")),
        ("queues/logistics?limit=abc".to_owned(), (422, "invalid_request")),
        (format!("queues/{}", "x".repeat(5_000)), (404, "unknown_department")),
    ] {
        let (status, e) = send(s.client.get(url(&path))).await;
        assert_eq!((status, code(&e)), want, "{path}: {e}");
    }
    let (status, e) =
        send(s.client.post(url("T-999999/status")).json(&status_body("logistics", "closed", "")))
            .await;
    assert_eq!((status, code(&e)), (404, "unknown_ticket"));
    let (status, e) = send(
        s.client
            .post(url(&format!("{id}/assign")))
            .json(&json!({"agent_id": "a\u{0}b", "department": "logistics"})),
    )
    .await;
    assert_eq!((status, code(&e)), (422, "invalid_id"));
    let huge = json!({"agent_id": "ann", "department": "logistics", "to": "finance",
                      "note": "x".repeat(100_000)});
    let (status, _) = send(s.client.post(url(&format!("{id}/transfer"))).json(&huge)).await;
    assert_eq!(status, 413, "body over the limit");
    let (status, e) = send(
        s.client.post(url(&format!("{id}/status"))).header("content-type", "text/plain").body("x"),
    )
    .await;
    assert_eq!((status, code(&e)), (415, "unsupported_media_type"));

    // The customer hears of the three changes in the conversation, once.
    let store =
        SqlStore::connect(&format!("sqlite:{}", s._dir.path().join("fenliu.sqlite").display()))
            .await
            .unwrap();
    assert!(notices(&store, &conversation).await.is_empty());
    assert_eq!(deliver_once(&store, Duration::from_secs(60)).await.unwrap(), 3);
    assert_eq!(deliver_once(&store, Duration::from_secs(60)).await.unwrap(), 0, "delivered once");
    let heard = notices(&store, &conversation).await;
    assert_eq!(heard.len(), 3, "{heard:?}");
    assert!(heard.iter().all(|n| n.contains(&id)), "{heard:?}");
    assert!(heard[2].contains("logistics"), "{heard:?}");
    // The conversation goes on after the notices.
    let next = s.say("noah_brown_6181", "thanks", Some(&conversation)).await;
    assert_eq!(next.conversation_id, conversation);
    assert_eq!(notices(&store, &conversation).await.len(), 3);
    assert!(sweep_once(&store, 0.8).await.unwrap().is_empty(), "72 h SLA, nothing due yet");

    // The background job `serve` runs delivers on its timer.
    let (status, _) = send(
        s.client
            .post(url(&format!("{id}/assign")))
            .json(&json!({"agent_id": "bo", "department": "logistics"})),
    )
    .await;
    assert_eq!(status, 200);
    let config = TicketsConfig { notify_interval_seconds: 1, ..TicketsConfig::default() };
    let job = spawn_background(store.clone(), config);
    let mut heard = Vec::new();
    for _ in 0..50 {
        heard = notices(&store, &conversation).await;
        if heard.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    job.abort();
    assert_eq!(heard.len(), 4, "{heard:?}");
    store.close().await;
}
