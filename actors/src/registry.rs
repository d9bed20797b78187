//! The session registry: finds or activates exactly one session actor per key, admits or refuses
//! work, passivates idle sessions, and implements [`Conversations`] for the channels.
//!
//! Invariants:
//! - **One actor per key.** Activation happens inside the map's entry lock, and ractor's
//!   `spawn_linked_instant` hands back the actor's address before its `pre_start` has run, so the
//!   address is in the map before the lock is released. Messages sent meanwhile wait in the mailbox.
//! - **No message is lost to passivation.** A sender increments the entry's in-flight counter while
//!   it holds the map's read lock; the sweeper removes an entry only under the write lock and only
//!   when that counter is zero. So a removed actor has nothing in its mailbox and can be stopped.
//! - **A dead actor is retried, not trusted.** If a send fails or the reply port is dropped (the
//!   actor failed, or its `pre_start` could not load the session), the sender removes that actor's
//!   entry (only if it is still the same actor) and tries again; the message id makes the retry
//!   idempotent.
//! - **Bounded memory.** A per-session in-flight limit (429), a global in-flight limit (503) and a
//!   limit on active sessions (503) stop unbounded mailbox growth; ractor's mailboxes are not
//!   bounded by themselves.
//! - **A newer message interrupts, a retry does not.** The entry knows the message its actor is
//!   handling (an `Arc` clone of the queued message, so tracking it allocates nothing). A sender
//!   whose message is admitted while a turn with a different message id runs calls
//!   [`TurnHandler::interrupt`] before queueing, so a turn that waits on a language model does
//!   not hold the newer message back; the idempotent retry of the running message (same id),
//!   or of one of the last 16 messages the actor answered (kept as id hashes), leaves it
//!   alone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use kefu_store::Store;
use ractor::{Actor, ActorId, ActorRef};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::api::{
    ConversationView, Conversations, Inbound, SendError, TranscriptEntry, TurnOutcome,
};
use crate::events::{SessionEvent, Snapshot, now_ms};
use crate::handler::{DEFAULT_TENANT, TurnHandler};
use crate::session::{SessionActor, SessionArgs, SessionMsg};
use crate::supervisor::{SessionSupervisor, SupervisorMsg};
use crate::telemetry::TurnMetrics;

/// How long `shutdown` waits for session actors to stop (each, concurrently) and for their
/// tasks to let go of the store.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Tunables of the session layer. Every field has a default that suits one small server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Seconds without messages after which a session actor is stopped (it lives on in the store).
    pub idle_timeout_secs: f64,
    /// Messages of one session that may be queued or running at once; more get 429.
    pub max_inflight_per_session: u32,
    /// Messages of all sessions that may be queued or running at once; more get 503.
    pub max_inflight_total: usize,
    /// Session actors that may be active at once; activating more gets 503.
    pub max_active_sessions: usize,
    /// Seconds a caller waits for a turn before answering 504 (the turn may still complete).
    pub turn_timeout_secs: f64,
    /// Failures tolerated within `failure_window_secs`; one more parks the session.
    pub max_failures: usize,
    /// The window over which failures are counted, in seconds.
    pub failure_window_secs: f64,
    /// Seconds a client is told to wait in `Retry-After` when refused for load.
    pub retry_after_secs: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 300.0,
            max_inflight_per_session: 8,
            max_inflight_total: 20_000,
            max_active_sessions: 200_000,
            turn_timeout_secs: 10.0,
            max_failures: 3,
            failure_window_secs: 10.0,
            retry_after_secs: 1,
        }
    }
}

impl SessionConfig {
    /// Checks the values make sense; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "sessions.{name} must be a positive number of seconds"
                ))
            }
        };
        positive("idle_timeout_secs", self.idle_timeout_secs)?;
        positive("turn_timeout_secs", self.turn_timeout_secs)?;
        positive("failure_window_secs", self.failure_window_secs)?;
        if self.max_inflight_per_session == 0 {
            return Err("sessions.max_inflight_per_session must be at least 1".into());
        }
        if self.max_inflight_total == 0 || self.max_active_sessions == 0 {
            return Err(
                "sessions.max_inflight_total and max_active_sessions must be at least 1".into(),
            );
        }
        Ok(())
    }
}

