//! The one error type of the HTTP/WebSocket API and its wire shape.
//!
//! Every failure a client can see goes through [`ApiError`]: REST responses become
//! `{"error": {"code": "...", "message": "..."}}` with the matching status, WebSocket errors become
//! `{"type": "error", "code": "...", "message": "..."}` frames. Invariants: codes are stable
//! `snake_case` strings clients may branch on; messages are human text that never carries
//! internal details (those are logged with `tracing` instead); back-pressure errors carry a
//! `Retry-After` header.

use std::any::Any;
use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kefu_actors::api::SendError;
use serde::Serialize;

/// Longest accepted message id, in characters.
pub(crate) const MAX_MESSAGE_ID_CHARS: usize = 128;
/// Longest accepted session key, in characters.
pub(crate) const MAX_SESSION_KEY_CHARS: usize = 128;

/// Everything that can go wrong in a request, each variant with one status and one stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not well-formed JSON (or not valid UTF-8).
    #[error("the request body is not valid JSON: {detail}")]
    InvalidJson {
        /// What the parser said (position and kind; never internal state).
        detail: String,
    },
    /// The body is JSON but does not have the expected shape (wrong types, missing fields).
    #[error("the request does not have the expected shape: {detail}")]
    InvalidRequest {
        /// What was wrong.
        detail: String,
    },
    /// The body could not be read (the client went away mid-body, broken chunking).
    #[error("the request body could not be read")]
    UnreadableBody,
    /// The message text is missing or blank.
    #[error("the message text is missing or empty")]
    EmptyMessage,
    /// The message text is longer than the configured maximum.
    #[error("the message text is longer than {max_chars} characters")]
    MessageTooLong {
        /// The configured maximum.
        max_chars: usize,
    },
    /// The request body is larger than the configured maximum.
    #[error("the request body is larger than {max_bytes} bytes")]
    BodyTooLarge {
        /// The configured maximum.
        max_bytes: usize,
    },
    /// A WebSocket message is larger than the configured maximum (the socket is then closed).
    #[error("the WebSocket message is larger than {max_bytes} bytes")]
    FrameTooLarge {
        /// The configured maximum.
        max_bytes: usize,
    },
    /// The body is not declared as JSON.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// No route matches the path.
    #[error("no such endpoint; see /openapi.json")]
    NotFound,
    /// The path exists but not with this method.
    #[error("this endpoint does not support the request method; see /openapi.json")]
    MethodNotAllowed,
    /// The session key in the path or body is not acceptable.
    #[error("the conversation key is invalid: {reason}")]
    InvalidSessionKey {
        /// Which rule it broke.
        reason: &'static str,
    },
    /// The message id is not acceptable.
    #[error(
        "the message_id must be 1 to {MAX_MESSAGE_ID_CHARS} characters without control characters"
    )]
    InvalidMessageId,
    /// The user tags of a message are not acceptable (count, length, characters).
    #[error("the tags are invalid: {reason}")]
    InvalidTags {
        /// Which rule they broke.
        reason: String,
    },
    /// The query string does not have the expected shape.
    #[error("the query string is invalid: {detail}")]
    InvalidQuery {
        /// What was wrong.
        detail: String,
    },
    /// The WebSocket endpoint was called without a valid upgrade request.
    #[error("this endpoint requires a WebSocket upgrade: {detail}")]
    WebSocketUpgrade {
        /// The status axum picked for the rejection (400, 405 or 426).
        status: StatusCode,
        /// Which part of the handshake was wrong.
        detail: String,
    },
    /// A WebSocket frame that the protocol does not use (binary).
    #[error("only text frames are accepted")]
    UnsupportedFrame,
    /// Missing or wrong API key.
    #[error("a valid API key is required (Authorization: Bearer <key> or X-Api-Key)")]
    Unauthorized,
    /// The conversation does not exist.
    #[error("no conversation with this key")]
    ConversationNotFound,
    /// The runtime cannot take traffic yet (or any more).
    #[error("the service is not ready")]
    NotReady,
    /// The session layer refused or failed the message.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A bug: a handler panicked. The panic message is logged, never sent.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson { .. } | Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::InvalidRequest { .. }
            | Self::EmptyMessage
            | Self::MessageTooLong { .. }
            | Self::InvalidSessionKey { .. }
            | Self::InvalidMessageId
            | Self::InvalidTags { .. }
            | Self::InvalidQuery { .. }
            | Self::UnsupportedFrame => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BodyTooLarge { .. } | Self::FrameTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound | Self::ConversationNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::WebSocketUpgrade { status, .. } => *status,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Send(err) => match err {
                SendError::SessionBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
                SendError::Parked => StatusCode::CONFLICT,
                SendError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                SendError::Overloaded { .. } | SendError::Storage | SendError::ShuttingDown => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                SendError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            },
        }
    }

    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson { .. } => "invalid_json",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::UnreadableBody => "unreadable_body",
            Self::EmptyMessage => "empty_message",
            Self::MessageTooLong { .. } => "message_too_long",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidSessionKey { .. } => "invalid_session_key",
            Self::InvalidMessageId => "invalid_message_id",
            Self::InvalidTags { .. } => "invalid_tags",
            Self::InvalidQuery { .. } => "invalid_query",
            Self::WebSocketUpgrade { .. } => "websocket_upgrade_required",
            Self::UnsupportedFrame => "unsupported_frame",
            Self::Unauthorized => "unauthorized",
            Self::ConversationNotFound => "conversation_not_found",
            Self::NotReady => "not_ready",
            Self::Internal => "internal_error",
            Self::Send(err) => match err {
                SendError::SessionBusy { .. } => "session_busy",
                SendError::Overloaded { .. } => "overloaded",
                SendError::Parked => "conversation_parked",
                SendError::Invalid { code, .. } => code,
                SendError::Storage => "storage_unavailable",
                SendError::ShuttingDown => "shutting_down",
                SendError::Timeout => "turn_timeout",
            },
        }
    }

    /// Seconds the client should wait before retrying, for back-pressure errors.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Self::Send(
                SendError::SessionBusy { retry_after_secs }
                | SendError::Overloaded { retry_after_secs },
            ) => Some(*retry_after_secs),
            // Shutting down and storage outages are not worth hammering either; a short hint
            // lets load balancers and well-behaved clients back off.
            Self::Send(SendError::ShuttingDown | SendError::Storage) | Self::NotReady => Some(1),
            _ => None,
        }
    }

    /// The human message: the `Display` text, which by construction carries no internals
    /// (for [`ApiError::Internal`] it is just "internal error"). Static where possible, because
    /// 401s and 404s are what a scanner produces in bulk.
    fn message(&self) -> Cow<'static, str> {
        match self {
            Self::EmptyMessage => Cow::Borrowed("the message text is missing or empty"),
            Self::NotFound => Cow::Borrowed("no such endpoint; see /openapi.json"),
            Self::Unauthorized => Cow::Borrowed(
                "a valid API key is required (Authorization: Bearer <key> or X-Api-Key)",
            ),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// Logs the error at a level matching what an operator has to do about it: faults (storage,
    /// timeouts, bugs) at warn; client mistakes and back-pressure at debug, because under attack
    /// or overload they come by the thousand per second and are visible in metrics anyway.
    fn log(&self) {
        let status = self.status();
        let fault = matches!(
            self,
            Self::Internal | Self::Send(SendError::Storage | SendError::Timeout)
        );
        if fault {
            tracing::warn!(code = self.code(), status = status.as_u16(), error = %self, "Request failed");
        } else {
            tracing::debug!(code = self.code(), status = status.as_u16(), error = %self, "Request refused");
        }
    }

    /// Serialises the error as a WebSocket `{"type":"error",...}` frame.
    pub(crate) fn to_ws_frame(&self) -> String {
        self.log();
        let frame = WsErrorFrame {
            kind: "error",
            code: self.code(),
            message: &self.message(),
            retry_after_secs: self.retry_after_secs(),
        };
        // Serialising a struct of strings and integers cannot fail; fall back to a fixed frame
        // rather than panicking, should serde_json ever disagree.
        serde_json::to_string(&frame).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal_error","message":"internal error"}"#.to_owned()
        })
    }
}

/// `{"error": {...}}`, the REST error body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

/// `{"type": "error", ...}`, the WebSocket error frame.
#[derive(Serialize)]
struct WsErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u32>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let message = self.message();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: &message,
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| {
            br#"{"error":{"code":"internal_error","message":"internal error"}}"#.to_vec()
        });
        let mut response = (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Turns a handler panic into our 500 JSON, after logging the panic message; used with
/// `tower_http::catch_panic` and by the WebSocket loop.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    tracing::error!(panic = detail, "Handler panicked; answered 500");
    ApiError::Internal.into_response()
}

/// Fallback for unknown paths.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Fallback for known paths called with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
