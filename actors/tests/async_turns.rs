//! The async turn handler keeps the session's promises: a turn that awaits (a slow skill) holds
//! up only its own conversation, a panic after an await is contained like any other, and the
//! handler sees the caller identity the runtime supplies.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::CountingHandler;
use kefu_actors::{Conversations, Inbound, SessionConfig, SessionRegistry};
use kefu_store::{MemoryStore, Store};

fn msg(session: &str, text: &str, id: &str) -> Inbound {
    Inbound {
        session: session.into(),
        user: format!("user-{session}"),
        channel: "test".into(),
        text: text.into(),
        message_id: id.into(),
        tags: None,
        stream: None,
    }
}

async fn registry() -> SessionRegistry<CountingHandler> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    SessionRegistry::start(store, Arc::new(CountingHandler), SessionConfig::default())
        .await
        .expect("registry starts")
}

// One worker thread on purpose: if a slow turn blocked the thread or the registry, the other
// sessions could not answer until it finished.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_turn_does_not_hold_up_other_sessions() {
    let reg = registry().await;
    let slow = {
        let reg = reg.clone();
        tokio::spawn(async move { reg.send(msg("slow", "sleep:1500", "s1")).await })
    };
    // Let the slow turn start.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    for i in 0..20 {
        let out = reg
            .send(msg(&format!("other{i}"), "hi", &format!("o{i}")))
            .await
            .unwrap();
        assert_eq!(out.replies[0].text, "1: hi");
    }
    let others = started.elapsed();
    assert!(
        others < Duration::from_millis(1000),
        "other sessions waited {others:?} behind a slow one"
    );
    assert!(!slow.is_finished(), "the slow turn is still running");

    let out = slow.await.unwrap().unwrap();
    assert_eq!(out.replies[0].text, "1: sleep:1500");
}

#[tokio::test]
async fn a_panic_after_an_await_is_contained_and_the_session_restarts() {
    let reg = registry().await;
    reg.send(msg("s", "one", "m1")).await.unwrap();
    let out = reg.send(msg("s", "late-panic", "m2")).await.unwrap();
    assert!(out.failed);
    assert!(
        out.replies[0].text.starts_with("Sorry"),
        "{:?}",
        out.replies
    );
    // The failed turn changed nothing durable: this is turn 2.
    let out = reg.send(msg("s", "two", "m3")).await.unwrap();
    assert_eq!(out.replies[0].text, "2: two");
    assert_eq!(reg.stats().activations, 2);
}

#[tokio::test]
async fn the_handler_sees_the_default_tenant() {
    let reg = registry().await;
    let out = reg.send(msg("t", "tenant", "m1")).await.unwrap();
    assert_eq!(out.replies[0].text, kefu_actors::DEFAULT_TENANT);
}
