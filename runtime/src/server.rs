//! The runtime an operator embeds: store + session registry + HTTP API, started and stopped as
//! one thing.
//!
//! `Runtime::start` wires the parts; `Runtime::serve` runs the API on a listener the caller
//! binds (tests bind `127.0.0.1:0`) until the shutdown future resolves, then stops the sessions
//! and the skills and flushes the store, so a clean stop loses nothing either.
//!
//! [`RuntimeBuilder`] is how an embedding operator adds skills (plugins): register them, then
//! build the turn handler from the finished [`SkillHost`] so flows can call them. Skill pools
//! start with the runtime, so a skill that cannot start fails the boot, not a conversation.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use kefu_actors::skills::{Skill, SkillConfig, SkillHost};
use std::time::Duration;

use kefu_actors::agents::{Desk, DeskConversations, DeskError, Router as DeskRouter, SystemClock};
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
    /// A skill could not be registered or started.
    #[error(transparent)]
    Skills(#[from] kefu_actors::SkillHostError),
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
    Ok(open_sled_store(dir).await?)
}

/// Opens the embedded sled store in `dir` as its concrete type, for callers that share its
/// database with other durable parts (tickets, the agent queue).
pub async fn open_sled_store(dir: &Path) -> Result<Arc<SledStore>, StoreError> {
    open_sled_store_with(dir, kefu_store::SledStoreConfig::default()).await
}

/// [`open_sled_store`] with the operator's tunables (the config file's `[store]`).
pub async fn open_sled_store_with(
    dir: &Path,
    config: kefu_store::SledStoreConfig,
) -> Result<Arc<SledStore>, StoreError> {
    let dir = dir.to_owned();
    let store = tokio::task::spawn_blocking(move || SledStore::open_with(&dir, config))
        .await
        .map_err(|e| StoreError::Io {
            op: "open",
            detail: e.to_string(),
        })??;
    Ok(Arc::new(store))
}

/// Assembles a runtime with the skills an operator adds.
///
/// ```no_run
/// use std::sync::Arc;
/// use kefu_actors::engine::FlowEngine;
/// use kefu_actors::skills::{
///     Skill, SkillConfig, SkillError, SkillOutcome, SkillRequest, async_trait,
/// };
/// use kefu_runtime::{Config, RuntimeBuilder};
///
/// struct StoreHours;
///
/// #[async_trait]
/// impl Skill for StoreHours {
///     fn name(&self) -> &str {
///         "store_hours"
///     }
///     async fn call(&self, _req: SkillRequest) -> Result<SkillOutcome, SkillError> {
///         Ok(SkillOutcome::found(serde_json::json!({ "open": "09:00", "close": "21:00" })))
///     }
/// }
///
/// # async fn boot(store: Arc<dyn kefu_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
/// let my_skill: Arc<dyn Skill> = Arc::new(StoreHours);
/// let config = Config::default();
/// let engine = FlowEngine::load(std::path::Path::new("bots/shop"))?;
/// let runtime = RuntimeBuilder::new(&config, store)
///     .skill(my_skill, SkillConfig::default())?
///     // The handler gets the finished skill host, so flows can call the skills.
///     .start(|_skills| Arc::new(engine))
///     .await?;
/// # Ok(()) }
/// ```
pub struct RuntimeBuilder {
    config: Config,
    store: Arc<dyn Store>,
    skills: SkillHost,
    routes: Vec<axum::Router>,
}

