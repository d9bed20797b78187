//! The session's persisted records: events in its log and the snapshot of its state.
//!
//! Events are stored in a compact binary layout (see [`SessionEvent::encode`]): a turn writes
//! three to five of them, and in JSON the field names, quotes and decimal times were nearly
//! half of the bytes (a typical turn's record: 569 bytes in JSON, about 300 compact); the
//! store's cost per turn grows with the bytes it writes. Older logs hold JSON events, which
//! [`SessionEvent::decode`] still reads (a JSON record starts with `{`, a compact one with its
//! version byte), so no migration is needed. Operators read logs through the API
//! (`GET /v1/conversations/{key}`), which serves JSON either way.
//!
//! The snapshot stays JSON: it is rewritten with every turn (in the same atomic append), so
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

    /// Encodes for the store: the version byte [`COMPACT_V1`], a tag byte naming the variant,
    /// then the variant's fields in declaration order, each string as a LEB128 length and its
    /// UTF-8 bytes, `at_ms` as a LEB128 number.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, strings, at_ms): (u8, &[&str], u64) = match self {
            SessionEvent::User {
                message_id,
                text,
                channel,
                at_ms,
            } => (1, &[message_id, text, channel], *at_ms),
            SessionEvent::Bot {
                message_id,
                text,
                at_ms,
            } => (2, &[message_id, text], *at_ms),
            SessionEvent::Failed {
                message_id,
                reply,
                reason,
                at_ms,
            } => (3, &[message_id, reply, reason], *at_ms),
            SessionEvent::Agent {
                agent,
                name,
                text,
                at_ms,
            } => (4, &[agent, name, text], *at_ms),
            SessionEvent::Notice { text, at_ms } => (5, &[text], *at_ms),
            SessionEvent::Generation {
                message_id,
                record,
                at_ms,
            } => (6, &[message_id, record], *at_ms),
            SessionEvent::Parked { reason, at_ms } => (7, &[reason], *at_ms),
        };
        let len: usize = strings.iter().map(|s| s.len() + 2).sum();
        let mut out = Vec::with_capacity(2 + len + 10);
        out.push(COMPACT_V1);
        out.push(tag);
        for s in strings {
            kefu_store::varint::put(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        kefu_store::varint::put(&mut out, at_ms);
        out
    }

    /// Decodes a stored payload: the compact layout, or JSON as logs written before it hold.
    /// Malformed input is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventDecodeError> {
        match bytes.first() {
            Some(b'{') => serde_json::from_slice(bytes).map_err(EventDecodeError::Json),
            Some(&COMPACT_V1) => decode_compact(&bytes[1..]),
            Some(&other) => Err(EventDecodeError::Compact(format!(
                "unknown layout byte {other:#04x}"
            ))),
            None => Err(EventDecodeError::Compact("empty record".into())),
        }
    }
}

/// Version byte of the compact event layout (a JSON event starts with `{`, 0x7b).
pub const COMPACT_V1: u8 = 0x01;

/// Why a stored event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    /// A JSON event (written before the compact layout) is malformed.
    #[error("bad JSON event: {0}")]
    Json(serde_json::Error),
    /// A compact event is malformed.
    #[error("bad event record: {0}")]
    Compact(String),
}

/// Reads the fields of a compact event, after its version byte.
struct Fields<'a> {
    rest: &'a [u8],
}

impl Fields<'_> {
    fn varint(&mut self, what: &str) -> Result<u64, EventDecodeError> {
        kefu_store::varint::take(&mut self.rest)
            .ok_or_else(|| EventDecodeError::Compact(format!("bad number at {what}")))
    }

    fn string(&mut self, what: &str) -> Result<String, EventDecodeError> {
        let len = self.varint(what)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.rest.len())
            .ok_or_else(|| EventDecodeError::Compact(format!("truncated at {what}")))?;
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| EventDecodeError::Compact(format!("{what} is not UTF-8")))
    }
}

