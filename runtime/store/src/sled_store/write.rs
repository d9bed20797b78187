//! The write path of [`super::SledStore`]: appends and deletions as ordered single-key writes,
//! with the session's meta record as the commit point.
//!
//! **Why not one `sled::Batch` per append.** In sled 0.34 `apply_batch` takes the process-wide
//! concurrency-control *write* lock, and `flush()` holds it as a *reader* for the whole disk
//! write, so every append would wait for a running flush on a runtime worker thread. Worse, the
//! first `write()` ever taken switches that (static, process-wide) lock from a lock-free reader
//! counter to a real `RwLock` for the rest of the process. Plain `insert`/`remove` only ever read
//! it. So this module never uses batches or transactions: an append never waits for a running
//! flush, only (in `append`) for the flush that makes it durable.
//!
//! **Ordering instead of atomicity.** sled recovers a *prefix* of its log in LSN order (it
//! refuses to recover a later segment whose predecessor was torn; `pagecache/segment.rs`), and
//! an insert issued after another one returned gets the later LSN. So after a crash the store
//! holds every insert up to some point and none after it. An append writes, in this order:
//! 1. on a session's first write, its user index entry (`U`), after sweeping leftovers;
//! 2. its events, all in one `E` record keyed by its first seq (`head+1`), if it has any;
//! 3. the new meta record (`M`: head, snapshot, user, and the session's recent idempotency keys
//!    including *this* append's) — the commit point. Before it, readers see the old head;
//!    after it, the new one. A typical turn is therefore two inserts.
//!
//! Crash windows and why readers are safe (invariants the read side relies on):
//! - An `E` record with first seq `> head` is an orphan of an append that did not commit.
//!   Readers stop at the head; the next append with events writes the same key (`head+1`) and
//!   replaces it. An orphan is always at `head+1`, so no committed record ever overlaps one.
//! - Idempotency keys live only in the meta record, so a key is committed exactly when its
//!   append is; a crashed append's key was never committed and its retry is applied normally.
//! - A `U` entry without a meta record (first write crashed, or a deletion crashed) is ignored
//!   by `sessions_of_user` and `delete_user`'s count, and removed by `delete_user`.
//! - Deletion removes the meta record *first* (the session is gone from then on), then events
//!   and the `U` entry. Leftovers of a crashed deletion are invisible (no meta) and swept when
//!   the session key is written again, or when `delete_user` is retried.
//!
//! **Bounded idempotency.** The meta record remembers the keys of the session's last
//! `idempotency_window` keyed appends; older keys are dropped from the list as new ones come
//! in. Nothing per key is ever written elsewhere, so storage per session does not grow with
//! the number of turns beyond the events themselves.
//!
//! All of this runs under the session's stripe lock, so check-then-write stays atomic with
//! respect to other writers of the same session.

use super::Inner;
use super::codec::{self, Meta, RecentIdem};
use super::group_commit::GroupCommit;
use super::wal;
use crate::{AppendOutcome, AppendRequest, Result, StoreError};

impl Inner {
    /// Check-then-write of one append, under the session's stripe lock. Returns the outcome
    /// and, when the append was applied and `log` is given, the group-commit ticket its log
    /// frame was handed over with; the caller still has to wait for durability. The frame is
    /// handed over after the meta record is written and before the stripe is released, so the
    /// log holds a session's appends in the order sled applied them (see `wal.rs`). Replay
    /// passes no `log`: its appends are already in the log.
    pub(super) fn append_locked(
        &self,
        session: &str,
        req: AppendRequest,
        log: Option<&GroupCommit>,
    ) -> Result<(AppendOutcome, Option<u64>)> {
        let _stripe = self.stripe(session).lock();
        let meta = self.meta(session)?;
        // Before the head check: a retry carries the stale expected_seq of its first try.
        if let (Some(meta), Some(key)) = (&meta, req.idempotency_key.as_deref())
            && let Some((first_seq, last_seq)) = meta.find_idem(key)
        {
            return Ok((
                AppendOutcome::Duplicate {
                    first_seq,
                    last_seq,
                },
                None,
            ));
        }
        let head = meta.as_ref().map_or(0, |m| m.seq);
        if head != req.expected_seq {
            return Ok((AppendOutcome::Conflict { actual_seq: head }, None));
        }
        let first_seq = head + 1;
        let last_seq = u64::try_from(req.events.len())
            .ok()
            .and_then(|n| head.checked_add(n))
            .ok_or_else(|| StoreError::BadRecord {
                session: session.to_owned(),
                detail: "sequence number would overflow".into(),
            })?;
        self.write_records(session, meta.as_ref(), &req)?;
        let new_meta = next_meta(meta, &req, first_seq, last_seq, self.idem_window);
        self.commit_meta(session, &new_meta)?;
        // After the commit point (a frame must never reach the log for an append sled has not
        // applied), encoded straight into the group commit's pending batch.
        let ticket = log
            .map(|log| log.push_and_ticket(|pending| wal::encode_append(pending, session, &req)));
        Ok((
            AppendOutcome::Appended {
                first_seq,
                last_seq,
            },
            ticket,
        ))
    }

