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
//! - **Concurrency bound**: `pool` slots, so at most `pool` calls of the skill run at once;
//!   waiting for a slot counts toward the timeout, as waiting for a worker does.
//! - **Shutdown**: closing the slots answers every later or waiting call with an error.
//!
//! **Why the slots are not a `tokio::sync::Semaphore`.** tokio's semaphore is fair: a released
//! permit is handed to the first waiter and stays reserved for it until that waiter's task is
//! polled. Under load a woken task waits behind the whole run queue, often 10 ms or more, and
//! all that time the slot does no work. With four slots and about 1,400 order look-ups a
//! second, the hand-offs alone were enough to make the queue at the slots grow without bound;
//! it was what turned a slow second of the machine into a collapse of the open-loop load test
//! (BENCHMARKS.md, session 15). These slots are work-conserving instead: a released slot
//! goes back to the free count and one waiter is woken, but whichever caller asks first takes
//! it, so a slot never idles while a call is ready to use it. Fairness is given up: a woken
//! waiter that finds the slot taken waits again, at the back, bounded by its deadline.
//!
//! What it cannot do is rescue a skill that blocks its thread: the caller's thread blocks with
//! it and the timeout fires only when the skill yields. Such skills keep the pool (the default).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::FutureExt;
use kefu_plugin::{Skill, SkillError, SkillOutcome, SkillRequest};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::pool::panic_message;

/// The inline host of one skill.
pub(crate) struct Inline {
    name: String,
    skill: Arc<dyn Skill>,
    /// One slot per call allowed to run at once.
    slots: Slots,
}

/// A work-conserving concurrency bound (see the module docs for why not a semaphore).
struct Slots {
    free: AtomicUsize,
    closed: AtomicBool,
    /// Wakes a waiter when a slot is given back (or all of them when closed). A notification
    /// whose waiter gave up before using it passes on to the next waiter (tokio's `Notify`
    /// does that for `notify_one`), so a free slot is never left with everyone asleep.
    freed: Notify,
}

/// The slot is closed (the skill is shut down).
struct Closed;

/// A taken slot, given back when dropped.
struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.free.fetch_add(1, Ordering::Release);
        self.0.freed.notify_one();
    }
}

impl Slots {
    fn new(size: usize) -> Self {
        Self {
            free: AtomicUsize::new(size),
            closed: AtomicBool::new(false),
            freed: Notify::new(),
        }
    }

    fn try_take(&self) -> Option<Result<Slot<'_>, Closed>> {
        if self.closed.load(Ordering::Acquire) {
            return Some(Err(Closed));
        }
        self.free
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| n.checked_sub(1))
            .ok()
            .map(|_| Ok(Slot(self)))
    }

    /// Takes a slot, waiting as long as it takes (the caller bounds the wait).
    async fn take(&self) -> Result<Slot<'_>, Closed> {
        loop {
            if let Some(taken) = self.try_take() {
                return taken;
            }
            // Registered before looking again, so a slot given back in between wakes us.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(taken) = self.try_take() {
                return taken;
            }
            freed.await;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.freed.notify_waiters();
    }
}

impl Inline {
    /// Hosts `skill` inline with at most `size` concurrent calls.
    pub(crate) fn new(name: &str, skill: Arc<dyn Skill>, size: usize) -> Self {
        Self {
            name: name.to_owned(),
            skill,
            slots: Slots::new(size),
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
        let _slot = match tokio::time::timeout_at(deadline, self.slots.take()).await {
            Err(_elapsed) => return (Err(timeout), None),
            Ok(Err(Closed)) => {
                return (
                    Err(SkillError::Backend(format!(
                        "skill `{}` is shut down",
                        self.name
                    ))),
                    None,
                );
            }
            Ok(Ok(slot)) => slot,
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Polls `fut` once with a no-op waker.
    fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(futures::task::noop_waker_ref()))
    }

    #[test]
    fn at_most_size_slots_are_taken() {
        let slots = Slots::new(2);
        let a = slots.try_take().unwrap().ok().unwrap();
        let _b = slots.try_take().unwrap().ok().unwrap();
        assert!(slots.try_take().is_none(), "a third slot");
        drop(a);
        assert!(slots.try_take().is_some());
    }

    #[test]
    fn a_freed_slot_goes_to_whoever_asks_first_not_to_a_sleeping_waiter() {
        // tokio's fair semaphore would reserve the freed permit for the waiter until its task
        // runs; here the caller that is running takes it at once.
        let slots = Slots::new(1);
        let held = slots.try_take().unwrap().ok().unwrap();
        let mut waiter = pin!(slots.take());
        assert!(poll_once(waiter.as_mut()).is_pending());
        drop(held);
        let now = slots.try_take();
        assert!(
            matches!(now, Some(Ok(_))),
            "the free slot was taken by the running caller"
        );
        // The waiter was woken, finds the slot taken and waits again.
        assert!(poll_once(waiter.as_mut()).is_pending());
        drop(now);
        assert!(matches!(poll_once(waiter.as_mut()), Poll::Ready(Ok(_))));
    }

    #[test]
    fn a_waiter_that_gives_up_passes_its_wake_up_on() {
        let slots = Slots::new(1);
        let held = slots.try_take().unwrap().ok().unwrap();
        let mut first = Box::pin(slots.take());
        let mut second = pin!(slots.take());
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        // The freed slot wakes the first waiter, which times out before it runs.
        drop(held);
        drop(first);
        // The second is not left asleep next to a free slot.
        assert!(matches!(poll_once(second.as_mut()), Poll::Ready(Ok(_))));
    }

    #[test]
    fn closing_answers_waiters_and_later_callers() {
        let slots = Slots::new(1);
        let held = slots.try_take().unwrap().ok().unwrap();
        let mut waiter = pin!(slots.take());
        assert!(poll_once(waiter.as_mut()).is_pending());
        slots.close();
        assert!(matches!(
            poll_once(waiter.as_mut()),
            Poll::Ready(Err(Closed))
        ));
        drop(held);
        assert!(matches!(slots.try_take(), Some(Err(Closed))));
    }
}
