//! Model-based test of `SledStore`: random operations, including `Reboot` (drop and reopen),
//! run against the store (and, without reboots, the `MemoryStore`) and against a `BTreeMap`
//! model; every answer must agree. The idempotency window is small (2 keys, 4 keys in use), so
//! forgetting old keys is exercised all the time.

use std::collections::BTreeMap;
use std::path::Path;

use std::collections::VecDeque;

use kefu_store::{
    AppendOutcome, AppendRequest, LoadedSession, MemoryStore, SledStore, SledStoreConfig, Store,
    StoredEvent,
};
use proptest::prelude::*;

/// Session keys chosen so that naive prefix encodings would collide.
const SESSIONS: [&str; 4] = ["a", "a\0b", "用户\u{0}", ""];
const USERS: [&str; 3] = ["u", "u\0x", "客"];
/// Idempotency keys remembered per session, in the stores and the model.
const WINDOW: usize = 2;

fn open(dir: &Path) -> SledStore {
    let config = SledStoreConfig {
        idempotency_window: WINDOW,
        ..SledStoreConfig::default()
    };
    SledStore::open_with(dir, config).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        session: usize,
        /// 0 means the right expected seq; anything else is an offset making it wrong.
        wrong_by: i8,
        idem: Option<u8>,
        events: u8,
        snapshot: bool,
        user: usize,
    },
    Load(usize),
    Events {
        session: usize,
        from: u64,
        limit: usize,
    },
    SessionsOfUser(usize),
    DeleteUser(usize),
    SessionCount,
    Reboot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..SESSIONS.len(), prop_oneof![3 => Just(0i8), 1 => -2i8..3], proptest::option::of(0u8..4), 0u8..4, any::<bool>(), 0..USERS.len())
            .prop_map(|(session, wrong_by, idem, events, snapshot, user)| Op::Append { session, wrong_by, idem, events, snapshot, user }),
        2 => (0..SESSIONS.len()).prop_map(Op::Load),
        2 => (0..SESSIONS.len(), 0u64..10, 0usize..6).prop_map(|(session, from, limit)| Op::Events { session, from, limit }),
        1 => (0..USERS.len()).prop_map(Op::SessionsOfUser),
        1 => (0..USERS.len()).prop_map(Op::DeleteUser),
        1 => Just(Op::SessionCount),
        1 => Just(Op::Reboot),
    ]
}

#[derive(Debug, Default, Clone)]
struct ModelSession {
    events: Vec<Vec<u8>>,
    snapshot_seq: u64,
    snapshot: Option<Vec<u8>>,
    user: String,
    /// The last `WINDOW` keys, oldest first.
    idem: VecDeque<(String, u64, u64)>,
}

#[derive(Debug, Default)]
struct Model {
    sessions: BTreeMap<String, ModelSession>,
}

impl Model {
    fn head(&self, session: &str) -> u64 {
        self.sessions
            .get(session)
            .map_or(0, |s| s.events.len() as u64)
    }

    fn append(&mut self, session: &str, req: AppendRequest) -> AppendOutcome {
        let head = self.head(session);
        if let Some(key) = &req.idempotency_key
            && let Some(&(_, first_seq, last_seq)) = self
                .sessions
                .get(session)
                .and_then(|s| s.idem.iter().find(|(k, _, _)| k == key))
        {
            return AppendOutcome::Duplicate {
                first_seq,
                last_seq,
            };
        }
        if req.expected_seq != head {
            return AppendOutcome::Conflict { actual_seq: head };
        }
        let entry = self
            .sessions
            .entry(session.to_owned())
            .or_insert_with(|| ModelSession {
                user: req.user.clone(),
                ..Default::default()
            });
        let first_seq = head + 1;
        entry.events.extend(req.events);
        let last_seq = entry.events.len() as u64;
        if let Some(snapshot) = req.snapshot {
            entry.snapshot = Some(snapshot);
            entry.snapshot_seq = last_seq;
        }
        if let Some(key) = req.idempotency_key {
            entry.idem.push_back((key, first_seq, last_seq));
            if entry.idem.len() > WINDOW {
                entry.idem.pop_front();
            }
        }
        AppendOutcome::Appended {
            first_seq,
            last_seq,
        }
    }

