//! The agent API and the agent console: REST + WebSocket for human agents, in front of the
//! human desk ([`Desk`]), and the console page at `/console`.
//!
//! | method | path | handler |
//! |---|---|---|
//! | POST | `/v1/agents/sign-in` | `{agent, secret}` → `{token, agent}` (presence online) |
//! | POST | `/v1/agents/sign-out` | ends the token; presence offline (conversations requeued) |
//! | GET | `/v1/agents/me` | the agent, presence and conversations |
//! | PUT | `/v1/agents/me/presence` | `{presence: online|away|offline}` |
//! | GET | `/v1/agents/queue` | waiting conversations, next first |
//! | GET | `/v1/agents/events` | recorded desk figures (`?limit=`) |
//! | POST | `/v1/agents/conversations/{key}/accept` | take a waiting conversation |
//! | GET | `/v1/agents/conversations/{key}` | context: ticket, transcript, summary |
//! | POST | `/v1/agents/conversations/{key}/messages` | `{text}` to the user |
//! | POST | `/v1/agents/conversations/{key}/transfer` | `{agent}` or `{skill}` |
//! | POST | `/v1/agents/conversations/{key}/hand-back` | back to the bot |
//! | POST | `/v1/agents/conversations/{key}/close` | close (rating question) |
//! | GET | `/v1/agents/ws?token=` | live frames: desk events and user messages; the last socket closing sets the agent offline after a 10 s grace |
//! | GET | `/console`, `/console/app.js`, `/console/app.css` | the console page |
//!
//! Invariants: agents authenticate with their own secrets (config `[[agents.agents]]`), never
//! with operator API keys, and get a random session token (`Authorization: Bearer`, or
//! `?token=` on the WebSocket only); secrets are compared in constant time; an agent reaches
//! only conversations assigned to them or waiting in the queue (the router checks); errors use
//! the API's JSON shape `{"error":{"code","message"}}` with stable codes; every desk change is
//! durable before the response.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use dashmap::DashMap;
use kefu_actors::agents::{
    AgentView, ContextView, Desk, DeskError, Presence, Ticket, TransferTarget,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, SessionKey};

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");

/// How long an agent's session token lasts without a new sign-in.
const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long an agent's last console connection may be gone before they are set offline.
const RECONNECT_GRACE: Duration = Duration::from_secs(10);
/// Longest agent message, in characters.
const MAX_AGENT_TEXT_CHARS: usize = 4000;

/// The agent side of the API: the desk, the agents' secrets and their session tokens.
pub struct AgentApi {
    desk: Arc<Desk>,
    secrets: HashMap<String, Box<[u8]>>,
    /// token → (agent, issued).
    tokens: DashMap<String, (String, Instant)>,
    /// Open agent WebSockets per agent: the last one closing sets the agent offline.
    sockets: DashMap<String, usize>,
}

impl AgentApi {
    /// The agent API over `desk`, with the agents' secrets from its configuration.
    pub fn new(desk: Arc<Desk>) -> Self {
        let secrets = desk
            .router()
            .config()
            .agents
            .iter()
            .map(|a| {
                (
                    a.id.clone(),
                    a.secret.as_bytes().to_vec().into_boxed_slice(),
                )
            })
            .collect();
        Self {
            desk,
            secrets,
            tokens: DashMap::new(),
            sockets: DashMap::new(),
        }
    }

    /// The desk.
    pub fn desk(&self) -> &Arc<Desk> {
        &self.desk
    }

    fn check_secret(&self, agent: &str, secret: &str) -> bool {
        // Compare against a dummy when the agent is unknown, so timing does not reveal ids.
        let dummy: &[u8] = b"\0not-a-configured-secret\0";
        let expected = self.secrets.get(agent).map_or(dummy, |s| s.as_ref());
        let matches: bool = expected.ct_eq(secret.as_bytes()).into();
        matches && self.secrets.contains_key(agent)
    }

    fn agent_of(&self, token: &str) -> Option<String> {
        let entry = self.tokens.get(token)?;
        let (agent, issued) = entry.value();
        if issued.elapsed() > TOKEN_TTL {
            drop(entry);
            self.tokens.remove(token);
            return None;
        }
        Some(agent.clone())
    }
}

