//! Shared by the human-desk tests: a `kefu serve` child with agents configured, an agent
//! client over the agent API, and a user's WebSocket.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use kefu_tests::process::KefuProcess;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The desk configuration the tests use: three agents, "human" hand-offs need the `care`
/// skill, `vip-user` is a tier-2 customer.
pub fn desk_toml(auto_assign: bool) -> String {
    format!(
        r#"
[agents]
auto_assign = {auto_assign}
first_reply_sla_secs = 30
skills_by_topic = {{ human = "care" }}
user_tiers = {{ "vip-user" = 2 }}

[[agents.agents]]
id = "alice"
name = "Alice"
skills = ["care"]
tier = 0
capacity = 2
secret = "alice-secret-1"

[[agents.agents]]
id = "bob"
name = "Bob"
skills = ["billing"]
tier = 2
capacity = 2
secret = "bob-secret-12"

[[agents.agents]]
id = "vera"
name = "Vera"
skills = ["care"]
tier = 2
capacity = 2
secret = "vera-secret-1"
"#
    )
}

/// Starts `kefu serve` with the desk configured.
pub fn start(dir: &Path, auto_assign: bool) -> KefuProcess {
    let config = dir.join("kefu.toml");
    std::fs::write(&config, desk_toml(auto_assign)).expect("config written");
    let data = dir.join("data");
    KefuProcess::start(&data, &["--config", config.to_str().expect("utf-8 path")])
        .expect("kefu starts")
}

/// An agent signed in over the agent API.
pub struct AgentClient {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl AgentClient {
    pub async fn sign_in(base: &str, agent: &str, secret: &str) -> Self {
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{base}/v1/agents/sign-in"))
            .json(&json!({"agent": agent, "secret": secret}))
            .send()
            .await
            .expect("sign-in request");
        assert_eq!(resp.status(), 200, "sign-in of {agent}");
        let body: Value = resp.json().await.expect("json");
        Self {
            base: base.to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
            http,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url),
            _ => self.http.post(url),
        }
        .bearer_auth(&self.token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.send().await.expect("agent request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn conversations(&self) -> Vec<String> {
        let (status, me) = self.call("GET", "/v1/agents/me", None).await;
        assert_eq!(status, 200, "{me}");
        me["conversations"]
            .as_array()
            .expect("conversations")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

/// A user's chat WebSocket.
pub struct UserSocket {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Frames received so far that were not turn answers.
    pub pushed: Vec<Value>,
}

impl UserSocket {
    pub async fn connect(addr: std::net::SocketAddr, key: &str) -> Self {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/v1/conversations/{key}/ws"))
                .await
                .expect("user WebSocket");
        Self {
            ws,
            pushed: Vec::new(),
        }
    }

    /// Sends a message and returns the turn frame (pushes seen meanwhile are kept).
    pub async fn say(&mut self, text: &str, user: &str) -> Value {
        let frame = json!({"text": text, "user": user}).to_string();
        self.ws
            .send(Message::Text(frame.into()))
            .await
            .expect("send");
        loop {
            let frame = self.next(Duration::from_secs(20)).await.expect("a frame");
            if frame["type"] == "turn" || frame["type"] == "error" {
                return frame;
            }
            self.pushed.push(frame);
        }
    }

    /// The next frame, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return serde_json::from_str(t.as_str()).ok();
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// Waits for a pushed frame matching `pred` (already received ones count).
    pub async fn pushed_until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(found) = self.pushed.iter().find(|f| pred(f)) {
            return found.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_default();
            let frame = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no matching push; got {:?}", self.pushed));
            self.pushed.push(frame.clone());
            if pred(&frame) {
                return frame;
            }
        }
    }
}

pub fn reply_text(turn: &Value) -> String {
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

/// Polls `cond` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
