//! The dispatcher's rules, driven with explicit times.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use fenliu_agent::{
    Channel, CustomerTier, EscalationPackage, EscalationReason, Language, Priority, Route,
    Sentiment,
};
use fenliu_dispatch::{
    AgentId, AgentStatus, Capacity, Dispatcher, EstimateMethod, EventKind, HumanAgent, ItemId,
    ItemState, NewWorkItem, Outcome, Policy, Skills, SlaKind,
};

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(seconds)
}

pub(crate) fn person(id: &str, route: Route, language: Language, level: u8) -> HumanAgent {
    HumanAgent::new(id, id, Skills::default().route(route, level).language(language, 5))
        .with_status(AgentStatus::Online)
}

pub(crate) fn chat(id: &str, route: Route) -> NewWorkItem {
    NewWorkItem::new(id, route, Language::En, Channel::Web)
}

fn offers(events: &[fenliu_dispatch::Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Offered { item, agent, .. } => Some((item.0.clone(), agent.0.clone())),
            _ => None,
        })
        .collect()
}

fn kinds(events: &[fenliu_dispatch::Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

fn no_wrap_up() -> Policy {
    Policy { wrap_up_seconds: 0, ..Policy::default() }
}

#[test]
fn vip_and_urgent_bypass_older_regular_work() {
    let mut d = Dispatcher::new(no_wrap_up());
    d.enqueue(chat("regular", Route::ORDER), at(0)).unwrap();
    d.enqueue(chat("vip", Route::ORDER).with_tier(CustomerTier::Vip), at(30)).unwrap();
    d.enqueue(chat("urgent", Route::ORDER).with_priority(Priority::Urgent), at(40)).unwrap();
    let order: Vec<&str> = d.queued().map(|i| i.id.0.as_str()).collect();
    // Urgent (300 points) ahead of VIP (100 + 150), both ahead of the older regular item.
    assert_eq!(order, ["urgent", "vip", "regular"]);
    d.upsert_agent(person("ann", Route::ORDER, Language::En, 4).with_capacity(Capacity {
        chat: 1,
        call: 0,
        email: 0,
    }));
    let ev = d.tick(at(41));
    assert_eq!(offers(&ev), [("urgent".into(), "ann".into())]);
}

#[test]
fn complaints_outrank_other_routes_and_aging_prevents_starvation() {
    let policy = no_wrap_up();
    let mut d = Dispatcher::new(policy.clone());
    d.enqueue(chat("old-low", Route::ORDER).with_priority(Priority::Low), at(0)).unwrap();
    d.enqueue(chat("order", Route::ORDER), at(60)).unwrap();
    d.enqueue(chat("complaint", Route::COMPLAINT), at(60)).unwrap();
    let order: Vec<&str> = d.queued().map(|i| i.id.0.as_str()).collect();
    // The low item has aged 1 minute (10 points): still behind normal work.
    assert_eq!(order, ["complaint", "order", "old-low"]);
    // A normal item arriving 11 minutes after the low one ranks behind it: 110 > 100 points.
    d.enqueue(chat("late", Route::ORDER), at(660)).unwrap();
    let order: Vec<&str> = d.queued().map(|i| i.id.0.as_str()).collect();
    assert_eq!(order, ["complaint", "order", "old-low", "late"]);
    let low = d.item(&"old-low".into()).unwrap();
    let late = d.item(&"late".into()).unwrap();
    assert!(policy.score(low, at(660)) > policy.score(late, at(660)));
    // After the starvation limit, the old item joins the bypass class and overtakes everything.
    let ev = d.tick(at(policy.starvation_seconds));
    assert!(ev.iter().any(|e| e.kind == EventKind::Promoted { item: "old-low".into() }));
    assert_eq!(d.queued().next().unwrap().id.0, "old-low");
}

#[test]
fn never_over_capacity_per_medium() {
    let mut d = Dispatcher::new(no_wrap_up());
    d.upsert_agent(person("ann", Route::ORDER, Language::En, 4));
    for i in 0..5 {
        d.enqueue(chat(&format!("chat{i}"), Route::ORDER), at(i)).unwrap();
        d.enqueue(
            NewWorkItem::new(format!("call{i}"), Route::ORDER, Language::En, Channel::Phone),
            at(i),
        )
        .unwrap();
    }
    let ev = d.tick(at(10));
    // 3 chats + 1 call, the default capacity.
    assert_eq!(offers(&ev).len(), 4);
    let ann = d.agent(&"ann".into()).unwrap();
    assert_eq!(
        (ann.load.of(fenliu_dispatch::Medium::Chat), ann.load.of(fenliu_dispatch::Medium::Call)),
        (3, 1)
    );
    assert!(offers(&d.tick(at(11))).is_empty());
    assert_eq!(d.queue_len(), 6);
}

#[test]
fn best_skill_fit_then_performance_then_fairness() {
    let mut d = Dispatcher::new(no_wrap_up());
    d.upsert_agent(person("novice", Route::ORDER, Language::En, 3));
    d.upsert_agent(person("expert", Route::ORDER, Language::En, 5));
    d.upsert_agent(person("complaints", Route::COMPLAINT, Language::En, 5));
    d.enqueue(chat("a", Route::ORDER), at(0)).unwrap();
    d.enqueue(chat("b", Route::COMPLAINT), at(0)).unwrap();
    let ev = d.tick(at(1));
    let mut got = offers(&ev);
    got.sort();
    assert_eq!(got, [("a".into(), "expert".into()), ("b".into(), "complaints".into())]);

    // Equals take turns: the one offered least recently goes first.
    let mut d = Dispatcher::new(no_wrap_up());
    for id in ["p1", "p2", "p3"] {
        d.upsert_agent(person(id, Route::ORDER, Language::En, 4).with_capacity(Capacity {
            chat: 5,
            call: 0,
            email: 0,
        }));
    }
    let mut who = Vec::new();
    for i in 0..6 {
        d.enqueue(chat(&format!("x{i}"), Route::ORDER), at(i * 10)).unwrap();
        for (item, agent) in offers(&d.tick(at(i * 10 + 1))) {
            d.accept(&item.as_str().into(), &agent.as_str().into(), at(i * 10 + 2)).unwrap();
            who.push(agent);
        }
    }
    // Spare capacity breaks ties too, so each gets two, in rotation.
    assert_eq!(who, ["p1", "p2", "p3", "p1", "p2", "p3"]);
}

#[test]
fn offers_expire_and_go_to_someone_else_declines_too() {
    let mut d = Dispatcher::new(no_wrap_up());
    d.upsert_agent(person("ann", Route::ORDER, Language::En, 5));
    d.upsert_agent(person("bob", Route::ORDER, Language::En, 4));
    d.enqueue(chat("c1", Route::ORDER), at(0)).unwrap();
    assert_eq!(offers(&d.tick(at(0))), [("c1".into(), "ann".into())]);
    // Ann does not answer within 30 s.
    let ev = d.tick(at(31));
    assert_eq!(kinds(&ev)[0], "offer_expired");
    assert_eq!(offers(&ev), [("c1".into(), "bob".into())]);
    assert_eq!(d.agent(&"ann".into()).unwrap().load.total(), 0);
    // Bob declines: nobody else may take it; it waits (not offered back to Ann or Bob).
    let ev = d.decline(&"c1".into(), &"bob".into(), at(35)).unwrap();
    assert_eq!(kinds(&ev), ["declined"]);
    assert!(offers(&d.tick(at(36))).is_empty());
    assert_eq!(d.item(&"c1".into()).unwrap().state, ItemState::Queued);
    // Someone new comes online and gets it.
    d.upsert_agent(person("cy", Route::ORDER, Language::En, 3));
    assert_eq!(offers(&d.tick(at(40))), [("c1".into(), "cy".into())]);
    // Accepting someone else's offer is refused.
    assert!(d.accept(&"c1".into(), &"ann".into(), at(41)).is_err());
    d.accept(&"c1".into(), &"cy".into(), at(41)).unwrap();
    assert!(matches!(d.item(&"c1".into()).unwrap().state, ItemState::Assigned { .. }));
    // Accepting twice is refused.
    assert!(d.accept(&"c1".into(), &"cy".into(), at(42)).is_err());
}

#[test]
fn workflow_widens_to_secondary_skills_any_language_then_overflow() {
    let mut d = Dispatcher::new(no_wrap_up());
    let zh_item = NewWorkItem::new("zh", Route::AFTER_SALES, Language::Zh, Channel::Web);
    d.enqueue(zh_item, at(0)).unwrap();
    // Secondary after-sales skill, Chinese: step 1 (60 s).
    d.upsert_agent(
        person("secondary_zh", Route::AFTER_SALES, Language::Zh, 2).with_status(AgentStatus::Away),
    );
    // Primary after-sales, English only: step 2 (120 s).
    d.upsert_agent(
        person("primary_en", Route::AFTER_SALES, Language::En, 5).with_status(AgentStatus::Away),
    );
    // Overflow generalist: step 3 (180 s).
    d.upsert_agent(
        HumanAgent::new("overflow", "o", Skills::default().language(Language::Zh, 5))
            .with_status(AgentStatus::Online)
            .in_overflow_team(),
    );
    assert!(offers(&d.tick(at(10))).is_empty());
    let ev = d.tick(at(179));
    assert!(ev.iter().any(|e| e.kind == EventKind::Widened { item: "zh".into(), step: 2 }));
    assert!(offers(&ev).is_empty());
    let ev = d.tick(at(180));
    assert_eq!(offers(&ev), [("zh".into(), "overflow".into())]);

    // Step by step with the others available.
    for (wait, expected) in [(60, "secondary_zh"), (120, "primary_en")] {
        let mut d = Dispatcher::new(no_wrap_up());
        d.enqueue(NewWorkItem::new("zh", Route::AFTER_SALES, Language::Zh, Channel::Web), at(0))
            .unwrap();
        if expected == "secondary_zh" {
            d.upsert_agent(person("secondary_zh", Route::AFTER_SALES, Language::Zh, 2));
        }
        d.upsert_agent(person("primary_en", Route::AFTER_SALES, Language::En, 5));
        assert!(offers(&d.tick(at(wait - 1))).is_empty(), "{expected}");
        assert_eq!(offers(&d.tick(at(wait))), [("zh".into(), expected.into())]);
    }
}

fn package() -> EscalationPackage {
    EscalationPackage {
        reason: EscalationReason::HighSeverityComplaint,
        priority: Priority::High,
        route: Route::COMPLAINT,
        language: Language::Zh,
        agent: "complaint".into(),
        summary: "damaged parcel, second time".into(),
        slots: serde_json::json!({"order_id": "W2611340"}),
        sentiment: Sentiment::Negative,
        tools_tried: Vec::new(),
        message_to_customer: "A colleague will take over.".into(),
    }
}

#[test]
fn escalations_become_work_items_and_transfers_keep_context_and_clocks() {
    let mut d = Dispatcher::new(no_wrap_up());
    let new = NewWorkItem::from_escalation("conv-1", package(), CustomerTier::Vip, Channel::App);
    assert_eq!(
        (new.route.clone(), new.language, new.priority),
        (Route::COMPLAINT, Language::Zh, Priority::High)
    );
    d.enqueue(new, at(0)).unwrap();
    let item = d.item(&"conv-1".into()).unwrap().clone();
    assert!(item.bypass());
    // VIP + High: the High targets (2 min first response).
    assert_eq!(item.first_response_due, at(120));
    d.upsert_agent(person("cara", Route::COMPLAINT, Language::Zh, 5));
    d.upsert_agent(person("dan", Route::AFTER_SALES, Language::Zh, 5));
    assert_eq!(offers(&d.tick(at(1))), [("conv-1".into(), "cara".into())]);
    d.accept(&"conv-1".into(), &"cara".into(), at(5)).unwrap();
    let ev = d
        .transfer(
            &"conv-1".into(),
            &"cara".into(),
            Route::AFTER_SALES,
            None,
            "needs a repair",
            at(300),
        )
        .unwrap();
    assert_eq!(kinds(&ev), ["transferred"]);
    let moved = d.item(&"conv-1".into()).unwrap();
    assert_eq!(moved.route, Route::AFTER_SALES);
    assert_eq!(moved.enqueued_at, at(0));
    assert_eq!(moved.package.as_ref().unwrap().summary, "damaged parcel, second time");
    assert_eq!(moved.transfers[0].note, "needs a repair");
    assert_eq!(moved.transfers[0].from_route, Route::COMPLAINT);
    assert_eq!(d.agent(&"cara".into()).unwrap().load.total(), 0);
    assert_eq!(offers(&d.tick(at(301))), [("conv-1".into(), "dan".into())]);
    // Only the holder may transfer or complete.
    assert!(d.complete(&"conv-1".into(), &"cara".into(), outcome(), at(302)).is_err());
}

fn outcome() -> Outcome {
    Outcome { resolved_first_contact: true, csat: Some(5) }
}

#[test]
fn completion_frees_capacity_records_performance_and_wraps_up() {
    let mut d = Dispatcher::new(Policy { wrap_up_seconds: 60, ..Policy::default() });
    d.upsert_agent(person("ann", Route::ORDER, Language::En, 4).with_capacity(Capacity {
        chat: 1,
        call: 0,
        email: 0,
    }));
    d.enqueue(chat("c1", Route::ORDER), at(0)).unwrap();
    d.enqueue(chat("c2", Route::ORDER), at(0)).unwrap();
    d.tick(at(0));
    d.accept(&"c1".into(), &"ann".into(), at(10)).unwrap();
    let ev = d.complete(&"c1".into(), &"ann".into(), outcome(), at(310)).unwrap();
    assert_eq!(kinds(&ev), ["completed"]);
    assert!(d.item(&"c1".into()).is_none());
    let ann = d.agent(&"ann".into()).unwrap();
    assert_eq!(ann.status, AgentStatus::WrapUp);
    assert_eq!(ann.performance.closed, 1);
    assert!(ann.performance.fcr > 0.7 && ann.performance.csat > 4.0);
    assert!(ann.performance.aht_seconds < 600.0);
    // No offers while wrapping up; wrap-up ends after 60 s and the next chat is offered.
    assert!(offers(&d.tick(at(369))).is_empty());
    let ev = d.tick(at(370));
    assert_eq!(kinds(&ev)[0], "wrap_up_ended");
    assert_eq!(offers(&ev), [("c2".into(), "ann".into())]);
    let changes = d.take_changes();
    assert!(changes.items.iter().any(|i| matches!(i.state, ItemState::Completed { .. })));
}

#[test]
fn sla_reminder_breach_and_prediction() {
    let mut d = Dispatcher::new(no_wrap_up());
    d.enqueue(chat("c1", Route::ORDER), at(0)).unwrap();
    // Normal: 5 minutes; the reminder at 80% = 240 s.
    assert!(!kinds(&d.tick(at(239))).contains(&"reminder"));
    let ev = d.tick(at(240));
    assert!(
        ev.iter().any(|e| matches!(&e.kind, EventKind::Reminder { due, .. } if *due == at(300)))
    );
    assert!(!kinds(&d.tick(at(250))).contains(&"reminder"));
    let ev = d.tick(at(300));
    assert!(ev.iter().any(
        |e| e.kind == EventKind::Breached { item: "c1".into(), target: SlaKind::FirstResponse }
    ));
    assert!(!kinds(&d.tick(at(301))).contains(&"breached"));

    // Prediction: 10 completions in the 15-minute window = one per 90 s; the 5th in line is
    // expected in 450 s, after its 300 s target, so it is flagged and moved up.
    let mut d = Dispatcher::new(no_wrap_up());
    d.upsert_agent(person("ann", Route::ORDER, Language::En, 4).with_capacity(Capacity {
        chat: 1,
        call: 0,
        email: 0,
    }));
    for i in 0..10 {
        let id = format!("done{i}");
        d.enqueue(chat(&id, Route::ORDER), at(i * 10)).unwrap();
        d.tick(at(i * 10));
        d.accept(&id.as_str().into(), &"ann".into(), at(i * 10)).unwrap();
        d.complete(&id.as_str().into(), &"ann".into(), outcome(), at(i * 10 + 5)).unwrap();
    }
    d.set_status(&"ann".into(), AgentStatus::Away, at(100)).unwrap();
    for i in 0..5 {
        d.enqueue(chat(&format!("w{i}"), Route::ORDER), at(100)).unwrap();
    }
    let ev = d.tick(at(101));
    let flagged: Vec<String> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::BreachPredicted { item, .. } => Some(item.0.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(flagged, ["w3", "w4"]);
    assert!(d.item(&"w4".into()).unwrap().at_risk);
    // At-risk items gain 100 points: they now lead the queue.
    assert_eq!(d.queued().next().unwrap().id.0, "w3");
    let estimate = d.wait_estimate(&"w0".into()).unwrap();
    assert_eq!(estimate.method, EstimateMethod::ObservedRate);
    assert_eq!(estimate.position, 2);
    assert!((estimate.expected_wait_seconds - 270.0).abs() < 1e-9);
    assert!(!estimate.offer_callback);
}

#[test]
fn going_away_withdraws_offers_and_wait_estimates_offer_callbacks() {
    let mut d = Dispatcher::new(no_wrap_up());
    d.upsert_agent(person("ann", Route::ORDER, Language::En, 4));
    d.enqueue(chat("c1", Route::ORDER), at(0)).unwrap();
    d.tick(at(0));
    let ev = d.set_status(&"ann".into(), AgentStatus::Offline, at(5)).unwrap();
    assert_eq!(kinds(&ev), ["offer_expired"]);
    assert_eq!(d.item(&"c1".into()).unwrap().state, ItemState::Queued);
    assert_eq!(d.agent(&"ann".into()).unwrap().load.total(), 0);
    // Nobody online: no estimate worth a wait, so a callback is offered.
    let e = d.wait_estimate(&"c1".into()).unwrap();
    assert_eq!(e.method, EstimateMethod::ErlangC);
    assert!(e.offer_callback);
    // Duplicates and unknown ids are refused.
    assert!(d.enqueue(chat("c1", Route::ORDER), at(6)).is_err());
    assert!(d.accept(&ItemId::from("nope"), &AgentId::from("ann"), at(6)).is_err());
    assert!(d.set_status(&"nobody".into(), AgentStatus::Online, at(6)).is_err());
    // Abandonment removes the item.
    d.abandon(&"c1".into(), at(7)).unwrap();
    assert_eq!(d.queue_len(), 0);
}