    fn load(&self, session: &str) -> Option<LoadedSession> {
        self.sessions.get(session).map(|s| LoadedSession {
            seq: s.events.len() as u64,
            snapshot_seq: s.snapshot_seq,
            snapshot: s.snapshot.clone(),
            user: s.user.clone(),
        })
    }

    fn events(&self, session: &str, from: u64, limit: usize) -> Vec<StoredEvent> {
        let Some(s) = self.sessions.get(session) else {
            return vec![];
        };
        (1u64..)
            .zip(&s.events)
            .filter(|(seq, _)| *seq >= from)
            .take(limit)
            .map(|(seq, payload)| StoredEvent {
                seq,
                payload: payload.clone(),
            })
            .collect()
    }

    fn sessions_of_user(&self, user: &str) -> Vec<String> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn delete_user(&mut self, user: &str) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.user != user);
        before - self.sessions.len()
    }
}

async fn run_ops(dir: &Path, ops: Vec<Op>) {
    let mut store = Some(open(dir));
    // The memory store follows along until the first reboot (it forgets everything there).
    let mut memory = Some(MemoryStore::with_idempotency_window(WINDOW));
    let mut model = Model::default();
    let mut counter = 0u32;
    for op in ops {
        let s = store.as_ref().unwrap();
        match op {
            Op::Append {
                session,
                wrong_by,
                idem,
                events,
                snapshot,
                user,
            } => {
                let session = SESSIONS[session];
                let head = model.head(session);
                let expected_seq = head.saturating_add_signed(i64::from(wrong_by));
                let mut next = || {
                    counter += 1;
                    format!("payload-{counter}").into_bytes()
                };
                let req = AppendRequest {
                    expected_seq,
                    idempotency_key: idem.map(|k| format!("m{k}")),
                    user: USERS[user].to_owned(),
                    events: (0..events).map(|_| next()).collect(),
                    snapshot: snapshot.then(&mut next),
                };
                let got = s.append(session, req.clone()).await.unwrap();
                if let Some(memory) = &memory {
                    let in_memory = memory.append(session, req.clone()).await.unwrap();
                    assert_eq!(in_memory, got, "memory store, append to {session:?}");
                }
                assert_eq!(got, model.append(session, req), "append to {session:?}");
            }
            Op::Load(session) => {
                let session = SESSIONS[session];
                assert_eq!(
                    s.load(session).await.unwrap(),
                    model.load(session),
                    "load {session:?}"
                );
            }
            Op::Events {
                session,
                from,
                limit,
            } => {
                let session = SESSIONS[session];
                let got = s.events(session, from, limit).await.unwrap();
                if let Some(memory) = &memory {
                    assert_eq!(memory.events(session, from, limit).await.unwrap(), got);
                }
                assert_eq!(
                    got,
                    model.events(session, from, limit),
                    "events {session:?} from {from} limit {limit}"
                );
            }
            Op::SessionsOfUser(user) => {
                let mut got = s.sessions_of_user(USERS[user]).await.unwrap();
                got.sort();
                assert_eq!(got, model.sessions_of_user(USERS[user]));
            }
            Op::DeleteUser(user) => {
                if let Some(memory) = &memory {
                    memory.delete_user(USERS[user]).await.unwrap();
                }
                assert_eq!(
                    s.delete_user(USERS[user]).await.unwrap(),
                    model.delete_user(USERS[user])
                );
            }
            Op::SessionCount => {
                assert_eq!(s.session_count().await.unwrap(), model.sessions.len());
            }
            Op::Reboot => {
                drop(store.take());
                memory = None;
                store = Some(open(dir));
            }
        }
    }
    // Finally everything must also survive one more reboot.
    drop(store.take());
    let s = open(dir);
    for session in SESSIONS {
        assert_eq!(s.load(session).await.unwrap(), model.load(session));
        assert_eq!(
            s.events(session, 0, usize::MAX).await.unwrap(),
            model.events(session, 0, usize::MAX)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_ops(dir.path(), ops));
    }
}
