//! The session's persisted records: events in its log and the snapshot of its state.
//!
//! Events are JSON so that an operator can read a log with ordinary tools; they are small and
//! written once. The snapshot is rewritten with every turn (in the same atomic append), so
//! activation is one read and never a replay.

use serde::{Deserialize, Serialize};

/// One entry in a session's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent {
    /// A user message, as sent.
    User {
        /// Channel message id (the idempotency key of the turn).
        message_id: String,
        /// The original text.
        text: String,
        /// Channel it came through.
        channel: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A bot reply.
    Bot {
        /// The user message this answers.
        message_id: String,
        /// The reply text.
        text: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Handling the user message failed; the user got the polite error reply.
    Failed {
        /// The user message that failed.
        message_id: String,
        /// The reply the user got.
        reply: String,
        /// Why (for operators; never sent to users).
        reason: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A human agent's message to the user (written by the desk, not the session actor).
    Agent {
        /// The agent's id.
        agent: String,
        /// The agent's display name, as the user saw it.
        name: String,
        /// What was said.
        text: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A notice of the human desk shown to the user (queue, hand back, rating question).
    Notice {
        /// The text shown.
        text: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// How an LLM generation of a turn was answered (the rung, and why the rungs above it did
    /// not), so the reason stays with the conversation. Written only for turns that generate.
    Generation {
        /// The user message whose turn generated.
        message_id: String,
        /// The record, e.g. `local (remote: circuit_open)` or `fallback (...)`.
        record: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The session was parked after repeated failures.
    Parked {
        /// Why.
        reason: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
}

impl SessionEvent {
    /// The record of a user message.
    pub fn user(msg: &crate::api::Inbound, at_ms: u64) -> Self {
        SessionEvent::User {
            message_id: msg.message_id.clone(),
            text: msg.text.clone(),
            channel: msg.channel.clone(),
            at_ms,
        }
    }

    /// Encodes for the store.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a plain enum of strings and integers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a stored payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The session's state as persisted with every turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot<S> {
    /// Layout version of this record.
    pub v: u8,
    /// The handler's dialog state.
    pub dialog: S,
    /// True once the session was parked.
    #[serde(default)]
    pub parked: bool,
    /// Turns handled so far.
    #[serde(default)]
    pub turns: u64,
}

/// Current snapshot layout version.
pub const SNAPSHOT_VERSION: u8 = 1;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