/// Counters of the session layer (monotonic, except `active`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Actors activated (from the store or new).
    pub activations: AtomicU64,
    /// Actors passivated after idling.
    pub passivations: AtomicU64,
    /// Turns that failed (handler error or panic).
    pub failures: AtomicU64,
    /// Sessions parked.
    pub parked: AtomicU64,
    /// Turns answered (including duplicates and failures).
    pub turns: AtomicU64,
    /// Messages refused with 429/503 for load.
    pub refused: AtomicU64,
}

/// A snapshot of [`Stats`] plus the active-session count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsView {
    /// Session actors alive now.
    pub active: usize,
    /// See [`Stats::activations`].
    pub activations: u64,
    /// See [`Stats::passivations`].
    pub passivations: u64,
    /// See [`Stats::failures`].
    pub failures: u64,
    /// See [`Stats::parked`].
    pub parked: u64,
    /// See [`Stats::turns`].
    pub turns: u64,
    /// See [`Stats::refused`].
    pub refused: u64,
}

/// Counters one registry entry shares with its actor.
#[derive(Debug)]
pub(crate) struct EntryShared {
    /// Messages sent to the actor and not yet answered.
    pub(crate) inflight: AtomicU32,
    /// When the actor last finished a message (ms since the epoch).
    pub(crate) last_active_ms: AtomicU64,
    /// The message whose turn the actor is handling now, if any: set by the actor when a turn
    /// starts and cleared when it ends, read by senders to decide whether to interrupt it.
    pub(crate) running: ArcSwapOption<Inbound>,
    /// The ids of the last messages the actor answered: a retry of one of them is answered
    /// from the store as a duplicate, so it must not interrupt the running turn either.
    answered: parking_lot::Mutex<AnsweredIds>,
}

/// A ring of the hashes of the last [`ANSWERED_WINDOW`] answered message ids: 136 bytes per
/// live session, no allocation per turn. A hash collision can only make a new message not
/// interrupt a running generation (it is still answered), never lose one.
#[derive(Debug, Default)]
struct AnsweredIds {
    hashes: [u64; ANSWERED_WINDOW],
    /// Where the next hash goes.
    next: usize,
}

impl AnsweredIds {
    fn hash(message_id: &str) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        // Fixed keys: the same id hashes the same for the life of the process. Never 0, which
        // marks an empty slot.
        BuildHasherDefault::<DefaultHasher>::default()
            .hash_one(message_id)
            .max(1)
    }

    fn push(&mut self, message_id: &str) {
        self.hashes[self.next] = Self::hash(message_id);
        self.next = (self.next + 1) % ANSWERED_WINDOW;
    }

    fn contains(&self, message_id: &str) -> bool {
        let hash = Self::hash(message_id);
        self.hashes.contains(&hash)
    }
}

/// How many answered message ids a registry entry remembers to tell retries from new
/// messages: the store's default idempotency window, beyond which the store itself treats a
/// retry as a new message (which then rightly interrupts).
const ANSWERED_WINDOW: usize = kefu_store::DEFAULT_IDEMPOTENCY_WINDOW;

impl EntryShared {
    pub(crate) fn new(inflight: u32) -> Self {
        Self {
            inflight: AtomicU32::new(inflight),
            last_active_ms: AtomicU64::new(now_ms()),
            running: ArcSwapOption::empty(),
            answered: parking_lot::Mutex::new(AnsweredIds::default()),
        }
    }

    /// True when a turn runs for a message other than `message_id` and `message_id` is not
    /// one the actor recently answered: a new message then interrupts it, a retry of the
    /// running message or of an answered one does not.
    fn runs_other_than(&self, message_id: &str) -> bool {
        let other = self
            .running
            .load()
            .as_ref()
            .is_some_and(|running| running.message_id != message_id);
        other && (message_id.is_empty() || !self.answered.lock().contains(message_id))
    }

