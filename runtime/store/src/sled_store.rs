//! The embedded back-end: [`SledStore`], a [`Store`] on one sled tree with group commit.
//!
//! **Layout.** One sled tree holds every record, told apart by a kind byte, with
//! length-prefixed session keys and user ids (see `codec.rs` for the table): a meta record per
//! session (head seq, snapshot seq, user, the recent idempotency keys and the snapshot itself,
//! so `load` and the duplicate check are one point read), one record per append holding its
//! events (`session ++ first seq` big-endian, so a range read is one ordered scan), and a user
//! index. The directory layout (lock, format marker, sled's files) is described in `open.rs`.
//!
//! **Write path of `append`.**
//! 1. Under a striped per-session mutex: read the meta record, look the idempotency key up in
//!    it, compare the head with `expected_seq`, then write the events record and, last, the
//!    new meta record, each with a plain sled `insert` (see [`write`] for the order, the crash
//!    windows it leaves and why readers ignore what a crashed append left behind). The stripe
//!    lock makes check-then-write atomic even when two writers race on one session (the
//!    directory lock rules out other processes). Still under the stripe, hand the append's
//!    write-ahead log frame to the group commit and take its ticket (see `wal.rs`).
//! 2. Release the stripe and wait, off the lock, until the flush of that ticket has written the
//!    frame to the log and synced it, or checkpointed (see `group_commit.rs`). Only then is
//!    the append acknowledged.
//!
//! `Duplicate` and `Conflict` answers wait for a flush too: the record they were derived from
//! may still be on its way to disk, and answering from it early would acknowledge data that a
//! crash could still take away.
//!
//! No `sled::Batch` and no transactions: both take sled's process-wide concurrency-control
//! write lock, which a running flush (now: a checkpoint) holds as a reader, so every append
//! would stall a runtime worker for up to a whole flush. See `DURABILITY.md`.
//!
//! **Read side.** The meta record is the truth: `events` stops at its head, `sessions_of_user`
//! lists only index entries confirmed by a meta record of that user.
//!
//! Sled calls that only touch a few keys (gets, two inserts, a bounded scan) run inline on the
//! calling task: they take microseconds. Log writes and checkpoints run on the group-commit
//! thread; whole-store scans (`delete_user`, `session_count`) run on tokio's blocking pool.

mod codec;
#[cfg(test)]
mod crash_windows;
mod group_commit;
#[cfg(test)]
mod idem_window;
mod open;
mod wal;
#[cfg(test)]
mod wal_recovery;
mod write;

use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{AppendOutcome, AppendRequest, LoadedSession, Result, Store, StoreError, StoredEvent};
use codec::Meta;
use group_commit::GroupCommit;

/// Tunables of [`SledStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledStoreConfig {
    /// sled's page cache size in bytes. Sessions beyond the cache are read from disk on load.
    pub cache_capacity_bytes: u64,
    /// `fdatasync` the write-ahead log after each group-commit write, and sled's data file
    /// after each checkpoint's `sled::Db::flush` (which on Linux ends in `sync_file_range`:
    /// that survives a process crash but not necessarily a power loss). With it, an
    /// acknowledgement holds across power loss too (on disks that honour cache flushes).
    /// Without it, only across a process crash. On by default; turn off only for throwaway data.
    pub fsync: bool,
    /// sled's own timer flush interval (`None`: off). It is not a durability point — every
    /// append waits for its own group-commit flush, and checkpoints flush sled — so it is off
    /// by default.
    pub background_flush_ms: Option<u64>,
    /// Number of stripes of the per-session write lock. More stripes, fewer false conflicts
    /// between sessions hashing to the same stripe.
    pub lock_stripes: usize,
    /// How many idempotency keys each session remembers: a retry is answered `Duplicate` as
    /// long as fewer than this many newer keyed appends of the session were accepted since.
    /// Older keys are forgotten, so storage does not grow with the number of turns. Keep it
    /// well above the per-session in-flight limit. 0 turns deduplication off.
    pub idempotency_window: usize,
    /// Group-commit flushes start at least this far apart. Under load, appends that arrive
    /// meanwhile share the next flush (fewer flushes, each waking the flusher and every
    /// waiter once); after an idle spell the first flush starts at once, so a lone append
    /// waits no longer. Default 2 ms: in the load test (1,000 sessions, 2 cores) the server's
    /// CPU per turn fell from about 130 to 95 µs; 0.5, 1 and 3 ms gave 120, 112 and 98 µs
    /// (BENCHMARKS.md, "Flush pacing"). An acknowledgement may wait up to this much longer
    /// under load. Zero flushes back to back.
    pub min_flush_interval: std::time::Duration,
}

