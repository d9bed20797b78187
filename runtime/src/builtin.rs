//! The skills kefu ships with, assembled for a bot directory: `orders` (with the demo order
//! back-end when no real one is configured), `tickets.create` / `tickets.status`, and `kb`
//! when the knowledge-base plugin is present.
//!
//! `kefu serve`, `kefu test` and `kefu chat` all build their skills here, so a conversation
//! test exercises the same skills, over the same HTTP path for orders, as production does.
//! The demo order back-end listens on its own loopback port with a per-process random token:
//! it is a real HTTP service (so the orders skill's authorisation, timeouts and field mapping
//! are the production code), reachable only from this machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kefu_actors::skills::{Isolation, SkillConfig, SkillHost};
use kefu_skill_orders::demo::{DEMO_FIXTURE, DemoOrders};
use kefu_skill_orders::{OrdersConfig, OrdersSkill};
use kefu_tickets::{TicketStore, TicketsSkill};
use tokio::task::JoinHandle;

/// Why the built-in skills could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// The orders skill's configuration is invalid.
    #[error("orders skill: {0}")]
    Orders(String),
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

/// Assembles the built-in skills for the bot in `bot_dir`: `kb` over `bot_dir/kb/` (reloaded
/// when its files change) when the folder exists. `orders`: the operator's order
/// back-end, or `None` for the demo back-end serving `bot_dir/data/demo_orders.json` (skipped
/// when the bot has no such file). Must run inside a tokio runtime.
pub async fn builtin_skills(
    bot_dir: &Path,
    tickets: Arc<dyn TicketStore>,
    orders: Option<OrdersConfig>,
) -> Result<Builtins, BuiltinError> {
    let mut host = SkillHost::new();
    let mut kb_watcher = None;
    let kb_dir = bot_dir.join(KB_DIR);
    if kb_dir.is_dir() {
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
            // Above the plugin's default floor: a wrong answer costs more than "I don't know"
            // (a 0.4 hit matched "电池能用多久" to delivery times on one shared word).
            Arc::new(kefu_kb::KbSkill::new(kb).with_threshold(KB_CONFIDENCE_FLOOR)),
            hosting(Duration::from_secs(1), Isolation::Inline),
        )?;
    }
    let mut demo_orders = None;
    let mut demo_task = None;
    let orders = match orders {
        Some(cfg) => Some(cfg),
        None => {
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
        // Async HTTP only: called on the session's task, without the pool's two actor hops.
        host.register(
            Arc::new(skill),
            hosting(Duration::from_secs(3), Isolation::Inline),
        )?;
    }
    for skill in TicketsSkill::all(tickets) {
        // Ticket writes run sled transactions, which may block on its locks: keep the pool.
        host.register(
            Arc::new(skill),
            hosting(Duration::from_secs(2), Isolation::Pool),
        )?;
    }
    Ok(Builtins {
        host,
        demo_orders,
        demo_task,
        kb_watcher,
    })
}

/// Hosting of a built-in skill: a small pool (or as many concurrent inline calls), the given
/// timeout, the default breaker. Inline only for skills that never block their thread.
fn hosting(timeout: Duration, isolation: Isolation) -> SkillConfig {
    SkillConfig {
        timeout,
        isolation,
        ..SkillConfig::default()
    }
}