    /// Remembers that the actor answered the message `message_id`.
    pub(crate) fn answered(&self, message_id: &str) {
        if !message_id.is_empty() {
            self.answered.lock().push(message_id);
        }
    }
}

struct Entry {
    actor: ActorRef<SessionMsg>,
    shared: Arc<EntryShared>,
}

/// State shared by the registry, its session actors and its sweeper.
pub(crate) struct Shared<H: TurnHandler> {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) handler: Arc<H>,
    pub(crate) config: SessionConfig,
    pub(crate) stats: Stats,
    pub(crate) metrics: TurnMetrics,
    map: DashMap<Arc<str>, Entry>,
    failures: DashMap<Arc<str>, VecDeque<Instant>>,
    admission: Semaphore,
    shutting_down: AtomicBool,
    /// Live [`SessionRegistry`] handles. Every other strong reference to this state belongs to
    /// a session actor, so `shutdown` knows the actors are gone when the count drops to this.
    handles: AtomicUsize,
}

impl<H: TurnHandler> Shared<H> {
    /// Removes `key`'s entry if it still belongs to actor `id`.
    pub(crate) fn forget(&self, key: &str, id: ActorId) {
        self.map.remove_if(key, |_, e| e.actor.get_id() == id);
    }

    /// Records one failure of `key` and returns how many fell within the window.
    pub(crate) fn record_failure(&self, key: &Arc<str>) -> usize {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        let window = Duration::from_secs_f64(self.config.failure_window_secs);
        let now = Instant::now();
        let mut log = self.failures.entry(key.clone()).or_default();
        while log.front().is_some_and(|t| now.duration_since(*t) > window) {
            log.pop_front();
        }
        log.push_back(now);
        log.len()
    }
}

/// Finds or activates session actors. Cheap to clone. Stop it with [`SessionRegistry::shutdown`]:
/// dropping the handles does not stop session actors that are still alive.
pub struct SessionRegistry<H: TurnHandler> {
    shared: Arc<Shared<H>>,
    supervisor: ActorRef<SupervisorMsg>,
}

impl<H: TurnHandler> Clone for SessionRegistry<H> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: self.shared.clone(),
            supervisor: self.supervisor.clone(),
        }
    }
}

