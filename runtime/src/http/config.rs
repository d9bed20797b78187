//! Configuration of the HTTP/WebSocket API (the `[http]` section of kefu's config).
//!
//! Invariants: every field has a safe default (`HttpConfig::default()` is what an operator gets
//! without a config file), unknown keys are refused so a typo cannot silently disable a limit,
//! and [`HttpConfig::validate`] is run at load time and by `kefu check`. API keys never appear in
//! `Debug` output, so logging the config cannot leak them.

use std::fmt;

use serde::Deserialize;

/// Default for [`HttpConfig::max_body_bytes`]: 64 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default for [`HttpConfig::max_message_chars`].
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 4000;
/// Default for [`HttpConfig::max_ws_frame_bytes`]: 64 KiB.
pub const DEFAULT_MAX_WS_FRAME_BYTES: usize = 64 * 1024;
/// Default for [`HttpConfig::ws_idle_timeout_secs`]: 5 minutes.
pub const DEFAULT_WS_IDLE_TIMEOUT_SECS: u64 = 300;
/// Default for [`HttpConfig::transcript_limit`].
pub const DEFAULT_TRANSCRIPT_LIMIT: usize = 50;
/// Default for [`HttpConfig::max_transcript_limit`].
pub const DEFAULT_MAX_TRANSCRIPT_LIMIT: usize = 500;

/// Settings of the HTTP/WebSocket API.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// API keys accepted on `/v1/...` routes and the Rasa webhook, sent as
    /// `Authorization: Bearer <key>` or `X-Api-Key: <key>` (WebSocket also `?api_key=`).
    /// Empty means authentication is off, which is only sensible behind a trusted proxy or for
    /// local development. `/healthz`, `/readyz` and `/openapi.json` are always open.
    pub api_keys: Vec<String>,
    /// Largest accepted request body in bytes; larger bodies get 413 `body_too_large` before
    /// any parsing, so a client cannot make us buffer or parse megabytes.
    pub max_body_bytes: usize,
    /// Largest accepted message text in Unicode scalar values (what users think of as
    /// characters, also for Chinese); longer texts get 422 `message_too_long`.
    pub max_message_chars: usize,
    /// Largest accepted WebSocket message (and frame) in bytes. A larger one gets an error frame
    /// and the socket is closed with code 1009, because the rest of that frame cannot be skipped.
    pub max_ws_frame_bytes: usize,
    /// A WebSocket that has received no frame (message, ping or pong) for this many seconds is
    /// closed by the server with code 1000 "idle timeout", so abandoned sockets do not hold
    /// memory and file descriptors forever. Clients that want to stay connected while the
    /// user is silent send pings. 0 turns the timeout off.
    pub ws_idle_timeout_secs: u64,
    /// Transcript entries returned by `GET /v1/conversations/{key}` when `?limit=` is absent.
    pub transcript_limit: usize,
    /// Upper bound for `?limit=`; larger values are clamped so one request cannot read a whole
    /// long conversation into memory.
    pub max_transcript_limit: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            max_ws_frame_bytes: DEFAULT_MAX_WS_FRAME_BYTES,
            ws_idle_timeout_secs: DEFAULT_WS_IDLE_TIMEOUT_SECS,
            transcript_limit: DEFAULT_TRANSCRIPT_LIMIT,
            max_transcript_limit: DEFAULT_MAX_TRANSCRIPT_LIMIT,
        }
    }
}

// Hand-written so that API keys are never printed, e.g. when the config is logged at startup.
impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field(
                "api_keys",
                &format_args!("[{} redacted]", self.api_keys.len()),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_message_chars", &self.max_message_chars)
            .field("max_ws_frame_bytes", &self.max_ws_frame_bytes)
            .field("ws_idle_timeout_secs", &self.ws_idle_timeout_secs)
            .field("transcript_limit", &self.transcript_limit)
            .field("max_transcript_limit", &self.max_transcript_limit)
            .finish()
    }
}

