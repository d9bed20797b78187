//! The one error type of the generation back-ends.
//!
//! Invariants: every variant names the back-end it came from (so the ladder can report which
//! rung failed and why), never carries an API key or a prompt, and says whether it is the
//! back-end's fault ([`LlmError::is_backend_failure`]) — only those count against a circuit
//! breaker, a caller's bad request does not.

use std::time::Duration;

/// Why a generation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The request itself is unusable (no messages, a bad role, zero max_tokens...).
    #[error("invalid generation request: {reason}")]
    InvalidRequest {
        /// What was wrong.
        reason: String,
    },
    /// The back-end's configuration is unusable (empty base URL, missing model file...).
    #[error("invalid {backend} configuration: {field}: {reason}")]
    Config {
        /// The back-end kind.
        backend: &'static str,
        /// The offending field.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The back-end could not be reached (connection refused, DNS, TLS, broken stream).
    #[error("{backend} is unavailable: {detail}")]
    Unavailable {
        /// The back-end's name.
        backend: String,
        /// What the transport said.
        detail: String,
    },
    /// The back-end answered with an error.
    #[error("{backend} refused the request ({}): {message}", code.as_deref().unwrap_or("no code"))]
    Api {
        /// The back-end's name.
        backend: String,
        /// The error code it sent, if any (`rate_limit_exceeded`, `context_length_exceeded`...).
        code: Option<String>,
        /// Its message.
        message: String,
        /// Whether this is the caller's fault (bad request) rather than the back-end's.
        client_fault: bool,
    },
    /// The back-end did not answer in time.
    #[error("{backend} did not answer within {after:?}")]
    Timeout {
        /// The back-end's name.
        backend: String,
        /// The limit that ran out.
        after: Duration,
    },
    /// The back-end answered something we cannot understand.
    #[error("{backend} sent an unexpected response: {detail}")]
    Protocol {
        /// The back-end's name.
        backend: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The prompt does not fit the model's context.
    #[error("the prompt needs {needed} tokens but the context holds {limit}")]
    ContextOverflow {
        /// Tokens the prompt plus the reply need.
        needed: usize,
        /// The context size.
        limit: usize,
    },
    /// The in-process model failed (tokenisation, decoding, sampling).
    #[error("the local model failed: {detail}")]
    Model {
        /// What failed.
        detail: String,
    },
    /// The back-end is saturated and refused to queue more work.
    #[error("{backend} is overloaded: {detail}")]
    Overloaded {
        /// The back-end's name.
        backend: String,
        /// Which limit was hit.
        detail: String,
    },
    /// The generation was cancelled (the user sent a new message, the client went away).
    #[error("the generation was cancelled")]
    Cancelled,
}

impl LlmError {
    /// Whether the failure is the back-end's (transport, timeout, server error, overload), as
    /// opposed to the caller's (bad request) or a cancellation. Only these should open a
    /// circuit breaker.
    pub fn is_backend_failure(&self) -> bool {
        match self {
            Self::Unavailable { .. }
            | Self::Timeout { .. }
            | Self::Protocol { .. }
            | Self::Model { .. }
            | Self::Overloaded { .. } => true,
            Self::Api { client_fault, .. } => !client_fault,
            Self::InvalidRequest { .. }
            | Self::Config { .. }
            | Self::ContextOverflow { .. }
            | Self::Cancelled => false,
        }
    }

    /// A short stable code for logs, metrics and the OpenAI-compatible error shape.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Config { .. } => "backend_misconfigured",
            Self::Unavailable { .. } => "backend_unavailable",
            Self::Api { .. } => "backend_error",
            Self::Timeout { .. } => "backend_timeout",
            Self::Protocol { .. } => "backend_protocol_error",
            Self::ContextOverflow { .. } => "context_length_exceeded",
            Self::Model { .. } => "model_error",
            Self::Overloaded { .. } => "overloaded",
            Self::Cancelled => "cancelled",
        }
    }
}
