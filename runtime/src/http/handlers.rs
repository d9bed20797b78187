//! Request handlers of the REST routes: messages, conversations, the Rasa REST channel, health
//! and the OpenAPI document.
//!
//! Invariants: handlers do no blocking work and hold no locks; everything they return is either
//! a typed JSON body or an [`ApiError`]; `healthz` touches nothing but a static string because it
//! is the benchmark's ceiling endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kefu_actors::api::{ConversationView, TurnOutcome};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, SessionKey, validate_tags};
use super::inbound::{MessageBody, build_inbound, channel, validate_session_key};

/// The OpenAPI 3.1 document of every route, shipped inside the binary.
pub(crate) const OPENAPI_JSON: &str = include_str!("openapi.json");

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The body of `POST /v1/conversations/{key}/messages`: the message, plus the user's tags.
///
/// Tags are accepted here and nowhere else: this route is for the operator's back-end (it needs
/// the API key when keys are configured), whereas WebSocket and Rasa clients are often the
/// user's own browser, which must not be able to call itself a VIP.
#[derive(Debug, Deserialize)]
pub(crate) struct MessagePostBody {
    /// Text, message id and user, as every channel has them.
    #[serde(flatten)]
    message: MessageBody,
    /// The user's tags (`["vip"]`), checked by [`validate_tags`].
    tags: Option<Vec<String>>,
}

/// `POST /v1/conversations/{key}/messages`: one user message, answered with the turn.
pub(crate) async fn messages_post(
    State(state): State<AppState>,
    SessionKey(key): SessionKey,
    ApiJson(body): ApiJson<MessagePostBody>,
) -> Result<Json<TurnOutcome>, ApiError> {
    // Omitted tags keep the session's; a list (even empty) replaces them.
    let tags = match body.tags {
        Some(tags) => Some(validate_tags(Some(tags))?),
        None => None,
    };
    let message = body.message;
    let mut inbound = build_inbound(
        key,
        message.user,
        channel::WEB,
        message.text,
        message.message_id,
        state.config.max_message_chars,
    )?;
    inbound.tags = tags;
    Ok(Json(state.conversations.send(inbound).await?))
}

/// `?limit=` of `GET /v1/conversations/{key}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConversationQuery {
    limit: Option<usize>,
}

/// `GET /v1/conversations/{key}`: the transcript (latest `limit` entries) and dialog state.
pub(crate) async fn conversation_get(
    State(state): State<AppState>,
    SessionKey(key): SessionKey,
    ApiQuery(query): ApiQuery<ConversationQuery>,
) -> Result<Json<ConversationView>, ApiError> {
    let config = &state.config;
    let limit = query
        .limit
        .unwrap_or(config.transcript_limit)
        .min(config.max_transcript_limit);
    match state.conversations.conversation(&key, limit).await? {
        Some(view) => Ok(Json(view)),
        None => Err(ApiError::ConversationNotFound),
    }
}

/// The body Rasa's REST channel receives. Rasa clients may also send `metadata` and other
/// fields; they are ignored rather than refused so that those clients work unchanged.
#[derive(Debug, Deserialize)]
pub(crate) struct RasaBody {
    sender: Option<String>,
    message: Option<String>,
    /// Not part of Rasa's protocol; lets a client that knows about it retry idempotently.
    message_id: Option<String>,
}

/// One element of Rasa's REST channel response.
#[derive(Debug, Serialize)]
struct RasaReply<'a> {
    recipient_id: &'a str,
    text: &'a str,
}

/// `POST /webhooks/rest/webhook`: Rasa's REST channel, so Rasa web clients work unchanged.
pub(crate) async fn rasa_webhook_post(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RasaBody>,
) -> Result<Response, ApiError> {
    let sender = body.sender.ok_or(ApiError::InvalidSessionKey {
        reason: "`sender` is required",
    })?;
    validate_session_key(&sender)?;
    let inbound = build_inbound(
        sender,
        None,
        channel::RASA,
        body.message,
        body.message_id,
        state.config.max_message_chars,
    )?;
    let outcome = state.conversations.send(inbound).await?;
    let replies: Vec<RasaReply<'_>> = outcome
        .replies
        .iter()
        .map(|reply| RasaReply {
            recipient_id: &outcome.session,
            text: &reply.text,
        })
        .collect();
    Ok(Json(replies).into_response())
}

/// `GET /webhooks/rest/`: Rasa's REST channel health check.
pub(crate) async fn rasa_health_get() -> Response {
    healthz().await
}

/// `GET /healthz`: the process is up. Deliberately does nothing else.
pub(crate) async fn healthz() -> Response {
    ([(header::CONTENT_TYPE, JSON)], r#"{"status":"ok"}"#).into_response()
}

/// `GET /readyz`: 200 when the runtime can take traffic, 503 `not_ready` otherwise.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.conversations.ready() {
        ([(header::CONTENT_TYPE, JSON)], r#"{"status":"ready"}"#).into_response()
    } else {
        ApiError::NotReady.into_response()
    }
}

/// `GET /metrics`: Prometheus text exposition of the runtime's metrics.
pub(crate) async fn metrics_get(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /openapi.json`: the API description.
pub(crate) async fn openapi_get() -> Response {
    ([(header::CONTENT_TYPE, JSON)], OPENAPI_JSON).into_response()
}