/// Largest accepted [`HttpConfig::ws_idle_timeout_secs`]: one week. Longer is certainly a
/// mistake (and would overflow the timer arithmetic near `u64::MAX`).
pub const MAX_WS_IDLE_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// Why an [`HttpConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpConfigError {
    /// A size limit was zero, which would refuse every request.
    #[error("http.{field} must be greater than 0")]
    ZeroLimit {
        /// The offending field.
        field: &'static str,
    },
    /// The default transcript limit is above the maximum it is clamped to.
    #[error(
        "http.transcript_limit ({transcript_limit}) must not exceed http.max_transcript_limit ({max_transcript_limit})"
    )]
    TranscriptLimitAboveMax {
        /// The configured default.
        transcript_limit: usize,
        /// The configured maximum.
        max_transcript_limit: usize,
    },
    /// The WebSocket idle timeout is absurdly long.
    #[error(
        "http.ws_idle_timeout_secs ({secs}) must be at most {MAX_WS_IDLE_TIMEOUT_SECS} (one week); use 0 to turn it off"
    )]
    IdleTimeoutTooLong {
        /// The configured value.
        secs: u64,
    },
    /// An API key is empty or contains characters a client cannot send in a header.
    #[error(
        "http.api_keys[{index}] must be 16 to 256 visible ASCII characters (no spaces or control characters)"
    )]
    BadApiKey {
        /// Position of the key in the list (the key itself is never echoed).
        index: usize,
    },
}

impl HttpConfig {
    /// The WebSocket idle timeout, `None` when it is off.
    pub fn ws_idle_timeout(&self) -> Option<std::time::Duration> {
        (self.ws_idle_timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(self.ws_idle_timeout_secs))
    }

    /// Checks the settings; run at load time and by `kefu check`.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        for (field, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_message_chars", self.max_message_chars),
            ("max_ws_frame_bytes", self.max_ws_frame_bytes),
            ("max_transcript_limit", self.max_transcript_limit),
        ] {
            if value == 0 {
                return Err(HttpConfigError::ZeroLimit { field });
            }
        }
        if self.transcript_limit > self.max_transcript_limit {
            return Err(HttpConfigError::TranscriptLimitAboveMax {
                transcript_limit: self.transcript_limit,
                max_transcript_limit: self.max_transcript_limit,
            });
        }
        if self.ws_idle_timeout_secs > MAX_WS_IDLE_TIMEOUT_SECS {
            return Err(HttpConfigError::IdleTimeoutTooLong {
                secs: self.ws_idle_timeout_secs,
            });
        }
        for (index, key) in self.api_keys.iter().enumerate() {
            // Short keys are guessable; non-graphic bytes cannot travel in a header value.
            let ok = (16..=256).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(HttpConfigError::BadApiKey { index });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_auth_off() {
        let cfg = HttpConfig::default();
        assert!(cfg.validate().is_ok());
        assert!(cfg.api_keys.is_empty());
        assert_eq!(cfg.max_body_bytes, 64 * 1024);
    }

    #[test]
    fn partial_json_fills_defaults_and_unknown_fields_are_refused() {
        let cfg: HttpConfig = serde_json::from_str(r#"{"max_message_chars": 10}"#).unwrap();
        assert_eq!(cfg.max_message_chars, 10);
        assert_eq!(cfg.transcript_limit, DEFAULT_TRANSCRIPT_LIMIT);
        assert!(serde_json::from_str::<HttpConfig>(r#"{"max_body_byte": 10}"#).is_err());
    }

    #[test]
    fn validate_refuses_bad_values() {
        let zero = HttpConfig {
            max_body_bytes: 0,
            ..HttpConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(HttpConfigError::ZeroLimit {
                field: "max_body_bytes"
            })
        );
        let over = HttpConfig {
            transcript_limit: 10,
            max_transcript_limit: 5,
            ..HttpConfig::default()
        };
        assert!(matches!(
            over.validate(),
            Err(HttpConfigError::TranscriptLimitAboveMax { .. })
        ));
        let key = HttpConfig {
            api_keys: vec!["0123456789abcdef".into(), "short".into()],
            ..HttpConfig::default()
        };
        assert_eq!(key.validate(), Err(HttpConfigError::BadApiKey { index: 1 }));
        let idle = HttpConfig {
            ws_idle_timeout_secs: u64::MAX,
            ..HttpConfig::default()
        };
        assert!(matches!(
            idle.validate(),
            Err(HttpConfigError::IdleTimeoutTooLong { .. })
        ));
    }

    #[test]
    fn idle_timeout_zero_is_off() {
        let off = HttpConfig {
            ws_idle_timeout_secs: 0,
            ..HttpConfig::default()
        };
        assert!(off.validate().is_ok());
        assert_eq!(off.ws_idle_timeout(), None);
        assert_eq!(
            HttpConfig::default().ws_idle_timeout(),
            Some(std::time::Duration::from_secs(300))
        );
    }

    #[test]
    fn debug_redacts_keys() {
        let cfg = HttpConfig {
            api_keys: vec!["super-secret-key-123".into()],
            ..HttpConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("1 redacted"), "{shown}");
    }
}
