//! Validation shared by every channel of this module, and the building of [`Inbound`] events.
//!
//! Invariants: an [`Inbound`] handed to the session layer always has a valid session key
//! (1–128 characters, no control characters, no `/`), a non-blank text within
//! `max_message_chars`, and a message id of 1–128 characters (a fresh UUID v4 when the client
//! gave none). REST, WebSocket and the Rasa webhook all go through [`build_inbound`], so the
//! rules cannot drift apart between channels.

use kefu_actors::api::Inbound;
use serde::Deserialize;

use super::error::{ApiError, MAX_MESSAGE_ID_CHARS, MAX_SESSION_KEY_CHARS};

/// Channel names recorded with each message (they select reply variants in flows).
pub(crate) mod channel {
    /// `POST /v1/conversations/{key}/messages`.
    pub(crate) const WEB: &str = "web";
    /// `GET /v1/conversations/{key}/ws`.
    pub(crate) const WS: &str = "ws";
    /// `POST /webhooks/rest/webhook`.
    pub(crate) const RASA: &str = "rasa";
}

/// The body of `POST /v1/conversations/{key}/messages` and of a JSON WebSocket frame.
///
/// `text` is optional at the serde level so that a missing text is reported as
/// `empty_message` (the client's real mistake) rather than a generic shape error. Unknown fields
/// are ignored so that clients can send metadata we do not use yet.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageBody {
    /// The user's text.
    pub(crate) text: Option<String>,
    /// The client's id for idempotent retries.
    pub(crate) message_id: Option<String>,
    /// The user the conversation belongs to; defaults to the key.
    pub(crate) user: Option<String>,
}

/// Checks a session key: 1–128 characters, no control characters, no `/`.
pub(crate) fn validate_session_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::InvalidSessionKey {
            reason: "it must not be empty",
        });
    }
    // Byte length bounds char count from above, so the count is only needed for long keys.
    if key.len() > MAX_SESSION_KEY_CHARS && key.chars().count() > MAX_SESSION_KEY_CHARS {
        return Err(ApiError::InvalidSessionKey {
            reason: "it must be at most 128 characters",
        });
    }
    if key.chars().any(|c| c.is_control() || c == '/') {
        return Err(ApiError::InvalidSessionKey {
            reason: "it must not contain control characters or '/'",
        });
    }
    Ok(())
}

fn validate_id_like(id: &str) -> bool {
    !id.is_empty()
        && (id.len() <= MAX_MESSAGE_ID_CHARS || id.chars().count() <= MAX_MESSAGE_ID_CHARS)
        && !id.chars().any(char::is_control)
}

/// Checks the text and returns it; blank texts and texts over `max_chars` are refused.
fn validate_text(text: Option<String>, max_chars: usize) -> Result<String, ApiError> {
    let text = text.ok_or(ApiError::EmptyMessage)?;
    if text.trim().is_empty() {
        return Err(ApiError::EmptyMessage);
    }
    if text.len() > max_chars && text.chars().count() > max_chars {
        return Err(ApiError::MessageTooLong { max_chars });
    }
    Ok(text)
}

/// A fresh message id for clients that send none (each such message is its own turn).
pub(crate) fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Builds the event for the session layer from what a channel received.
pub(crate) fn build_inbound(
    session: String,
    user: Option<String>,
    channel: &'static str,
    text: Option<String>,
    message_id: Option<String>,
    max_chars: usize,
) -> Result<Inbound, ApiError> {
    let text = validate_text(text, max_chars)?;
    let message_id = match message_id {
        Some(id) if validate_id_like(&id) => id,
        Some(_) => return Err(ApiError::InvalidMessageId),
        None => new_message_id(),
    };
    let user = match user {
        Some(user) if validate_id_like(&user) => user,
        Some(_) => {
            return Err(ApiError::InvalidRequest {
                detail: "user must be 1 to 128 characters without control characters".to_owned(),
            });
        }
        None => session.clone(),
    };
    Ok(Inbound {
        session,
        user,
        channel: channel.to_owned(),
        text,
        message_id,
        // Only the REST route accepts tags; it sets them after this shared validation. `None`
        // keeps the tags the session already has.
        tags: None,
        stream: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys() {
        assert!(validate_session_key("alice").is_ok());
        assert!(validate_session_key("用户-42 x").is_ok());
        assert!(validate_session_key(&"字".repeat(128)).is_ok());
        assert!(validate_session_key(&"字".repeat(129)).is_err());
        assert!(validate_session_key("").is_err());
        assert!(validate_session_key("a/b").is_err());
        assert!(validate_session_key("a\nb").is_err());
        assert!(validate_session_key("a\u{7f}").is_err());
    }

    #[test]
    fn inbound_defaults_and_limits() {
        let inbound =
            build_inbound("k".into(), None, channel::WEB, Some("hi".into()), None, 10).unwrap();
        assert_eq!(inbound.user, "k");
        assert_eq!(inbound.channel, "web");
        assert_eq!(inbound.message_id.len(), 36);

        // Ten Chinese characters are 30 bytes but within a 10-character limit.
        let ok = build_inbound(
            "k".into(),
            None,
            channel::WEB,
            Some("你".repeat(10)),
            None,
            10,
        );
        assert!(ok.is_ok());
        let long = build_inbound(
            "k".into(),
            None,
            channel::WEB,
            Some("你".repeat(11)),
            None,
            10,
        );
        assert!(matches!(
            long,
            Err(ApiError::MessageTooLong { max_chars: 10 })
        ));

        let blank = build_inbound("k".into(), None, channel::WEB, Some(" \n".into()), None, 10);
        assert!(matches!(blank, Err(ApiError::EmptyMessage)));
        let none = build_inbound("k".into(), None, channel::WEB, None, None, 10);
        assert!(matches!(none, Err(ApiError::EmptyMessage)));

        let id = Some("x".repeat(129));
        let bad_id = build_inbound("k".into(), None, channel::WEB, Some("hi".into()), id, 10);
        assert!(matches!(bad_id, Err(ApiError::InvalidMessageId)));
        let empty_id = build_inbound(
            "k".into(),
            None,
            channel::WEB,
            Some("hi".into()),
            Some(String::new()),
            10,
        );
        assert!(matches!(empty_id, Err(ApiError::InvalidMessageId)));
    }
}
