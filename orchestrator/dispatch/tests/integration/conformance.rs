//! The backend conformance suite: every case runs on the embedded backend (a fresh SQLite file)
//! and on PostgreSQL (a fresh schema).

use chrono::TimeDelta;
use fenliu_agent::{Channel, CustomerTier, Language, Route};
use fenliu_dispatch::{
    AgentStatus, Capacity, DispatchBackend, DispatchError, EstimateMethod, Event, EventKind,
    ItemState, ManualClock, NewWorkItem, Outcome, hand_off,
};

use crate::core::{chat, person};
use crate::support::{clock, embedded, with_postgres};

fn offers(events: &[Event]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Offered { item, agent, .. } => Some((item.0.clone(), agent.0.clone())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

const DONE: Outcome = Outcome { resolved_first_contact: true, csat: Some(5) };

async fn offers_accept_complete(b: &impl DispatchBackend, c: &ManualClock) {
    b.upsert_agent(person("ann", Route::ORDER, Language::En, 4).with_capacity(Capacity {
        chat: 2,
        call: 0,
        email: 0,
    }))
    .await
    .unwrap();
    for id in ["c1", "c2", "c3"] {
        b.enqueue(chat(id, Route::ORDER)).await.unwrap();
        c.advance(TimeDelta::seconds(1));
    }
    let ev = b.tick().await.unwrap();
    assert_eq!(offers(&ev), [("c1".into(), "ann".into()), ("c2".into(), "ann".into())]);
    assert_eq!(b.agent(&"ann".into()).await.unwrap().unwrap().load.total(), 2);
    assert!(offers(&b.tick().await.unwrap()).is_empty(), "never over capacity");
    b.accept(&"c1".into(), &"ann".into()).await.unwrap();
    assert!(matches!(
        b.item(&"c1".into()).await.unwrap().unwrap().state,
        ItemState::Assigned { .. }
    ));
    c.advance(TimeDelta::seconds(20));
    b.complete(&"c1".into(), &"ann".into(), DONE).await.unwrap();
    assert!(b.item(&"c1".into()).await.unwrap().is_none());
    let ann = b.agent(&"ann".into()).await.unwrap().unwrap();
    assert_eq!((ann.load.total(), ann.performance.closed), (1, 1));
    assert_eq!(offers(&b.tick().await.unwrap()), [("c3".into(), "ann".into())]);
    // Errors: duplicates, strangers, unknown ids.
    assert!(matches!(
        b.enqueue(chat("c3", Route::ORDER)).await,
        Err(DispatchError::Duplicate { .. })
    ));
    b.upsert_agent(person("bob", Route::ORDER, Language::En, 4)).await.unwrap();
    assert!(b.accept(&"c3".into(), &"bob".into()).await.is_err());
    assert!(b.accept(&"nope".into(), &"ann".into()).await.is_err());
    assert!(b.complete(&"c2".into(), &"ann".into(), DONE).await.is_err(), "not accepted yet");
}

async fn vip_and_urgent_first(b: &impl DispatchBackend, c: &ManualClock) {
    b.enqueue(chat("regular", Route::ORDER)).await.unwrap();
    c.advance(TimeDelta::seconds(5));
    b.enqueue(chat("vip", Route::ORDER).with_tier(CustomerTier::Vip)).await.unwrap();
    b.upsert_agent(person("ann", Route::ORDER, Language::En, 4).with_capacity(Capacity {
        chat: 1,
        call: 0,
        email: 0,
    }))
    .await
    .unwrap();
    assert_eq!(offers(&b.tick().await.unwrap()), [("vip".into(), "ann".into())]);
}

async fn expiry_decline_and_status(b: &impl DispatchBackend, c: &ManualClock) {
    b.upsert_agent(person("ann", Route::ORDER, Language::En, 4)).await.unwrap();
    b.enqueue(chat("c1", Route::ORDER)).await.unwrap();
    let first = offers(&b.tick().await.unwrap());
    assert_eq!(first, [("c1".into(), "ann".into())]);
    b.upsert_agent(person("bob", Route::ORDER, Language::En, 4)).await.unwrap();
    c.advance(TimeDelta::seconds(31));
    let ev = b.tick().await.unwrap();
    assert!(
        ev.iter()
            .any(|e| matches!(&e.kind, EventKind::OfferExpired { agent, .. } if agent.0 == "ann"))
    );
    assert_eq!(offers(&ev), [("c1".into(), "bob".into())]);
    assert_eq!(b.agent(&"ann".into()).await.unwrap().unwrap().load.total(), 0);
    // Bob declines; nobody left who has not refused it.
    b.decline(&"c1".into(), &"bob".into()).await.unwrap();
    assert!(offers(&b.tick().await.unwrap()).is_empty());
    // Cy comes online, gets the offer, then goes offline: it is withdrawn.
    b.upsert_agent(person("cy", Route::ORDER, Language::En, 4)).await.unwrap();
    assert_eq!(offers(&b.tick().await.unwrap()), [("c1".into(), "cy".into())]);
    let ev = b.set_status(&"cy".into(), AgentStatus::Offline).await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(b.item(&"c1".into()).await.unwrap().unwrap().state, ItemState::Queued);
    assert_eq!(b.agent(&"cy".into()).await.unwrap().unwrap().load.total(), 0);
}

async fn transfer_keeps_context(b: &impl DispatchBackend, c: &ManualClock) {
    b.upsert_agent(person("cara", Route::COMPLAINT, Language::Zh, 5)).await.unwrap();
    b.upsert_agent(person("dan", Route::AFTER_SALES, Language::Zh, 5)).await.unwrap();
    let mut item = NewWorkItem::new("conv", Route::COMPLAINT, Language::Zh, Channel::Phone);
    item.product = Some("laptops".into());
    b.enqueue(item).await.unwrap();
    assert_eq!(offers(&b.tick().await.unwrap()), [("conv".into(), "cara".into())]);
    b.accept(&"conv".into(), &"cara".into()).await.unwrap();
    c.advance(TimeDelta::seconds(60));
    b.transfer(&"conv".into(), &"cara".into(), Route::AFTER_SALES, "repair needed").await.unwrap();
    let moved = b.item(&"conv".into()).await.unwrap().unwrap();
    assert_eq!(
        (moved.route.clone(), moved.product.as_deref()),
        (Route::AFTER_SALES, Some("laptops"))
    );
    assert_eq!(moved.transfers.len(), 1);
    assert_eq!(b.agent(&"cara".into()).await.unwrap().unwrap().load.total(), 0);
    assert_eq!(offers(&b.tick().await.unwrap()), [("conv".into(), "dan".into())]);
}

async fn wrap_up_and_workflow(b: &impl DispatchBackend, c: &ManualClock) {
    // A Chinese after-sales item; only an English after-sales person: offered at step 2 (120 s).
    b.upsert_agent(person("eve", Route::AFTER_SALES, Language::En, 5)).await.unwrap();
    b.enqueue(NewWorkItem::new("zh", Route::AFTER_SALES, Language::Zh, Channel::Web))
        .await
        .unwrap();
    c.advance(TimeDelta::seconds(119));
    assert!(offers(&b.tick().await.unwrap()).is_empty());
    c.advance(TimeDelta::seconds(1));
    assert_eq!(offers(&b.tick().await.unwrap()), [("zh".into(), "eve".into())]);
}

async fn sla_timers_and_promotion(b: &impl DispatchBackend, c: &ManualClock) {
    b.enqueue(chat("waiting", Route::ORDER)).await.unwrap();
    let names = |ev: Vec<Event>| ev.iter().map(|e| e.kind.name()).collect::<Vec<_>>();
    c.advance(TimeDelta::seconds(60));
    assert_eq!(names(b.tick().await.unwrap()), ["widened"]);
    c.advance(TimeDelta::seconds(180));
    // 240 s: step 3 of the workflow has come (180 s) and the reminder (80% of 300 s).
    let ev = names(b.tick().await.unwrap());
    assert!(ev.contains(&"widened") && ev.contains(&"reminder"), "{ev:?}");
    assert!(b.tick().await.unwrap().is_empty(), "each timer fires once");
    c.advance(TimeDelta::seconds(60));
    assert_eq!(names(b.tick().await.unwrap()), ["breached"]);
    c.advance(TimeDelta::seconds(600));
    assert_eq!(names(b.tick().await.unwrap()), ["promoted"]);
    let item = b.item(&"waiting".into()).await.unwrap().unwrap();
    assert!(item.promoted && item.reminded && item.breached_first_response);
    assert!(item.bypass());
}

async fn wait_estimates_and_hand_off(b: &impl DispatchBackend, c: &ManualClock) {
    // Nobody online: Erlang C with no servers, an infinite wait, a callback offered.
    for id in ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"] {
        let (item, estimate) = hand_off(b, chat(id, Route::ORDER)).await.unwrap();
        assert_eq!(item.0, id);
        assert_eq!(estimate.method, EstimateMethod::ErlangC);
        assert!(estimate.offer_callback);
        c.advance(TimeDelta::seconds(1));
    }
    let e = b.wait_estimate(&"w3".into()).await.unwrap();
    assert_eq!(e.position, 2);
    // A VIP arriving later goes ahead of everyone: position 0.
    let (_, vip) =
        hand_off(b, chat("vip", Route::ORDER).with_tier(CustomerTier::Vip)).await.unwrap();
    assert_eq!(vip.position, 0);
    assert_eq!(b.wait_estimate(&"w3".into()).await.unwrap().position, 3);
    // Five closed conversations: the observed rate takes over (5 per 900 s window).
    b.upsert_agent(person("ann", Route::ORDER, Language::En, 4).with_capacity(Capacity {
        chat: 5,
        call: 0,
        email: 0,
    }))
    .await
    .unwrap();
    let offered = offers(&b.tick().await.unwrap());
    assert_eq!(offered.len(), 5);
    for (item, agent) in &offered {
        b.accept(&item.as_str().into(), &agent.as_str().into()).await.unwrap();
        b.complete(&item.as_str().into(), &agent.as_str().into(), DONE).await.unwrap();
    }
    // vip, w1..w4 went; w5..w8 wait: w7 has two ahead.
    let e = b.wait_estimate(&"w7".into()).await.unwrap();
    assert_eq!((e.position, e.method), (2, EstimateMethod::ObservedRate));
    assert!((e.expected_wait_seconds - 3.0 * 900.0 / 5.0).abs() < 1e-6, "{e:?}");
    assert!(!e.offer_callback, "540 s is under the 600 s threshold");
    // Hostile ids and states: typed errors.
    assert!(matches!(
        b.wait_estimate(&"no-such-item".into()).await,
        Err(DispatchError::UnknownItem { .. })
    ));
    assert!(matches!(
        hand_off(b, chat("w8", Route::ORDER)).await,
        Err(DispatchError::Duplicate { .. })
    ));
    let offered = offers(&b.tick().await.unwrap());
    let (item, _) = offered.first().unwrap();
    assert!(matches!(
        b.wait_estimate(&item.as_str().into()).await,
        Err(DispatchError::WrongState { .. })
    ));
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let c = super::clock();
                    let (b, _dir) = super::embedded(&c).await;
                    super::$case(&b, &c).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    super::with_postgres(stringify!($case), |schema| async move {
                        let c = super::clock();
                        let b = schema.backend(&c).await;
                        super::$case(&b, &c).await;
                        b.close().await;
                    })
                    .await;
                }
            )*
        }
        mod enum_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let c = super::clock();
                    let (b, _dir) = super::embedded(&c).await;
                    super::$case(&fenliu_dispatch::Backend::Embedded(b), &c).await;
                }
            )*
        }
    };
}

conformance!(
    offers_accept_complete,
    vip_and_urgent_first,
    expiry_decline_and_status,
    transfer_keeps_context,
    wrap_up_and_workflow,
    sla_timers_and_promotion,
    wait_estimates_and_hand_off,
);