fn decode_compact(bytes: &[u8]) -> Result<SessionEvent, EventDecodeError> {
    let (&tag, rest) = bytes
        .split_first()
        .ok_or_else(|| EventDecodeError::Compact("no event kind".into()))?;
    let mut f = Fields { rest };
    let event = match tag {
        1 => SessionEvent::User {
            message_id: f.string("message_id")?,
            text: f.string("text")?,
            channel: f.string("channel")?,
            at_ms: f.varint("at_ms")?,
        },
        2 => SessionEvent::Bot {
            message_id: f.string("message_id")?,
            text: f.string("text")?,
            at_ms: f.varint("at_ms")?,
        },
        3 => SessionEvent::Failed {
            message_id: f.string("message_id")?,
            reply: f.string("reply")?,
            reason: f.string("reason")?,
            at_ms: f.varint("at_ms")?,
        },
        4 => SessionEvent::Agent {
            agent: f.string("agent")?,
            name: f.string("name")?,
            text: f.string("text")?,
            at_ms: f.varint("at_ms")?,
        },
        5 => SessionEvent::Notice {
            text: f.string("text")?,
            at_ms: f.varint("at_ms")?,
        },
        6 => SessionEvent::Generation {
            message_id: f.string("message_id")?,
            record: f.string("record")?,
            at_ms: f.varint("at_ms")?,
        },
        7 => SessionEvent::Parked {
            reason: f.string("reason")?,
            at_ms: f.varint("at_ms")?,
        },
        other => {
            return Err(EventDecodeError::Compact(format!(
                "unknown event kind {other}"
            )));
        }
    };
    if !f.rest.is_empty() {
        return Err(EventDecodeError::Compact("trailing bytes".into()));
    }
    Ok(event)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = SessionEvent> {
        let s = || any::<String>();
        prop_oneof![
            (s(), s(), s(), any::<u64>()).prop_map(|(message_id, text, channel, at_ms)| {
                SessionEvent::User {
                    message_id,
                    text,
                    channel,
                    at_ms,
                }
            }),
            (s(), s(), any::<u64>()).prop_map(|(message_id, text, at_ms)| SessionEvent::Bot {
                message_id,
                text,
                at_ms
            }),
            (s(), s(), s(), any::<u64>()).prop_map(|(message_id, reply, reason, at_ms)| {
                SessionEvent::Failed {
                    message_id,
                    reply,
                    reason,
                    at_ms,
                }
            }),
            (s(), s(), s(), any::<u64>()).prop_map(|(agent, name, text, at_ms)| {
                SessionEvent::Agent {
                    agent,
                    name,
                    text,
                    at_ms,
                }
            }),
            (s(), any::<u64>()).prop_map(|(text, at_ms)| SessionEvent::Notice { text, at_ms }),
            (s(), s(), any::<u64>()).prop_map(|(message_id, record, at_ms)| {
                SessionEvent::Generation {
                    message_id,
                    record,
                    at_ms,
                }
            }),
            (s(), any::<u64>()).prop_map(|(reason, at_ms)| SessionEvent::Parked { reason, at_ms }),
        ]
    }

    proptest! {
        #[test]
        fn compact_events_round_trip_and_no_prefix_decodes(ev in event()) {
            let bytes = ev.encode();
            prop_assert_eq!(bytes[0], COMPACT_V1);
            prop_assert_eq!(SessionEvent::decode(&bytes).unwrap(), ev.clone());
            // The JSON an older kefu wrote for the same event still reads the same.
            let json = serde_json::to_vec(&ev).unwrap();
            prop_assert_eq!(SessionEvent::decode(&json).unwrap(), ev);
            for cut in 0..bytes.len() {
                prop_assert!(SessionEvent::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_are_an_error_or_an_event_never_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let _ = SessionEvent::decode(&bytes);
            let mut compact = vec![COMPACT_V1];
            compact.extend_from_slice(&bytes);
            let _ = SessionEvent::decode(&compact);
        }
    }

    #[test]
    fn a_json_event_from_an_older_log_still_reads() {
        let stored = r#"{"type":"bot","message_id":"cbd4ddc2-e5cb-4f5b-9a15-f1319f285bae","text":"好的","at_ms":1795275887293}"#;
        assert_eq!(
            SessionEvent::decode(stored.as_bytes()).unwrap(),
            SessionEvent::Bot {
                message_id: "cbd4ddc2-e5cb-4f5b-9a15-f1319f285bae".into(),
                text: "好的".into(),
                at_ms: 1_795_275_887_293,
            }
        );
    }

    #[test]
    fn malformed_records_are_errors_that_say_what_is_wrong() {
        let err = |b: &[u8]| SessionEvent::decode(b).unwrap_err().to_string();
        assert!(err(b"").contains("empty"));
        assert!(err(&[0x02, 1]).contains("unknown layout"));
        assert!(err(&[COMPACT_V1, 9]).contains("unknown event kind"));
        assert!(err(&[COMPACT_V1, 5, 1, b'x', 0, 0]).contains("trailing"));
        assert!(err(&[COMPACT_V1, 5, 1, 0xff, 0]).contains("UTF-8"));
        assert!(err(&[COMPACT_V1, 5, 9, b'x']).contains("truncated"));
        assert!(err(b"{\"type\":\"nope\"}").contains("JSON"));
    }

    #[test]
    fn a_typical_reply_drops_the_json_overhead() {
        let ev = SessionEvent::Bot {
            message_id: "cbd4ddc2-e5cb-4f5b-9a15-f1319f285bae".into(),
            text: "好的，我们接着刚才的事情继续。".into(),
            at_ms: 1_795_275_887_293,
        };
        let (compact, json) = (ev.encode().len(), serde_json::to_vec(&ev).unwrap().len());
        // Three length bytes, the two header bytes and a six-byte time, around the 81 bytes
        // of id and text; JSON adds field names, quotes and a 13-digit time.
        assert_eq!(compact, 2 + 1 + 36 + 1 + 45 + 6);
        assert!(json >= compact + 50, "{compact} vs {json}");
    }
}
