//! Routing benchmark: 10,000 escalations across 200 agents (mixed skills, tiers, languages),
//! with agents finishing conversations as they go, over a sled-backed router and again in
//! memory (what routing alone costs). Prints the
//! latency of each `escalate` call (which assigns when an agent has room) and of each `end`
//! (which hands the freed slot to the next waiting conversation): p50, p99, max. Target: p99
//! under 5 ms. Run with `cargo bench -p kefu-actors --bench routing`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_actors::agents::{
    AgentAccount, DeskConfig, Escalation, HandoverContext, Outcome, Presence, Router, SystemClock,
};

const AGENTS: usize = 200;
const ESCALATIONS: usize = 10_000;
const SKILLS: [&str; 4] = ["returns", "billing", "logistics", "general"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p99 = percentile(&samples, 0.99);
    println!(
        "{name:<10} n={:<6} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    p99
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::open(dir.path()).expect("sled opens");
    let router = Router::open(config(), db, Arc::new(SystemClock)).expect("router opens");
    let p99 = run("sled", &router);
    run(
        "memory",
        &Router::in_memory(config(), Arc::new(SystemClock)),
    );
    println!(
        "assignment latency p99 (sled, escalate and end) {:.3} ms (target < 5 ms): {}",
        p99.as_secs_f64() * 1e3,
        if p99 < Duration::from_millis(5) {
            "ok"
        } else {
            "MISSED"
        }
    );
}

fn config() -> DeskConfig {
    let agents: Vec<AgentAccount> = (0..AGENTS)
        .map(|i| AgentAccount {
            id: format!("agent-{i:03}"),
            name: format!("Agent {i}"),
            skills: vec![SKILLS[i % SKILLS.len()].to_owned(), "general".to_owned()],
            tier: (i % 3) as u8,
            languages: if i % 2 == 0 {
                vec!["zh".into(), "en".into()]
            } else {
                vec!["zh".into()]
            },
            capacity: 4,
            secret: "benchmark-secret".into(),
        })
        .collect();
    DeskConfig {
        agents,
        ..DeskConfig::default()
    }
}

/// Runs the workload; returns the p99 over every call that assigns (escalate and end).
fn run(mode: &str, router: &Router) -> Duration {
    for i in 0..AGENTS {
        router
            .set_presence(&format!("agent-{i:03}"), Presence::Online)
            .expect("presence");
    }
    let mut escalate = Vec::with_capacity(ESCALATIONS);
    let mut end = Vec::new();
    for n in 0..ESCALATIONS {
        let esc = Escalation {
            session: format!("s-{n}"),
            user: format!("u-{n}"),
            skill: Some(SKILLS[n % SKILLS.len()].to_owned()),
            tier: [0, 0, 0, 1, 2][n % 5],
            context: HandoverContext {
                reason: "customer asked for a human".into(),
                lang: if n % 7 == 0 { "en" } else { "zh" }.into(),
                ..HandoverContext::default()
            },
        };
        let started = Instant::now();
        router.escalate(esc).expect("escalate");
        escalate.push(started.elapsed());
        // Every other escalation, some agent finishes a conversation (its slot is refilled).
        if n % 2 == 1 {
            let view = router
                .agent(&format!("agent-{:03}", n % AGENTS))
                .expect("agent");
            if let Some(session) = view.conversations.first() {
                let started = Instant::now();
                router
                    .end(&view.profile.id, session, Outcome::Closed)
                    .expect("end");
                end.push(started.elapsed());
            }
        }
    }
    let held: usize = router.agents().iter().map(|a| a.conversations.len()).sum();
    println!(
        "routing ({mode}): {ESCALATIONS} escalations, {AGENTS} agents; {} ended, {held} held, {} waiting",
        end.len(),
        router.queue().len()
    );
    let mut all = escalate.clone();
    all.extend(end.iter().copied());
    report("escalate", escalate);
    report("end", end);
    report("both", all)
}
