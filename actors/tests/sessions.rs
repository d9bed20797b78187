//! The session layer's promises: one actor per key, order, idempotency, passivation, supervision,
//! parking and admission limits.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{CountingHandler, periodic_check};
use kefu_actors::events::SessionEvent;
use kefu_actors::{Conversations, Inbound, SendError, SessionConfig, SessionRegistry};
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

async fn registry(config: SessionConfig) -> (SessionRegistry<CountingHandler>, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let reg = SessionRegistry::start(store.clone(), Arc::new(CountingHandler), config)
        .await
        .expect("registry starts");
    (reg, store)
}

async fn user_messages(store: &Arc<dyn Store>, session: &str) -> Vec<String> {
    store
        .events(session, 1, usize::MAX)
        .await
        .expect("events")
        .into_iter()
        .filter_map(
            |e| match SessionEvent::decode(&e.payload).expect("decodes") {
                SessionEvent::User { message_id, .. } => Some(message_id),
                _ => None,
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_messages_reach_one_actor_once_each() {
    let (reg, store) = registry(SessionConfig {
        max_inflight_per_session: 1000,
        ..SessionConfig::default()
    })
    .await;
    let n = 300;
    let mut tasks = Vec::new();
    for i in 0..n {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            reg.send(msg("same", &format!("hello {i}"), &format!("m{i}")))
                .await
        }));
    }
    let mut counts = HashSet::new();
    for t in tasks {
        let out = t.await.expect("task").expect("turn succeeds");
        assert!(!out.duplicate);
        // The reply carries the turn number: each must be distinct, 1..=n.
        let number: u64 = out.replies[0]
            .text
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(counts.insert(number), "turn number {number} seen twice");
    }
    assert_eq!(counts.len(), n);
    assert_eq!(counts.iter().max(), Some(&(n as u64)));
    assert_eq!(
        reg.stats().activations,
        1,
        "exactly one actor was activated"
    );
    let ids = user_messages(&store, "same").await;
    assert_eq!(ids.len(), n);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        n,
        "each message stored once"
    );
}

