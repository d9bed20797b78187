//! The LLM end-to-end tests' common parts: an OpenAI-compatible fake remote served on
//! 127.0.0.1 (the test supplies its handler), the SSE chunk it streams, and an in-process kefu
//! whose flows generate through the real `OpenAiBackend` pointed at that remote.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use kefu_actors::engine::FlowEngine;
use kefu_models::llm::OpenAiConfig;
use kefu_runtime::{Config, Runtime};
use kefu_store::{MemoryStore, Store};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One `chat.completion.chunk` SSE event carrying `piece` (the first also carries the role);
/// `done` adds the finish reason and the `[DONE]` event.
pub fn sse_chunk(piece: &str, first: bool, done: bool) -> String {
    let delta = if first {
        json!({"role": "assistant", "content": piece})
    } else {
        json!({"content": piece})
    };
    let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
        "model": "m", "choices": [{"index": 0, "delta": delta,
        "finish_reason": if done { json!("stop") } else { Value::Null }}]});
    let mut text = format!("data: {chunk}\n\n");
    if done {
        text.push_str("data: [DONE]\n\n");
    }
    text
}

/// Serves `app` (the fake remote) on 127.0.0.1 for the rest of the test.
pub async fn serve_remote(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A kefu runtime serving a test bot with the remote model; stops when dropped.
pub struct Kefu {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// Starts kefu in this process with `bot_yaml` as its only flow file and the remote at
/// `remote` as its model (`timeout_ms` for the call and for a quiet stream).
pub async fn start_kefu(bot_yaml: &str, remote: SocketAddr, timeout_ms: u64) -> Kefu {
    let dir = tempfile::tempdir().unwrap();
    let bot = dir.path().join("bot");
    std::fs::create_dir(&bot).unwrap();
    std::fs::write(bot.join("bot.yaml"), bot_yaml).unwrap();
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        flows: bot.clone(),
        ..Config::default()
    };
    cfg.llm.remote = Some(OpenAiConfig {
        base_url: format!("http://{remote}/v1"),
        api_key: String::new(),
        model: "m".into(),
        timeout_ms,
        stream_idle_ms: timeout_ms,
        tokenizer: None,
    });
    cfg.validate(std::path::Path::new("<test>")).unwrap();
    let backends = cfg.llm.backends().build().unwrap();
    let service = cfg
        .llm
        .build_service(&backends)
        .expect("a back-end is configured");
    let engine = FlowEngine::load(&bot).unwrap().with_llm(service);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let runtime = Runtime::start(&cfg, store, Arc::new(engine)).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(runtime.serve(listener, async move {
        let _ = stopped.await;
    }));
    Kefu {
        addr,
        _stop: stop,
        _dir: dir,
    }
}
