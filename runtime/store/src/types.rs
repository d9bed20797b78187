//! Plain data types of the store contract.

use serde::{Deserialize, Serialize};

/// One atomic write to a session's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendRequest {
    /// The sequence number the caller believes is the session's head (0 for a new session).
    /// The first event of this request gets `expected_seq + 1`.
    pub expected_seq: u64,
    /// Retry key (e.g. the channel's message id). `None` disables deduplication for this write.
    pub idempotency_key: Option<String>,
    /// The user the session belongs to, indexed for `sessions_of_user`/`delete_user`.
    /// Only recorded on a session's first write; later values are ignored.
    pub user: String,
    /// Event payloads, in order; may be empty when only the snapshot changes.
    pub events: Vec<Vec<u8>>,
    /// The session state after these events, if it changed. Stored as the session's snapshot,
    /// tagged with the new head sequence.
    pub snapshot: Option<Vec<u8>>,
}

/// What an append did. Normal outcomes are values; only failures of the store are errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Written and durable; events got `first_seq..=last_seq` (`first_seq > last_seq` when the
    /// request carried no events).
    Appended {
        /// Sequence number of the first event written.
        first_seq: u64,
        /// The session's new head sequence.
        last_seq: u64,
    },
    /// The idempotency key was already used by an earlier write of this session; nothing was
    /// written. The range is the earlier write's.
    Duplicate {
        /// First sequence number of the earlier write.
        first_seq: u64,
        /// Last sequence number of the earlier write.
        last_seq: u64,
    },
    /// The session's head is not `expected_seq`; nothing was written.
    Conflict {
        /// The session's actual head sequence.
        actual_seq: u64,
    },
}

/// A session as loaded from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedSession {
    /// Head sequence number (the last event's).
    pub seq: u64,
    /// Sequence number the snapshot was taken at (`<= seq`); events after it must be replayed.
    pub snapshot_seq: u64,
    /// The latest snapshot, if any was written.
    pub snapshot: Option<Vec<u8>>,
    /// The user recorded on the session's first write.
    pub user: String,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its sequence number within the session, from 1.
    pub seq: u64,
    /// The payload as appended.
    pub payload: Vec<u8>,
}

/// Failures of the store itself. Each names what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error(
        "data directory {path} is locked by another process (is another kefu running?): {detail}"
    )]
    Locked {
        /// The data directory.
        path: String,
        /// What the back-end said.
        detail: String,
    },
    /// The files are unreadable or inconsistent; the store refuses to run rather than guess.
    #[error("data directory {path} is damaged and cannot be opened safely: {detail}")]
    Corrupted {
        /// The data directory.
        path: String,
        /// What the back-end said.
        detail: String,
    },
    /// A record in the store could not be decoded.
    #[error("stored record for session {session} is unreadable: {detail}")]
    BadRecord {
        /// Which session's record.
        session: String,
        /// What was wrong with it.
        detail: String,
    },
    /// An I/O failure (disk full, permissions, ...).
    #[error("storage I/O failed during {op}: {detail}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// What the operating system or back-end said.
        detail: String,
    },
    /// The store was closed (shutdown in progress).
    #[error("the store is closed")]
    Closed,
}
