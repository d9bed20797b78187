//! Extractors that turn bad input into [`ApiError`]s instead of axum's plain-text rejections.
//!
//! Invariants: nothing a client sends can make an extractor panic or produce a 5xx; the body is
//! never buffered beyond the configured limit (a `Content-Length` above it is refused before a
//! byte is read, and the `DefaultBodyLimit` layer set in [`app`](super::app) caps chunked bodies);
//! JSON syntax errors (including invalid UTF-8) are 400 `invalid_json`, well-formed JSON of the
//! wrong shape is 422 `invalid_request`. User tags that break [`validate_tags`]'s rules are 422
//! `invalid_tags`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use super::inbound::validate_session_key;

/// A JSON body, parsed with our error mapping. Only `application/json` (optionally with
/// parameters such as `charset`) and `application/*+json` are accepted.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let max_bytes = state.config.max_body_bytes;
        // Refuse a declared oversize body up front: no reason to read it only to drop it.
        if declared_length(req.headers()).is_some_and(|len| len > max_bytes) {
            return Err(ApiError::BodyTooLarge { max_bytes });
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge { max_bytes }
            } else {
                tracing::debug!(error = %rejection.body_text(), "Could not read request body");
                ApiError::UnreadableBody
            }
        })?;
        parse_json(&body).map(ApiJson)
    }
}

/// Parses JSON with our error mapping: syntax → 400 `invalid_json`, shape → 422
/// `invalid_request`. Shared with the WebSocket frames.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => ApiError::InvalidRequest {
                detail: err.to_string(),
            },
            // serde_json reports invalid UTF-8 as a syntax error, so that is a 400 too.
            Category::Syntax | Category::Eof | Category::Io => ApiError::InvalidJson {
                detail: err.to_string(),
            },
        }
    })
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .get(subtype.len().saturating_sub(5)..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Most user tags one message may carry.
pub(crate) const MAX_TAGS: usize = 16;
/// Longest user tag, in characters (ASCII, so also bytes).
pub(crate) const MAX_TAG_CHARS: usize = 32;

/// Checks the user tags of a message and returns them without duplicates, in their order.
///
/// Tags are operator data (`vip`, `b2b`) that policies and routing key on, so they are kept to a
/// small, unambiguous alphabet rather than normalised: `VIP` is refused, not silently turned
/// into `vip`, so an integration that sends the wrong case finds out at once.
pub(crate) fn validate_tags(tags: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let Some(tags) = tags else {
        return Ok(Vec::new());
    };
    if tags.len() > MAX_TAGS {
        return Err(ApiError::InvalidTags {
            reason: format!("at most {MAX_TAGS} tags, got {}", tags.len()),
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if tag.is_empty() || tag.len() > MAX_TAG_CHARS {
            return Err(ApiError::InvalidTags {
                reason: format!("each tag must be 1 to {MAX_TAG_CHARS} characters"),
            });
        }
        if !tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            // The tag itself is echoed only when it is short and printable ASCII.
            let shown: String = tag.chars().take(MAX_TAG_CHARS).collect();
            return Err(ApiError::InvalidTags {
                reason: format!(
                    "{shown:?}: tags may only contain lowercase letters a-z, digits, `_` and `-`"
                ),
            });
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// A query string, parsed with our error mapping (422 `invalid_query`).
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::InvalidQuery {
                detail: rejection.body_text(),
            })
    }
}

/// The `{key}` path segment of `/v1/conversations/{key}...`, validated as a session key.
#[derive(Debug)]
pub(crate) struct SessionKey(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for SessionKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(key) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                // The only client-caused failure is a percent-encoding that is not UTF-8; a
                // missing parameter would be a routing bug, but is still not worth a 500 here.
                tracing::debug!(error = %rejection.body_text(), "Bad conversation key in path");
                ApiError::InvalidSessionKey {
                    reason: "it must be valid UTF-8",
                }
            })?;
        validate_session_key(&key)?;
        Ok(SessionKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type(&with_type("application/json")));
        assert!(is_json_content_type(&with_type(
            "Application/JSON; charset=utf-8"
        )));
        assert!(is_json_content_type(&with_type(
            "application/vnd.kefu+json"
        )));
        assert!(!is_json_content_type(&with_type("text/plain")));
        assert!(!is_json_content_type(&with_type("application/jsonx")));
        assert!(!is_json_content_type(&with_type("json")));
        assert!(!is_json_content_type(&HeaderMap::new()));
    }

    #[test]
    fn tags_are_checked_and_deduplicated() {
        assert_eq!(validate_tags(None).unwrap(), Vec::<String>::new());
        assert_eq!(validate_tags(Some(vec![])).unwrap(), Vec::<String>::new());
        let tags = |t: &[&str]| Some(t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            validate_tags(tags(&["vip", "b2b_eu", "new-customer", "vip"])).unwrap(),
            vec!["vip", "b2b_eu", "new-customer"]
        );
        for bad in [
            tags(&["VIP"]),
            tags(&[""]),
            tags(&["vip plus"]),
            tags(&["会员"]),
            tags(&["a\u{0}b"]),
            tags(&[&"x".repeat(MAX_TAG_CHARS + 1)]),
            Some(vec!["t".to_owned(); MAX_TAGS + 1]),
        ] {
            let err = validate_tags(bad.clone()).unwrap_err();
            assert!(matches!(err, ApiError::InvalidTags { .. }), "{bad:?}");
            assert_eq!(err.code(), "invalid_tags");
        }
        assert!(validate_tags(tags(&[&"x".repeat(MAX_TAG_CHARS)])).is_ok());
    }

    #[test]
    fn parse_errors_are_classified() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[allow(dead_code)]
            text: String,
        }
        assert!(matches!(
            parse_json::<Body>(b"{"),
            Err(ApiError::InvalidJson { .. })
        ));
        assert!(matches!(
            parse_json::<Body>(b"{\"text\": \"\xff\"}"),
            Err(ApiError::InvalidJson { .. })
        ));
        assert!(matches!(
            parse_json::<Body>(br#"{"text": 5}"#),
            Err(ApiError::InvalidRequest { .. })
        ));
    }
}
