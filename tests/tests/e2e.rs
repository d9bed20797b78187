//! End-to-end: the real server on 127.0.0.1:0 with a temporary sled directory, holding
//! multi-turn conversations over HTTP and over WebSocket, and surviving a restart.

mod common;

use std::sync::Arc;

use common::TestServer;
use futures::{SinkExt, StreamExt};
use kefu_runtime::Config;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn say(
    client: &reqwest::Client,
    server: &TestServer,
    key: &str,
    text: &str,
    id: &str,
) -> Value {
    let resp = client
        .post(server.url(&format!("/v1/conversations/{key}/messages")))
        .json(&json!({"text": text, "message_id": id}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "turn {text:?}");
    resp.json().await.expect("json")
}

fn reply_text(v: &Value) -> String {
    v["replies"]
        .as_array()
        .expect("replies")
        .iter()
        .map(|r| r["text"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_turn_conversation_over_http_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = TestServer::shop(dir.path(), Config::default()).await;

    let hello = say(&client, &server, "alice", "你好", "a1").await;
    assert!(!reply_text(&hello).is_empty());
    assert_eq!(hello["nlu"]["lang"], "zh");

    // Order status: the bot asks for the order number, then answers about that order.
    let asked = say(&client, &server, "alice", "我想查一下我的订单", "a2").await;
    assert_eq!(asked["nlu"]["intent"], "order_status", "{asked}");
    assert!(
        asked["active_flow"].is_string(),
        "a flow waits for the order number: {asked}"
    );
    server.stop().await;

    // Restart on the same data directory: the conversation resumes at the question.
    let server = TestServer::shop(dir.path(), Config::default()).await;
    let answered = say(&client, &server, "alice", "订单号是 A20241101123", "a3").await;
    assert!(
        reply_text(&answered).contains("A20241101123"),
        "the flow resumed with the order number: {answered}"
    );

    // The transcript holds every turn, in order.
    let conv: Value = client
        .get(server.url("/v1/conversations/alice"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users: Vec<&str> = conv["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["role"] == "user")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        ["你好", "我想查一下我的订单", "订单号是 A20241101123"]
    );
    assert_eq!(conv["state"]["slots"]["order_id"], "A20241101123", "{conv}");

    // A retried message is answered from the store.
    let again = say(&client, &server, "alice", "订单号是 A20241101123", "a3").await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(reply_text(&again), reply_text(&answered));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_turn_conversation_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::shop(dir.path(), Config::default()).await;
    let url = format!("ws://{}/v1/conversations/bob/ws", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects");

    let mut turn = async |text: &str| -> Value {
        ws.send(Message::text(json!({"text": text}).to_string()))
            .await
            .unwrap();
        loop {
            match ws.next().await.expect("frame").expect("ok frame") {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    };
    let first = turn("hello").await;
    assert_eq!(first["type"], "turn", "{first}");
    assert_eq!(first["nlu"]["lang"], "en");
    let asked = turn("where is my order").await;
    assert_eq!(asked["nlu"]["intent"], "order_status", "{asked}");
    let answered = turn("my order number is B98765432100").await;
    assert!(reply_text(&answered).contains("B98765432100"), "{answered}");

    // Bad JSON gets an error frame and the socket stays usable.
    ws.send(Message::text("{not json")).await.unwrap();
    let err = loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(err["type"], "error");
    let mut turn = async |text: &str| -> Value {
        ws.send(Message::text(json!({"text": text}).to_string()))
            .await
            .unwrap();
        loop {
            if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
                return serde_json::from_str(&t).unwrap();
            }
        }
    };
    let thanks = turn("thanks").await;
    assert_eq!(thanks["type"], "turn");

    // The WebSocket conversation is stored like any other.
    let conv: Value = reqwest::get(server.url("/v1/conversations/bob"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users = conv["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["role"] == "user")
        .count();
    assert_eq!(users, 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rasa_rest_channel_answers_in_rasa_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::shop(dir.path(), Config::default()).await;
    let resp = reqwest::Client::new()
        .post(server.url("/webhooks/rest/webhook"))
        .json(&json!({"sender": "carol", "message": "运费多少钱"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let arr = body.as_array().expect("a list");
    assert!(!arr.is_empty());
    for m in arr {
        assert_eq!(m["recipient_id"], "carol");
        assert!(m["text"].as_str().is_some_and(|t| !t.is_empty()));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_every_v1_route_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.http.api_keys = vec!["s3cret-key-0123456789".into()];
    let server = TestServer::shop(dir.path(), config).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/conversations/dave/messages");
    let denied = client
        .post(&url)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = client
        .post(&url)
        .bearer_auth("nope")
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = client
        .post(&url)
        .bearer_auth("s3cret-key-0123456789")
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Health stays open for probes.
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_json_errors_from_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::shop(dir.path(), Config::default()).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/conversations/eve/messages");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"text\": "),
            400,
            "invalid_json",
        ),
        (
            client.post(&url).json(&json!({"text": 42})),
            422,
            "invalid_request",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b'{', 0xff, 0xfe, b'}']),
            400,
            "invalid_json",
        ),
        (
            client.post(&url).json(&json!({"text": "字".repeat(4001)})),
            422,
            "message_too_long",
        ),
        (
            client.post(&url).json(&json!({"text": "   "})),
            422,
            "empty_message",
        ),
        (client.get(server.url("/v1/nothing/here")), 404, "not_found"),
        (client.delete(&url), 405, "method_not_allowed"),
        (
            client
                .post(&url)
                .header("content-type", "text/plain")
                .body("hi"),
            415,
            "unsupported_media_type",
        ),
    ];
    // An oversized body is refused from its Content-Length, before a byte of it is read. Sent
    // over a raw socket that announces 200 kB and then only reads: a client that kept writing
    // the body could see the refusal's connection close as a broken pipe instead of the 413.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /v1/conversations/eve/messages HTTP/1.1\r\nhost: {}\r\n\
             content-type: application/json\r\ncontent-length: 200000\r\n\r\n",
            server.addr
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            socket.read_to_end(&mut response),
        )
        .await
        .expect("the server answers without waiting for the body")
        .unwrap();
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        let body: Value = serde_json::from_str(body).expect("a JSON error body");
        assert_eq!(body["error"]["code"], "body_too_large", "{body}");
    }
    for (req, status, code) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "expected {code}");
        let body: Value = resp.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // The server is still healthy and nothing was stored for the refused messages.
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
    let conv = reqwest::get(server.url("/v1/conversations/eve"))
        .await
        .unwrap();
    assert_eq!(conv.status(), 404);
    server.stop().await;
}

/// Reads one sample (`name{labels} value`) from a Prometheus text exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_turn_phases_and_store_flushes() {
    // Before the store opens, as `kefu serve` does, so its flush times are recorded too.
    kefu_runtime::metrics::install();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = TestServer::shop(dir.path(), Config::default()).await;
    say(&client, &server, "metrics-user", "你好", "m1").await;
    say(&client, &server, "metrics-user", "运费多少钱", "m2").await;

    let resp = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.unwrap();
    // Other tests in this binary may have added turns: at least ours are there.
    assert!(sample(&text, r#"kefu_turns_total{result="ok"}"#) >= 2.0);
    assert!(sample(&text, "kefu_turn_seconds_count") >= 2.0);
    for phase in ["queue", "handle", "append"] {
        let count = sample(
            &text,
            &format!(r#"kefu_turn_phase_seconds_count{{phase="{phase}"}}"#),
        );
        assert!(count >= 2.0, "{phase}: {count}");
        // Cumulative buckets end at +Inf with every sample.
        let all = sample(
            &text,
            &format!(r#"kefu_turn_phase_seconds_bucket{{phase="{phase}",le="+Inf"}}"#),
        );
        assert_eq!(all, count, "{phase}");
    }
    // Every acknowledged turn waited for a flush: a write-ahead log write with fdatasync.
    assert!(sample(&text, r#"kefu_store_flush_seconds_count{step="write"}"#) >= 1.0);
    assert!(sample(&text, r#"kefu_store_flush_seconds_count{step="fdatasync"}"#) >= 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_runtime_releases_the_data_directory_at_once() {
    // No retry: `serve` returning means no session actor holds the store any more, so the
    // directory's lock is free for the next runtime right away (embedders restart in-process).
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    for round in 0..5 {
        let store = kefu_runtime::open_sled(dir.path())
            .await
            .unwrap_or_else(|e| panic!("round {round}: the directory is still locked: {e}"));
        let engine = kefu_actors::engine::FlowEngine::load(&kefu_tests::process::shop_flows())
            .expect("shipped bot loads");
        let runtime = kefu_runtime::Runtime::start(&Config::default(), store, Arc::new(engine))
            .await
            .expect("runtime starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(runtime.serve(listener, async {
            let _ = stopped.await;
        }));
        // Several live sessions, so several actors hold the store when the stop comes.
        for user in 0..4 {
            let resp = client
                .post(format!(
                    "http://{addr}/v1/conversations/restart-{user}/messages"
                ))
                .json(&json!({"text": "你好", "message_id": format!("r{round}-{user}")}))
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status(), 200);
        }
        let _ = stop.send(());
        served.await.expect("joins").expect("serves");
    }
}
