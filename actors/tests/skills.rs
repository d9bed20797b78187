//! The skill host's promises: timeouts, panic isolation, the circuit breaker and the pool's
//! concurrency bound, each proven against a real actor pool.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::periodic_check;
use common::probe::{Probe, hosted as host, req};
use kefu_actors::skills::{
    BreakerConfig, BreakerState, Caller, Skill, SkillConfig, SkillError, SkillHost, SkillHostError,
    SkillOutcome, SkillRequest, async_trait,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skill_sleeping_past_its_timeout_answers_timeout_promptly() {
    let probe = Arc::new(Probe::default());
    let host = host(
        &probe,
        SkillConfig {
            pool: 1,
            timeout: Duration::from_millis(100),
            ..SkillConfig::default()
        },
    );
    let started = Instant::now();
    let err = host
        .call(req().with_arg("sleep_ms", 10_000))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err, SkillError::Timeout { ms: 100 });
    assert!(took < Duration::from_millis(400), "took {took:?}");

    // The slow call was cancelled, so the only worker is free again.
    let out = host.call(req()).await.unwrap();
    assert_eq!(out.kind(), "found");
    let stats = &host.stats()[0];
    assert_eq!(stats.timeouts, 1);
    assert_eq!(stats.outcomes["found"], 1);
    assert_eq!(
        probe.running.load(Ordering::SeqCst),
        0,
        "the future was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_skill_answers_panicked_and_its_worker_is_replaced() {
    let probe = Arc::new(Probe::default());
    let host = host(
        &probe,
        SkillConfig {
            pool: 1,
            ..SkillConfig::default()
        },
    );
    let err = host.call(req().with_arg("panic", true)).await.unwrap_err();
    assert_eq!(err, SkillError::Panicked("probe panics on purpose".into()));

    assert!(
        periodic_check(|| host.stats()[0].restarts == 1, Duration::from_secs(2)).await,
        "the worker was restarted"
    );
    let out = host.call(req()).await.unwrap();
    assert_eq!(
        out,
        SkillOutcome::found(serde_json::json!({ "user": "u1" }))
    );
    let stats = &host.stats()[0];
    assert_eq!(stats.panics, 1);
    assert_eq!(stats.calls, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skill_blocking_its_thread_times_out_and_its_worker_is_replaced() {
    let probe = Arc::new(Probe::default());
    let host = host(
        &probe,
        SkillConfig {
            pool: 1,
            timeout: Duration::from_millis(200),
            ..SkillConfig::default()
        },
    );
    let started = Instant::now();
    let err = host
        .call(req().with_arg("block_ms", 800))
        .await
        .unwrap_err();
    assert_eq!(err, SkillError::Timeout { ms: 200 });
    assert!(started.elapsed() < Duration::from_millis(700));

    assert!(
        periodic_check(|| host.stats()[0].restarts == 1, Duration::from_secs(3)).await,
        "the wedged worker was killed and replaced"
    );
    assert_eq!(host.call(req()).await.unwrap().kind(), "found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_after_repeated_failures_and_closes_when_the_skill_recovers() {
    let probe = Arc::new(Probe::default());
    let host = host(
        &probe,
        SkillConfig {
            pool: 2,
            timeout: Duration::from_millis(500),
            breaker: BreakerConfig {
                failures: 3,
                window: Duration::from_secs(10),
                cool_down: Duration::from_millis(300),
            },
            ..SkillConfig::default()
        },
    );
    let failing = || req().with_arg("fail", true);
    // A panic, then two back-end errors: three failures.
    let bad = host.call(req().with_arg("panic", true)).await;
    assert!(matches!(bad, Err(SkillError::Panicked(_))));
    for _ in 0..2 {
        assert!(matches!(
            host.call(failing()).await,
            Err(SkillError::Backend(_))
        ));
    }
    assert_eq!(host.stats()[0].breaker, BreakerState::Open, "3 failures");
    let reached = probe.reached.load(Ordering::SeqCst);

    // Open: rejected at once, without reaching the skill.
    let started = Instant::now();
    for _ in 0..5 {
        assert!(matches!(
            host.call(failing()).await,
            Err(SkillError::CircuitOpen(_))
        ));
    }
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(probe.reached.load(Ordering::SeqCst), reached);
    assert_eq!(host.stats()[0].rejected, 5);

    // After the cool-down one trial goes through; the skill is still down, so it reopens.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(
        host.call(failing()).await,
        Err(SkillError::Backend(_))
    ));
    assert_eq!(host.stats()[0].breaker, BreakerState::Open);
    assert!(matches!(
        host.call(failing()).await,
        Err(SkillError::CircuitOpen(_))
    ));

    // The skill recovers; after the next cool-down the trial succeeds and the circuit closes.
    probe.healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(host.call(failing()).await.unwrap().kind(), "found");
    let stats = &host.stats()[0];
    assert_eq!(stats.breaker, BreakerState::Closed);
    assert_eq!(stats.breaker_opened, 2);
    assert_eq!(host.call(failing()).await.unwrap().kind(), "found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_do_not_open_the_circuit() {
    struct Picky;
    #[async_trait]
    impl Skill for Picky {
        fn name(&self) -> &str {
            "picky"
        }
        async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
            let id = req.arg_str("order_id")?;
            Ok(SkillOutcome::not_found(id))
        }
    }
    let mut host = SkillHost::new();
    let config = SkillConfig {
        breaker: BreakerConfig {
            failures: 1,
            ..BreakerConfig::default()
        },
        ..SkillConfig::default()
    };
    host.register(Arc::new(Picky), config).unwrap();
    for _ in 0..3 {
        let err = host
            .call(SkillRequest::new("picky", Caller::default()))
            .await
            .unwrap_err();
        assert!(matches!(err, SkillError::BadArgument { .. }), "{err:?}");
    }
    let stats = &host.stats()[0];
    assert_eq!(stats.breaker, BreakerState::Closed);
    assert_eq!(stats.errors["bad_argument"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_bounds_concurrent_calls() {
    let probe = Arc::new(Probe::default());
    let host = Arc::new(host(
        &probe,
        SkillConfig {
            pool: 3,
            timeout: Duration::from_secs(5),
            ..SkillConfig::default()
        },
    ));
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
    // 12 calls of 100 ms, 3 at a time: four rounds.
    assert!(took >= Duration::from_millis(390), "took {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let stats = &host.stats()[0];
    assert_eq!(stats.latency.samples, 12);
    assert!(stats.latency.p50_ms >= 100.0, "{:?}", stats.latency);
    assert_eq!(stats.in_flight, 0);
}

#[tokio::test]
async fn registration_is_checked_and_unknown_names_are_errors() {
    let probe = Arc::new(Probe::default());
    let mut host = host(&probe, SkillConfig::default());
    assert_eq!(
        host.register(probe.clone(), SkillConfig::default()),
        Err(SkillHostError::Duplicate {
            name: "probe".into()
        })
    );
    assert!(matches!(
        host.register_as(
            "zero",
            probe.clone(),
            SkillConfig {
                pool: 0,
                ..SkillConfig::default()
            }
        ),
        Err(SkillHostError::InvalidConfig { .. })
    ));
    assert_eq!(
        host.register_as(" ", probe.clone(), SkillConfig::default()),
        Err(SkillHostError::EmptyName)
    );
    host.register_as("probe.alias", probe.clone(), SkillConfig::default())
        .unwrap();
    assert_eq!(host.names(), vec!["probe", "probe.alias"]);
    assert_eq!(
        host.call(SkillRequest::new("nope", Caller::default()))
            .await,
        Err(SkillError::Unknown("nope".into()))
    );
    assert_eq!(
        host.call(SkillRequest::new("probe.alias", Caller::default()))
            .await
            .unwrap()
            .kind(),
        "found"
    );
    host.shutdown().await;
    assert!(matches!(
        host.call(req()).await,
        Err(SkillError::Backend(_))
    ));
}
