//! The inline fast path ([`Isolation::Inline`]) keeps the host's promises without a pool:
//! timeouts cancel the call, panics are errors, the breaker opens and closes, at most `pool`
//! calls run at once, metrics count, shutdown refuses calls, and no actor is involved.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::probe::{Probe, hosted, req};
use kefu_actors::skills::{
    BreakerConfig, BreakerState, Isolation, SkillConfig, SkillError, SkillOutcome,
};

fn inline(pool: usize, timeout_ms: u64) -> SkillConfig {
    SkillConfig {
        pool,
        timeout: Duration::from_millis(timeout_ms),
        isolation: Isolation::Inline,
        ..SkillConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_call_past_its_timeout_is_cancelled_and_answers_timeout() {
    let probe = Arc::new(Probe::default());
    let host = hosted(&probe, inline(1, 100));
    let started = Instant::now();
    let err = host
        .call(req().with_arg("sleep_ms", 10_000))
        .await
        .unwrap_err();
    assert_eq!(err, SkillError::Timeout { ms: 100 });
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_eq!(probe.running.load(Ordering::SeqCst), 0, "future dropped");
    // The only slot is free again.
    assert_eq!(host.call(req()).await.unwrap().kind(), "found");
    let stats = &host.stats()[0];
    assert_eq!(stats.timeouts, 1);
    assert_eq!(stats.outcomes["found"], 1);
    assert_eq!(stats.in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_panics_before_or_after_an_await_are_errors_and_the_skill_carries_on() {
    let probe = Arc::new(Probe::default());
    let host = hosted(&probe, inline(1, 1_000));
    let err = host.call(req().with_arg("panic", true)).await.unwrap_err();
    assert_eq!(err, SkillError::Panicked("probe panics on purpose".into()));
    let err = host
        .call(req().with_arg("late_panic", true).with_arg("sleep_ms", 5))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SkillError::Panicked("probe panics after an await".into())
    );
    // The panicking calls released their slot: the pool of one still answers.
    assert_eq!(
        host.call(req()).await.unwrap(),
        SkillOutcome::found(serde_json::json!({ "user": "u1" }))
    );
    let stats = &host.stats()[0];
    assert_eq!(stats.panics, 2);
    assert_eq!(stats.calls, 3);
    assert_eq!(stats.restarts, 0, "no worker to replace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inline_circuit_opens_and_closes_like_the_pooled_one() {
    let probe = Arc::new(Probe::default());
    let host = hosted(
        &probe,
        SkillConfig {
            breaker: BreakerConfig {
                failures: 2,
                window: Duration::from_secs(10),
                cool_down: Duration::from_millis(200),
            },
            ..inline(2, 500)
        },
    );
    let failing = || req().with_arg("fail", true);
    for _ in 0..2 {
        assert!(matches!(
            host.call(failing()).await,
            Err(SkillError::Backend(_))
        ));
    }
    assert_eq!(host.stats()[0].breaker, BreakerState::Open);
    let reached = probe.reached.load(Ordering::SeqCst);
    assert!(matches!(
        host.call(failing()).await,
        Err(SkillError::CircuitOpen(_))
    ));
    assert_eq!(probe.reached.load(Ordering::SeqCst), reached);
    probe.healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(host.call(failing()).await.unwrap().kind(), "found");
    assert_eq!(host.stats()[0].breaker, BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_calls_are_bounded_by_the_pool_size_and_waiting_counts_toward_the_timeout() {
    let probe = Arc::new(Probe::default());
    let host = Arc::new(hosted(&probe, inline(3, 5_000)));
    host.start().await.unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.call(req().with_arg("sleep_ms", 100)).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().kind(), "found");
    }
    let took = started.elapsed();
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 3);
    assert!(took >= Duration::from_millis(390), "took {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(host.stats()[0].latency.samples, 12);

    // One slot and 300 ms: two calls of 200 ms each would fit alone, but the second waits
    // 200 ms for the slot, so its deadline passes 100 ms into its call.
    let probe = Arc::new(Probe::default());
    let host = Arc::new(hosted(&probe, inline(1, 300)));
    let started = Instant::now();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.call(req().with_arg("sleep_ms", 200)).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap().map(|o| o.kind()));
    }
    results.sort_by_key(|r| r.is_err());
    assert_eq!(
        results,
        vec![Ok("found"), Err(SkillError::Timeout { ms: 300 })]
    );
    assert!(started.elapsed() < Duration::from_millis(450));
}

#[tokio::test]
async fn a_shut_down_inline_skill_refuses_calls() {
    let probe = Arc::new(Probe::default());
    let host = hosted(&probe, inline(2, 1_000));
    assert_eq!(host.call(req()).await.unwrap().kind(), "found");
    host.shutdown().await;
    assert!(matches!(
        host.call(req()).await,
        Err(SkillError::Backend(_))
    ));
    assert_eq!(probe.reached.load(Ordering::SeqCst), 1);
}
