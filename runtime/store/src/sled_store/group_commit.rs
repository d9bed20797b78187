//! Group commit: one dedicated thread makes writes durable for many waiting appends at once.
//!
//! Protocol (the correctness argument lives here, so read it before changing anything):
//! 1. A writer applies its batch to sled, *then* calls [`GroupCommit::ticket`]. The ticket is
//!    the number of the next flush that has not started yet (`started + 1`), taken under the
//!    state lock, and marks a flush as requested.
//! 2. The flusher thread, under the same lock, bumps `started` to `g` and releases the lock,
//!    then runs the sync function. Because the writer's batch was applied before the writer took
//!    its ticket, and flush `g` starts after the ticket was handed out, flush `g` covers the batch.
//! 3. When the sync function returns, `completed` becomes `g` (flushes complete in order: there
//!    is one flusher thread) and every waiter with ticket `<= g` is released.
//!
//! So an append is acknowledged only after a flush that started after its write returned, and
//! every append that arrives while a flush runs rides on the next one: one flush acknowledges
//! as many appends as arrived during the previous flush.
//!
//! Pacing: flushes *start* at least `min_interval` apart. After an idle spell the first flush
//! starts at once (no added latency at low load); under load the flusher sleeps out the rest of
//! the interval before taking the next generation, so more appends share each flush. Without
//! it a loaded server ran ~2,000 flushes per second of ~6 appends each, and each flush wakes
//! sled's I/O threads, this thread and every waiter: at the default 2 ms the load test's
//! flushes fell to about 420 per second and a turn's server CPU from about 130 to 95 µs
//! (BENCHMARKS.md, "Flush pacing"). Sleeping before `started` is bumped changes nothing in the
//! argument above: a writer that arrives during the sleep takes the ticket of the flush that is
//! about to start, and that flush starts after its write.
//!
//! A failed flush fails every waiter released by it with [`StoreError::Io`]; a waiter may also
//! see a failure of a later flush than its own (it is woken late). That errs on the safe side:
//! the write may be durable after all, and a retry with the same idempotency key answers
//! `Duplicate`.
//!
//! Write-ahead log (layout 4, see `wal.rs`): a writer hands its log frame over together with
//! taking its ticket ([`GroupCommit::push_and_ticket`]), in one critical section. The
//! flusher takes the pending frames when it bumps `started`, under the same lock. So a
//! generation's batch holds exactly the frames whose tickets are that generation. The sync
//! function gets the batch and decides how to make it durable: normally by writing the log.
//! A generation that someone asked to be a checkpoint ([`GroupCommit::checkpoint_after_write`])
//! flushes sled itself instead; so does the last one, at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::{Result, StoreError};

/// One generation's work for the sync function.
pub(crate) struct Batch<'a> {
    /// The log frames of this generation's appends, in the order they were handed over.
    pub(crate) frames: &'a [u8],
    /// A checkpoint was asked for (a deletion, or shutdown): flush sled, empty the log.
    pub(crate) checkpoint: bool,
}

/// The function that makes everything written so far durable.
pub(crate) type SyncFn = Box<dyn FnMut(Batch<'_>) -> std::result::Result<(), String> + Send>;

/// What waiters watch: how far flushing has got.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Number of the last completed flush.
    completed: u64,
    /// The number and message of the latest failed flush.
    last_failure: Option<(u64, Arc<str>)>,
}

#[derive(Debug, Default)]
struct State {
    /// Number of the last flush that started.
    started: u64,
    /// Someone holds a ticket for flush `started + 1`.
    requested: bool,
    /// Stop after flushing what is requested.
    shutdown: bool,
    /// Log frames handed over for flush `started + 1`.
    pending: Vec<u8>,
    /// Flush `started + 1` must be a checkpoint.
    checkpoint: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    progress: watch::Sender<Progress>,
    /// Flushes run so far (for benchmarks and metrics).
    flushes: AtomicU64,
}

