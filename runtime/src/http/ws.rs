//! `GET /v1/conversations/{key}/ws`: live chat over a WebSocket.
//!
//! Protocol: the client sends text frames, either JSON `{"text": "...", "message_id"?: "..."}` or
//! a bare text (anything not starting with `{`) that is taken as the message text. The server
//! answers every frame, in order, with `{"type":"turn", ...}` (the same fields as the REST
//! response) or `{"type":"error","code":...,"message":...}`.
//!
//! While a turn's flow generates text that it says (a `generate:` step without `save:`), the
//! moderated text streams ahead of the turn frame as `{"type":"delta","text":"..."}` frames; a
//! `{"type":"retract"}` frame means "drop the deltas shown so far" (the model that streamed them
//! failed and a fallback answers, or a newer message of the conversation interrupted the
//! generation and nothing of it is said). The turn frame that follows always carries the whole
//! reply, so a client may ignore deltas, and one that shows them replaces the draft with the
//! turn frame.
//!
//! When the human desk is on, the server also pushes frames the user did not ask for: an agent's
//! message `{"type":"agent_message","agent","text","seq","at_ms"}` and desk notices
//! `{"type":"notice","text","at_ms"}` (an agent joined, the bot is back, a rating question).
//!
//! Invariants: one socket's messages are handled strictly one after another (the next frame is
//! not read before the previous turn is answered), which is what the session layer's ordering
//! promise needs from a channel; a bad frame costs an error frame, never the connection; a frame
//! or message over `max_ws_frame_bytes` is refused by the WebSocket codec before it is buffered,
//! answered with an error frame and a close with code 1009, because the codec cannot skip the
//! rest of it; a panic while handling a frame is answered with an `internal_error` frame. Pings
//! are answered by the codec itself.
//!
//! Closing: a socket that has received no frame (text, binary, ping, pong) for
//! `ws_idle_timeout_secs` is closed with 1000 "idle timeout"; on server shutdown every socket is
//! closed with 1001 "going away" once its current turn has been answered, and [`serve`] waits
//! (bounded by [`CLOSE_GRACE`]) until each socket has finished its close handshake, so clients
//! see a clean close instead of a reset. [`LiveSockets`] is the shared handle for both.
//!
//! [`serve`]: super::serve

use std::error::Error as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use kefu_actors::api::{TurnOutcome, TurnStream};
use kefu_actors::llm::StreamPiece;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

use super::AppState;
use super::error::{ApiError, panic_response};
use super::extract::{SessionKey, parse_json};
use super::inbound::{MessageBody, build_inbound, channel};

/// How long a closing socket waits for the client's close frame, and how long shutdown waits
/// for all sockets to finish closing. A client that never answers cannot hold the server up.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// The live WebSocket sessions of one server: tells them to close on shutdown and waits until
/// they have. Cheap to clone (all clones are one handle).
#[derive(Clone, Debug)]
pub struct LiveSockets {
    /// `true` once shutdown began. Every socket holds a receiver, so the sender's receiver
    /// count is the number of live sockets and `closed()` resolves when the last one is gone.
    closing: Arc<watch::Sender<bool>>,
}

