//! An in-memory [`Store`]: the same contract as the durable back-ends without the durability.
//!
//! For `kefu test` and `kefu chat` (conversations that need no data directory) and for tests of
//! code above the store. Never for serving real users: nothing survives the process.

use std::collections::{BTreeMap, HashMap, VecDeque};

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
    /// The recent idempotency keys, oldest first, at most the store's window.
    idem: VecDeque<(String, u64, u64)>,
}

/// A store that keeps everything in memory.
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Session>>,
    idem_window: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_idempotency_window(crate::DEFAULT_IDEMPOTENCY_WINDOW)
    }
}

impl MemoryStore {
    /// An empty store remembering [`crate::DEFAULT_IDEMPOTENCY_WINDOW`] keys per session.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store remembering the last `window` idempotency keys per session, like the
    /// durable back-ends (0: no deduplication).
    pub fn with_idempotency_window(window: usize) -> Self {
        MemoryStore {
            sessions: Mutex::default(),
            idem_window: window,
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn append(&self, session: &str, req: AppendRequest) -> Result<AppendOutcome> {
        let mut sessions = self.sessions.lock();
        let existing = sessions.get(session);
        if let (Some(s), Some(key)) = (existing, &req.idempotency_key)
            && let Some(&(_, first_seq, last_seq)) = s.idem.iter().find(|(k, _, _)| k == key)
        {
            return Ok(AppendOutcome::Duplicate {
                first_seq,
                last_seq,
            });
        }
        let head = existing.map_or(0, |s| s.seq);
        if head != req.expected_seq {
            // Nothing is written, not even an empty session: like the durable back-ends.
            return Ok(AppendOutcome::Conflict { actual_seq: head });
        }
        let s = sessions
            .entry(session.to_owned())
            .or_insert_with(|| Session {
                user: req.user.clone(),
                ..Session::default()
            });
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
            s.idem.push_back((key, first_seq, s.seq));
            while s.idem.len() > self.idem_window {
                s.idem.pop_front();
            }
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