/// Handle to the flusher thread. Dropping it flushes what is pending and joins the thread.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the flusher thread with `sync` as its durability step; flushes start at least
    /// `min_interval` apart (zero: back to back).
    pub(crate) fn start(sync: SyncFn, min_interval: Duration) -> std::io::Result<GroupCommit> {
        let (progress, _) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            progress,
            flushes: AtomicU64::new(0),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("kefu-store-flush".into())
            .spawn(move || run(&thread_shared, sync, min_interval))?;
        Ok(GroupCommit {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Takes a ticket for the next flush to start; call it after the write has been applied.
    pub(crate) fn ticket(&self) -> u64 {
        self.request(|_| {})
    }

    /// Lets `encode` append an applied append's log frame to the batch of the next flush to
    /// start, and takes that flush's ticket, atomically: the frame is in the batch of exactly
    /// that flush. Encoding in place saves a copy of every frame on the append path.
    pub(crate) fn push_and_ticket(&self, encode: impl FnOnce(&mut Vec<u8>)) -> u64 {
        self.request(|state| encode(&mut state.pending))
    }

    fn request(&self, with: impl FnOnce(&mut State)) -> u64 {
        let mut state = self.shared.state.lock();
        with(&mut state);
        state.requested = true;
        let ticket = state.started + 1;
        drop(state);
        self.shared.wake.notify_one();
        ticket
    }

    /// Asks for the next flush to be a checkpoint and waits for it: everything applied before
    /// this call is durable in sled itself after, and no log record older than it is left.
    pub(crate) async fn checkpoint_after_write(&self) -> Result<()> {
        let ticket = self.request(|state| state.checkpoint = true);
        self.wait(ticket).await
    }

    /// Waits until the flush numbered `ticket` (or a later one) has completed.
    pub(crate) async fn wait(&self, ticket: u64) -> Result<()> {
        let mut rx = self.shared.progress.subscribe();
        let progress = rx
            .wait_for(|p| p.completed >= ticket)
            .await
            .map_err(|_| StoreError::Closed)?;
        match &progress.last_failure {
            Some((failed, detail)) if *failed >= ticket => Err(StoreError::Io {
                op: "flush",
                detail: detail.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Takes a ticket and waits for it: everything written before this call is durable after.
    pub(crate) async fn flush_after_write(&self) -> Result<()> {
        let ticket = self.ticket();
        self.wait(ticket).await
    }

    /// How many flushes have run.
    pub(crate) fn flushes(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            // Joining makes sure the thread's clone of the database is gone when the store is,
            // so the directory can be reopened right away. A panicked flusher has nothing left
            // to clean up.
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, mut sync: SyncFn, min_interval: Duration) {
    let mut last_start: Option<Instant> = None;
    // Swapped with `State::pending` at each start, so neither buffer is reallocated in the
    // steady state.
    let mut frames = Vec::new();
    // The last generation was a successful checkpoint: nothing is in the log.
    let mut log_empty = false;
    loop {
        let (generation, checkpoint) = {
            let mut state = shared.state.lock();
            while !state.requested && !state.shutdown {
                shared.wake.wait(&mut state);
            }
            if !state.requested {
                // Shutdown with nothing pending: one last checkpoint leaves the log empty, so
                // the next start has nothing to replay.
                drop(state);
                if log_empty {
                    break;
                }
                if let Err(detail) = sync(Batch {
                    frames: &[],
                    checkpoint: true,
                }) {
                    tracing::error!(error = %detail, "Store checkpoint at shutdown failed");
                }
                break;
            }
            // Pacing (see the module docs): sleep out the interval, unlocked, so writers keep
            // taking tickets for this flush meanwhile. `requested` stays set: only this thread
            // clears it.
            let due = last_start.map(|t| t + min_interval);
            if let Some(wait) = due.and_then(|d| d.checked_duration_since(Instant::now())) {
                drop(state);
                std::thread::sleep(wait);
                state = shared.state.lock();
            }
            last_start = Some(Instant::now());
            state.requested = false;
            state.started += 1;
            frames.clear();
            std::mem::swap(&mut frames, &mut state.pending);
            let checkpoint = std::mem::take(&mut state.checkpoint) || state.shutdown;
            (state.started, checkpoint)
        };
        let result = sync(Batch {
            frames: &frames,
            checkpoint,
        });
        log_empty = checkpoint && result.is_ok();
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        if let Err(detail) = &result {
            tracing::error!(generation, error = %detail, "Store flush failed");
        }
        shared.progress.send_modify(|p| {
            p.completed = generation;
            if let Err(detail) = result {
                p.last_failure = Some((generation, detail.into()));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test]
    async fn waiters_are_released_only_after_their_flush() {
        let in_sync = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&in_sync);
        let gc = GroupCommit::start(
            Box::new(move |_| {
                flag.store(true, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                flag.store(false, Ordering::SeqCst);
                Ok(())
            }),
            Duration::ZERO,
        )
        .unwrap();
        let gc = Arc::new(gc);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let gc = Arc::clone(&gc);
            tasks.push(tokio::spawn(async move { gc.flush_after_write().await }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // 50 concurrent requests share far fewer flushes.
        assert!(gc.flushes() < 50, "flushes = {}", gc.flushes());
    }

    #[tokio::test]
    async fn frames_reach_the_flush_of_their_ticket_and_checkpoints_are_marked() {
        // (frames, checkpoint) of every generation, in order.
        type Seen = Arc<Mutex<Vec<(Vec<u8>, bool)>>>;
        let seen: Seen = Arc::default();
        let record = Arc::clone(&seen);
        let gc = GroupCommit::start(
            Box::new(move |batch: Batch<'_>| {
                record
                    .lock()
                    .push((batch.frames.to_vec(), batch.checkpoint));
                Ok(())
            }),
            Duration::ZERO,
        )
        .unwrap();
        let ticket = gc.push_and_ticket(|b| b.extend_from_slice(b"one"));
        gc.wait(ticket).await.unwrap();
        let ticket = gc.push_and_ticket(|b| b.extend_from_slice(b"two"));
        gc.wait(ticket).await.unwrap();
        gc.checkpoint_after_write().await.unwrap();
        gc.flush_after_write().await.unwrap();
        drop(gc);
        let seen = seen.lock().clone();
        let with_frames: Vec<&[u8]> = seen
            .iter()
            .filter(|(f, _)| !f.is_empty())
            .map(|(f, _)| f.as_slice())
            .collect();
        // Each frame is flushed once, in its own generation, and never again.
        assert_eq!(with_frames, [b"one".as_slice(), b"two".as_slice()]);
        let checkpoints = seen.iter().filter(|(_, c)| *c).count();
        // The asked-for checkpoint, and one at shutdown (a plain flush came in between).
        assert_eq!(checkpoints, 2, "{seen:?}");
        assert!(
            seen.last().unwrap().1,
            "shutdown ends with a checkpoint: {seen:?}"
        );
    }

    #[tokio::test]
    async fn failures_reach_the_waiters() {
        let gc =
            GroupCommit::start(Box::new(|_| Err("disk on fire".into())), Duration::ZERO).unwrap();
        let err = gc.flush_after_write().await.unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }

    #[tokio::test]
    async fn flushes_are_paced_and_the_first_is_not_delayed() {
        let interval = Duration::from_millis(20);
        let gc = Arc::new(GroupCommit::start(Box::new(|_| Ok(())), interval).unwrap());
        // Writers back to back for ~200 ms: every append is still acknowledged, and flushes
        // start at least `interval` apart, so there are at most elapsed / interval + 1 of them.
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let gc = Arc::clone(&gc);
            tasks.push(tokio::spawn(async move {
                let mut acked = 0;
                while started.elapsed() < Duration::from_millis(200) {
                    gc.flush_after_write().await.unwrap();
                    acked += 1;
                }
                acked
            }));
        }
        let mut acked = 0;
        for task in tasks {
            acked += task.await.unwrap();
        }
        let elapsed = started.elapsed();
        let flushes = gc.flushes();
        let bound = (elapsed.as_millis() / interval.as_millis()) as u64 + 1;
        assert!(flushes <= bound, "{flushes} flushes in {elapsed:?}");
        assert!(
            acked >= flushes,
            "{acked} acknowledgements, {flushes} flushes"
        );

        // The first flush (nothing flushed yet, as after an idle spell longer than the
        // interval) starts at once: it does not wait out a 5 s pacing.
        let slow = GroupCommit::start(Box::new(|_| Ok(())), Duration::from_secs(5)).unwrap();
        let t = Instant::now();
        slow.flush_after_write().await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    }
}
