//! The skills kefu ships with, assembled for a bot directory: `orders` (with the demo order
//! back-end when no real one is configured), `tickets.create` / `tickets.status`, and `kb`
//! when the knowledge-base plugin is present.
//!
//! What runs, against which back-end and how it is hosted is the operator's `[skills]` section
//! ([`SkillsConfig`], see docs/operations.md); without one, everything runs with the defaults.
//!
//! `kefu serve`, `kefu test` and `kefu chat` all build their skills here, so a conversation
//! test exercises the same skills, over the same HTTP path for orders, as production does.
//! The demo order back-end listens on its own loopback port with a per-process random token:
//! it is a real HTTP service (so the orders skill's authorisation, timeouts and field mapping
//! are the production code), reachable only from this machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kefu_actors::skills::SkillHost;
use kefu_skill_orders::demo::{DEMO_FIXTURE, DemoOrders};
use kefu_skill_orders::{OrdersConfig, OrdersSkill};
use kefu_tickets::{TicketStore, TicketsSkill};
use tokio::task::JoinHandle;

mod config;

pub use config::{
    BreakerSettings, HostingConfig, KbSkillConfig, OrdersSkillConfig, SkillsConfig,
    SkillsConfigError, TicketsSkillConfig,
};

/// Why the built-in skills could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// The orders skill's configuration is invalid (or its auth variable is not set).
    #[error("orders skill: {0}")]
    Orders(String),
    /// The `[skills]` section is invalid.
    #[error("{0}")]
    Config(String),
    /// The demo order data could not be loaded.
    #[error("demo orders ({path}): {reason}")]
    Demo {
        /// The fixture.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A skill could not be registered.
    #[error(transparent)]
    Host(#[from] kefu_actors::SkillHostError),
    /// The knowledge base does not load.
    #[error("knowledge base: {0}")]
    Kb(String),
    /// The demo back-end could not listen.
    #[error("demo order back-end: {0}")]
    Io(#[from] std::io::Error),
}

/// The built-in skills and what keeps them running.
pub struct Builtins {
    /// The skills, ready to hand to the engine.
    pub host: SkillHost,
    /// The demo order back-end's address, when it runs.
    pub demo_orders: Option<std::net::SocketAddr>,
    demo_task: Option<JoinHandle<()>>,
    /// Reloads the knowledge base when its files change; stops when dropped.
    kb_watcher: Option<kefu_kb::Watcher>,
}

impl Drop for Builtins {
    fn drop(&mut self) {
        // The host moves out to the engine; the demo back-end must live as long as the process
        // serves, so only an explicitly dropped `Builtins` (tests, tools) stops it.
        if let Some(task) = self.demo_task.take() {
            task.abort();
        }
    }
}

impl Builtins {
    /// Keeps the demo back-end running for the life of the process (for `kefu serve`).
    pub fn detach(mut self) -> SkillHost {
        self.demo_task.take();
        // The watcher thread must outlive this value too: leak its handle for the process.
        if let Some(w) = self.kb_watcher.take() {
            std::mem::forget(w);
        }
        std::mem::take(&mut self.host)
    }
}

/// The names of the built-in skills a bot may call (for `kefu check`'s unknown-skill check).
pub fn builtin_skill_names() -> Vec<String> {
    let mut names = vec!["orders".to_owned(), "kb".to_owned()];
    names.extend([kefu_tickets::CREATE_SKILL, kefu_tickets::STATUS_SKILL].map(str::to_owned));
    names
}

/// The folder of a bot's knowledge base.
pub const KB_DIR: &str = "kb";

/// How often the knowledge base's files are checked for edits.
const KB_POLL: Duration = Duration::from_secs(1);

/// The knowledge-base confidence below which the bot says it has no answer.
pub const KB_CONFIDENCE_FLOOR: f32 = 0.5;

/// Assembles the built-in skills for the bot in `bot_dir` with the default `[skills]`
/// settings, except for `orders`: the operator's order back-end, or `None` for the demo
/// back-end. See [`builtin_skills_with`]. Must run inside a tokio runtime.
pub async fn builtin_skills(
    bot_dir: &Path,
    tickets: Arc<dyn TicketStore>,
    orders: Option<OrdersConfig>,
) -> Result<Builtins, BuiltinError> {
    let mut config = SkillsConfig::default();
    config.orders.backend = orders;
    builtin_skills_with(bot_dir, tickets, &config).await
}

/// Assembles the built-in skills for the bot in `bot_dir` as `config` (the operator's
/// `[skills]` section) says:
///
/// - `kb` over `[skills.kb] dir` (default `bot_dir/kb/`, skipped when that folder does not
///   exist), reloaded when its files change;
/// - `orders` against `[skills.orders]`'s back-end, or, when none is configured, the demo
///   back-end serving `bot_dir/data/demo_orders.json` (skipped when the bot has no such file);
/// - `tickets.create` and `tickets.status` over `tickets`.
///
/// Each is hosted as its `hosting` table says. Must run inside a tokio runtime.
pub async fn builtin_skills_with(
    bot_dir: &Path,
    tickets: Arc<dyn TicketStore>,
    config: &SkillsConfig,
) -> Result<Builtins, BuiltinError> {
    config
        .validate()
        .map_err(|e| BuiltinError::Config(e.to_string()))?;
    let mut host = SkillHost::new();
    let mut kb_watcher = None;
    let (kb_dir, named) = config.kb.resolve_dir(bot_dir);
    if named && config.kb.enabled && !kb_dir.is_dir() {
        return Err(BuiltinError::Kb(format!(
            "skills.kb.dir {} is not a folder",
            kb_dir.display()
        )));
    }
    if config.kb.enabled && kb_dir.is_dir() {
        let dir = kb_dir.clone();
        // Building the index reads and segments every entry: off the async threads.
        let kb = tokio::task::spawn_blocking(move || kefu_kb::KnowledgeBase::open(&dir))
            .await
            .map_err(|e| BuiltinError::Kb(e.to_string()))?
            .map_err(|e| BuiltinError::Kb(e.to_string()))?;
        let kb = Arc::new(kb);
        tracing::info!(entries = kb.len(), dir = %kb_dir.display(), "Knowledge base loaded");
        kb_watcher = Some(
            kb.watch(KB_POLL)
                .map_err(|e| BuiltinError::Kb(e.to_string()))?,
        );
        host.register(
            Arc::new(kefu_kb::KbSkill::new(kb).with_threshold(config.kb.confidence_floor)),
            config.kb_hosting(),
        )?;
    }
    let mut demo_orders = None;
    let mut demo_task = None;
    let orders = match (&config.orders.backend, config.orders.enabled) {
        (_, false) => None,
        (Some(cfg), true) => {
            // Neither the URL (it may carry credentials in its user-info) nor the auth value
            // is logged.
            tracing::info!(skill = %cfg.name, auth = cfg.auth.is_some(), "Order back-end configured");
            Some(cfg.clone())
        }
        (None, true) => {
            let fixture = bot_dir.join(DEMO_FIXTURE);
            if fixture.is_file() {
                let token = uuid::Uuid::new_v4().simple().to_string();
                let demo =
                    DemoOrders::load(&fixture, token.clone()).map_err(|e| BuiltinError::Demo {
                        path: fixture.clone(),
                        reason: e.to_string(),
                    })?;
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
                let addr = listener.local_addr()?;
                let app = kefu_skill_orders::demo::router(demo);
                demo_task = Some(tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::error!(error = %e, "The demo order back-end stopped");
                    }
                }));
                demo_orders = Some(addr);
                tracing::info!(%addr, fixture = %fixture.display(), "Demo order back-end listening");
                Some(OrdersConfig::for_demo(&format!("http://{addr}"), token))
            } else {
                None
            }
        }
    };
    if let Some(cfg) = orders {
        let skill = OrdersSkill::new(cfg).map_err(|e| BuiltinError::Orders(e.to_string()))?;
        host.register(Arc::new(skill), config.orders_hosting())?;
    }
    if config.tickets.enabled {
        for skill in TicketsSkill::all(tickets) {
            host.register(Arc::new(skill), config.tickets_hosting())?;
        }
    }
    Ok(Builtins {
        host,
        demo_orders,
        demo_task,
        kb_watcher,
    })
}
