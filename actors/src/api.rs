//! The contract between channels (HTTP, WebSocket, webhooks) and the session layer.
//!
//! Channels build an [`Inbound`] and call [`Conversations::send`]; they get the turn's replies
//! back once the turn is durable, or a [`SendError`] that says what the client should do.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::llm::StreamPiece;

/// One user message, as a channel hands it to the session layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The conversation's key (one session actor per key).
    pub session: String,
    /// The user the conversation belongs to (for listing and deletion by user).
    pub user: String,
    /// The channel it came through (`web`, `ws`, `rasa`, ...), for reply variants and records.
    pub channel: String,
    /// The text as the user sent it (the original is kept for storage and display).
    pub text: String,
    /// The channel's message id; retries with the same id are answered from the store and never
    /// applied twice. Channels without ids get a fresh one per message.
    pub message_id: String,
    /// The user's tags (`vip`, `b2b`, ...), as the operator's integration sent them (validated
    /// by the channel: lowercase `[a-z0-9_-]`, bounded). `Some` replaces the tags kept on the
    /// session (`Some(vec![])` clears them); `None` — every channel that cannot send tags —
    /// keeps them, so later turns over any channel still see them. Policies see the session's
    /// tags as `user.vip` / `user.tags`, and a hand-off's customer tier counts them.
    pub tags: Option<Vec<String>>,
    /// Where generated text the bot says is streamed while the model runs (WebSocket turns);
    /// `None` for channels that only take whole replies. The turn's outcome still carries the
    /// whole reply either way.
    pub stream: Option<TurnStream>,
}

/// A per-turn sink for streamed generation: moderated text deltas, and retractions when the
/// model that streamed them failed and a fallback answers instead.
///
/// Bounded by its creator: a slow client slows the generation, it never grows a buffer.
/// Equality is channel identity, so [`Inbound`] stays comparable.
#[derive(Debug, Clone)]
pub struct TurnStream(mpsc::Sender<StreamPiece>);

impl TurnStream {
    /// A sink sending into `tx`.
    pub fn new(tx: mpsc::Sender<StreamPiece>) -> Self {
        Self(tx)
    }

    /// The sender, for the LLM service.
    pub fn sender(&self) -> &mpsc::Sender<StreamPiece> {
        &self.0
    }
}

impl PartialEq for TurnStream {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_channel(&other.0)
    }
}

impl Eq for TurnStream {}

/// One reply of the bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The text to show.
    pub text: String,
}

/// What a turn produced, returned once it is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnOutcome {
    /// The conversation's key.
    pub session: String,
    /// The message id the turn was recorded under.
    pub message_id: String,
    /// The bot's replies, in order.
    pub replies: Vec<Reply>,
    /// True when this was a retry of a message already handled: the replies are the stored ones.
    pub duplicate: bool,
    /// The session's head sequence number after the turn.
    pub seq: u64,
    /// Understanding of the message, when it was handled by the dialog engine.
    pub nlu: Option<NluView>,
    /// The active flow after the turn, if any.
    pub active_flow: Option<String>,
    /// True when the session failed on this message and the reply is the polite error.
    pub failed: bool,
}

/// What the engine understood of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NluView {
    /// The chosen intent, `None` when the message was out of scope.
    pub intent: Option<String>,
    /// Calibrated confidence of the top intent, 0..1.
    pub confidence: f32,
    /// Detected language (`zh` or `en`).
    pub lang: String,
}

/// One entry of a conversation's transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Sequence number in the session's log.
    pub seq: u64,
    /// `user`, `bot`, `agent`, `system` (desk notices) or `generation` (how an LLM generation of
    /// the turn was answered: the rung, and why the rungs above it did not).
    pub role: String,
    /// What was said.
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The message id of the user message this entry belongs to.
    pub message_id: String,
}

/// A conversation as read back for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    /// The conversation's key.
    pub session: String,
    /// The user it belongs to.
    pub user: String,
    /// Head sequence number.
    pub seq: u64,
    /// The transcript, oldest first (bounded: the latest entries).
    pub transcript: Vec<TranscriptEntry>,
    /// The dialog state (active flow, slots, ...), as JSON.
    pub state: serde_json::Value,
    /// True when the session was parked after repeated failures.
    pub parked: bool,
}

/// Why a message was not handled. Each variant maps to one HTTP status and stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Too many messages of this session are already waiting (HTTP 429).
    #[error("too many messages in flight for this conversation; retry in {retry_after_secs} s")]
    SessionBusy {
        /// Seconds the client should wait.
        retry_after_secs: u32,
    },
    /// The runtime is at its global admission limit (HTTP 503).
    #[error("the service is at capacity; retry in {retry_after_secs} s")]
    Overloaded {
        /// Seconds the client should wait.
        retry_after_secs: u32,
    },
    /// The session kept failing and was parked; a human has to look at it (HTTP 409).
    #[error("this conversation has been paused after repeated errors and handed to a person")]
    Parked,
    /// The input was refused (HTTP 400/413/422 by `code`).
    #[error("{message}")]
    Invalid {
        /// Stable machine-readable code, e.g. `message_too_long`.
        code: &'static str,
        /// Human explanation.
        message: String,
    },
    /// The store failed; nothing was acknowledged (HTTP 503).
    #[error("storage is unavailable; the message was not accepted")]
    Storage,
    /// The runtime is shutting down (HTTP 503).
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The turn did not finish in time; it may still complete (HTTP 504). Retry with the same
    /// message id to get its outcome without applying it twice.
    #[error("the conversation did not answer in time; retry with the same message_id")]
    Timeout,
}

/// The session layer as channels see it.
#[async_trait]
pub trait Conversations: Send + Sync + 'static {
    /// Handles one user message and returns the turn's replies once it is durable.
    async fn send(&self, msg: Inbound) -> Result<TurnOutcome, SendError>;

    /// Reads a conversation (transcript and state); `Ok(None)` when it does not exist.
    async fn conversation(
        &self,
        session: &str,
        transcript_limit: usize,
    ) -> Result<Option<ConversationView>, SendError>;

    /// True when the runtime can take traffic (store open, flows loaded, not shutting down).
    fn ready(&self) -> bool;
}
