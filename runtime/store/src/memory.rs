//! An in-memory [`Store`]: the same contract as the durable back-ends without the durability.
//!
//! For `kefu test` and `kefu chat` (conversations that need no data directory) and for tests of
//! code above the store. Never for serving real users: nothing survives the process.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{AppendOutcome, AppendRequest, LoadedSession, Result, Store, StoredEvent};

#[derive(Default)]
struct Session {
    user: String,
    seq: u64,
    snapshot_seq: u64,
    snapshot: Option<Vec<u8>>,
    events: BTreeMap<u64, Vec<u8>>,
    idem: HashMap<String, (u64, u64)>,
}

/// A store that keeps everything in memory.
#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Session>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn append(&self, session: &str, req: AppendRequest) -> Result<AppendOutcome> {
        let mut sessions = self.sessions.lock();
        let s = sessions
            .entry(session.to_owned())
            .or_insert_with(|| Session {
                user: req.user.clone(),
                ..Session::default()
            });
        if let Some(key) = &req.idempotency_key
            && let Some(&(first_seq, last_seq)) = s.idem.get(key)
        {
            return Ok(AppendOutcome::Duplicate {
                first_seq,
                last_seq,
            });
        }
        if s.seq != req.expected_seq {
            return Ok(AppendOutcome::Conflict { actual_seq: s.seq });
        }
        let first_seq = s.seq + 1;
        for payload in req.events {
            s.seq += 1;
            s.events.insert(s.seq, payload);
        }
        if let Some(snapshot) = req.snapshot {
            s.snapshot = Some(snapshot);
            s.snapshot_seq = s.seq;
        }
        if let Some(key) = req.idempotency_key {
            s.idem.insert(key, (first_seq, s.seq));
        }
        Ok(AppendOutcome::Appended {
            first_seq,
            last_seq: s.seq,
        })
    }

    async fn load(&self, session: &str) -> Result<Option<LoadedSession>> {
        Ok(self.sessions.lock().get(session).map(|s| LoadedSession {
            seq: s.seq,
            snapshot_seq: s.snapshot_seq,
            snapshot: s.snapshot.clone(),
            user: s.user.clone(),
        }))
    }

    async fn events(&self, session: &str, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        Ok(self
            .sessions
            .lock()
            .get(session)
            .map(|s| {
                s.events
                    .range(from_seq..)
                    .take(limit)
                    .map(|(&seq, payload)| StoredEvent {
                        seq,
                        payload: payload.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self
            .sessions
            .lock()
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn delete_user(&self, user: &str) -> Result<usize> {
        let mut sessions = self.sessions.lock();
        let before = sessions.len();
        sessions.retain(|_, s| s.user != user);
        Ok(before - sessions.len())
    }

    async fn session_count(&self) -> Result<usize> {
        Ok(self.sessions.lock().len())
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}
