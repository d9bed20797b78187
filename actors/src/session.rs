//! The session actor: one per conversation, the single writer of that conversation's log.
//!
//! Invariants:
//! - Messages of one session are handled one at a time, in mailbox order (ractor's mailbox is
//!   FIFO; the handler awaits the store before taking the next message).
//! - A turn is committed atomically: the user message, the replies and the new state are one
//!   append, idempotent by message id. The reply is sent only after that append is durable.
//! - The handler runs on a copy of the state; the in-memory state changes only after the commit.
//!   The handler is async (it may await skills); a panic anywhere in its future is caught at the
//!   await. A handler that fails or panics therefore never changes durable state: the actor records the
//!   failure, answers with the polite error, removes itself from the registry and stops with an
//!   error, and the next message activates a fresh actor from the store.
//! - After more than `max_failures` failures within `failure_window`, the session is parked:
//!   the park is persisted, and every later message is refused with [`SendError::Parked`].
//! - The recent-messages window handed to the handler ([`TurnHandler::history_window`]) lives in
//!   memory only: it is read from the log's tail when the actor activates and extended after
//!   each commit, so it costs the per-turn snapshot nothing, and a handler that asks for none
//!   pays nothing at all.
//! - While a turn runs, the registry entry names its message (`EntryShared::running`), so a
//!   newer message can interrupt it from the sender's side (the mailbox cannot: it is FIFO and
//!   this actor is busy); see the registry's invariants.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::FutureExt;
use kefu_models::llm::ChatMessage;
use kefu_store::{AppendOutcome, AppendRequest};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{debug, info, warn};

use crate::api::{Inbound, Reply, SendError, TurnOutcome};
use crate::events::{SNAPSHOT_VERSION, SessionEvent, Snapshot, now_ms};
use crate::handler::{DEFAULT_TENANT, HandledTurn, TurnContext, TurnHandler};
use crate::registry::{EntryShared, Shared};

/// Messages a session actor handles.
pub enum SessionMsg {
    /// One user message; the reply carries the durable outcome.
    Turn {
        /// The message (shared, so a retry after a dead actor re-sends it without copying).
        msg: Arc<Inbound>,
        /// When the registry accepted it (the turn's `queue` phase ends when the actor starts).
        accepted: Instant,
        /// Where the outcome goes.
        reply: RpcReplyPort<Result<TurnOutcome, SendError>>,
    },
    /// Answers once the actor is running (its state loaded): activation ahead of a message.
    Ping {
        /// Gets the session's head sequence number.
        reply: RpcReplyPort<u64>,
    },
}

/// The session actor. It holds only shared configuration; its state is built in `pre_start`.
pub struct SessionActor<H: TurnHandler> {
    pub(crate) shared: Arc<Shared<H>>,
}

/// Arguments of one activation.
pub struct SessionArgs {
    /// The conversation's key.
    pub(crate) key: Arc<str>,
    /// The user given with the message that activated the session (used for a new session).
    pub(crate) user: String,
    /// The registry entry's counters, shared with the registry.
    pub(crate) entry: Arc<EntryShared>,
}

/// A session's in-memory state.
pub struct SessionState<S> {
    key: Arc<str>,
    user: String,
    /// Head sequence number of the session's log.
    seq: u64,
    snapshot: Snapshot<S>,
    /// Length of the snapshot as last stored: the buffer size for encoding the next one.
    snapshot_len: usize,
    entry: Arc<EntryShared>,
    /// The latest user and bot messages, oldest first, at most the handler's history window.
    history: Vec<ChatMessage>,
}

/// Longest text kept per history entry, in characters: the window feeds a prompt, and a pasted
/// essay must not pin megabytes per active session.
const HISTORY_ENTRY_CHARS: usize = 1000;

/// Appends to the history window, dropping the oldest entries beyond `window`.
fn remember(history: &mut Vec<ChatMessage>, window: usize, message: ChatMessage) {
    if window == 0 {
        return;
    }
    let mut message = message;
    if message.content.chars().count() > HISTORY_ENTRY_CHARS {
        message.content = message.content.chars().take(HISTORY_ENTRY_CHARS).collect();
    }
    history.push(message);
    if history.len() > window {
        let excess = history.len() - window;
        history.drain(..excess);
    }
}

/// How a turn ended, for the actor loop.
enum TurnEnd {
    /// Answered; the actor lives on.
    Done(Result<TurnOutcome, SendError>),
    /// The handler failed: answered politely, the actor must stop and restart from the store.
    Failed(Result<TurnOutcome, SendError>, String),
}

