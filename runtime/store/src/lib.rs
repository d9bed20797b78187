//! kefu's durable store: the [`Store`] trait that session actors write through, and the
//! embedded sled back-end behind the `sled` feature.
//!
//! The trait speaks in opaque bytes: the store knows sessions, sequence numbers, idempotency
//! keys, snapshots and users, never the shape of dialog state. That keeps back-ends (sled now,
//! Postgres later) free of dialog types, and the actors free of storage types.
//!
//! Invariants every back-end keeps:
//! - **Acknowledged means durable.** [`Store::append`] returns `Ok` only once the events, the
//!   snapshot and the idempotency record of that call are on disk (flushed), all or nothing.
//! - **Optimistic concurrency.** An append names the sequence number it expects the session to be
//!   at; a mismatch is [`AppendOutcome::Conflict`], a value, not an error.
//! - **Idempotency, bounded.** An append whose idempotency key is among the keys of the
//!   session's last [`DEFAULT_IDEMPOTENCY_WINDOW`] (configurable per back-end) keyed appends
//!   writes nothing and answers [`AppendOutcome::Duplicate`] with the sequence range of the
//!   first write, so a retried message is never applied twice and its original replies can be
//!   read back. Older keys are forgotten, so a session's storage does not grow per turn beyond
//!   its events; a retry older than the window is treated as a new message (and, carrying a
//!   stale `expected_seq`, normally answered `Conflict`).

mod memory;
mod types;
pub mod varint;
pub use memory::MemoryStore;
pub use types::*;

#[cfg(feature = "sled")]
pub mod sled_store;
#[cfg(feature = "sled")]
pub use sled_store::{Replayed, SledStore, SledStoreConfig};

use async_trait::async_trait;

/// How many idempotency keys a session remembers by default (see the crate docs): twice the
/// runtime's default per-session in-flight limit (8), so a retry of any message a client may
/// still be waiting for is recognised. Small because the keys ride in the meta record, which
/// every turn rewrites.
pub const DEFAULT_IDEMPOTENCY_WINDOW: usize = 16;

/// The result type of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A durable, per-session event log with snapshots. See the crate docs for the invariants.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends `req.events` (and replaces the snapshot when `req.snapshot` is set) for `session`,
    /// atomically, returning once the write is durable.
    async fn append(&self, session: &str, req: AppendRequest) -> Result<AppendOutcome>;

    /// Loads a session's latest snapshot and head sequence; `None` for a session never written.
    async fn load(&self, session: &str) -> Result<Option<LoadedSession>>;

    /// Reads a session's events with `seq >= from_seq`, in order, at most `limit` of them.
    async fn events(&self, session: &str, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>>;

    /// Lists the session keys that belong to `user`.
    async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>>;

    /// Deletes every session of `user` (events, snapshots, idempotency records), durably.
    /// Returns how many sessions were deleted.
    async fn delete_user(&self, user: &str) -> Result<usize>;

    /// Counts stored sessions (for readiness and metrics; may scan).
    async fn session_count(&self) -> Result<usize>;

    /// Flushes everything written so far. `append` already waits for durability; this is for
    /// shutdown.
    async fn flush(&self) -> Result<()>;
}