impl Default for LiveSockets {
    fn default() -> Self {
        Self {
            closing: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl LiveSockets {
    /// Tells every socket, current and future, to close with 1001 "going away".
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Number of sockets currently open.
    pub fn count(&self) -> usize {
        self.closing.receiver_count()
    }

    /// Waits until every socket has closed, at most `grace`. Returns whether all did.
    pub async fn wait_closed(&self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.closing.closed())
            .await
            .is_ok()
    }

    fn join(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

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

/// Stream pieces buffered between the model and the socket. Small on purpose: a client that
/// reads slowly slows its own generation down instead of growing a buffer.
const STREAM_BUFFER: usize = 32;

/// Upgrades the connection; handshake errors are answered with our JSON error shape.
pub(crate) async fn ws_get(
    State(state): State<AppState>,
    SessionKey(key): SessionKey,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::WebSocketUpgrade {
                status: rejection.status(),
                detail: rejection.body_text(),
            }
            .into_response();
        }
    };
    let limit = state.config.max_ws_frame_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(|err| tracing::debug!(error = %err, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| session(socket, state, key))
}

/// What woke the socket loop (the select only picks; the work happens outside it, so no
/// borrow of the shutdown flag is held across a send).
enum Incoming {
    /// A frame the desk pushes to the user.
    Push(String),
    /// What the client sent (or the end of the stream).
    Client(Option<Result<Message, axum::Error>>),
}

/// Why the server ends a socket by itself.
enum Ending {
    /// The client went quiet for the configured time.
    Idle,
    /// The server is shutting down.
    Shutdown,
}

/// Runs one socket until the client closes it, it breaks, it idles out or the server stops.
async fn session(mut socket: WebSocket, state: AppState, key: String) {
    // Held for the socket's whole life: shutdown counts the live sockets by these.
    let mut closing = state.sockets.join();
    tracing::debug!(session = %key, "WebSocket opened");
    let mut pushes = state
        .agents
        .as_ref()
        .map(|agents| agents.desk().subscribe_user(&key));
    let idle_limit = state.config.ws_idle_timeout();
    let mut deadline = idle_limit.map(|limit| Instant::now() + limit);
    let ending = loop {
        let event = tokio::select! {
            // Shutdown first: once it began, no further frame starts a turn.
            biased;
            _ = closing.wait_for(|closing| *closing) => break Some(Ending::Shutdown),
            () = sleep_until(deadline) => break Some(Ending::Idle),
            // An agent's message (human mode) goes out as soon as the desk pushes it.
            frame = next_push(&mut pushes) => Incoming::Push(frame),
            received = socket.recv() => Incoming::Client(received),
        };
        let received = match event {
            Incoming::Push(frame) => {
                if let Err(err) = socket.send(Message::Text(Utf8Bytes::from(frame))).await {
                    tracing::debug!(session = %key, error = %err, "WebSocket push failed");
                    break None;
                }
                continue;
            }
            Incoming::Client(received) => received,
        };
        let Some(received) = received else {
            break None;
        };
        if let Some(limit) = idle_limit {
            deadline = Some(Instant::now() + limit);
        }
        let reply = match received {
            Ok(Message::Text(text)) => {
                match streamed_turn(&mut socket, &state, &key, text.as_str()).await {
                    Ok(reply) => reply,
                    Err(err) => {
                        tracing::debug!(session = %key, error = %err, "WebSocket stream write failed");
                        break None;
                    }
                }
            }
            Ok(Message::Binary(_)) => ApiError::UnsupportedFrame.to_ws_frame(),
            // The codec answers pings and closes itself; after a close, the next `recv` flushes
            // the reply and returns `None`, so keep looping rather than dropping the socket.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => continue,
            Err(err) => {
                if is_capacity_error(&err) {
                    refuse_oversized(&mut socket, state.config.max_ws_frame_bytes).await;
                } else {
                    tracing::debug!(session = %key, error = %err, "WebSocket read failed");
                }
                break None;
            }
        };
        if let Err(err) = socket.send(Message::Text(Utf8Bytes::from(reply))).await {
            tracing::debug!(session = %key, error = %err, "WebSocket write failed");
            break None;
        }
    };
    match ending {
        Some(Ending::Idle) => {
            tracing::debug!(session = %key, "WebSocket idle, closing");
            close(socket, close_code::NORMAL, "idle timeout").await;
        }
        Some(Ending::Shutdown) => close(socket, close_code::AWAY, "going away").await,
        None => {}
    }
    tracing::debug!(session = %key, "WebSocket closed");
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Starts the close handshake with `code` and waits (at most [`CLOSE_GRACE`]) for the client's
/// answer, so the close frame is delivered before the connection goes. Best effort: the client
/// may be gone already.
async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    if let Err(err) = socket.send(Message::Close(Some(frame))).await {
        tracing::debug!(error = %err, "Could not send the close frame");
        return;
    }
    // Frames still in flight from the client are dropped; `recv` ends after its close frame.
    let drained = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!("Client did not answer the close frame in time");
    }
}

/// The next frame the desk pushes to this conversation; never resolves without a desk.
async fn next_push(
    pushes: &mut Option<tokio::sync::broadcast::Receiver<kefu_actors::agents::UserPush>>,
) -> String {
    use tokio::sync::broadcast::error::RecvError;
    let Some(rx) = pushes else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(push) => match serde_json::to_string(&push) {
                Ok(frame) => return frame,
                Err(err) => tracing::error!(error = %err, "Could not serialise a push"),
            },
            // Missed frames are in the transcript; the client can re-read it.
            Err(RecvError::Lagged(missed)) => tracing::debug!(missed, "WebSocket push lagged"),
            Err(RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Handles one text frame: streams the turn's generated text to the socket while the turn runs,
/// then returns the turn frame to answer with. Fails only when the socket does.
async fn streamed_turn(
    socket: &mut WebSocket,
    state: &AppState,
    key: &str,
    frame: &str,
) -> Result<String, axum::Error> {
    let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
    let answer = turn_frame(state, key, frame, TurnStream::new(tx));
    tokio::pin!(answer);
    let reply = loop {
        tokio::select! {
            // Pieces first: each one was sent before the turn could end.
            biased;
            piece = rx.recv() => match piece {
                Some(piece) => send_piece(socket, &piece).await?,
                // Every sender is gone: nothing more will stream.
                None => break answer.await,
            },
            reply = &mut answer => break reply,
        }
    };
    // The service awaits each send, so every piece of the turn is queued by now.
    while let Ok(piece) = rx.try_recv() {
        send_piece(socket, &piece).await?;
    }
    Ok(reply)
}

/// Sends one streamed piece as its frame.
async fn send_piece(socket: &mut WebSocket, piece: &StreamPiece) -> Result<(), axum::Error> {
    let frame = match piece {
        StreamPiece::Delta(text) => StreamFrame::Delta { text },
        StreamPiece::Retract => StreamFrame::Retract,
    };
    match serde_json::to_string(&frame) {
        Ok(text) => socket.send(Message::Text(Utf8Bytes::from(text))).await,
        Err(err) => {
            // Unreachable for these shapes; a lost delta is repaired by the turn frame.
            tracing::error!(error = %err, "Could not serialise a stream frame");
            Ok(())
        }
    }
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

/// True when the codec refused a frame or message for its size.
fn is_capacity_error(err: &axum::Error) -> bool {
    err.source()
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
        .is_some_and(|err| matches!(err, tungstenite::Error::Capacity(_)))
}

/// Sends the error frame and the 1009 close for an oversized frame. Best effort: the client may
/// already be gone, and the socket is dropped right after either way.
async fn refuse_oversized(socket: &mut WebSocket, max_bytes: usize) {
    let error = ApiError::FrameTooLarge { max_bytes }.to_ws_frame();
    let close = CloseFrame {
        code: close_code::SIZE,
        reason: Utf8Bytes::from_static("message too big"),
    };
    let sent = async {
        socket.send(Message::Text(Utf8Bytes::from(error))).await?;
        socket.send(Message::Close(Some(close))).await
    };
    if let Err(err) = sent.await {
        tracing::debug!(error = %err, "Could not send the 1009 close");
    }
}