impl<H: TurnHandler> Actor for SessionActor<H> {
    type Msg = SessionMsg;
    type State = SessionState<H::State>;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SessionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let loaded = self.shared.store.load(&args.key).await?;
        let state = match loaded {
            None => SessionState {
                key: args.key,
                user: args.user,
                seq: 0,
                snapshot: Snapshot {
                    v: SNAPSHOT_VERSION,
                    ..Snapshot::default()
                },
                snapshot_len: 0,
                entry: args.entry,
                history: Vec::new(),
            },
            Some(loaded) => {
                if loaded.snapshot_seq != loaded.seq {
                    // Every append of ours carries the snapshot; a gap means someone else wrote.
                    warn!(session = %args.key, seq = loaded.seq, snapshot_seq = loaded.snapshot_seq,
                        "Session snapshot is older than its log");
                }
                let snapshot_len = loaded.snapshot.as_ref().map_or(0, Vec::len);
                let snapshot = match loaded.snapshot {
                    Some(bytes) => serde_json::from_slice::<Snapshot<H::State>>(&bytes)?,
                    None => Snapshot {
                        v: SNAPSHOT_VERSION,
                        ..Snapshot::default()
                    },
                };
                let history = self.recent_history(&args.key, loaded.seq).await;
                SessionState {
                    key: args.key,
                    user: loaded.user,
                    seq: loaded.seq,
                    snapshot,
                    snapshot_len,
                    entry: args.entry,
                    history,
                }
            }
        };
        debug!(session = %state.key, seq = state.seq, "Session activated");
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SessionMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SessionMsg::Ping { reply } => {
                state.entry.inflight.fetch_sub(1, Ordering::AcqRel);
                let _ = reply.send(state.seq);
                Ok(())
            }
            SessionMsg::Turn {
                msg,
                accepted,
                reply,
            } => {
                self.shared.metrics.queue.record(accepted.elapsed());
                // Senders read this to tell a newer message (interrupts) from a retry of this
                // one (does not); an `Arc` clone, so it costs the turn no allocation.
                state.entry.running.store(Some(Arc::clone(&msg)));
                // Boxed: a turn's future (flow engine, skills, generation) is many KB, and
                // inline it would be part of every idle actor's task for its whole life.
                let end = Box::pin(self.turn(state, &msg)).await;
                // A duplicate's id is already remembered: pushing it again would push older
                // ids out of the window early.
                if matches!(&end, TurnEnd::Done(Ok(outcome)) if !outcome.duplicate) {
                    state.entry.answered(&msg.message_id);
                }
                state.entry.running.store(None);
                state
                    .entry
                    .last_active_ms
                    .store(now_ms(), Ordering::Relaxed);
                state.entry.inflight.fetch_sub(1, Ordering::AcqRel);
                match end {
                    TurnEnd::Done(outcome) => {
                        // The caller may have given up (timeout); the turn is durable anyway.
                        let _ = reply.send(outcome);
                        Ok(())
                    }
                    TurnEnd::Failed(outcome, reason) => {
                        let _ = reply.send(outcome);
                        // Leave the registry first so that messages arriving from now on
                        // activate a fresh actor from the store instead of reaching this one.
                        self.shared.forget(&state.key, myself.get_id());
                        Err(format!("session {} failed: {reason}", state.key).into())
                    }
                }
            }
        }
    }
}

impl<H: TurnHandler> SessionActor<H> {
    /// The history window's contents from the log's tail, for an activation. Best effort: an
    /// unreadable tail only costs the handler some context, never the activation.
    async fn recent_history(&self, key: &str, seq: u64) -> Vec<ChatMessage> {
        let window = self.shared.handler.history_window();
        if window == 0 || seq == 0 {
            return Vec::new();
        }
        // A turn is one user event plus its replies; twice the window covers typical turns.
        let span = (window as u64).saturating_mul(2);
        let from = seq.saturating_sub(span) + 1;
        let events = match self.shared.store.events(key, from, span as usize).await {
            Ok(events) => events,
            Err(e) => {
                warn!(session = %key, error = %e, "Recent history unreadable; starting without it");
                return Vec::new();
            }
        };
        let mut history = Vec::new();
        for ev in events {
            let message = match SessionEvent::decode(&ev.payload) {
                Ok(SessionEvent::User { text, .. }) => ChatMessage::user(text),
                Ok(SessionEvent::Bot { text, .. } | SessionEvent::Agent { text, .. }) => {
                    ChatMessage::assistant(text)
                }
                Ok(_) | Err(_) => continue,
            };
            remember(&mut history, window, message);
        }
        history
    }