impl Default for SledStoreConfig {
    fn default() -> Self {
        SledStoreConfig {
            cache_capacity_bytes: 256 * 1024 * 1024,
            fsync: true,
            background_flush_ms: None,
            lock_stripes: 1024,
            idempotency_window: crate::DEFAULT_IDEMPOTENCY_WINDOW,
            min_flush_interval: std::time::Duration::from_millis(2),
        }
    }
}

/// State shared between the store handle and blocking-pool jobs.
struct Inner {
    tree: sled::Db,
    /// Serialises check-then-write per session (striped by key hash).
    stripes: Box<[Mutex<()>]>,
    hasher: std::hash::RandomState,
    /// [`SledStoreConfig::idempotency_window`].
    idem_window: usize,
    /// The data directory, for error messages.
    path: String,
}

/// Metric: seconds each step of a group-commit flush took: `write` and `fdatasync` of the
/// write-ahead log, or a whole `checkpoint` (sled flush, `fdatasync` of sled's file, log emptied).
pub const FLUSH_SECONDS: &str = "kefu_store_flush_seconds";

/// What the flusher thread owns: the write-ahead log and what a checkpoint needs (see
/// `wal.rs` for the protocol).
struct Durability {
    db: sled::Db,
    /// sled's data file, for `fdatasync` after sled's flush at a checkpoint.
    data_file: std::fs::File,
    wal: wal::Wal,
    /// [`SledStoreConfig::fsync`].
    fsync: bool,
    /// A log write or sync failed and no checkpoint has succeeded since: the log's tail is
    /// unknown, so nothing may be appended to it before a checkpoint.
    failed: bool,
    write_seconds: metrics::Histogram,
    sync_seconds: metrics::Histogram,
    checkpoint_seconds: metrics::Histogram,
}

impl Durability {
    /// Makes one generation durable: its frames written to the log and synced, or a checkpoint
    /// when one was asked for, the log is full, or an earlier log write failed.
    fn sync(&mut self, batch: group_commit::Batch<'_>) -> std::result::Result<(), String> {
        let full = self.wal.len() + batch.frames.len() as u64 > wal::CHECKPOINT_BYTES;
        if batch.checkpoint || full || self.failed {
            // The batch's appends were applied to sled before their frames were handed over,
            // so the checkpoint's sled flush covers them: their frames need not be written.
            return self.checkpoint();
        }
        let started = std::time::Instant::now();
        let written = self.wal.write_durably(batch.frames, false);
        self.write_seconds.record(started.elapsed());
        let started = std::time::Instant::now();
        let synced = written.and_then(|()| if self.fsync { self.wal.sync() } else { Ok(()) });
        if self.fsync {
            self.sync_seconds.record(started.elapsed());
        }
        synced.map_err(|e| {
            self.failed = true;
            format!("write-ahead log {}: {e}", self.wal.path().display())
        })
    }

    /// sled flush, `fdatasync` of sled's file, then the log emptied.
    fn checkpoint(&mut self) -> std::result::Result<(), String> {
        let started = std::time::Instant::now();
        let result = self
            .db
            .flush()
            .map_err(|e| format!("sled flush: {e}"))
            .and_then(|_| {
                if self.fsync {
                    self.data_file
                        .sync_data()
                        .map_err(|e| format!("fdatasync of sled data file: {e}"))
                } else {
                    Ok(())
                }
            })
            .and_then(|()| {
                self.wal.reset().map_err(|e| {
                    format!(
                        "emptying write-ahead log {}: {e}",
                        self.wal.path().display()
                    )
                })
            });
        self.checkpoint_seconds.record(started.elapsed());
        self.failed = result.is_err();
        result
    }
}

/// Re-applies what the write-ahead log holds (see `wal.rs`): appends sled already has are
/// refused by their idempotency key or expected head and skipped; the rest are applied.
fn replay(inner: &Inner, logged: &wal::Recovered, wal_path: &Path) -> Result<Replayed> {
    let decoded = wal::decode_all(&logged.frames);
    if let Some(why) = decoded.stopped {
        // Batches are checksummed as a whole, so a frame that does not decode inside one is
        // not a torn write: it is damage, or a log written by something else.
        return Err(StoreError::Corrupted {
            path: inner.path.clone(),
            detail: format!(
                "the write-ahead log {} holds an unreadable record ({why}); restore from backup",
                wal_path.display()
            ),
        });
    }
    let (mut applied, mut present) = (0usize, 0usize);
    for (session, req) in decoded.records {
        let expected = req.expected_seq;
        match inner.append_locked(&session, req, None)?.0 {
            AppendOutcome::Appended { .. } => applied += 1,
            AppendOutcome::Duplicate { .. } => present += 1,
            AppendOutcome::Conflict { actual_seq } if actual_seq > expected => present += 1,
            AppendOutcome::Conflict { actual_seq } => {
                // Every earlier append of this session is in sled or earlier in the log, so
                // a head behind the one the record expects means lost data.
                return Err(StoreError::Corrupted {
                    path: inner.path.clone(),
                    detail: format!(
                        "the write-ahead log {} continues session {session:?} at seq {expected}, \
                         but its head is {actual_seq}; restore from backup",
                        wal_path.display()
                    ),
                });
            }
        }
    }
    if let Some(why) = logged.torn {
        // Only the last write can be torn, and its appends were never acknowledged.
        tracing::warn!(
            path = %wal_path.display(),
            reason = why,
            "Write-ahead log ends in an incomplete write (interrupted by a crash, never acknowledged); dropped"
        );
    }
    tracing::info!(
        applied,
        already_stored = present,
        "Write-ahead log replayed"
    );
    Ok(Replayed {
        applied,
        already_stored: present,
    })
}

