//! The `kefu` command: `serve` runs the bot behind the HTTP API (reloading edited flows);
//! `check` validates a flow directory; `test` runs its conversation tests; `chat` talks to it
//! in the terminal; `nlu eval` / `emotion eval` measure the understanding models. Errors go to
//! stderr with a hint, and the exit code says what happened: 0 ok, 1 problems found (check,
//! test), 2 could not start (or, for the evals, unreadable data).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kefu_actors::engine::FlowEngine;
use kefu_runtime::config::LogFormat;
use kefu_runtime::{Config, RuntimeBuilder, open_sled_store_with};
use tracing_subscriber::EnvFilter;

#[path = "cli/kb_eval.rs"]
mod kb_eval;
#[path = "cli/nlu_eval.rs"]
mod nlu_eval;

// mimalloc instead of glibc's malloc: under load, glibc's allocator took about a sixth of the
// server's CPU (perf: _int_malloc, malloc_consolidate, cfree); mimalloc's thread-local free lists
// suit the many small, short-lived allocations of a request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli {
    pub(crate) mod chat;
    pub(crate) mod test;
}

#[derive(Parser)]
#[command(
    name = "kefu",
    version,
    about = "kefu: a conversational runtime for customer service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a bot over HTTP/WebSocket with embedded storage.
    Serve {
        /// Config file (TOML); flags below override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Directory of the bot's flow files [default: dialog-flows/bots/shop].
        #[arg(long)]
        flows: Option<PathBuf>,
        /// Data directory of the embedded store [default: ./kefu-data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free one.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// An API key every /v1 route requires (repeatable). Also from KEFU_API_KEYS, comma-separated.
        #[arg(long = "api-key")]
        api_keys: Vec<String>,
        /// Do not watch the flow directory for edits (hot reload is on by default).
        #[arg(long)]
        no_reload: bool,
    },
    /// Load and validate a flow directory; prints each problem as file:line:col.
    Check {
        /// Directory of the bot's flow files.
        dir: PathBuf,
    },
    /// Run the bot's conversation tests (DIR/tests/*.yaml) without a server.
    Test {
        /// Directory of the bot's flow files.
        dir: PathBuf,
        /// Run only tests whose name contains this text (case-insensitive).
        #[arg(long)]
        name: Option<String>,
    },
    /// Chat with the bot in the terminal (/debug shows what it understood, /reset, /quit).
    Chat {
        /// Directory of the bot's flow files.
        dir: PathBuf,
        /// Start with /debug on.
        #[arg(long)]
        debug: bool,
        /// The channel to talk on (reply variants may depend on it).
        #[arg(long, default_value = "web")]
        channel: String,
        /// The conversation's language for messages that show none (zh or en).
        #[arg(long)]
        lang: Option<kefu_flows::Lang>,
        /// The user to chat as (the demo orders belong to u-alice, u-bob, u-wang and u-li).
        #[arg(long, default_value = "u-alice")]
        user: String,
    },
    /// Intent understanding tools: `kefu nlu eval --train T --test T`.
    #[command(subcommand)]
    Nlu(nlu_eval::NluCommand),
    /// Emotion model tools: `kefu emotion eval [--train T] --test T`.
    #[command(subcommand)]
    Emotion(nlu_eval::EmotionCommand),
    /// Knowledge-base tools.
    Kb {
        #[command(subcommand)]
        command: kb_eval::KbCommand,
    },
}

