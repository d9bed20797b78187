//! A `kefu serve` child for black-box tests of the runtime: started with a config file (and
//! environment) of the test's choosing on 127.0.0.1:0, its log written to a file the test can
//! read, killed when dropped.

#![allow(dead_code, unreachable_pub)]

pub mod llm;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The shipped bot's flow directory.
pub fn shop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dialog-flows/bots/shop")
}

/// A running `kefu serve`.
pub struct Kefu {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
    http: reqwest::Client,
}

impl Kefu {
    /// Starts `kefu serve` for the shipped bot with `config` as its TOML file, data in `dir`,
    /// and `env` added to its environment; waits until it listens.
    pub fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        let config_path = dir.join("kefu.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("kefu.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--flows")
            .arg(shop())
            .arg("--no-reload")
            .env_remove("RUST_LOG")
            .env_remove("KEFU_API_KEYS")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("kefu listening on http://") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                return Self {
                    child,
                    addr: addr.parse().unwrap(),
                    log,
                    http: reqwest::Client::new(),
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "kefu exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "kefu did not start in time");
        }
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with `key` as the API key (when given).
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match key {
            Some(k) => builder.bearer_auth(k),
            None => builder,
        }
    }

    /// Posts `body` to the conversation `key`'s messages; returns the status and JSON answer.
    pub async fn post_message(
        &self,
        key: &str,
        body: &Value,
        api_key: Option<&str>,
    ) -> (u16, Value) {
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/conversations/{key}/messages"),
                api_key,
            )
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Sends `text` as `user` in conversation `key` (no API key); returns the replies joined.
    pub async fn say(&self, key: &str, user: &str, text: &str) -> String {
        let (status, turn) = self
            .post_message(key, &json!({"text": text, "user": user}), None)
            .await;
        assert_eq!(status, 200, "{turn}");
        replies(&turn)
    }

    /// GET `path` with `key`; the status and JSON answer.
    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let resp = self
            .request(reqwest::Method::GET, path, key)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Signs `agent` in with `secret`; the agent token.
    pub async fn agent_token(&self, agent: &str, secret: &str) -> String {
        let resp = self
            .request(reqwest::Method::POST, "/v1/agents/sign-in", None)
            .json(&json!({"agent": agent, "secret": secret}))
            .send()
            .await
            .unwrap();
        let signed: Value = resp.json().await.unwrap_or(Value::Null);
        signed["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no agent token: {signed}"))
            .to_owned()
    }

    /// The waiting queue as the agent holding `token` sees it.
    pub async fn agent_queue(&self, token: &str) -> Vec<Value> {
        // The agent token is a bearer token, as API keys are.
        let (status, queue) = self.get("/v1/agents/queue", Some(token)).await;
        assert_eq!(status, 200, "{queue}");
        queue["queue"].as_array().expect("queue").clone()
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kefu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A turn's replies, joined by newlines.
pub fn replies(turn: &Value) -> String {
    turn["replies"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}