/// What the write-ahead log's replay did when the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Acknowledged appends that sled had lost in a crash, applied again from the log.
    pub applied: usize,
    /// Logged appends sled already held (skipped).
    pub already_stored: usize,
}

/// A [`Store`] on an embedded sled database with group commit. See the module docs.
pub struct SledStore {
    inner: Arc<Inner>,
    /// Dropped after `inner`: joins the flusher (which holds the last other database handle),
    /// so the files are closed before the directory lock is released below.
    commit: GroupCommit,
    /// What the log's replay did at open.
    replayed: Replayed,
    /// Holds the directory lock for the store's lifetime.
    _lock: std::fs::File,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in directory `path` with default tunables.
    ///
    /// Fails with [`StoreError::Locked`] when another store holds the directory, and with
    /// [`StoreError::Corrupted`] (or [`StoreError::Io`]) when its files are damaged or of
    /// another layout version. Blocks while sled recovers its log: call it before serving, or
    /// from `spawn_blocking`.
    pub fn open(path: &Path) -> Result<SledStore> {
        SledStore::open_with(path, SledStoreConfig::default())
    }

    /// Opens the store in `path` with the given tunables. See [`SledStore::open`].
    pub fn open_with(path: &Path, config: SledStoreConfig) -> Result<SledStore> {
        let opened = open::open_dir(path, &config)?;
        let stripes = (0..config.lock_stripes.max(1))
            .map(|_| Mutex::new(()))
            .collect();
        let inner = Arc::new(Inner {
            tree: opened.db,
            stripes,
            hasher: std::hash::RandomState::new(),
            idem_window: config.idempotency_window,
            path: path.display().to_string(),
        });
        let (wal, logged) = wal::Wal::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => StoreError::Corrupted {
                path: path.display().to_string(),
                detail: format!("{}: {e}", path.join(wal::WAL_FILE).display()),
            },
            _ => StoreError::Io {
                op: "open write-ahead log",
                detail: e.to_string(),
            },
        })?;
        let mut durability = Durability {
            db: inner.tree.clone(),
            data_file: opened.data_file,
            wal,
            fsync: config.fsync,
            failed: false,
            write_seconds: metrics::histogram!(FLUSH_SECONDS, "step" => "write"),
            sync_seconds: metrics::histogram!(FLUSH_SECONDS, "step" => "fdatasync"),
            checkpoint_seconds: metrics::histogram!(FLUSH_SECONDS, "step" => "checkpoint"),
        };
        let mut replayed = Replayed::default();
        if !logged.frames.is_empty() || logged.torn.is_some() {
            replayed = replay(&inner, &logged, durability.wal.path())?;
            // The replayed appends are in sled now; make them durable there and empty the
            // log before anything new is written to it.
            durability.checkpoint().map_err(|detail| StoreError::Io {
                op: "checkpoint after replay",
                detail,
            })?;
        }
        let commit = GroupCommit::start(
            Box::new(move |batch| durability.sync(batch)),
            config.min_flush_interval,
        )
        .map_err(|e| StoreError::Io {
            op: "start flusher thread",
            detail: e.to_string(),
        })?;
        tracing::info!(path = %path.display(), "Store opened");
        Ok(SledStore {
            inner,
            commit,
            replayed,
            _lock: opened.lock,
        })
    }

    /// What replaying the write-ahead log did when this store opened (all zero after a clean
    /// shutdown): how many acknowledged appends it restored after a crash.
    pub fn replayed(&self) -> Replayed {
        self.replayed
    }

    /// How many group-commit flushes have run since open (for metrics and benchmarks:
    /// appends divided by flushes is the group size).
    pub fn flush_count(&self) -> u64 {
        self.commit.flushes()
    }

    /// The underlying sled database, so other durable components (tickets) can keep their own
    /// trees in it; they must not touch the default tree, which is this store's.
    pub fn db(&self) -> &sled::Db {
        &self.inner.tree
    }
}

impl Inner {
    fn stripe(&self, session: &str) -> &Mutex<()> {
        let index = self.hasher.hash_one(session) as usize % self.stripes.len();
        &self.stripes[index]
    }

