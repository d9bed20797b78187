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
//! 1. its events (`E`, seq `head+1..`);
//! 2. on a session's first write, its user index entry (`U`); on a later write, the `I` record
//!    of the *previous* append's idempotency key, taken from the old meta record;
//! 3. the new meta record (`M`: head, snapshot, user, *this* append's idempotency key) — the
//!    commit point. Before it, readers see the old head; after it, the new one.
//!
//! Crash windows and why readers are safe (invariants the read side relies on):
//! - Events with `seq > head` are orphans of an append that did not commit. Readers stop at
//!   the head; the next append at that seq overwrites them.
//! - An `I` record is only written after the meta record naming its key committed (step 2 of
//!   the *next* append), so every `I` record of a live session belongs to a committed append.
//!   The latest append's key is answered from the meta record itself.
//! - A `U` entry without a meta record (first write crashed, or a deletion crashed) is ignored
//!   by `sessions_of_user` and `delete_user`'s count, and removed by `delete_user`.
//! - Deletion removes the meta record *first* (the session is gone from then on), then events,
//!   `I` records and the `U` entry. Leftovers of a crashed deletion are invisible (no meta) and
//!   swept when the session key is written again, or when `delete_user` is retried.
//!
//! All of this runs under the session's stripe lock, so check-then-write stays atomic with
//! respect to other writers of the same session.

use super::Inner;
use super::codec::{self, LastIdem, Meta};
use crate::{AppendOutcome, AppendRequest, Result, StoreError};

impl Inner {
    /// Check-then-write of one append, under the session's stripe lock. Returns the outcome;
    /// the caller still has to wait for durability.
    pub(super) fn append_locked(&self, session: &str, req: AppendRequest) -> Result<AppendOutcome> {
        let _stripe = self.stripe(session).lock();
        let meta = self.meta(session)?;
        if let (Some(meta), Some(key)) = (&meta, req.idempotency_key.as_deref()) {
            // Before the head check: a retry carries the stale expected_seq of its first try.
            // Without a meta record no append of this session has committed, so any `I` record
            // under its key is a leftover of a deleted incarnation and must not be trusted.
            if let Some((first_seq, last_seq)) = self.find_idem(session, meta, key)? {
                return Ok(AppendOutcome::Duplicate {
                    first_seq,
                    last_seq,
                });
            }
        }
        let head = meta.as_ref().map_or(0, |m| m.seq);
        if head != req.expected_seq {
            return Ok(AppendOutcome::Conflict { actual_seq: head });
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
        let new_meta = next_meta(meta, req, first_seq, last_seq);
        self.commit_meta(session, &new_meta)?;
        Ok(AppendOutcome::Appended {
            first_seq,
            last_seq,
        })
    }

    /// Answers an idempotency lookup for a session that has a committed meta record.
    fn find_idem(&self, session: &str, meta: &Meta, key: &str) -> Result<Option<(u64, u64)>> {
        if let Some(last) = &meta.last_idem
            && last.key == key
        {
            return Ok(Some((last.first_seq, last.last_seq)));
        }
        self.tree
            .get(codec::idem_key(session, key))
            .map_err(self.err("read idempotency key"))?
            .map(|value| codec::decode_idem(&value, session))
            .transpose()
    }

    /// Steps 1 and 2 of an append (see the module docs): everything before the commit point.
    /// Each insert is atomic on its own; until [`Inner::commit_meta`] runs they are invisible.
    pub(super) fn write_records(
        &self,
        session: &str,
        meta: Option<&Meta>,
        req: &AppendRequest,
    ) -> Result<()> {
        let head = meta.map_or(0, |m| m.seq);
        match meta {
            None => {
                // A new session (or one re-created after a deletion): clear what a crashed
                // deletion or a crashed first write may have left under this key, so no stale
                // `I` record can ever be trusted once this incarnation commits.
                self.sweep_session(session)?;
            }
            Some(meta) => {
                if let Some(last) = &meta.last_idem {
                    // Persist the previous append's key before the meta record that names it is
                    // replaced. Re-inserting an identical record is a no-op in sled.
                    self.tree
                        .insert(
                            codec::idem_key(session, &last.key),
                            &codec::idem_value(last.first_seq, last.last_seq),
                        )
                        .map_err(self.err("write idempotency record"))?;
                }
            }
        }
        let prefix = codec::event_prefix(session);
        for (seq, payload) in (head + 1..).zip(&req.events) {
            self.tree
                .insert(codec::event_key(&prefix, seq), payload.as_slice())
                .map_err(self.err("write event"))?;
        }
        if meta.is_none() {
            self.tree
                .insert(codec::user_key(&req.user, session), &[])
                .map_err(self.err("write user index"))?;
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

    /// Removes every event and idempotency record stored under `session` (not its meta record
    /// or user index entry). Caller holds the session's stripe lock.
    fn sweep_session(&self, session: &str) -> Result<()> {
        for prefix in [codec::event_prefix(session), codec::idem_prefix(session)] {
            for key in self.tree.scan_prefix(&prefix).keys() {
                let key = key.map_err(self.err("scan session records"))?;
                self.tree
                    .remove(key)
                    .map_err(self.err("remove session record"))?;
            }
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

/// The meta record an append commits.
fn next_meta(old: Option<Meta>, req: AppendRequest, first_seq: u64, last_seq: u64) -> Meta {
    let last_idem = req.idempotency_key.map(|key| LastIdem {
        key,
        first_seq,
        last_seq,
    });
    match old {
        Some(old) => {
            let (snapshot_seq, snapshot) = match req.snapshot {
                Some(snapshot) => (last_seq, Some(snapshot)),
                None => (old.snapshot_seq, old.snapshot),
            };
            Meta {
                seq: last_seq,
                snapshot_seq,
                user: old.user,
                last_idem,
                snapshot,
            }
        }
        None => Meta {
            seq: last_seq,
            snapshot_seq: if req.snapshot.is_some() { last_seq } else { 0 },
            user: req.user,
            last_idem,
            snapshot: req.snapshot,
        },
    }
}
