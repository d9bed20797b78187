//! The `kefu` command: `serve` runs the bot behind the HTTP API; `check` validates a flow
//! directory. Errors go to stderr with a hint, and the exit code says what happened:
//! 0 ok, 1 problems found (check), 2 could not start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kefu_actors::engine::FlowEngine;
use kefu_runtime::config::LogFormat;
use kefu_runtime::{Config, Runtime, open_sled};
use tracing_subscriber::EnvFilter;

// mimalloc instead of glibc's malloc: under load, glibc's allocator took about a sixth of the
// server's CPU (perf: _int_malloc, malloc_consolidate, cfree); mimalloc's thread-local free lists
// suit the many small, short-lived allocations of a request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    },
    /// Load and validate a flow directory; prints each problem as file:line:col.
    Check {
        /// Directory of the bot's flow files.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { dir } => check(dir),
        Command::Serve {
            config,
            flows,
            data_dir,
            listen,
            api_keys,
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
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(serve(cfg)) {
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
    match FlowEngine::load(&dir) {
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

async fn serve(cfg: Config) -> Result<(), String> {
    let engine = FlowEngine::load(&cfg.flows)
        .map_err(|e| format!("the flows in {} do not load:\n{e}", cfg.flows.display()))?;
    tracing::info!(flows = %cfg.flows.display(), summary = %engine.summary(), "Flows loaded");
    let store = open_sled(&cfg.data_dir).await.map_err(|e| e.to_string())?;
    let mut runtime = Runtime::start(&cfg, store, Arc::new(engine))
        .await
        .map_err(|e| e.to_string())?;
    // Loading a local model reads the whole file: off the async threads.
    let llm = cfg.llm.clone();
    let backends = tokio::task::spawn_blocking(move || llm.build())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("llm: {e}"))?;
    if let Some(served) = backends.served() {
        tracing::info!(model = served.name(), "Serving /v1/chat/completions");
        runtime = runtime.with_llm(served);
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
