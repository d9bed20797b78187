//! One WebSocket's turns in flight, answered in the order their frames arrived.
//!
//! The socket loop keeps reading frames while turns run, so that a newer message reaches the
//! session layer at once (where it interrupts a running generation). [`Turns`] is what makes
//! that safe for the client:
//!
//! - **Start order**: [`Turns::start`] polls the new turn's future once before it returns, so the
//!   call into `Conversations::send` begins (the session registry queues the message on that
//!   first poll) before the socket loop reads the next frame. Messages therefore reach the session
//!   in the order their frames arrived.
//! - **Answer order**: [`Turns::next`] yields frames strictly slot by slot: every `delta` /
//!   `retract` piece of turn N, then turn N's `turn` (or `error`) frame, and only then anything of
//!   turn N+1. Pieces of a later turn that arrive early wait in that turn's own bounded channel
//!   (which slows its generation rather than growing a buffer); a later turn that finishes early
//!   keeps its answer in its slot.
//! - **Bounded**: the caller stops reading the socket while [`Turns::is_full`] (at
//!   [`MAX_IN_FLIGHT`] frames), so one socket holds at most that many turns, each with at most
//!   [`STREAM_BUFFER`] pieces buffered.
//!
//! Dropping [`Turns`] (the socket broke) drops the pending answers only: each turn is already
//! queued in the session layer, which completes it durably whether or not anyone listens.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use kefu_actors::api::{TurnOutcome, TurnStream};
use kefu_actors::llm::StreamPiece;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::http::AppState;
use crate::http::error::{ApiError, panic_response};
use crate::http::extract::parse_json;
use crate::http::inbound::{MessageBody, build_inbound, channel};

/// Turns one socket may have in flight (started, not yet answered to the client). The session
/// layer's default `max_inflight_per_session` is the same, so a client pipelining within this
/// bound is not refused with `session_busy` by its own socket; beyond it the socket is simply not
/// read until a turn is answered (back-pressure through TCP, never an unbounded queue).
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// Stream pieces buffered per turn between the model and the socket. Small on purpose: a client
/// that reads slowly slows its own generation down instead of growing a buffer.
const STREAM_BUFFER: usize = 32;

/// `{"type":"turn", ...TurnOutcome}`.
#[derive(Serialize)]
struct TurnFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    turn: &'a TurnOutcome,
}

/// `{"type":"delta","text"}` and `{"type":"retract"}`: generated text streamed ahead of the turn.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamFrame<'a> {
    Delta { text: &'a str },
    Retract,
}

/// A started turn: resolves to its slot id and the frame that answers it.
type Running = Pin<Box<dyn Future<Output = (u64, String)> + Send>>;

/// One frame's place in the answer order.
struct Slot {
    /// Where the turn's streamed pieces arrive; `None` once every sender is gone (or for an
    /// answer that never streams, like the error for a binary frame).
    pieces: Option<mpsc::Receiver<StreamPiece>>,
    /// The closing frame, once the turn is answered.
    answer: Option<String>,
}

/// The turns of one socket, in frame order. See the module docs for the invariants.
pub(crate) struct Turns {
    /// Unanswered-to-the-client frames, oldest first; the front one is the only one whose
    /// frames may be sent.
    slots: VecDeque<Slot>,
    /// The id of `slots[0]`; ids are consecutive, so slot `id` is at `id - front_id`.
    front_id: u64,
    /// The turns still running in the session layer.
    running: FuturesUnordered<Running>,
    state: AppState,
    key: String,
}

impl Turns {
    /// No turns yet, for the conversation `key`.
    pub(crate) fn new(state: AppState, key: String) -> Self {
        Self {
            slots: VecDeque::new(),
            front_id: 0,
            running: FuturesUnordered::new(),
            state,
            key,
        }
    }

    /// True when every frame read so far has been answered.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// True when the caller must stop reading frames until one is answered.
    pub(crate) fn is_full(&self) -> bool {
        self.slots.len() >= MAX_IN_FLIGHT
    }

    fn next_id(&self) -> u64 {
        self.front_id + self.slots.len() as u64
    }

    /// Starts the turn for a text frame. Its call into the session layer has begun when this
    /// returns (the future was polled once), so a later frame cannot overtake it there.
    pub(crate) async fn start(&mut self, frame: String) {
        let id = self.next_id();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let state = self.state.clone();
        let key = self.key.clone();
        let mut turn: Running = Box::pin(async move {
            let reply = turn_frame(&state, &key, &frame, TurnStream::new(tx)).await;
            (id, reply)
        });
        let answer = match futures::poll!(turn.as_mut()) {
            Poll::Ready((_, reply)) => Some(reply),
            Poll::Pending => {
                self.running.push(turn);
                None
            }
        };
        self.slots.push_back(Slot {
            pieces: Some(rx),
            answer,
        });
    }

