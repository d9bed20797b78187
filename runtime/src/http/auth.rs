//! API-key authentication for `/v1/...` routes and the Rasa webhook.
//!
//! Invariants: keys are compared in constant time against *every* configured key (no early exit,
//! so timing reveals neither which key nor how much of it matched); the layer is only installed
//! when keys are configured, so the unauthenticated hot path pays nothing; the `?api_key=` query
//! form is accepted only on the WebSocket route, because browsers cannot set headers on a
//! WebSocket and query strings elsewhere end up in access logs.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::{Choice, ConstantTimeEq};

use super::error::ApiError;

/// The configured API keys, as bytes ready for comparison.
#[derive(Clone)]
pub(crate) struct ApiKeys {
    keys: Arc<[Box<[u8]>]>,
}

impl ApiKeys {
    /// Builds the key set from the configuration.
    pub(crate) fn new(keys: &[String]) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| k.as_bytes().to_vec().into_boxed_slice())
                .collect(),
        }
    }

    /// True when `presented` equals one of the keys. `ct_eq` on slices of different lengths
    /// returns false without looking at the bytes; key lengths are not secret enough to matter.
    fn accepts(&self, presented: &[u8]) -> bool {
        let mut found = Choice::from(0);
        for key in self.keys.iter() {
            found |= key.as_ref().ct_eq(presented);
        }
        found.into()
    }
}

/// The key a client presented in its headers, if any.
fn header_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.as_bytes();
        // "Bearer" is case-insensitive per RFC 7235; tolerate extra spaces before the token.
        if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
            return Some(value[7..].trim_ascii());
        }
    }
    headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii())
}

/// `?api_key=` of a WebSocket upgrade.
#[derive(Deserialize)]
struct KeyQuery {
    api_key: Option<String>,
}

/// Middleware: the request must carry a valid key in `Authorization` or `X-Api-Key`.
pub(crate) async fn require_key(
    State(keys): State<ApiKeys>,
    request: Request,
    next: Next,
) -> Response {
    match header_key(request.headers()) {
        Some(key) if keys.accepts(key) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Middleware for the WebSocket route: like [`require_key`], or `?api_key=<key>`.
pub(crate) async fn require_key_or_query(
    State(keys): State<ApiKeys>,
    request: Request,
    next: Next,
) -> Response {
    let accepted = match header_key(request.headers()) {
        Some(key) => keys.accepts(key),
        None => Query::<KeyQuery>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(q)| q.api_key)
            .is_some_and(|key| keys.accepts(key.as_bytes())),
    };
    if accepted {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(&["first-key-0123456".into(), "second-key-012345".into()]);
        assert!(keys.accepts(b"first-key-0123456"));
        assert!(keys.accepts(b"second-key-012345"));
        assert!(!keys.accepts(b"first-key-012345"));
        assert!(!keys.accepts(b""));
        assert!(!ApiKeys::new(&[]).accepts(b""));
    }

    #[test]
    fn reads_bearer_and_x_api_key() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc"),
        );
        assert_eq!(header_key(&headers), Some(&b"abc"[..]));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(header_key(&headers), None);
        headers.insert("x-api-key", HeaderValue::from_static("xyz"));
        assert_eq!(header_key(&headers), Some(&b"xyz"[..]));
    }
}