impl<H: TurnHandler> Drop for SessionRegistry<H> {
    fn drop(&mut self) {
        self.shared.handles.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<H: TurnHandler> SessionRegistry<H> {
    /// Starts the registry: its supervisor actor and its passivation sweeper.
    pub async fn start(
        store: Arc<dyn Store>,
        handler: Arc<H>,
        config: SessionConfig,
    ) -> Result<Self, ractor::SpawnErr> {
        let (supervisor, _) = Actor::spawn(None, SessionSupervisor, ()).await?;
        let shared = Arc::new(Shared {
            store,
            handler,
            admission: Semaphore::new(config.max_inflight_total),
            config,
            stats: Stats::default(),
            metrics: TurnMetrics::new(),
            map: DashMap::new(),
            failures: DashMap::new(),
            shutting_down: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
        });
        let weak = Arc::downgrade(&shared);
        let idle = Duration::from_secs_f64(shared.config.idle_timeout_secs);
        let period = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else { break };
                if shared.shutting_down.load(Ordering::Relaxed) {
                    break;
                }
                sweep(&shared, idle);
            }
        });
        Ok(Self { shared, supervisor })
    }

    /// The handler sessions run (for hot reload and inspection).
    pub fn handler(&self) -> &Arc<H> {
        &self.shared.handler
    }

    /// Counters of the session layer.
    pub fn stats(&self) -> StatsView {
        let s = &self.shared.stats;
        StatsView {
            active: self.shared.map.len(),
            activations: s.activations.load(Ordering::Relaxed),
            passivations: s.passivations.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            parked: s.parked.load(Ordering::Relaxed),
            turns: s.turns.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
        }
    }

    /// Passivates every idle session now (for tests and shutdown).
    pub fn passivate_idle(&self) {
        sweep(&self.shared, Duration::ZERO);
    }

    /// Loads a session into memory ahead of its next message (e.g. when a user opens the chat
    /// widget) and returns its head sequence number. Creates nothing in the store.
    pub async fn activate(&self, key: &str, user: &str) -> Result<u64, SendError> {
        for _ in 0..3 {
            let (actor, entry) = self.acquire(key, user)?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            if actor.cast(SessionMsg::Ping { reply: tx.into() }).is_err() {
                entry.inflight.fetch_sub(1, Ordering::AcqRel);
                self.shared.forget(key, actor.get_id());
                continue;
            }
            match rx.await {
                Ok(seq) => return Ok(seq),
                Err(_) => self.shared.forget(key, actor.get_id()),
            }
        }
        Err(SendError::Storage)
    }

    /// Stops taking messages, stops every session actor, waits until they are gone and flushes
    /// the store.
    ///
    /// When it returns, no session actor holds the store any more: an embedder that drops its
    /// own handles (the runtime, the registry) can reopen the same data directory at once. A
    /// turn in progress finishes first (actors stop between messages); the waits are bounded
    /// (`SHUTDOWN_GRACE`) so a wedged handler cannot hang a shutdown.
    pub async fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        let keys: Vec<Arc<str>> = self.shared.map.iter().map(|e| e.key().clone()).collect();
        let actors: Vec<ActorRef<SessionMsg>> = keys
            .iter()
            .filter_map(|key| self.shared.map.remove(key).map(|(_, e)| e.actor))
            .collect();
        let stops = actors
            .iter()
            .map(|actor| actor.stop_and_wait(Some("shutdown".into()), Some(SHUTDOWN_GRACE)));
        for stopped in futures::future::join_all(stops).await {
            if let Err(e) = stopped {
                debug!(error = %e, "Session actor did not confirm its stop");
            }
        }
        if let Err(e) = self
            .supervisor
            .stop_and_wait(Some("shutdown".into()), Some(SHUTDOWN_GRACE))
            .await
        {
            debug!(error = %e, "Session supervisor did not confirm its stop");
        }
        // ractor reports an actor stopped just before its task drops the actor (and with it the
        // actor's reference to this state and the store): wait for those last references.
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Arc::strong_count(&self.shared) > self.shared.handles.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if let Err(e) = self.shared.store.flush().await {
            warn!(error = %e, "Final flush failed");
        }
    }

    /// Finds the session's actor or activates it, counting the message as in flight.
    fn acquire(
        &self,
        key: &str,
        user: &str,
    ) -> Result<(ActorRef<SessionMsg>, Arc<EntryShared>), SendError> {
        let shared = &self.shared;
        let admit = |e: &Entry| {
            let before = e.shared.inflight.fetch_add(1, Ordering::AcqRel);
            if before >= shared.config.max_inflight_per_session {
                e.shared.inflight.fetch_sub(1, Ordering::AcqRel);
                shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                shared.metrics.refused.increment(1);
                return Err(SendError::SessionBusy {
                    retry_after_secs: shared.config.retry_after_secs,
                });
            }
            Ok((e.actor.clone(), e.shared.clone()))
        };
        if let Some(e) = shared.map.get(key) {
            return admit(&e);
        }
        if shared.map.len() >= shared.config.max_active_sessions {
            // Make room from idle sessions before refusing.
            sweep(shared, Duration::from_secs(1));
            if shared.map.len() >= shared.config.max_active_sessions {
                shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                shared.metrics.refused.increment(1);
                return Err(SendError::Overloaded {
                    retry_after_secs: shared.config.retry_after_secs,
                });
            }
        }
        match shared.map.entry(Arc::from(key)) {
            MapEntry::Occupied(e) => admit(e.get()),
            MapEntry::Vacant(v) => {
                let entry = Arc::new(EntryShared::new(1));
                let args = SessionArgs {
                    key: v.key().clone(),
                    user: user.to_owned(),
                    entry: entry.clone(),
                };
                let actor = SessionActor {
                    shared: shared.clone(),
                };
                let (actor, _started) = ractor::ActorRuntime::spawn_linked_instant(
                    None,
                    actor,
                    args,
                    self.supervisor.get_cell(),
                )
                .map_err(|e| {
                    warn!(session = key, error = %e, "Session actor could not be spawned");
                    SendError::ShuttingDown
                })?;
                shared.stats.activations.fetch_add(1, Ordering::Relaxed);
                v.insert(Entry {
                    actor: actor.clone(),
                    shared: entry.clone(),
                });
                Ok((actor, entry))
            }
        }
    }
}