    /// Queues a frame that is already answered (an error for a frame that starts no turn), so
    /// it goes out after the answers of the frames before it.
    pub(crate) fn answered(&mut self, reply: String) {
        self.slots.push_back(Slot {
            pieces: None,
            answer: Some(reply),
        });
    }

    /// The next frame to send, in the order of the module docs; never resolves while no frame
    /// is pending. Cancel-safe: it only awaits channel and future readiness, and records what it
    /// got before it awaits again, so dropping it (another `select!` branch won) loses nothing.
    pub(crate) async fn next(&mut self) -> String {
        loop {
            let Some(head) = self.slots.front_mut() else {
                return std::future::pending().await;
            };
            if head.answer.is_some() {
                // The session layer awaits each piece's send before the turn can end, so every
                // piece of this turn is queued by now: drain them, then the answer.
                if let Some(piece) = head.pieces.as_mut().and_then(|rx| rx.try_recv().ok()) {
                    return piece_frame(&piece);
                }
                let reply = head.answer.take().unwrap_or_default();
                self.slots.pop_front();
                self.front_id += 1;
                return reply;
            }
            let got = {
                let pieces = async {
                    match head.pieces.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    // Pieces first: each one was sent before its turn could end.
                    biased;
                    piece = pieces => Got::Piece(piece),
                    done = self.running.next() => Got::Done(done),
                }
            };
            match got {
                Got::Piece(Some(piece)) => return piece_frame(&piece),
                // Every sender is gone: nothing more will stream for this turn.
                Got::Piece(None) => head_pieces_closed(&mut self.slots),
                Got::Done(Some((id, reply))) => self.record(id, reply),
                // Unreachable: an unanswered slot always has its turn running. Waiting here
                // (rather than looping) keeps a broken invariant from spinning.
                Got::Done(None) => {
                    tracing::error!(session = %self.key, "WebSocket turn lost its future");
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Stores a finished turn's answer in its slot.
    fn record(&mut self, id: u64, reply: String) {
        let index = id
            .checked_sub(self.front_id)
            .and_then(|i| usize::try_from(i).ok());
        match index.and_then(|i| self.slots.get_mut(i)) {
            Some(slot) => slot.answer = Some(reply),
            None => tracing::error!(session = %self.key, id, "WebSocket turn has no slot"),
        }
    }
}

/// What [`Turns::next`]'s wait produced (the select only picks; the state changes outside it).
enum Got {
    Piece(Option<StreamPiece>),
    Done(Option<(u64, String)>),
}

fn head_pieces_closed(slots: &mut VecDeque<Slot>) {
    if let Some(head) = slots.front_mut() {
        head.pieces = None;
    }
}

/// One streamed piece as its frame.
fn piece_frame(piece: &StreamPiece) -> String {
    let frame = match piece {
        StreamPiece::Delta(text) => StreamFrame::Delta { text },
        StreamPiece::Retract => StreamFrame::Retract,
    };
    serde_json::to_string(&frame).unwrap_or_else(|err| {
        // Unreachable for these shapes; a lost delta is repaired by the turn frame.
        tracing::error!(error = %err, "Could not serialise a stream frame");
        r#"{"type":"retract"}"#.to_owned()
    })
}

/// Handles one text frame and returns the frame to answer with.
async fn turn_frame(state: &AppState, key: &str, frame: &str, stream: TurnStream) -> String {
    // The HTTP panic guard does not reach into upgraded connections: without this, a panic in
    // the session layer would silently drop the socket instead of answering `internal_error`.
    let result = AssertUnwindSafe(turn(state, key, frame, stream))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            drop(panic_response(panic));
            Err(ApiError::Internal)
        });
    match result {
        Ok(outcome) => {
            let frame = TurnFrame {
                kind: "turn",
                turn: &outcome,
            };
            serde_json::to_string(&frame).unwrap_or_else(|err| {
                tracing::error!(session = %key, error = %err, "Could not serialise a turn");
                ApiError::Internal.to_ws_frame()
            })
        }
        Err(err) => err.to_ws_frame(),
    }
}

/// Parses a frame (JSON body or bare text) and runs its turn.
async fn turn(
    state: &AppState,
    key: &str,
    frame: &str,
    stream: TurnStream,
) -> Result<TurnOutcome, ApiError> {
    let body = if frame.trim_start().starts_with('{') {
        parse_json::<MessageBody>(frame.as_bytes())?
    } else {
        MessageBody {
            text: Some(frame.to_owned()),
            message_id: None,
            user: None,
        }
    };
    let mut inbound = build_inbound(
        key.to_owned(),
        body.user,
        channel::WS,
        body.text,
        body.message_id,
        state.config.max_message_chars,
    )?;
    inbound.stream = Some(stream);
    Ok(state.conversations.send(inbound).await?)
}
