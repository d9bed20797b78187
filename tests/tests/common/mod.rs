//! In-process servers for black-box tests: the real runtime, real sled store, real HTTP on
//! 127.0.0.1:0.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use kefu_actors::TurnHandler;
use kefu_actors::engine::FlowEngine;
use kefu_runtime::{Config, Runtime, open_sled};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts the shipped bot over a sled store in `data_dir`.
    pub async fn shop(data_dir: &Path, config: Config) -> Self {
        let engine =
            FlowEngine::load(&kefu_tests::process::shop_flows()).expect("shipped bot loads");
        Self::with_handler(data_dir, config, Arc::new(engine)).await
    }

    /// Starts `handler` over a sled store in `data_dir`.
    pub async fn with_handler<H: TurnHandler>(
        data_dir: &Path,
        config: Config,
        handler: Arc<H>,
    ) -> Self {
        // No retry on a locked directory: a server stopped just before (a restart test) has
        // let go of it when its `serve` returned (see `SessionRegistry::shutdown`).
        let store = open_sled(data_dir).await.expect("store opens");
        let runtime = Runtime::start(&config, store, handler)
            .await
            .expect("runtime starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            runtime
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .expect("serves");
        });
        Self {
            addr,
            stop: Some(tx),
            join: Some(join),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops gracefully and waits until the store is flushed and closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
