//! kefu's HTTP/WebSocket API: the web chat, REST and Rasa-compatible channels, health and the
//! OpenAPI document, in front of the session layer's [`Conversations`] trait.
//!
//! Routes (all described in `openapi.json`, served at `GET /openapi.json`):
//!
//! | method | path | auth | handler |
//! |---|---|---|---|
//! | POST | `/v1/conversations/{key}/messages` | key | one turn |
//! | GET | `/v1/conversations/{key}` | key | transcript and state |
//! | GET | `/v1/conversations/{key}/ws` | key or `?api_key=` | live chat |
//! | POST | `/webhooks/rest/webhook` | key | Rasa's REST channel |
//! | GET | `/webhooks/rest/` | open | Rasa's REST channel health |
//! | POST | `/v1/chat/completions` | key | OpenAI-compatible chat completions (`openai.rs`) |
//! | GET | `/healthz`, `/readyz`, `/openapi.json` | open | probes and docs |
//! | * | `/v1/agents/...`, `/console` | agent token | the human desk (see `agents`), mounted only when agents are configured |
//!
//! Invariants: every response a client can get, including unknown routes, wrong methods,
//! extractor failures and handler panics, is either a success body or our JSON error shape
//! ([`ApiError`]); the route table in `routes()` is the single source of the router and of the
//! test that checks the OpenAPI document; middleware is limited to what every request needs
//! (body limit, panic guard; auth only when keys are configured) because this is the hot path.

mod agents;
mod auth;
mod config;
mod error;
mod extract;
mod handlers;
mod inbound;
mod openai;
mod ws;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};
use axum::serve::ListenerExt;
use kefu_actors::api::Conversations;
use kefu_models::llm::LlmBackend;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use agents::{AgentApi, AgentApiError};
pub use config::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_MESSAGE_CHARS, DEFAULT_MAX_TRANSCRIPT_LIMIT,
    DEFAULT_MAX_WS_FRAME_BYTES, DEFAULT_TRANSCRIPT_LIMIT, DEFAULT_WS_IDLE_TIMEOUT_SECS, HttpConfig,
    HttpConfigError, MAX_WS_IDLE_TIMEOUT_SECS,
};
pub use error::ApiError;
pub use ws::LiveSockets;

/// What every handler gets: the session layer, the HTTP settings, the live WebSockets and
/// the served model.
#[derive(Clone)]
pub struct AppState {
    /// The session layer (implemented by kefu-actors; a test double in tests).
    pub conversations: Arc<dyn Conversations>,
    /// The HTTP settings, validated by the caller.
    pub config: Arc<HttpConfig>,
    /// The open WebSocket sessions, closed by [`serve`] on shutdown.
    pub sockets: LiveSockets,
    /// The human desk's agent API, when agents are configured (also pushes agent messages to
    /// users' WebSockets).
    pub agents: Option<Arc<AgentApi>>,
    /// The model behind `/v1/chat/completions`; `None` answers 503 `model_not_configured`.
    pub llm: Option<Arc<dyn LlmBackend>>,
    /// What `/metrics` renders: the process's recorder (see [`crate::metrics`]).
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    /// Bundles the session layer and the settings.
    pub fn new(conversations: Arc<dyn Conversations>, config: HttpConfig) -> Self {
        Self {
            conversations,
            config: Arc::new(config),
            sockets: LiveSockets::default(),
            agents: None,
            llm: None,
            metrics: crate::metrics::install(),
        }
    }