    fn err(&self, op: &'static str) -> impl Fn(sled::Error) -> StoreError + '_ {
        move |e| match e {
            sled::Error::Corruption { .. } => StoreError::Corrupted {
                path: self.path.clone(),
                detail: format!("{op}: {e}"),
            },
            other => StoreError::Io {
                op,
                detail: other.to_string(),
            },
        }
    }

    fn meta(&self, session: &str) -> Result<Option<Meta>> {
        self.tree
            .get(codec::meta_key(session))
            .map_err(self.err("read session"))?
            .map(|bytes| Meta::decode(&bytes, session))
            .transpose()
    }

    /// Reads events in `from_seq..=head`. Event records beyond the committed head are orphans
    /// of an append that crashed before its commit point and are never returned.
    fn events(&self, session: &str, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let head = self.meta(session)?.map_or(0, |m| m.seq);
        let from_seq = from_seq.max(1);
        if from_seq > head || limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = codec::event_prefix(session);
        let from_key = codec::event_key(&prefix, from_seq);
        // The record holding `from_seq` is the last one starting at or before it.
        let start = match self
            .tree
            .range(prefix.as_slice()..=from_key.as_slice())
            .next_back()
        {
            Some(item) => item.map_err(self.err("read events"))?.0.to_vec(),
            None => from_key,
        };
        let end = codec::event_key(&prefix, head);
        let mut out = Vec::with_capacity(
            limit.min(usize::try_from(head - from_seq + 1).unwrap_or(usize::MAX)),
        );
        'records: for item in self.tree.range(start..=end) {
            let (key, value) = item.map_err(self.err("read events"))?;
            let first = codec::event_seq(&prefix, &key, session)?;
            for (seq, payload) in (first..).zip(codec::decode_events(&value, session)?) {
                if seq > head || out.len() >= limit {
                    break 'records;
                }
                if seq >= from_seq {
                    out.push(StoredEvent {
                        seq,
                        payload: payload.to_vec(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every session key in `user`'s index, including entries whose session has no committed
    /// meta record (a crashed first write or deletion left them).
    fn indexed_sessions(&self, user: &str) -> Result<Vec<String>> {
        let prefix = codec::user_prefix(user);
        self.tree
            .scan_prefix(&prefix)
            .keys()
            .map(|key| {
                codec::user_key_session(&prefix, &key.map_err(self.err("read user index"))?, user)
            })
            .collect()
    }

    /// The live sessions of `user`: index entries confirmed by a meta record naming `user`.
    fn sessions_of_user(&self, user: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for session in self.indexed_sessions(user)? {
            if self.meta(&session)?.is_some_and(|m| m.user == user) {
                out.push(session);
            }
        }
        Ok(out)
    }

    fn session_count(&self) -> Result<usize> {
        let mut count = 0;
        for key in self.tree.scan_prefix(codec::meta_all_prefix()).keys() {
            key.map_err(self.err("count sessions"))?;
            count += 1;
        }
        Ok(count)
    }
}

impl SledStore {
    /// Runs a whole-store scan on the blocking pool, off the async worker threads.
    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || job(&inner))
            .await
            .map_err(|e| StoreError::Io {
                op: "blocking store job",
                detail: e.to_string(),
            })?
    }
}

#[async_trait]
impl Store for SledStore {
    async fn append(&self, session: &str, req: AppendRequest) -> Result<AppendOutcome> {
        let (outcome, ticket) = self.inner.append_locked(session, req, Some(&self.commit))?;
        // Every outcome waits: even a Duplicate/Conflict was read from a record that may not be
        // durable yet (its own writer may still be waiting for the flush).
        let ticket = ticket.unwrap_or_else(|| self.commit.ticket());
        self.commit.wait(ticket).await?;
        Ok(outcome)
    }

    async fn load(&self, session: &str) -> Result<Option<LoadedSession>> {
        Ok(self.inner.meta(session)?.map(Meta::into_loaded))
    }

    async fn events(&self, session: &str, from_seq: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.inner.events(session, from_seq, limit)
    }

    async fn sessions_of_user(&self, user: &str) -> Result<Vec<String>> {
        self.inner.sessions_of_user(user)
    }

    async fn delete_user(&self, user: &str) -> Result<usize> {
        let user = user.to_owned();
        let deleted = self.blocking(move |inner| inner.delete_user(&user)).await?;
        // A checkpoint, not a log write: older log records of these sessions must be gone
        // before the deletion is acknowledged, or a replay could bring a session back.
        self.commit.checkpoint_after_write().await?;
        Ok(deleted)
    }

    async fn session_count(&self) -> Result<usize> {
        self.blocking(Inner::session_count).await
    }

    async fn flush(&self) -> Result<()> {
        self.commit.flush_after_write().await
    }
}