#[tokio::test]
async fn messages_of_one_session_are_handled_in_order() {
    let (reg, store) = registry(SessionConfig::default()).await;
    for i in 1..=20u64 {
        let out = reg
            .send(msg("ordered", &format!("t{i}"), &format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(out.replies[0].text, format!("{i}: t{i}"));
    }
    let ids = user_messages(&store, "ordered").await;
    let expected: Vec<String> = (1..=20).map(|i| format!("m{i}")).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn pipelined_messages_keep_arrival_order() {
    // Messages cast back to back (like frames on one WebSocket) are handled in arrival order.
    let (reg, store) = registry(SessionConfig {
        max_inflight_per_session: 100,
        ..SessionConfig::default()
    })
    .await;
    let mut futs = Vec::new();
    for i in 0..50 {
        futs.push(reg.send(msg("pipe", &format!("p{i}"), &format!("m{i}"))));
    }
    // join_all polls in order, so sends are issued in index order.
    let outs = futures::future::join_all(futs).await;
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out.unwrap().replies[0].text, format!("{}: p{i}", i + 1));
    }
    let ids = user_messages(&store, "pipe").await;
    assert_eq!(ids, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_retried_message_is_answered_from_the_store_not_applied_twice() {
    let (reg, store) = registry(SessionConfig::default()).await;
    let first = reg.send(msg("idem", "hi", "same-id")).await.unwrap();
    let again = reg.send(msg("idem", "hi", "same-id")).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.replies, again.replies);
    assert_eq!(first.seq, again.seq);
    let next = reg.send(msg("idem", "next", "other-id")).await.unwrap();
    assert_eq!(
        next.replies[0].text, "2: next",
        "the duplicate did not advance the state"
    );
    assert_eq!(
        user_messages(&store, "idem").await,
        vec!["same-id", "other-id"]
    );
}

#[tokio::test]
async fn idle_sessions_passivate_and_reactivate_from_the_store() {
    let (reg, _store) = registry(SessionConfig {
        idle_timeout_secs: 0.05,
        ..SessionConfig::default()
    })
    .await;
    reg.send(msg("sleepy", "one", "m1")).await.unwrap();
    reg.send(msg("sleepy", "two", "m2")).await.unwrap();
    assert!(
        periodic_check(|| reg.stats().active == 0, Duration::from_secs(5)).await,
        "idle session was not passivated"
    );
    assert!(reg.stats().passivations >= 1);
    let out = reg.send(msg("sleepy", "three", "m3")).await.unwrap();
    assert_eq!(
        out.replies[0].text, "3: three",
        "state came back from the store"
    );
    assert_eq!(reg.stats().activations, 2);
}

#[tokio::test]
async fn a_panicking_session_answers_politely_and_restarts_from_the_store() {
    let (reg, store) = registry(SessionConfig::default()).await;
    reg.send(msg("fragile", "one", "m1")).await.unwrap();
    reg.send(msg("bystander", "hello", "b1")).await.unwrap();

    let out = reg.send(msg("fragile", "panic", "m2")).await.unwrap();
    assert!(out.failed);
    assert!(
        out.replies[0].text.starts_with("Sorry"),
        "polite reply: {:?}",
        out.replies
    );

    // The restarted session continues from its last durable state: turn 1 was durable, the
    // failed turn changed nothing, so this is turn 2.
    let out = reg.send(msg("fragile", "two", "m3")).await.unwrap();
    assert_eq!(out.replies[0].text, "2: two");
    assert_eq!(reg.stats().activations, 3, "fragile twice, bystander once");

    // The other session was untouched.
    let out = reg.send(msg("bystander", "again", "b2")).await.unwrap();
    assert_eq!(out.replies[0].text, "2: again");

    // The failed message is on record, with the reply the user got.
    let view = reg.conversation("fragile", 100).await.unwrap().unwrap();
    let texts: Vec<_> = view
        .transcript
        .iter()
        .map(|e| (e.role.as_str(), e.text.as_str()))
        .collect();
    assert!(texts.contains(&("user", "panic")));
    assert_eq!(
        user_messages(&store, "fragile").await,
        vec!["m1", "m2", "m3"]
    );
}

#[tokio::test]
async fn repeated_failures_park_the_session_durably() {
    let (reg, store) = registry(SessionConfig {
        max_failures: 3,
        failure_window_secs: 10.0,
        ..SessionConfig::default()
    })
    .await;
    for i in 0..3 {
        let out = reg
            .send(msg("doomed", "fail", &format!("f{i}")))
            .await
            .unwrap();
        assert!(out.failed);
    }
    // The fourth failure within the window parks it, with a notice instead of an apology.
    let out = reg.send(msg("doomed", "panic", "f3")).await.unwrap();
    assert!(out.failed);
    assert!(
        out.replies[0].text.contains("colleague"),
        "{:?}",
        out.replies
    );
    assert_eq!(reg.stats().parked, 1);
    assert_eq!(
        reg.send(msg("doomed", "hello", "h1")).await,
        Err(SendError::Parked)
    );

    // Parking survives passivation and a fresh registry over the same store.
    reg.passivate_idle();
    let fresh = SessionRegistry::start(
        store.clone(),
        Arc::new(CountingHandler),
        SessionConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        fresh.send(msg("doomed", "hello", "h2")).await,
        Err(SendError::Parked)
    );
    assert!(
        fresh
            .conversation("doomed", 50)
            .await
            .unwrap()
            .unwrap()
            .parked
    );
    // Other sessions still work.
    assert!(fresh.send(msg("fine", "hello", "ok")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_session_inflight_limit_answers_busy() {
    let (reg, _store) = registry(SessionConfig {
        max_inflight_per_session: 2,
        ..SessionConfig::default()
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            reg.send(msg("busy", "sleep:100", &format!("m{i}"))).await
        }));
    }
    let mut ok = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(SendError::SessionBusy { retry_after_secs }) => {
                assert!(retry_after_secs >= 1);
                busy += 1
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(ok >= 2, "at least the admitted ones ran: {ok}");
    assert!(busy >= 1, "some were refused: ok={ok} busy={busy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn global_admission_limit_answers_overloaded() {
    let (reg, _store) = registry(SessionConfig {
        max_inflight_total: 2,
        ..SessionConfig::default()
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            reg.send(msg(&format!("s{i}"), "sleep:150", "m")).await
        }));
    }
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let overloaded = results
        .iter()
        .filter(|r| matches!(r, Err(SendError::Overloaded { .. })))
        .count();
    assert!(overloaded >= 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_ok()).count() >= 2);
}

#[tokio::test]
async fn empty_messages_are_refused_and_unknown_conversations_are_none() {
    let (reg, _store) = registry(SessionConfig::default()).await;
    assert!(matches!(
        reg.send(msg("e", "   ", "m")).await,
        Err(SendError::Invalid {
            code: "empty_message",
            ..
        })
    ));
    assert!(reg.conversation("nobody", 10).await.unwrap().is_none());
}