    /// Serves `backend` on `/v1/chat/completions`.
    pub fn with_llm(mut self, backend: Arc<dyn LlmBackend>) -> Self {
        self.llm = Some(backend);
        self
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Always open (probes, docs).
    Open,
    /// Needs an API key in a header when keys are configured.
    ApiKey,
    /// Like [`Access::ApiKey`], or `?api_key=` (WebSocket: browsers cannot set headers).
    ApiKeyOrQuery,
}

/// One route of the API.
#[derive(Debug, Clone)]
pub(crate) struct RouteSpec {
    /// The one method the route answers (plus HEAD for GET, which axum adds).
    pub(crate) method: Method,
    /// The path, in axum's and OpenAPI's `{param}` syntax.
    pub(crate) path: &'static str,
    /// Who may call it.
    pub(crate) access: Access,
}

/// The route table: the router is built from it, and the OpenAPI test walks it.
pub(crate) fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    let spec = |method, path, access| RouteSpec {
        method,
        path,
        access,
    };
    vec![
        (
            spec(
                Method::POST,
                "/v1/conversations/{key}/messages",
                Access::ApiKey,
            ),
            post(handlers::messages_post),
        ),
        (
            spec(Method::GET, "/v1/conversations/{key}", Access::ApiKey),
            get(handlers::conversation_get),
        ),
        (
            spec(
                Method::GET,
                "/v1/conversations/{key}/ws",
                Access::ApiKeyOrQuery,
            ),
            get(ws::ws_get),
        ),
        (
            spec(Method::POST, "/webhooks/rest/webhook", Access::ApiKey),
            post(handlers::rasa_webhook_post),
        ),
        (
            spec(Method::GET, "/webhooks/rest/", Access::Open),
            get(handlers::rasa_health_get),
        ),
        (
            spec(Method::POST, "/v1/chat/completions", Access::ApiKey),
            post(openai::chat_completions_post),
        ),
        (
            spec(Method::GET, "/healthz", Access::Open),
            get(handlers::healthz),
        ),
        (
            spec(Method::GET, "/readyz", Access::Open),
            get(handlers::readyz),
        ),
        (
            spec(Method::GET, "/metrics", Access::ApiKey),
            get(handlers::metrics_get),
        ),
        (
            spec(Method::GET, "/openapi.json", Access::Open),
            get(handlers::openapi_get),
        ),
    ]
}

/// Builds the API's router. Test it with `tower::ServiceExt::oneshot`; run it with [`serve`].
pub fn app(state: AppState) -> Router {
    let keys =
        (!state.config.api_keys.is_empty()).then(|| auth::ApiKeys::new(&state.config.api_keys));
    let mut router = Router::new();
    for (spec, handler) in routes() {
        // `route_layer` runs auth only for matched routes and methods, so unknown paths stay
        // 404 and wrong methods 405 even without a key (they reveal nothing the docs don't).
        let handler = match (&keys, spec.access) {
            (Some(keys), Access::ApiKey) => {
                handler.route_layer(from_fn_with_state(keys.clone(), auth::require_key))
            }
            (Some(keys), Access::ApiKeyOrQuery) => {
                handler.route_layer(from_fn_with_state(keys.clone(), auth::require_key_or_query))
            }
            (None, _) | (Some(_), Access::Open) => handler,
        };
        tracing::trace!(method = %spec.method, path = spec.path, access = ?spec.access, "Route mounted");
        router = router.route(spec.path, handler);
    }
    if state.agents.is_some() {
        // Agent routes carry their own authentication (agent tokens, not operator keys).
        router = router.merge(agents::routes());
    }
    let max_body_bytes = state.config.max_body_bytes;
    router
        // Must come after the routes: it is applied to the method routers that exist.
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}

/// Guards extra routes (tickets, agents, ...) like the API's own `/v1` routes: the API key
/// when keys are configured, and a panic turned into the JSON 500 instead of a dropped
/// connection. Merge the result into [`app`]'s router.
pub fn protect(router: Router, config: &HttpConfig) -> Router {
    let router = if config.api_keys.is_empty() {
        router
    } else {
        let keys = auth::ApiKeys::new(&config.api_keys);
        router.route_layer(from_fn_with_state(keys, auth::require_key))
    };
    router.layer(CatchPanicLayer::custom(error::panic_response))
}

/// Serves the API of `state` on `listener` until `shutdown` completes, then stops accepting
/// connections, waits for in-flight requests, and closes every WebSocket with 1001 "going
/// away" (after its current turn), waiting at most a few seconds for the close handshakes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Vec::new(), shutdown).await
}

/// [`serve`] with extra routes beside the API (each guarded by [`protect`]).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    extra: Vec<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    // Small request/response exchanges: Nagle's algorithm would only add latency.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "Could not set TCP_NODELAY");
        }
    });
    let sockets = state.sockets.clone();
    let signal = {
        let sockets = sockets.clone();
        async move {
            shutdown.await;
            // Upgraded connections are not tracked by axum's graceful shutdown: tell them
            // ourselves, at the same moment the listener stops.
            sockets.close_all();
        }
    };
    let config = state.config.clone();
    let mut router = app(state);
    for routes in extra {
        router = router.merge(protect(routes, &config));
    }
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .await;
    let open = sockets.count();
    if open > 0 && !sockets.wait_closed(ws::CLOSE_GRACE).await {
        tracing::warn!(
            open = sockets.count(),
            "Some WebSockets did not finish closing in time"
        );
    }
    served
}