    async fn turn(&self, state: &mut SessionState<H::State>, msg: &Inbound) -> TurnEnd {
        if state.snapshot.parked {
            return TurnEnd::Done(Err(SendError::Parked));
        }
        let ctx = TurnContext {
            // Channels do not carry a tenant yet; every conversation belongs to the default one.
            tenant: DEFAULT_TENANT,
            session: &state.key,
            user: &state.user,
            channel: &msg.channel,
            text: &msg.text,
            message_id: &msg.message_id,
            tags: msg.tags.as_deref(),
            stream: msg.stream.as_ref(),
            history: &state.history,
        };
        let mut dialog = state.snapshot.dialog.clone();
        let handler = &self.shared.handler;
        // The call sits inside the async block, so a handler that panics while building its
        // future (work before its first await) is caught just like one that panics later.
        let started = Instant::now();
        let handled = AssertUnwindSafe(async { handler.handle(&mut dialog, &ctx).await })
            .catch_unwind()
            .await;
        self.shared.metrics.handle.record(started.elapsed());
        match handled {
            Ok(Ok(handled)) => TurnEnd::Done(self.commit(state, msg, handled, dialog).await),
            Ok(Err(err)) => self.fail(state, msg, err.to_string()).await,
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                self.fail(state, msg, format!("panic: {reason}")).await
            }
        }
    }

    /// Makes a handled turn durable, then updates the in-memory state.
    async fn commit(
        &self,
        state: &mut SessionState<H::State>,
        msg: &Inbound,
        handled: HandledTurn,
        dialog: H::State,
    ) -> Result<TurnOutcome, SendError> {
        let at_ms = now_ms();
        let next = Snapshot {
            v: SNAPSHOT_VERSION,
            dialog,
            parked: false,
            turns: state.snapshot.turns + 1,
        };
        let user = state.user.clone();
        let key = Arc::clone(&state.key);
        let size_hint = state.snapshot_len;
        let snapshot_len = std::sync::atomic::AtomicUsize::new(size_hint);
        // Encodes the turn's records for a given head. Called once per turn; again only after a
        // sequence conflict, so the payloads are never copied just in case of a retry.
        let build = |expected_seq: u64| -> Result<AppendRequest, SendError> {
            // Sized from the previous snapshot, so serialising rarely reallocates (and copies).
            let mut snapshot = Vec::with_capacity(size_hint.max(256) + 64);
            serde_json::to_writer(&mut snapshot, &next).map_err(|e| {
                warn!(session = %key, error = %e, "Session state does not serialise");
                SendError::Storage
            })?;
            snapshot_len.store(snapshot.len(), Ordering::Relaxed);
            let mut events =
                Vec::with_capacity(1 + handled.generations.len() + handled.replies.len());
            events.push(SessionEvent::user(msg, at_ms).encode());
            for record in &handled.generations {
                events.push(
                    SessionEvent::Generation {
                        message_id: msg.message_id.clone(),
                        record: record.clone(),
                        at_ms,
                    }
                    .encode(),
                );
            }
            for r in &handled.replies {
                events.push(
                    SessionEvent::Bot {
                        message_id: msg.message_id.clone(),
                        text: r.text.clone(),
                        at_ms,
                    }
                    .encode(),
                );
            }
            Ok(AppendRequest {
                expected_seq,
                idempotency_key: Some(msg.message_id.clone()),
                user: user.clone(),
                events,
                snapshot: Some(snapshot),
            })
        };
        let started = Instant::now();
        let appended = self.append(state, build).await;
        self.shared.metrics.append.record(started.elapsed());
        match appended? {
            AppendOutcome::Appended { last_seq, .. } => {
                state.seq = last_seq;
                state.snapshot = next;
                let window = self.shared.handler.history_window();
                // Checked here so the hot path without a window clones no text.
                if window > 0 {
                    remember(
                        &mut state.history,
                        window,
                        ChatMessage::user(msg.text.clone()),
                    );
                    for r in &handled.replies {
                        let reply = ChatMessage::assistant(r.text.clone());
                        remember(&mut state.history, window, reply);
                    }
                }
                state.snapshot_len = snapshot_len.load(Ordering::Relaxed);
                Ok(TurnOutcome {
                    session: state.key.to_string(),
                    message_id: msg.message_id.clone(),
                    replies: handled.replies,
                    duplicate: false,
                    seq: last_seq,
                    nlu: handled.nlu,
                    active_flow: handled.active_flow,
                    failed: false,
                })
            }
            AppendOutcome::Duplicate {
                first_seq,
                last_seq,
            } => {
                self.stored_outcome(state, &msg.message_id, first_seq, last_seq)
                    .await
            }
            AppendOutcome::Conflict { actual_seq } => {
                warn!(session = %state.key, expected = state.seq, actual_seq, "Session log moved under us");
                Err(SendError::Storage)
            }
        }
    }

    /// Appends the request `build` makes for the in-memory head, and on a sequence conflict
    /// reloads the head once and appends again: our in-memory head can only be behind if an
    /// earlier append became durable after reporting an error.
    async fn append(
        &self,
        state: &mut SessionState<H::State>,
        build: impl Fn(u64) -> Result<AppendRequest, SendError>,
    ) -> Result<AppendOutcome, SendError> {
        let store = &self.shared.store;
        let first = store
            .append(&state.key, build(state.seq)?)
            .await
            .map_err(|e| {
                warn!(session = %state.key, error = %e, "Append failed");
                SendError::Storage
            })?;
        let AppendOutcome::Conflict { .. } = first else {
            return Ok(first);
        };
        let loaded = store
            .load(&state.key)
            .await
            .map_err(|_| SendError::Storage)?
            .ok_or(SendError::Storage)?;
        if let Some(bytes) = loaded.snapshot {
            state.snapshot_len = bytes.len();
            state.snapshot = serde_json::from_slice(&bytes).map_err(|_| SendError::Storage)?;
        }
        state.seq = loaded.seq;
        store
            .append(&state.key, build(loaded.seq)?)
            .await
            .map_err(|_| SendError::Storage)
    }

    /// Rebuilds the outcome of an earlier, already durable turn from its events.
    async fn stored_outcome(
        &self,
        state: &SessionState<H::State>,
        message_id: &str,
        first_seq: u64,
        last_seq: u64,
    ) -> Result<TurnOutcome, SendError> {
        let count = (last_seq + 1).saturating_sub(first_seq) as usize;
        let events = self
            .shared
            .store
            .events(&state.key, first_seq, count)
            .await
            .map_err(|_| SendError::Storage)?;
        let mut replies = Vec::new();
        let mut failed = false;
        for ev in events {
            match SessionEvent::decode(&ev.payload) {
                Ok(SessionEvent::Bot { text, .. }) => replies.push(Reply { text }),
                Ok(SessionEvent::Failed { reply, .. }) => {
                    failed = true;
                    replies.push(Reply { text: reply });
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(session = %state.key, seq = ev.seq, error = %e, "Unreadable event");
                    return Err(SendError::Storage);
                }
            }
        }
        Ok(TurnOutcome {
            session: state.key.to_string(),
            message_id: message_id.to_owned(),
            replies,
            duplicate: true,
            seq: state.seq.max(last_seq),
            nlu: None,
            active_flow: None,
            failed,
        })
    }

    /// Records a failed turn (and the park, when failures repeat), answers politely, and tells
    /// the actor loop to stop.
    async fn fail(
        &self,
        state: &mut SessionState<H::State>,
        msg: &Inbound,
        reason: String,
    ) -> TurnEnd {
        let failures = self.shared.record_failure(&state.key);
        let park = failures > self.shared.config.max_failures;
        let handler = &self.shared.handler;
        let reply = if park {
            handler.parked_notice(&msg.text)
        } else {
            handler.polite_error(&msg.text)
        };
        warn!(session = %state.key, failures, park, reason = %reason, "Session turn failed");
        let at_ms = now_ms();
        let mut events = vec![
            SessionEvent::user(msg, at_ms).encode(),
            SessionEvent::Failed {
                message_id: msg.message_id.clone(),
                reply: reply.clone(),
                reason: reason.clone(),
                at_ms,
            }
            .encode(),
        ];
        let mut snapshot = None;
        if park {
            events.push(
                SessionEvent::Parked {
                    reason: format!("{failures} failures in a row; last: {reason}"),
                    at_ms,
                }
                .encode(),
            );
            let parked = Snapshot {
                parked: true,
                ..state.snapshot.clone()
            };
            snapshot = serde_json::to_vec(&parked).ok();
            self.shared.stats.parked.fetch_add(1, Ordering::Relaxed);
            info!(session = %state.key, "Session parked after repeated failures");
        }
        let req = AppendRequest {
            expected_seq: state.seq,
            idempotency_key: Some(msg.message_id.clone()),
            user: state.user.clone(),
            events,
            snapshot,
        };
        // A failed turn is rare: cloning its small request for a possible retry is fine.
        let build = |expected_seq| {
            Ok(AppendRequest {
                expected_seq,
                ..req.clone()
            })
        };
        let outcome = match self.append(state, build).await {
            Ok(AppendOutcome::Appended { last_seq, .. }) => Ok(TurnOutcome {
                session: state.key.to_string(),
                message_id: msg.message_id.clone(),
                replies: vec![Reply { text: reply }],
                duplicate: false,
                seq: last_seq,
                nlu: None,
                active_flow: None,
                failed: true,
            }),
            Ok(AppendOutcome::Duplicate {
                first_seq,
                last_seq,
            }) => {
                self.stored_outcome(state, &msg.message_id, first_seq, last_seq)
                    .await
            }
            Ok(AppendOutcome::Conflict { .. }) | Err(_) => Err(SendError::Storage),
        };
        TurnEnd::Failed(outcome, reason)
    }
}
