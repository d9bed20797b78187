//! The inline fast path: a skill called directly on the caller's task, for skills hosted with
//! [`Isolation::Inline`](super::Isolation::Inline).
//!
//! A pool call costs two actor hops (the caller's message to a worker, the worker's reply), so
//! two context switches, plus the worker's mailbox and a oneshot channel: at the rate of a busy
//! session layer that is a noticeable share of a turn's CPU. A skill that never blocks its
//! thread (async I/O, in-memory lookups) does not need a worker of its own to keep the host's
//! promises, so here it runs on the caller's task with the same guarantees:
//! - **Timeout**: the skill's future is polled under `timeout_at(deadline)` and dropped when the
//!   deadline passes, so a slow call is cancelled, as a pool worker does.
//! - **Panic isolation**: the future is wrapped in `catch_unwind` (the call is inside the async
//!   block, so a panic before its first await is caught too); a panic becomes
//!   [`SkillError::Panicked`]. Nothing is restarted: there is no worker whose state a panic could
//!   have left behind (a pool worker holds none either; the skill itself is shared by both paths).
//! - **Concurrency bound**: a semaphore of `pool` permits, so at most `pool` calls of the skill
//!   run at once; waiting for a permit counts toward the timeout, as waiting for a worker does.
//! - **Shutdown**: closing the semaphore answers every later or waiting call with an error.
//!
//! What it cannot do is rescue a skill that blocks its thread: the caller's thread blocks with
//! it and the timeout fires only when the skill yields. Such skills keep the pool (the default).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use kefu_plugin::{Skill, SkillError, SkillOutcome, SkillRequest};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::pool::panic_message;

/// The inline host of one skill.
pub(crate) struct Inline {
    name: String,
    skill: Arc<dyn Skill>,
    /// One permit per call allowed to run at once.
    slots: Semaphore,
}

impl Inline {
    /// Hosts `skill` inline with at most `size` concurrent calls.
    pub(crate) fn new(name: &str, skill: Arc<dyn Skill>, size: usize) -> Self {
        Self {
            name: name.to_owned(),
            skill,
            slots: Semaphore::new(size),
        }
    }

    /// Runs `req` on the caller's task, waiting for a free slot until `deadline`. Returns the
    /// result and, when the call reached the skill, when it started (as the pool does).
    pub(crate) async fn run(
        &self,
        req: SkillRequest,
        deadline: Instant,
        timeout_ms: u64,
    ) -> (Result<SkillOutcome, SkillError>, Option<Instant>) {
        let timeout = SkillError::Timeout { ms: timeout_ms };
        let _permit = match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
            Err(_elapsed) => return (Err(timeout), None),
            Ok(Err(_closed)) => {
                return (
                    Err(SkillError::Backend(format!(
                        "skill `{}` is shut down",
                        self.name
                    ))),
                    None,
                );
            }
            Ok(Ok(permit)) => permit,
        };
        let started = Instant::now();
        let skill = &self.skill;
        let call = AssertUnwindSafe(async move { skill.call(req).await }).catch_unwind();
        let result = match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(SkillError::Panicked(panic_message(panic.as_ref()))),
            Err(_elapsed) => Err(timeout),
        };
        (result, Some(started))
    }

    /// Refuses every later call, and the calls waiting for a slot.
    pub(crate) fn shutdown(&self) {
        self.slots.close();
    }
}
