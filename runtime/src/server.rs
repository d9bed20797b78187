//! The runtime an operator embeds: store + session registry + HTTP API, started and stopped as
//! one thing.
//!
//! `Runtime::start` wires the parts; `Runtime::serve` runs the API on a listener the caller
//! binds (tests bind `127.0.0.1:0`) until the shutdown future resolves, then stops the sessions
//! and flushes the store, so a clean stop loses nothing either.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use kefu_actors::{Conversations, SessionRegistry, TurnHandler};
use kefu_models::llm::LlmBackend;
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
    llm: Option<Arc<dyn LlmBackend>>,
}

impl<H: TurnHandler> Runtime<H> {
    /// Starts the session layer over `store` with `handler` as every session's brain.
    pub async fn start(
        config: &Config,
        store: Arc<dyn Store>,
        handler: Arc<H>,
    ) -> Result<Self, RuntimeError> {
        let registry = SessionRegistry::start(store, handler, config.sessions.clone())
            .await
            .map_err(|e| RuntimeError::Sessions(e.to_string()))?;
        Ok(Self {
            registry,
            http: Arc::new(config.http.clone()),
            llm: None,
        })
    }

    /// Serves `backend` on `/v1/chat/completions`.
    pub fn with_llm(mut self, backend: Arc<dyn LlmBackend>) -> Self {
        self.llm = Some(backend);
        self
    }

    /// The session registry (for stats, hot reload and tests).
    pub fn registry(&self) -> &SessionRegistry<H> {
        &self.registry
    }

    /// The HTTP application, for serving or for `oneshot` tests.
    pub fn router(&self) -> axum::Router {
        let conversations: Arc<dyn Conversations> = Arc::new(self.registry.clone());
        crate::http::app(AppState {
            conversations,
            config: self.http.clone(),
            llm: self.llm.clone(),
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