/// Errors of the agent API, in the API's JSON shape.
#[derive(Debug, thiserror::Error)]
pub enum AgentApiError {
    /// No agents are configured.
    #[error("the human desk is not configured (no agents)")]
    DeskDisabled,
    /// Missing, wrong or expired agent token, or wrong sign-in secret.
    #[error("agent sign-in required (Authorization: Bearer <token> from /v1/agents/sign-in)")]
    Unauthorized,
    /// The message is empty or too long.
    #[error("the text must have 1 to {MAX_AGENT_TEXT_CHARS} characters")]
    InvalidText,
    /// A transfer needs exactly one of `agent` or `skill`.
    #[error("a transfer needs exactly one of `agent` or `skill`")]
    InvalidTransfer,
    /// The desk refused or failed.
    #[error(transparent)]
    Desk(#[from] DeskError),
    /// Malformed request (the API's common errors).
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl AgentApiError {
    fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::DeskDisabled => (StatusCode::NOT_FOUND, "desk_disabled"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "agent_unauthorized"),
            Self::InvalidText => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_text"),
            Self::InvalidTransfer => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_transfer"),
            Self::Desk(e) => match e {
                DeskError::UnknownAgent { .. } => (StatusCode::NOT_FOUND, "agent_not_found"),
                DeskError::UnknownConversation { .. } => {
                    (StatusCode::NOT_FOUND, "conversation_not_in_desk")
                }
                DeskError::NotWaiting { .. } => (StatusCode::CONFLICT, "conversation_not_waiting"),
                DeskError::NotAssigned { .. } => {
                    (StatusCode::FORBIDDEN, "conversation_not_assigned")
                }
                DeskError::AtCapacity { .. } => (StatusCode::CONFLICT, "agent_at_capacity"),
                DeskError::NotEligible { .. } => (StatusCode::FORBIDDEN, "agent_not_eligible"),
                DeskError::Storage { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
                }
            },
            Self::Api(e) => (e.status(), e.code()),
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

impl IntoResponse for AgentApiError {
    fn into_response(self) -> Response {
        if let Self::Api(e) = self {
            return e.into_response();
        }
        let (status, code) = self.status_code();
        let message = match &self {
            // Storage details are for the logs only.
            Self::Desk(DeskError::Storage { .. }) => {
                tracing::warn!(error = %self, "Agent request failed");
                "the desk's storage is unavailable; nothing was changed".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: &message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type AgentResult<T> = Result<T, AgentApiError>;

fn api(state: &AppState) -> AgentResult<&Arc<AgentApi>> {
    state.agents.as_ref().ok_or(AgentApiError::DeskDisabled)
}

/// The signed-in agent of a request (`Authorization: Bearer <token>`).
struct SignedIn(String);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = AgentApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AgentResult<Self> {
        let api = api(state)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("bearer "))
                    .map(|_| v[7..].trim())
            })
            .ok_or(AgentApiError::Unauthorized)?;
        api.agent_of(token)
            .map(SignedIn)
            .ok_or(AgentApiError::Unauthorized)
    }
}

/// The agent routes, merged into the API's router when agents are configured.
pub(crate) fn routes() -> Router<AppState> {
    let conv = "/v1/agents/conversations/{key}";
    Router::new()
        .route("/v1/agents/sign-in", post(sign_in_post))
        .route("/v1/agents/sign-out", post(sign_out_post))
        .route("/v1/agents/me", get(me_get))
        .route("/v1/agents/me/presence", put(presence_put))
        .route("/v1/agents/queue", get(queue_get))
        .route("/v1/agents/events", get(events_get))
        .route(conv, get(context_get))
        .route(&format!("{conv}/accept"), post(accept_post))
        .route(&format!("{conv}/messages"), post(message_post))
        .route(&format!("{conv}/transfer"), post(transfer_post))
        .route(&format!("{conv}/hand-back"), post(hand_back_post))
        .route(&format!("{conv}/close"), post(close_post))
        .route("/v1/agents/ws", get(agent_ws_get))
        .route("/console", get(console_get))
        .route("/console/app.js", get(console_js_get))
        .route("/console/app.css", get(console_css_get))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    agent: String,
    secret: String,
    #[serde(default)]
    presence: Option<Presence>,
}

#[derive(Serialize)]
struct SignedInView {
    token: String,
    agent: AgentView,
}

/// `POST /v1/agents/sign-in`.
async fn sign_in_post(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignInBody>,
) -> AgentResult<Json<SignedInView>> {
    let api = api(&state)?;
    if !api.check_secret(&body.agent, &body.secret) {
        return Err(AgentApiError::Unauthorized);
    }
    let token = format!("agt_{}", uuid::Uuid::new_v4().simple());
    api.tokens
        .insert(token.clone(), (body.agent.clone(), Instant::now()));
    let router = api.desk.router();
    router.set_presence(&body.agent, body.presence.unwrap_or(Presence::Online))?;
    router.flush().await?;
    tracing::info!(agent = %body.agent, "Agent signed in");
    Ok(Json(SignedInView {
        token,
        agent: router.agent(&body.agent)?,
    }))
}

/// `POST /v1/agents/sign-out`.
async fn sign_out_post(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
) -> AgentResult<StatusCode> {
    let api = api(&state)?;
    api.tokens.retain(|_, (a, _)| *a != agent);
    api.desk.router().set_presence(&agent, Presence::Offline)?;
    api.desk.router().flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/agents/me`.
async fn me_get(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
) -> AgentResult<Json<AgentView>> {
    Ok(Json(api(&state)?.desk.router().agent(&agent)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    presence: Presence,
}

/// `PUT /v1/agents/me/presence`.
async fn presence_put(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
    ApiJson(body): ApiJson<PresenceBody>,
) -> AgentResult<Json<AgentView>> {
    let router = api(&state)?.desk.router();
    router.set_presence(&agent, body.presence)?;
    router.flush().await?;
    Ok(Json(router.agent(&agent)?))
}

/// One waiting conversation in the queue listing.
#[derive(Serialize)]
struct QueueItem {
    session: String,
    user: String,
    position: usize,
    tier: u8,
    skill: Option<String>,
    reason: String,
    lang: String,
    waited_secs: u64,
    target_agent: Option<String>,
}

#[derive(Serialize)]
struct QueueView {
    queue: Vec<QueueItem>,
}

/// `GET /v1/agents/queue`.
async fn queue_get(
    State(state): State<AppState>,
    SignedIn(_agent): SignedIn,
) -> AgentResult<Json<QueueView>> {
    let router = api(&state)?.desk.router();
    let now = router.now_ms();
    let queue = router
        .queue()
        .into_iter()
        .enumerate()
        .map(|(i, t)| QueueItem {
            session: t.escalation.session,
            user: t.escalation.user,
            position: i + 1,
            tier: t.escalation.tier,
            skill: t.escalation.skill,
            reason: t.escalation.context.reason,
            lang: t.escalation.context.lang,
            waited_secs: now.saturating_sub(t.escalated_ms) / 1000,
            target_agent: t.target_agent,
        })
        .collect();
    Ok(Json(QueueView { queue }))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /v1/agents/events?limit=`: the recorded desk figures, oldest first.
async fn events_get(
    State(state): State<AppState>,
    SignedIn(_agent): SignedIn,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> AgentResult<Response> {
    let router = api(&state)?.desk.router();
    let events = router.recorded_events(query.limit.unwrap_or(100).min(1000));
    Ok(Json(serde_json::json!({ "events": events })).into_response())
}

/// `GET /v1/agents/conversations/{key}`: the context, for the holder or while waiting.
async fn context_get(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
    SessionKey(key): SessionKey,
) -> AgentResult<Json<ContextView>> {
    let api = api(&state)?;
    let ticket = api
        .desk
        .router()
        .ticket(&key)
        .ok_or_else(|| DeskError::UnknownConversation {
            session: key.clone(),
        })?;
    if ticket.agent.as_deref().is_some_and(|a| a != agent) {
        return Err(DeskError::NotAssigned {
            session: key,
            agent,
        }
        .into());
    }
    let limit = state.config.max_transcript_limit;
    Ok(Json(api.desk.context(&key, limit).await?))
}

/// `POST /v1/agents/conversations/{key}/accept`.
async fn accept_post(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
    SessionKey(key): SessionKey,
) -> AgentResult<Json<Ticket>> {
    Ok(Json(api(&state)?.desk.accept(&agent, &key).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

#[derive(Serialize)]
struct SentView {
    seq: u64,
}

/// `POST /v1/agents/conversations/{key}/messages`.
async fn message_post(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
    SessionKey(key): SessionKey,
    ApiJson(body): ApiJson<TextBody>,
) -> AgentResult<Json<SentView>> {
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > MAX_AGENT_TEXT_CHARS {
        return Err(AgentApiError::InvalidText);
    }
    let seq = api(&state)?.desk.agent_message(&agent, &key, text).await?;
    Ok(Json(SentView { seq }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    agent: Option<String>,
    skill: Option<String>,
}

/// `POST /v1/agents/conversations/{key}/transfer`.
async fn transfer_post(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
    SessionKey(key): SessionKey,
    ApiJson(body): ApiJson<TransferBody>,
) -> AgentResult<Json<Option<Ticket>>> {
    let target = match (body.agent, body.skill) {
        (Some(a), None) => TransferTarget::Agent(a),
        (None, Some(s)) => TransferTarget::Skill(s),
        _ => return Err(AgentApiError::InvalidTransfer),
    };
    let router = api(&state)?.desk.router();
    router.transfer(&agent, &key, target)?;
    router.flush().await?;
    Ok(Json(router.ticket(&key)))
}

/// `POST /v1/agents/conversations/{key}/hand-back`.
async fn hand_back_post(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
    SessionKey(key): SessionKey,
) -> AgentResult<Json<Ticket>> {
    Ok(Json(api(&state)?.desk.hand_back(&agent, &key).await?))
}

/// `POST /v1/agents/conversations/{key}/close`.
async fn close_post(
    State(state): State<AppState>,
    SignedIn(agent): SignedIn,
    SessionKey(key): SessionKey,
) -> AgentResult<Json<Ticket>> {
    Ok(Json(api(&state)?.desk.close(&agent, &key).await?))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /v1/agents/ws?token=`: desk events and the agent's user messages, as JSON frames.
/// The last socket of an agent closing sets them offline (their conversations are requeued).
async fn agent_ws_get(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> AgentResult<Response> {
    let api = api(&state)?.clone();
    let agent = query
        .token
        .as_deref()
        .and_then(|t| api.agent_of(t))
        .ok_or(AgentApiError::Unauthorized)?;
    Ok(upgrade.on_upgrade(move |socket| agent_socket(socket, api, agent)))
}

async fn agent_socket(mut socket: WebSocket, api: Arc<AgentApi>, agent: String) {
    *api.sockets.entry(agent.clone()).or_insert(0) += 1;
    let mut events = api.desk.subscribe_events();
    let mut pushes = api.desk.subscribe_agents();
    loop {
        let frame = tokio::select! {
            received = socket.recv() => match received {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // The console only listens; anything it sends is ignored.
                Some(Ok(_)) => continue,
            },
            event = events.recv() => match event {
                Ok(event) => serde_json::to_string(&event).ok(),
                Err(RecvError::Lagged(_)) => Some(r#"{"type":"resync"}"#.to_owned()),
                Err(RecvError::Closed) => break,
            },
            push = pushes.recv() => match push {
                Ok(push) if push.agent() == agent => serde_json::to_string(&push).ok(),
                Ok(_) => None,
                Err(RecvError::Lagged(_)) => Some(r#"{"type":"resync"}"#.to_owned()),
                Err(RecvError::Closed) => break,
            },
        };
        if let Some(frame) = frame
            && socket
                .send(Message::Text(Utf8Bytes::from(frame)))
                .await
                .is_err()
        {
            break;
        }
    }
    let last = {
        let mut count = api.sockets.entry(agent.clone()).or_insert(1);
        *count = count.saturating_sub(1);
        *count == 0
    };
    if last {
        // Disconnected: unless the console reconnects within the grace (a page reload, a
        // network blip), whatever they held goes back to the queue for someone else.
        tokio::spawn(async move {
            tokio::time::sleep(RECONNECT_GRACE).await;
            if api.sockets.get(&agent).is_some_and(|n| *n > 0) {
                return;
            }
            let router = api.desk.router();
            if let Err(e) = router.set_presence(&agent, Presence::Offline) {
                tracing::warn!(agent = %agent, error = %e, "Presence not updated on disconnect");
            }
            if let Err(e) = router.flush().await {
                tracing::warn!(agent = %agent, error = %e, "Desk flush failed on disconnect");
            }
            tracing::info!(agent = %agent, "Agent disconnected; conversations requeued");
        });
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /console`.
async fn console_get() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /console/app.js`.
async fn console_js_get() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /console/app.css`.
async fn console_css_get() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}
