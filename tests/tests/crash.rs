//! Crash test: the real `kefu` binary is killed with SIGKILL at random moments while many
//! sessions talk to it, and restarted each time. Afterwards every acknowledged message is in the
//! store exactly once and in order, nothing unacknowledged is duplicated, the logs are gapless, and
//! each conversation resumed where it was (an order number sent after a restart is answered by the
//! order flow that the previous, acknowledged message started).
//!
//! `KEFU_CRASH_ITERATIONS` sets the number of kills (default 20); `KEFU_CRASH_SEED` replays a run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kefu_actors::events::SessionEvent;
use kefu_store::{SledStore, Store};
use kefu_tests::client::Conn;
use kefu_tests::process::KefuProcess;
use serde_json::{Value, json};
use std::sync::Mutex;

const CLIENTS: usize = 12;

#[derive(Default)]
struct ClientLog {
    /// Message ids acknowledged with 200, in order.
    acked: Vec<String>,
    /// A message sent whose answer was lost to the kill: resent, same id, after the restart.
    pending: Option<(String, String)>,
    /// Next message number.
    next: u64,
    /// Order-number answers that did not mention the order (the flow did not resume).
    resume_failures: Vec<String>,
}

fn message(client: usize, n: u64) -> String {
    // Pairs: ask for the order flow, then give the number; the second checks the resume.
    if n % 2 == 0 {
        "我想查一下我的订单".to_owned()
    } else {
        format!("订单号是 A{client:02}{n:09}")
    }
}

/// Tiny deterministic generator, so a failing run can be replayed from its seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

async fn run_client(addr: std::net::SocketAddr, client: usize, log: Arc<Mutex<ClientLog>>) {
    let Ok(mut conn) = Conn::connect(addr).await else {
        return;
    };
    let session = format!("crash-{client}");
    let path = format!("/v1/conversations/{session}/messages");
    loop {
        let (id, text) = {
            let mut l = log.lock().unwrap();
            match l.pending.clone() {
                Some(p) => p,
                None => {
                    let n = l.next;
                    l.next += 1;
                    let p = (format!("{session}-m{n}"), message(client, n));
                    l.pending = Some(p.clone());
                    p
                }
            }
        };
        let Ok(resp) = conn
            .post_json(&path, &json!({"text": text, "message_id": id}))
            .await
        else {
            return; // killed: the message stays pending
        };
        assert!(
            resp.status.is_success(),
            "unexpected status {} for {id}",
            resp.status
        );
        let body: Value = serde_json::from_slice(&resp.body).expect("json");
        let mut l = log.lock().unwrap();
        if let Some(number) = text.strip_prefix("订单号是 ") {
            let replies = body["replies"].to_string();
            if !replies.contains(number) {
                l.resume_failures.push(format!("{id}: {replies}"));
            }
        }
        l.acked.push(id);
        l.pending = None;
    }
}

#[test]
fn acknowledged_messages_survive_kill_9_exactly_once_in_order() {
    let iterations: usize = std::env::var("KEFU_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("KEFU_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
                ^ u64::from(std::process::id())
        });
    println!("crash test: {iterations} kills, seed {seed}");
    let mut rng = Lcg(seed);
    let dir = tempfile::tempdir().unwrap();
    let logs: Vec<Arc<Mutex<ClientLog>>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    for _ in 0..iterations {
        let server = KefuProcess::start(dir.path(), &[]).expect("kefu starts after a kill");
        let addr = server.addr;
        let kill_after = Duration::from_millis(50 + rng.next() % 450);
        rt.block_on(async {
            let clients: Vec<_> = logs
                .iter()
                .enumerate()
                .map(|(i, log)| tokio::spawn(run_client(addr, i, log.clone())))
                .collect();
            tokio::time::sleep(kill_after).await;
            server.kill9().expect("kill -9");
            for c in clients {
                c.await.expect("client task");
            }
        });
    }

    // Final pass: resolve what is still pending, then stop the server the hard way too.
    let server = KefuProcess::start(dir.path(), &[]).expect("kefu starts");
    rt.block_on(async {
        for (i, log) in logs.iter().enumerate() {
            let pending = log.lock().unwrap().pending.clone();
            if let Some((id, text)) = pending {
                let mut conn = Conn::connect(server.addr).await.unwrap();
                let r = conn
                    .post_json(
                        &format!("/v1/conversations/crash-{i}/messages"),
                        &json!({"text": text, "message_id": id}),
                    )
                    .await
                    .unwrap();
                assert!(r.status.is_success());
                let mut l = log.lock().unwrap();
                l.acked.push(id);
                l.pending = None;
            }
        }
    });
    server.kill9().unwrap();

    // Read the store directly.
    let store = SledStore::open(dir.path()).expect("store opens after the last kill");
    let mut total = 0;
    rt.block_on(async {
        for (i, log) in logs.iter().enumerate() {
            let l = log.lock().unwrap();
            assert!(
                l.resume_failures.is_empty(),
                "client {i} did not resume: {:?}",
                l.resume_failures
            );
            let events = store
                .events(&format!("crash-{i}"), 1, usize::MAX)
                .await
                .unwrap();
            for (k, ev) in events.iter().enumerate() {
                assert_eq!(ev.seq, k as u64 + 1, "client {i}: the log has a gap");
            }
            let stored: Vec<String> = events
                .iter()
                .filter_map(|e| match SessionEvent::decode(&e.payload).unwrap() {
                    SessionEvent::User { message_id, .. } => Some(message_id),
                    _ => None,
                })
                .collect();
            let unique: HashSet<&String> = stored.iter().collect();
            assert_eq!(
                unique.len(),
                stored.len(),
                "client {i}: a message was applied twice"
            );
            assert_eq!(
                stored, l.acked,
                "client {i}: stored messages differ from acknowledged ones"
            );
            total += l.acked.len();
        }
    });
    println!(
        "crash test: {total} acknowledged messages across {CLIENTS} sessions, all present once, in order"
    );
    assert!(
        total > CLIENTS * 2,
        "the clients made progress ({total} messages)"
    );
}
