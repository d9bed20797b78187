//! Crash test: the real `kefu` binary is killed with SIGKILL at random moments while many
//! sessions talk to it, and restarted each time. Afterwards every acknowledged message is in the
//! store exactly once and in order, nothing unacknowledged is duplicated, the logs are gapless, and
//! each conversation resumed where it was: replaying the acknowledged messages through the same
//! bot from a fresh state reproduces every acknowledged reply and the final stored state, which
//! could not happen if a restart had lost or doubled any state change.
//!
//! `KEFU_CRASH_ITERATIONS` sets the number of kills (default 20); `KEFU_CRASH_SEED` replays a run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kefu_actors::engine::{EngineState, FlowEngine, TurnMeta};
use kefu_actors::events::SessionEvent;
use kefu_store::{SledStore, Store};
use kefu_tests::client::Conn;
use kefu_tests::process::KefuProcess;
use serde_json::{Value, json};
use std::sync::Mutex;

const CLIENTS: usize = 12;
/// The channel name the HTTP API gives its messages.
const CHANNEL: &str = "web";

#[derive(Default)]
struct ClientLog {
    /// Message ids acknowledged with 200, in order.
    acked: Vec<String>,
    /// Text and reply texts of each acknowledged message, in order.
    turns: Vec<(String, Vec<String>)>,
    /// A message sent whose answer was lost to the kill: resent, same id, after the restart.
    pending: Option<(String, String)>,
    /// Next message number.
    next: u64,
}

/// A conversation that walks through several flows (questions, slot answers, digressions),
/// so lost or doubled state changes would change later replies.
const SCRIPT: &[&str] = &[
    "你好",
    "我想查一下我的订单",
    "订单号是 A{n}",
    "啥时候能到啊",
    "我要退货",
    "运费多少钱",
    "B{n}",
    "退货",
    "谢谢",
    "where is my order",
    "C{n}",
    "I want an invoice",
    "thanks, bye",
];

fn message(client: usize, n: u64) -> String {
    SCRIPT[n as usize % SCRIPT.len()].replace("{n}", &format!("{client:02}{n:09}"))
}

fn reply_texts(body: &Value) -> Vec<String> {
    body["replies"]
        .as_array()
        .expect("replies")
        .iter()
        .map(|r| r["text"].as_str().unwrap_or_default().to_owned())
        .collect()
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
        let replies = reply_texts(&body);
        let mut l = log.lock().unwrap();
        l.acked.push(id);
        l.turns.push((text, replies));
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
                let body: Value = serde_json::from_slice(&r.body).unwrap();
                let replies = reply_texts(&body);
                let mut l = log.lock().unwrap();
                l.acked.push(id);
                l.turns.push((text, replies));
                l.pending = None;
            }
        }
    });
    server.kill9().unwrap();

    // Read the store directly, and replay with the same bot and the same built-in skills (the
    // demo order back-end serves the same fixture, so every order lookup answers the same).
    let store = SledStore::open(dir.path()).expect("store opens after the last kill");
    let mut total = 0;
    rt.block_on(async {
        let flows = kefu_tests::process::shop_flows();
        let tickets: Arc<dyn kefu_tickets::TicketStore> =
            Arc::new(kefu_tickets::MemoryTicketStore::new());
        let mut builtins = kefu_runtime::builtin::builtin_skills(&flows, tickets, None)
            .await
            .expect("built-in skills start");
        let host = Arc::new(std::mem::take(&mut builtins.host));
        host.start().await.expect("skills start");
        let engine = FlowEngine::load(&flows)
            .expect("bot loads")
            .with_skills(host);
        for (i, log) in logs.iter().enumerate() {
            let (acked, turns) = {
                let l = log.lock().unwrap();
                (l.acked.clone(), l.turns.clone())
            };
            // Replay from scratch: every acknowledged reply must come out again.
            let mut state = EngineState::default();
            let session = format!("crash-{i}");
            let meta = TurnMeta {
                user: &session,
                session: &session,
                channel: CHANNEL,
                ..TurnMeta::default()
            };
            for (k, (text, replies)) in turns.iter().enumerate() {
                let report = engine.step(&mut state, text, &meta).await;
                let expected: Vec<String> =
                    report.handled.replies.into_iter().map(|r| r.text).collect();
                assert_eq!(
                    &expected, replies,
                    "client {i}, turn {k} ({text:?}): the conversation did not resume where it was"
                );
            }
            let loaded = store
                .load(&format!("crash-{i}"))
                .await
                .unwrap()
                .expect("session stored");
            let snapshot: Value =
                serde_json::from_slice(&loaded.snapshot.expect("snapshot")).unwrap();
            // Compared as typed state: emotion intensities are f32, whose JSON text is exact
            // but whose widening to f64 in a `Value` is not.
            let stored_state: EngineState =
                serde_json::from_value(snapshot["dialog"].clone()).expect("snapshot decodes");
            assert_eq!(
                stored_state, state,
                "client {i}: the stored state differs from the replayed one"
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
                stored, acked,
                "client {i}: stored messages differ from acknowledged ones"
            );
            total += acked.len();
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