/// See the runtime builder in `main`.
const SERVE_EVENT_INTERVAL: u32 = 256;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { dir } => check(dir),
        Command::Test { dir, name } => cli::test::run(&dir, name),
        Command::Chat {
            dir,
            debug,
            channel,
            lang,
            user,
        } => cli::chat::run(
            &dir,
            cli::chat::ChatOptions {
                debug,
                channel,
                lang,
                user,
            },
        ),
        Command::Nlu(cmd) => nlu_eval::run_nlu(cmd),
        Command::Emotion(cmd) => nlu_eval::run_emotion(cmd),
        Command::Kb { command } => kb_eval::run(command),
        Command::Serve {
            config,
            flows,
            data_dir,
            listen,
            api_keys,
            no_reload,
        } => {
            let mut cfg = match config {
                Some(path) => match Config::from_file(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => Config::default(),
            };
            if let Some(f) = flows {
                cfg.flows = f;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(l) = listen {
                cfg.listen = l;
            }
            cfg.http.api_keys.extend(api_keys);
            if let Ok(keys) = std::env::var("KEFU_API_KEYS") {
                cfg.http.api_keys.extend(
                    keys.split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(String::from),
                );
            }
            init_logs(&cfg);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                // A worker polls the socket driver every this many task polls even when it has
                // runnable tasks (tokio's default is 61). With a thousand busy connections each
                // poll finds many ready sockets, so polling less often means fewer epoll calls
                // and wake-ups for the same work: server CPU per turn -6% in the load test
                // (BENCHMARKS.md, session 14). When the run queue empties the worker polls
                // at once, so an idle or lightly loaded server answers no later.
                .event_interval(SERVE_EVENT_INTERVAL)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(serve(cfg, !no_reload)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(msg) => {
                    eprintln!("error: {msg}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn init_logs(cfg: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn check(dir: PathBuf) -> ExitCode {
    // Skills an embedding operator registers in code are unknown here; `kefu check` knows the
    // built-in ones, which is what the shipped binary serves.
    let options =
        kefu_flows::LoadOptions::with_known_skills(kefu_runtime::builtin::builtin_skill_names());
    match FlowEngine::load_with(&dir, &options) {
        Ok(engine) => {
            println!("{}: ok ({})", dir.display(), engine.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(cfg: Config, hot_reload: bool) -> Result<(), String> {
    // First: the store takes its flush-time handles when it opens.
    kefu_runtime::metrics::install();
    let sled = open_sled_store_with(&cfg.data_dir, cfg.store.sled_config())
        .await
        .map_err(|e| e.to_string())?;
    // Tickets share the session store's database: one data directory, one lock, one backup.
    let tickets: Arc<dyn kefu_tickets::TicketStore> = Arc::new(
        kefu_tickets::SledTicketStore::new(sled.db().clone())
            .map_err(|e| format!("the ticket store does not open: {e}"))?,
    );
    let builtins =
        kefu_runtime::builtin::builtin_skills_with(&cfg.flows, tickets.clone(), &cfg.skills)
            .await
            .map_err(|e| e.to_string())?;
    let options = kefu_flows::LoadOptions::with_known_skills(builtins.host.names());
    let engine = FlowEngine::load_with(&cfg.flows, &options)
        .map_err(|e| format!("the flows in {} do not load:\n{e}", cfg.flows.display()))?;
    tracing::info!(flows = %cfg.flows.display(), summary = %engine.summary(), "Flows loaded");
    // Loading a local model reads the whole file: off the async threads.
    let llm = cfg.llm.backends();
    let backends = tokio::task::spawn_blocking(move || llm.build())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("llm: {e}"))?;
    // The flows' `generate:` steps use the service; without a back-end they use `fallback:`.
    let service = cfg.llm.build_service(&backends);
    let engine = match service.clone() {
        Some(service) => {
            tracing::info!(?service, "Flows generate with the LLM service");
            engine
                .with_llm(service)
                .with_llm_intents(cfg.llm.choose_intents)
        }
        None => engine,
    };
    let skills = builtins.detach();
    let store: Arc<dyn kefu_store::Store> = sled;
    let mut shared_engine = None;
    let mut runtime = RuntimeBuilder::new(&cfg, store)
        .skill_host(skills)
        .routes(kefu_tickets::api::router(tickets))
        .start(|skills| {
            let engine = Arc::new(engine.with_skills(skills));
            shared_engine = Some(engine.clone());
            engine
        })
        .await
        .map_err(|e| e.to_string())?;
    if let Some(served) = backends.served() {
        tracing::info!(model = served.name(), "Serving /v1/chat/completions");
        runtime = runtime.with_llm(served);
    }
    if let (Some(desk), Some(engine)) = (runtime.desk(), &shared_engine) {
        engine.attach_desk(desk.clone());
    }
    // The desk's hand-off summaries and drafted replies share the flows' service (one set of
    // budgets and breakers).
    if let (Some(desk), Some(service)) = (runtime.desk(), service) {
        desk.attach_llm(service);
    }
    if hot_reload && let Some(engine) = shared_engine {
        kefu_runtime::reload::spawn(
            engine,
            cfg.flows.clone(),
            kefu_runtime::reload::ReloadConfig::default(),
        );
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}\n  hint: is another kefu running? use --listen 127.0.0.1:0 for a free port", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts read this line to find the port; keep its shape.
    println!("kefu listening on http://{addr}");
    runtime
        .serve(listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("Shutdown signal received");
}