/// Stops sessions idle for at least `idle`, under the invariant in the module docs.
fn sweep<H: TurnHandler>(shared: &Shared<H>, idle: Duration) {
    let cutoff = now_ms().saturating_sub(idle.as_millis() as u64);
    let is_idle = |e: &Entry| {
        e.shared.inflight.load(Ordering::Acquire) == 0
            && e.shared.last_active_ms.load(Ordering::Relaxed) <= cutoff
    };
    let candidates: Vec<Arc<str>> = shared
        .map
        .iter()
        .filter(|e| is_idle(e.value()))
        .map(|e| e.key().clone())
        .collect();
    let mut stopped = 0u64;
    for key in candidates {
        if let Some((_, e)) = shared.map.remove_if(&key, |_, e| is_idle(e)) {
            e.actor.stop(Some("passivated".into()));
            stopped += 1;
        }
    }
    if stopped > 0 {
        shared
            .stats
            .passivations
            .fetch_add(stopped, Ordering::Relaxed);
        debug!(stopped, "Idle sessions passivated");
    }
}

#[async_trait]
impl<H: TurnHandler> Conversations for SessionRegistry<H> {
    async fn send(&self, msg: Inbound) -> Result<TurnOutcome, SendError> {
        let shared = &self.shared;
        if shared.shutting_down.load(Ordering::Relaxed) {
            return Err(SendError::ShuttingDown);
        }
        if msg.text.trim().is_empty() {
            return Err(SendError::Invalid {
                code: "empty_message",
                message: "the message text is empty".into(),
            });
        }
        let _permit = shared.admission.try_acquire().map_err(|_| {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            shared.metrics.refused.increment(1);
            SendError::Overloaded {
                retry_after_secs: shared.config.retry_after_secs,
            }
        })?;
        let timeout = Duration::from_secs_f64(shared.config.turn_timeout_secs);
        let accepted = Instant::now();
        let msg = Arc::new(msg);
        // A few attempts: each failed one means the actor died before answering (it failed on an
        // earlier message, or could not load); the next attempt activates a fresh one.
        for attempt in 0..4 {
            let (actor, entry) = self.acquire(&msg.session, &msg.user)?;
            // Admitted: before queueing behind a running turn, tell the handler the user moved
            // on (channels do not carry a tenant yet; sessions run under the default one).
            if entry.runs_other_than(&msg.message_id) {
                debug!(session = %msg.session, "Newer message interrupts the running turn");
                shared.handler.interrupt(DEFAULT_TENANT, &msg.session);
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            let sent = actor.cast(SessionMsg::Turn {
                msg: Arc::clone(&msg),
                accepted,
                reply: tx.into(),
            });
            if sent.is_err() {
                entry.inflight.fetch_sub(1, Ordering::AcqRel);
                shared.forget(&msg.session, actor.get_id());
                continue;
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(outcome)) => {
                    shared.stats.turns.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.total.record(accepted.elapsed());
                    match &outcome {
                        Ok(_) => shared.metrics.ok.increment(1),
                        Err(_) => shared.metrics.error.increment(1),
                    }
                    return outcome;
                }
                Ok(Err(_dropped)) => {
                    debug!(session = %msg.session, attempt, "Session actor went away; retrying");
                    shared.forget(&msg.session, actor.get_id());
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                    }
                }
                Err(_) => return Err(SendError::Timeout),
            }
        }
        warn!(session = %msg.session, "Session could not be activated");
        Err(SendError::Storage)
    }

    async fn conversation(
        &self,
        session: &str,
        transcript_limit: usize,
    ) -> Result<Option<ConversationView>, SendError> {
        let store = &self.shared.store;
        let Some(loaded) = store.load(session).await.map_err(|_| SendError::Storage)? else {
            return Ok(None);
        };
        let (state, parked) = match &loaded.snapshot {
            Some(bytes) => {
                let snap: Snapshot<H::State> =
                    serde_json::from_slice(bytes).map_err(|_| SendError::Storage)?;
                (
                    serde_json::to_value(&snap.dialog).unwrap_or(serde_json::Value::Null),
                    snap.parked,
                )
            }
            None => (serde_json::Value::Null, false),
        };
        let from = loaded.seq.saturating_sub(transcript_limit as u64) + 1;
        let events = store
            .events(session, from, transcript_limit)
            .await
            .map_err(|_| SendError::Storage)?;
        let transcript = events
            .into_iter()
            .filter_map(|ev| {
                let (role, text, at_ms, message_id) = match SessionEvent::decode(&ev.payload)
                    .ok()?
                {
                    SessionEvent::User {
                        message_id,
                        text,
                        at_ms,
                        ..
                    } => ("user", text, at_ms, message_id),
                    SessionEvent::Bot {
                        message_id,
                        text,
                        at_ms,
                    } => ("bot", text, at_ms, message_id),
                    SessionEvent::Failed {
                        message_id,
                        reply,
                        at_ms,
                        ..
                    } => ("bot", reply, at_ms, message_id),
                    SessionEvent::Agent { text, at_ms, .. } => {
                        ("agent", text, at_ms, String::new())
                    }
                    SessionEvent::Notice { text, at_ms } => ("system", text, at_ms, String::new()),
                    SessionEvent::Generation {
                        message_id,
                        record,
                        at_ms,
                    } => ("generation", record, at_ms, message_id),
                    SessionEvent::Parked { reason: _, at_ms } => {
                        ("system", "parked".to_owned(), at_ms, String::new())
                    }
                };
                Some(TranscriptEntry {
                    seq: ev.seq,
                    role: role.to_owned(),
                    text,
                    at_ms,
                    message_id,
                })
            })
            .collect();
        Ok(Some(ConversationView {
            session: session.to_owned(),
            user: loaded.user,
            seq: loaded.seq,
            transcript,
            state,
            parked,
        }))
    }

    fn ready(&self) -> bool {
        !self.shared.shutting_down.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(entry: &EntryShared, id: &str) {
        entry.running.store(Some(Arc::new(Inbound {
            session: "s".into(),
            user: "u".into(),
            channel: "web".into(),
            text: "t".into(),
            message_id: id.into(),
            tags: None,
            stream: None,
        })));
    }

    #[test]
    fn only_new_messages_interrupt_and_answered_ids_are_forgotten_after_the_window() {
        let entry = EntryShared::new(0);
        // Nothing runs: nothing to interrupt.
        assert!(!entry.runs_other_than("m0"));
        for i in 0..ANSWERED_WINDOW {
            entry.answered(&format!("m{i}"));
        }
        running(&entry, "new");
        assert!(
            !entry.runs_other_than("new"),
            "a retry of the running message"
        );
        assert!(
            !entry.runs_other_than("m0"),
            "a retry of an answered message"
        );
        assert!(entry.runs_other_than("other"), "a new message");
        // One more answer pushes the oldest out of the window: the store no longer knows it
        // either, so it counts as new.
        entry.answered("m-last");
        assert!(entry.runs_other_than("m0"));
        assert!(!entry.runs_other_than("m1"));
        assert!(!entry.runs_other_than("m-last"));
        // Empty ids are never taken for retries of an answered message.
        entry.answered("");
        assert!(entry.runs_other_than(""));
    }
}
