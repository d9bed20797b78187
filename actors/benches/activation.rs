//! Activation benchmark: how long it takes to bring a passivated session back from the sled
//! store (snapshot read + actor spawn + `pre_start`), and what an idle active session costs in
//! memory. Prints figures; run with `cargo bench -p kefu-actors --bench activation`.

use std::sync::Arc;
use std::time::Instant;

use kefu_actors::{
    Conversations, HandledTurn, HandlerError, Inbound, Reply, SessionConfig, SessionRegistry,
    TurnContext, TurnHandler,
};
use kefu_store::{SledStore, Store};
use serde::{Deserialize, Serialize};

/// A dialog state of realistic size (a flow frame, a few slots).
#[derive(Clone, Default, Serialize, Deserialize)]
struct State {
    flow: Option<String>,
    step: u32,
    slots: Vec<(String, String)>,
}

struct Echo;
impl TurnHandler for Echo {
    type State = State;
    async fn handle(
        &self,
        state: &mut State,
        turn: &TurnContext<'_>,
    ) -> Result<HandledTurn, HandlerError> {
        state.flow = Some("order_status".into());
        state.step += 1;
        if state.slots.len() < 3 {
            state
                .slots
                .push((format!("slot{}", state.slots.len()), turn.text.to_owned()));
        }
        Ok(HandledTurn {
            replies: vec![Reply {
                text: format!("ok {}", state.step),
            }],
            ..HandledTurn::default()
        })
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let n: usize = std::env::var("KEFU_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let config = SessionConfig {
            idle_timeout_secs: 3600.0,
            ..SessionConfig::default()
        };
        let reg = SessionRegistry::start(store.clone(), Arc::new(Echo), config)
            .await
            .unwrap();
        // Create n sessions with two turns each, concurrently (group commit keeps this quick).
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for chunk in 0..100 {
            let reg = reg.clone();
            tasks.push(tokio::spawn(async move {
                for i in (chunk..n).step_by(100) {
                    for t in 0..2 {
                        let msg = Inbound {
                            session: format!("s{i}"),
                            user: format!("u{i}"),
                            channel: "bench".into(),
                            text: format!("订单 A{i:010} turn {t}"),
                            message_id: format!("s{i}-{t}"),
                            tags: None,
                            stream: None,
                        };
                        reg.send(msg).await.unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        println!(
            "created {n} sessions (2 turns each) in {:.2} s",
            t0.elapsed().as_secs_f64()
        );
        reg.passivate_idle();
        while reg.stats().active > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Activate each passivated session, one at a time, timing each.
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            let seq = reg.activate(&format!("s{i}"), "u").await.unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(seq, 4, "two turns of a message and a reply each");
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "activation from sled: n={n} p50 {:.1} us  p99 {:.1} us  max {:.1} us",
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            lat[lat.len() - 1]
        );
        assert_eq!(reg.stats().active, n);
        reg.shutdown().await;
        let _ = reg.conversation("s0", 1).await;
    });
}