impl RuntimeBuilder {
    /// A builder over `store` with no skills.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Self {
        // Before the registry starts, so its turn metrics are recorded (see `crate::metrics`).
        crate::metrics::install();
        Self {
            config: config.clone(),
            store,
            skills: SkillHost::new(),
            routes: Vec::new(),
        }
    }

    /// Serves `routes` beside the API (e.g. the tickets REST API), behind the same API keys.
    pub fn routes(mut self, routes: axum::Router) -> Self {
        self.routes.push(routes);
        self
    }

    /// Adds `skill` under its own name, hosted as `hosting` says.
    pub fn skill(
        mut self,
        skill: Arc<dyn Skill>,
        hosting: SkillConfig,
    ) -> Result<Self, RuntimeError> {
        self.skills.register(skill, hosting)?;
        Ok(self)
    }

    /// Uses `skills` (already filled) instead of the builder's own host.
    pub fn skill_host(mut self, skills: SkillHost) -> Self {
        self.skills = skills;
        self
    }

    /// Starts the skills' pools, then the session layer with the handler `handler` builds from
    /// the shared skill host.
    pub async fn start<H: TurnHandler>(
        self,
        handler: impl FnOnce(Arc<SkillHost>) -> Arc<H>,
    ) -> Result<Runtime<H>, RuntimeError> {
        let skills = Arc::new(self.skills);
        skills.start().await?;
        let handler = handler(skills.clone());
        let registry =
            match SessionRegistry::start(self.store.clone(), handler, self.config.sessions.clone())
                .await
            {
                Ok(registry) => registry,
                Err(e) => {
                    skills.shutdown().await;
                    return Err(RuntimeError::Sessions(e.to_string()));
                }
            };
        let agents = if self.config.agents.enabled() {
            match start_desk(&self.config, self.store.clone(), &registry).await {
                Ok(desk) => {
                    // Suggested replies for agents come from the bot's own knowledge base.
                    desk.attach_skills(skills.clone());
                    Some(Arc::new(crate::http::AgentApi::new(desk)))
                }
                Err(e) => {
                    registry.shutdown().await;
                    skills.shutdown().await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        info!(skills = ?skills.names(), agents = agents.is_some(), "Runtime started");
        Ok(Runtime {
            registry,
            skills,
            http: Arc::new(self.config.http.clone()),
            routes: self.routes,
            agents,
            llm: None,
        })
    }
}

/// A started runtime, ready to serve.
pub struct Runtime<H: TurnHandler> {
    registry: SessionRegistry<H>,
    skills: Arc<SkillHost>,
    http: Arc<HttpConfig>,
    routes: Vec<axum::Router>,
    /// The human desk, when agents are configured.
    agents: Option<Arc<crate::http::AgentApi>>,
    /// The model behind `/v1/chat/completions`, when one is configured.
    llm: Option<Arc<dyn LlmBackend>>,
}

impl<H: TurnHandler> Runtime<H> {
    /// Starts the session layer over `store` with `handler` as every session's brain and no
    /// skills; use [`RuntimeBuilder`] to add skills.
    pub async fn start(
        config: &Config,
        store: Arc<dyn Store>,
        handler: Arc<H>,
    ) -> Result<Self, RuntimeError> {
        RuntimeBuilder::new(config, store)
            .start(move |_| handler)
            .await
    }

    /// The skills flows can call (for stats and tests).
    pub fn skills(&self) -> &Arc<SkillHost> {
        &self.skills
    }

    /// The human desk, when agents are configured. Connect the engine to it
    /// (`FlowEngine::attach_desk`) so hand-offs reach it and human mode silences the bot.
    pub fn desk(&self) -> Option<&Arc<Desk>> {
        self.agents.as_ref().map(|a| a.desk())
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
        let mut app = crate::http::app(self.app_state());
        for routes in &self.routes {
            app = app.merge(crate::http::protect(routes.clone(), &self.http));
        }
        app
    }

    fn app_state(&self) -> AppState {
        // With a desk, channels go through it: a conversation in human mode reaches its agent.
        let conversations: Arc<dyn Conversations> = match self.desk() {
            Some(desk) => Arc::new(DeskConversations::new(desk.clone())),
            None => Arc::new(self.registry.clone()),
        };
        let mut state = AppState::new(conversations, (*self.http).clone());
        state.agents = self.agents.clone();
        state.llm = self.llm.clone();
        state
    }

    /// Serves the API on `listener` until `shutdown` resolves, closes the WebSockets (1001),
    /// then stops every session and flushes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let served =
            crate::http::serve_with(listener, self.app_state(), self.routes.clone(), shutdown)
                .await;
        info!("Stopping sessions and skills, and flushing the store");
        self.registry.shutdown().await;
        self.skills.shutdown().await;
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
