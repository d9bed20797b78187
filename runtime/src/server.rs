//! The runtime an operator embeds: store + session registry + HTTP API, started and stopped as
//! one thing.
//!
//! `Runtime::start` wires the parts; `Runtime::serve` runs the API on a listener the caller
//! binds (tests bind `127.0.0.1:0`) until the shutdown future resolves, then stops the sessions
//! and flushes the store, so a clean stop loses nothing either.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use kefu_actors::agents::{Desk, DeskConversations, DeskError, Router as DeskRouter, SystemClock};
use kefu_actors::{Conversations, SessionRegistry, TurnHandler};
use kefu_store::{SledStore, Store, StoreError};
use tokio::net::TcpListener;
use tracing::info;

use crate::config::Config;
use crate::http::{AppState, HttpConfig};

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session layer could not start.
    #[error("the session layer could not start: {0}")]
    Sessions(String),
    /// The human desk could not open its storage.
    #[error("the human desk could not start: {0}")]
    Desk(#[from] DeskError),
    /// The listener failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the embedded sled store in `dir`, off the async threads (opening can take a while on a
/// large directory).
pub async fn open_sled(dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    let dir = dir.to_owned();
    let store = tokio::task::spawn_blocking(move || SledStore::open(&dir))
        .await
        .map_err(|e| StoreError::Io {
            op: "open",
            detail: e.to_string(),
        })??;
    Ok(Arc::new(store))
}

/// A started runtime, ready to serve.
pub struct Runtime<H: TurnHandler> {
    registry: SessionRegistry<H>,
    http: Arc<HttpConfig>,
    /// The human desk, when agents are configured.
    agents: Option<Arc<crate::http::AgentApi>>,
}

impl<H: TurnHandler> Runtime<H> {
    /// Starts the session layer over `store` with `handler` as every session's brain.
    pub async fn start(
        config: &Config,
        store: Arc<dyn Store>,
        handler: Arc<H>,
    ) -> Result<Self, RuntimeError> {
        let registry = SessionRegistry::start(store.clone(), handler, config.sessions.clone())
            .await
            .map_err(|e| RuntimeError::Sessions(e.to_string()))?;
        let agents = match config.agents.enabled() {
            true => Some(Arc::new(crate::http::AgentApi::new(
                start_desk(config, store, &registry).await?,
            ))),
            false => None,
        };
        Ok(Self {
            registry,
            http: Arc::new(config.http.clone()),
            agents,
        })
    }

    /// The human desk, when agents are configured. Connect the engine to it
    /// (`FlowEngine::attach_desk`) so hand-offs reach it and human mode silences the bot.
    pub fn desk(&self) -> Option<&Arc<Desk>> {
        self.agents.as_ref().map(|a| a.desk())
    }

    /// The session registry (for stats, hot reload and tests).
    pub fn registry(&self) -> &SessionRegistry<H> {
        &self.registry
    }

    /// The HTTP application, for serving or for `oneshot` tests.
    pub fn router(&self) -> axum::Router {
        let conversations: Arc<dyn Conversations> = match self.desk() {
            Some(desk) => Arc::new(DeskConversations::new(desk.clone())),
            None => Arc::new(self.registry.clone()),
        };
        crate::http::app(AppState {
            conversations,
            config: self.http.clone(),
            agents: self.agents.clone(),
        })
    }

    /// Serves the API on `listener` until `shutdown` resolves, then stops every session and
    /// flushes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let app = self.router();
        let served = crate::http::serve(listener, app, shutdown).await;
        info!("Stopping sessions and flushing the store");
        self.registry.shutdown().await;
        served.map_err(|source| RuntimeError::Io { addr, source })
    }
}

/// Opens the desk's own sled database in `<data_dir>/desk` (beside the session store's files)
/// and starts its background work.
async fn start_desk<H: TurnHandler>(
    config: &Config,
    store: Arc<dyn Store>,
    registry: &SessionRegistry<H>,
) -> Result<Arc<Desk>, RuntimeError> {
    let dir = config.data_dir.join("desk");
    let desk_config = config.agents.clone();
    let router = tokio::task::spawn_blocking(move || {
        DeskRouter::open_dir(desk_config, &dir, Arc::new(SystemClock))
    })
    .await
    .map_err(|e| RuntimeError::Sessions(format!("desk start-up panicked: {e}")))??;
    let sessions: Arc<dyn Conversations> = Arc::new(registry.clone());
    let desk = Desk::new(Arc::new(router), store, sessions);
    desk.spawn_tasks(Duration::from_secs(1));
    info!(agents = config.agents.agents.len(), "Human desk started");
    Ok(desk)
}
