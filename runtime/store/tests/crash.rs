//! Crash safety: a child process appends in a loop and prints every acknowledged sequence
//! number; it is killed with SIGKILL at a random moment, several times. After each kill the
//! store must hold every acknowledged append exactly once, in order, as a gapless prefix.
//!
//! The child is this test binary itself, re-executed with `KEFU_STORE_CRASH_CHILD` set, running
//! only the `crash_child` test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kefu_store::{AppendOutcome, AppendRequest, SledStore, Store};

const CHILD_ENV: &str = "KEFU_STORE_CRASH_CHILD";
const SESSIONS: usize = 8;

fn payload(session: usize, seq: u64) -> Vec<u8> {
    format!("s{session}-e{seq}").into_bytes()
}

/// The child: appends to `SESSIONS` sessions concurrently, two events per append, printing
/// `ack <session> <last_seq>` after each acknowledged append. Does nothing in a normal run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = std::sync::Arc::new(SledStore::open(Path::new(&dir)).unwrap());
        let mut tasks = Vec::new();
        for session in 0..SESSIONS {
            let store = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let key = format!("session-{session}");
                let mut head = store.load(&key).await.unwrap().map_or(0, |s| s.seq);
                loop {
                    let req = AppendRequest {
                        expected_seq: head,
                        idempotency_key: Some(format!("msg-{head}")),
                        user: "crash".into(),
                        events: vec![payload(session, head + 1), payload(session, head + 2)],
                        snapshot: Some(head.to_be_bytes().to_vec()),
                    };
                    match store.append(&key, req).await.unwrap() {
                        AppendOutcome::Appended { last_seq, .. } => head = last_seq,
                        other => panic!("unexpected {other:?}"),
                    }
                    println!("ack {session} {head}");
                }
            }));
        }
        // The tasks never finish; awaiting one keeps the child alive and surfaces its panic.
        let first = tasks.swap_remove(0);
        first.await.unwrap();
    });
}

fn pseudo_random_ms(round: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    50 + (u64::from(nanos) ^ round.wrapping_mul(0x9E37_79B9)) % 400
}

#[test]
fn every_acknowledged_append_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked = [0u64; SESSIONS];
    // Acknowledged appends that sled had lost and the write-ahead log restored, over all
    // rounds: the log, not sled's own recovery, is what kept them.
    let mut restored = 0;
    for round in 0..5u64 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, first_ack_seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() == Some("ack") {
                    // Ignored once the main thread stopped waiting.
                    let _ = first_ack.send(());
                    let session: usize = parts.next().unwrap().parse().unwrap();
                    let seq: u64 = parts.next().unwrap().parse().unwrap();
                    acks.push((session, seq));
                }
            }
            acks
        });
        // Kill at a random moment *while appending*: on a loaded machine the child may need
        // longer than the random delay just to start, and a kill before the first append
        // would prove nothing.
        let started = first_ack_seen.recv_timeout(Duration::from_secs(60)).is_ok();
        assert!(started, "round {round}: the child did not start appending");
        std::thread::sleep(Duration::from_millis(pseudo_random_ms(round)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        assert!(
            !acks.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        for (session, seq) in acks {
            assert!(seq >= acked[session], "acks go forward");
            acked[session] = acked[session].max(seq);
        }

        let store = SledStore::open(dir.path()).unwrap();
        let replayed = store.replayed();
        restored += replayed.applied;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for (session, &acked_seq) in acked.iter().enumerate() {
                let key = format!("session-{session}");
                let loaded = store.load(&key).await.unwrap();
                let head = loaded.as_ref().map_or(0, |s| s.seq);
                assert!(
                    head >= acked_seq,
                    "round {round}: {key} head {head} < acked {acked_seq}"
                );
                let events = store.events(&key, 0, usize::MAX).await.unwrap();
                assert_eq!(
                    events.len() as u64,
                    head,
                    "round {round}: {key} log is not gapless"
                );
                for (i, event) in events.iter().enumerate() {
                    let seq = i as u64 + 1;
                    assert_eq!(event.seq, seq);
                    assert_eq!(
                        event.payload,
                        payload(session, seq),
                        "round {round}: {key} seq {seq}"
                    );
                }
                if let Some(loaded) = loaded {
                    // The snapshot was written with the head before the append that set it.
                    assert_eq!(loaded.snapshot_seq, head);
                    assert_eq!(loaded.snapshot, Some((head - 2).to_be_bytes().to_vec()));
                }
            }
        });
        eprintln!("round {round}: acked {acked:?}, {replayed:?}");
    }
    assert!(
        restored > 0,
        "no kill left an acknowledged append that only the write-ahead log held: its replay was never tested"
    );
}