    /// Steps 1 and 2 of an append (see the module docs): everything before the commit point.
    /// Each insert is atomic on its own; until [`Inner::commit_meta`] runs they are invisible.
    pub(super) fn write_records(
        &self,
        session: &str,
        meta: Option<&Meta>,
        req: &AppendRequest,
    ) -> Result<()> {
        if meta.is_none() {
            // A new session (or one re-created after a deletion): clear what a crashed
            // deletion or a crashed first write may have left under this key, so no stale
            // event record of an earlier incarnation can ever show through.
            self.sweep_session(session)?;
            self.tree
                .insert(codec::user_key(&req.user, session), &[])
                .map_err(self.err("write user index"))?;
        }
        if !req.events.is_empty() {
            let head = meta.map_or(0, |m| m.seq);
            let key = codec::event_key(&codec::event_prefix(session), head + 1);
            self.tree
                .insert(key, codec::encode_events(&req.events))
                .map_err(self.err("write events"))?;
        }
        Ok(())
    }

    /// Step 3 of an append: the commit point.
    pub(super) fn commit_meta(&self, session: &str, meta: &Meta) -> Result<()> {
        self.tree
            .insert(codec::meta_key(session), meta.encode())
            .map_err(self.err("write session meta"))?;
        Ok(())
    }

    /// Removes every event record stored under `session` (not its meta record or user index
    /// entry). Caller holds the session's stripe lock.
    fn sweep_session(&self, session: &str) -> Result<()> {
        for key in self.tree.scan_prefix(codec::event_prefix(session)).keys() {
            let key = key.map_err(self.err("scan session records"))?;
            self.tree
                .remove(key)
                .map_err(self.err("remove session record"))?;
        }
        Ok(())
    }

    /// Removes every session indexed under `user`, meta record first (see the module docs).
    /// Returns how many live sessions of `user` were deleted; index entries without a live
    /// session of this user are cleaned up but not counted.
    pub(super) fn delete_user(&self, user: &str) -> Result<usize> {
        let mut deleted = 0;
        for session in self.indexed_sessions(user)? {
            let _stripe = self.stripe(&session).lock();
            match self.meta(&session)? {
                Some(meta) if meta.user != user => {
                    // A stale entry: a crashed deletion left it, and the key was since written
                    // again by another user. That session is not ours to delete.
                }
                live => {
                    if live.is_some() {
                        self.tree
                            .remove(codec::meta_key(&session))
                            .map_err(self.err("delete session"))?;
                        deleted += 1;
                    }
                    self.sweep_session(&session)?;
                }
            }
            self.tree
                .remove(codec::user_key(user, &session))
                .map_err(self.err("delete user index entry"))?;
        }
        Ok(deleted)
    }
}

/// The meta record an append commits: the new head and snapshot, and this append's key added
/// to the recent keys, the oldest dropped beyond `window`.
fn next_meta(
    old: Option<Meta>,
    req: &AppendRequest,
    first_seq: u64,
    last_seq: u64,
    window: usize,
) -> Meta {
    let (user, mut recent, old_snapshot) = match old {
        Some(old) => (old.user, old.recent, Some((old.snapshot_seq, old.snapshot))),
        None => (req.user.clone(), Vec::new(), None),
    };
    if let Some(key) = &req.idempotency_key {
        recent.push(RecentIdem {
            digest: codec::idem_digest(key),
            first_seq,
            last_seq,
        });
    }
    if recent.len() > window {
        recent.drain(..recent.len() - window);
    }
    let (snapshot_seq, snapshot) = match (&req.snapshot, old_snapshot) {
        (Some(snapshot), _) => (last_seq, Some(snapshot.clone())),
        (None, Some(old)) => old,
        (None, None) => (0, None),
    };
    Meta {
        seq: last_seq,
        snapshot_seq,
        user,
        recent,
        snapshot,
    }
}
