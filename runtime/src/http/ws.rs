//! `GET /v1/conversations/{key}/ws`: live chat over a WebSocket.
//!
//! Protocol: the client sends text frames, either JSON `{"text": "...", "message_id"?: "..."}` or
//! a bare text (anything not starting with `{`) that is taken as the message text. The server
//! answers every frame with `{"type":"turn", ...}` (the same fields as the REST response) or
//! `{"type":"error","code":...,"message":...}`.
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
//! **Ordering invariant.** The socket keeps reading frames while turns run, and each text frame
//! starts its turn at once, so a message typed while the bot streams reaches the session layer
//! immediately and interrupts the running generation there. Turns start in frame order (each
//! one's call into the session layer has begun before the next frame is read), and they are
//! answered strictly in frame order: every `delta`/`retract` of turn N, then turn N's `turn` or
//! `error` frame, and only then any frame of turn N+1 (see [`turns`]). Desk pushes are not
//! turns: they go out as they come while no turn is in flight, and otherwise right after the
//! socket's turns are answered. At most [`turns::MAX_IN_FLIGHT`] frames are in flight per
//! socket; at that bound the socket is not read until one is answered (back-pressure).
//!
//! Other invariants: a bad frame costs an error frame (in its place in the order), never the
//! connection; a frame or message over `max_ws_frame_bytes` is refused by the WebSocket codec
//! before it is buffered, and since the codec cannot skip the rest of it the socket reads no
//! more: the frames before it are answered, then an error frame and a close with code 1009; a
//! panic while handling a frame is answered with an `internal_error` frame. Pings are answered
//! by the codec itself while the socket is read. A socket that breaks drops the answers still
//! pending; their turns complete in the session layer all the same.
//!
//! Closing: a socket that has received no frame (text, binary, ping, pong) for
//! `ws_idle_timeout_secs`, and has no turn in flight, is closed with 1000 "idle timeout" (the
//! time counts from the later of the last frame and the last answer); on server shutdown no
//! further frame is read, the turns in flight are answered, and the socket is closed with 1001
//! "going away"; [`serve`] waits (bounded by [`CLOSE_GRACE`]) until each socket has finished its
//! close handshake, so clients see a clean close instead of a reset. [`LiveSockets`] is the
//! shared handle for both.
//!
//! [`serve`]: super::serve

mod turns;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

#[cfg(test)]
pub(crate) use self::turns::MAX_IN_FLIGHT as MAX_TURNS_IN_FLIGHT;
use self::turns::Turns;
use super::AppState;
use super::error::ApiError;
use super::extract::SessionKey;

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
    /// Shutdown began.
    Shutdown,
    /// The client went quiet for the configured time, with nothing in flight.
    Idle,
    /// The next frame of the turns in flight, in their order.
    Answer(String),
    /// A frame the desk pushes to the user.
    Push(String),
    /// What the client sent (or the end of the stream).
    Client(Option<Result<Message, axum::Error>>),
}

/// How the server ends a socket by itself, once its turns in flight are answered.
enum Ending {
    /// The client went quiet for the configured time: 1000 "idle timeout".
    Idle,
    /// The server is shutting down: 1001 "going away".
    Shutdown,
    /// The client sent a frame over the size limit: an error frame and 1009.
    Oversized,
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
    let max_frame_bytes = state.config.max_ws_frame_bytes;
    let idle_limit = state.config.ws_idle_timeout();
    let mut deadline = idle_limit.map(|limit| Instant::now() + limit);
    let mut turns = Turns::new(state, key.clone());
    // Set once the socket must stop reading: the loop then only answers the turns in flight.
    let mut ending: Option<Ending> = None;
    let ending = loop {
        if ending.is_some() && turns.is_empty() {
            break ending;
        }
        let reading = ending.is_none();
        let event = tokio::select! {
            // Shutdown first: once it began, no further frame starts a turn.
            biased;
            _ = closing.wait_for(|closing| *closing), if reading => Incoming::Shutdown,
            // A socket with turns in flight is waiting on us, not idle.
            () = sleep_until(deadline), if reading && turns.is_empty() => Incoming::Idle,
            // Answers before new frames: the oldest turn's frames go out as they come.
            frame = turns.next() => Incoming::Answer(frame),
            // Desk pushes go out as they come between turns; while turns are in flight they
            // wait, so a push a turn caused (the join notice after a hand-off) follows that
            // turn's answer, as it did when the socket ran one turn at a time.
            frame = next_push(&mut pushes), if turns.is_empty() => Incoming::Push(frame),
            // At the in-flight bound the socket is not read: the client's frames wait in TCP.
            received = socket.recv(), if reading && !turns.is_full() => Incoming::Client(received),
        };
        let reply = match event {
            Incoming::Shutdown => {
                ending = Some(Ending::Shutdown);
                continue;
            }
            Incoming::Idle => break Some(Ending::Idle),
            Incoming::Answer(frame) => {
                if turns.is_empty()
                    && let Some(limit) = idle_limit
                {
                    // Idle time counts from the last answer, not from the frame it answered.
                    deadline = Some(Instant::now() + limit);
                }
                frame
            }
            Incoming::Push(frame) => frame,
            Incoming::Client(None) => break None,
            Incoming::Client(Some(received)) => {
                if let Some(limit) = idle_limit {
                    deadline = Some(Instant::now() + limit);
                }
                match received {
                    Ok(Message::Text(text)) => turns.start(text.as_str().to_owned()).await,
                    Ok(Message::Binary(_)) => {
                        turns.answered(ApiError::UnsupportedFrame.to_ws_frame());
                    }
                    // The codec answers pings and closes itself; after a close, the next `recv`
                    // flushes the reply and returns `None`, so keep looping rather than
                    // dropping the socket.
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => {}
                    // The codec cannot skip the rest of an oversized frame: read no more,
                    // answer the frames before it, then refuse it.
                    Err(err) if is_capacity_error(&err) => ending = Some(Ending::Oversized),
                    Err(err) => {
                        tracing::debug!(session = %key, error = %err, "WebSocket read failed");
                        break None;
                    }
                }
                continue;
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
        Some(Ending::Oversized) => refuse_oversized(&mut socket, max_frame_bytes).await,
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
