//! The REST error type of the tickets API and the JSON/query extractors that produce it.
//!
//! Wire shape, the same as the runtime's API: `{"error": {"code": "...", "message": "..."}}`
//! with a matching status. 4xx for anything the client sent (400 malformed JSON, 415 not JSON,
//! 413 too large, 422 well-formed but unacceptable, 404 no such ticket, 409 the ticket's state
//! forbids the change); 5xx only for storage faults, whose details are logged, never sent.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::TicketError;

/// Everything a tickets request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A ticket operation failed (validation, lifecycle, not found, storage).
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// The body is not well-formed JSON.
    #[error("the request body is not valid JSON: {detail}")]
    InvalidJson {
        /// What the parser said.
        detail: String,
    },
    /// The body is JSON of the wrong shape (types, missing or unknown fields).
    #[error("the request does not have the expected shape: {detail}")]
    InvalidRequest {
        /// What was wrong.
        detail: String,
    },
    /// The body is not declared as JSON.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The body is larger than allowed.
    #[error("the request body is too large")]
    BodyTooLarge,
    /// The body could not be read.
    #[error("the request body could not be read")]
    UnreadableBody,
    /// The query string does not have the expected shape.
    #[error("the query string is invalid: {detail}")]
    InvalidQuery {
        /// What was wrong.
        detail: String,
    },
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Ticket(err) => match err {
                TicketError::NotFound(_) | TicketError::InvalidId(_) => StatusCode::NOT_FOUND,
                TicketError::Closed(_)
                | TicketError::NotClosed(_)
                | TicketError::IllegalTransition { .. } => StatusCode::CONFLICT,
                TicketError::Storage { .. } => StatusCode::SERVICE_UNAVAILABLE,
                TicketError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            ApiError::InvalidJson { .. } | ApiError::UnreadableBody => StatusCode::BAD_REQUEST,
            ApiError::InvalidRequest { .. } | ApiError::InvalidQuery { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            // A malformed id in a path names no ticket: same answer as an unknown one.
            ApiError::Ticket(TicketError::InvalidId(_)) => "ticket_not_found",
            ApiError::Ticket(err) => err.code(),
            ApiError::InvalidJson { .. } => "invalid_json",
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::UnreadableBody => "unreadable_body",
            ApiError::InvalidQuery { .. } => "invalid_query",
        }
    }

    /// What the client is told: never storage internals.
    fn message(&self) -> String {
        match self {
            ApiError::Ticket(TicketError::Storage { .. }) => {
                "the ticket store is unavailable; retry later".to_owned()
            }
            ApiError::Ticket(TicketError::Corrupt { .. }) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), status = status.as_u16(), error = %self, "Tickets request failed");
        } else {
            tracing::debug!(code = self.code(), status = status.as_u16(), error = %self, "Tickets request refused");
        }
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
        let mut response = (status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// JSON body extractor whose rejections are [`ApiError`]s. An empty body reads as `{}`, so
/// actions whose fields are all optional (close, reopen) can be posted without a body; a
/// non-empty body must be declared as JSON.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_content_type);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge
            } else {
                ApiError::UnreadableBody
            }
        })?;
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if is_json {
            &bytes
        } else {
            return Err(ApiError::UnsupportedMediaType);
        };
        serde_json::from_slice(body)
            .map(ApiJson)
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => ApiError::InvalidRequest {
                    detail: e.to_string(),
                },
                _ => ApiError::InvalidJson {
                    detail: e.to_string(),
                },
            })
    }
}

/// `application/json`, with parameters, or any `+json` type.
fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Query-string extractor whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::InvalidQuery {
                detail: e.body_text(),
            })
    }
}
