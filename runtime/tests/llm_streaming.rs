//! Generation inside conversations, end to end over real sockets on 127.0.0.1:
//!
//! - a small axum server plays an OpenAI-compatible API that streams its answer as SSE, slowly;
//! - kefu's `Runtime` serves a bot whose flow says a `generate:` text, with the real
//!   `OpenAiBackend` behind the `LlmService` built from an `[llm]` config section;
//! - a WebSocket client gets `delta` frames while the model runs, then the turn frame whose
//!   reply is their concatenation; an HTTP POST gets the whole reply only;
//! - the remote saw the step's prompt and passage, and the user's phone number masked.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::llm::{serve_remote, sse_chunk, start_kefu};
use tokio_tungstenite::tungstenite::Message;

const BOT: &str = r#"
settings:
  default_language: en
  languages: [en]
intents:
  returns:
    examples:
      en: [what is your return policy, can I return an item, how do returns work,
           return policy please, tell me about returns, I want to return something,
           how many days do I have to return, returning a product]
  greet:
    examples:
      en: [hi, hello, hey there, good morning, hello anyone there]
flows:
  greeting:
    trigger: {intent: greet}
    steps:
      - say: Hi! How can I help?
  returns:
    trigger: {intent: returns}
    steps:
      - say: Let me check that for you.
      - generate: "Answer the customer's question about returns, in {{ lang }}."
        context: ["Items can be returned within 7 days of delivery."]
        fallback: Sorry, I can't answer that right now.
      - end
"#;

/// The remote model's answer, streamed in 8-character chunks.
const ANSWER: &str = "You can return an item within 7 days of delivery; we will call you at 13812345678 to arrange the pickup.";

/// What the fake remote received.
type Seen = Arc<Mutex<Vec<Value>>>;

async fn chat(State(seen): State<Seen>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let stream = body["stream"] == json!(true);
    seen.lock().unwrap().push(body);
    // The model answers with the placeholder it was given, as a model would: kefu restores it.
    let answer = ANSWER.replace("13812345678", "[PHONE_1]");
    if !stream {
        let full = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
            "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}});
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(full.to_string()))
            .unwrap_or_default();
    }
    let chars: Vec<char> = answer.chars().collect();
    let mut chunks: Vec<String> = chars.chunks(8).map(|c| c.iter().collect()).collect();
    chunks.push(String::new());
    let events =
        futures::stream::iter(chunks.into_iter().enumerate()).then(|(i, piece)| async move {
            tokio::time::sleep(Duration::from_millis(15)).await;
            Ok::<_, std::convert::Infallible>(sse_chunk(&piece, i == 0, piece.is_empty()))
        });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap_or_default()
}

async fn fake_remote() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    (serve_remote(app).await, seen)
}

const QUESTION: &str = "what is your return policy? call me at 13812345678";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_turns_stream_deltas_then_the_whole_reply() {
    let (remote, seen) = fake_remote().await;
    let kefu = start_kefu(BOT, remote, 3000).await;
    let url = format!("ws://{}/v1/conversations/c-ws/ws", kefu.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(json!({"text": QUESTION}).to_string().into()))
        .await
        .unwrap();

    let mut deltas = Vec::new();
    let turn = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = frame else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        match frame["type"].as_str() {
            Some("delta") => deltas.push(frame["text"].as_str().unwrap().to_owned()),
            Some("retract") => deltas.clear(),
            Some("turn") => break frame,
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
    };
    assert!(
        deltas.len() >= 2,
        "the answer streamed in pieces ahead of the turn: {deltas:?}"
    );
    let replies: Vec<&str> = turn["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(replies.len(), 2, "{turn}");
    assert_eq!(replies[0], "Let me check that for you.");
    // PII is restored for the user, and what streamed is exactly what the turn says.
    assert_eq!(replies[1], ANSWER);
    assert_eq!(deltas.concat(), replies[1]);

    // What the remote model saw: the step's instruction and passage, the user's phone masked.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let body = &seen[0];
    assert_eq!(body["stream"], json!(true));
    let wire = body["messages"].to_string();
    assert!(
        wire.contains("Answer the customer's question about returns, in en."),
        "{wire}"
    );
    assert!(
        wire.contains("Items can be returned within 7 days of delivery."),
        "{wire}"
    );
    assert!(
        !wire.contains("13812345678"),
        "the phone number left the machine: {wire}"
    );
    assert!(wire.contains("[PHONE_1]"), "{wire}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_turns_get_the_whole_reply() {
    let (remote, seen) = fake_remote().await;
    let kefu = start_kefu(BOT, remote, 3000).await;
    let res = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/conversations/c-http/messages",
            kefu.addr
        ))
        .json(&json!({"text": QUESTION}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["replies"][1]["text"], json!(ANSWER), "{turn}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}
