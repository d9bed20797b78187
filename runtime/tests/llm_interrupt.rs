//! A user interrupting a generation, end to end over real sockets on 127.0.0.1:
//!
//! - a small axum server plays an OpenAI-compatible API; one question's answer streams as SSE
//!   very slowly (far longer than the test allows), every other answer at once;
//! - kefu's `Runtime` serves a bot whose flow says a `generate:` text, with the real
//!   `OpenAiBackend` behind the `LlmService` (wired as `kefu serve` wires it);
//! - a WebSocket client asks the slow question, gets some `delta` frames, then sends a second
//!   message in the same conversation: on the same socket (the web chat case: the socket reads
//!   frames while a turn runs, so the message starts its turn at once), or from a second socket;
//! - the generating turn ends promptly with a `retract` frame and its turn frame, without the
//!   generated text, and the second message is answered after it; the remote server saw its
//!   streaming connection dropped — the back-end call was stopped, not just ignored.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::llm::{Kefu, serve_remote, sse_chunk, start_kefu};
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
      - generate: "Answer the customer's question about returns."
        fallback: Sorry, I can't answer that right now.
      - end
"#;

/// The question whose answer streams slowly.
const SLOW_QUESTION: &str = "what is your return policy";
/// The slow answer's first chunk: longer than the moderator's hold-back, so some of it shows.
const SLOW_FIRST: &str = "Items can be returned within seven days of delivery, as long as ";
/// Every other question's answer.
const FAST_ANSWER: &str = "Returns are free within 7 days.";
/// The slow stream sends a chunk this often, for [`SLOW_CHUNKS`] chunks: 20 s in all, far
/// beyond the turn time this test allows.
const SLOW_EVERY: Duration = Duration::from_millis(100);
const SLOW_CHUNKS: usize = 200;

/// What the fake remote observed.
#[derive(Default)]
struct Remote {
    requests: AtomicUsize,
    /// A slow stream's body was dropped by the server: its client went away.
    dropped: AtomicBool,
    /// A slow stream ran to its end.
    completed: AtomicBool,
}

/// Sets `dropped` when the response body holding it is dropped.
struct DropGuard(Arc<Remote>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

async fn chat(State(remote): State<Arc<Remote>>, body: String) -> Response {
    remote.requests.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let sse = |body: Body| {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(body)
            .unwrap_or_default()
    };
    if user != SLOW_QUESTION {
        let text = sse_chunk(FAST_ANSWER, true, false) + &sse_chunk("", false, true);
        return sse(Body::from(text));
    }
    let guard = DropGuard(remote.clone());
    let events = futures::stream::unfold((0usize, guard), |(i, guard)| async move {
        let text = match i {
            0 => sse_chunk(SLOW_FIRST, true, false),
            n if n < SLOW_CHUNKS => {
                tokio::time::sleep(SLOW_EVERY).await;
                sse_chunk("and ", false, false)
            }
            n if n == SLOW_CHUNKS => {
                guard.0.completed.store(true, Ordering::SeqCst);
                sse_chunk("", false, true)
            }
            _ => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(text), (i + 1, guard)))
    });
    sse(Body::from_stream(events))
}

async fn fake_remote() -> (SocketAddr, Arc<Remote>) {
    let remote = Arc::new(Remote::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(remote.clone());
    (serve_remote(app).await, remote)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(kefu: &Kefu, conversation: &str) -> Socket {
    let url = format!("ws://{}/v1/conversations/{conversation}/ws", kefu.addr);
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

async fn send(ws: &mut Socket, text: &str, id: &str) {
    ws.send(Message::Text(
        json!({"text": text, "message_id": id}).to_string().into(),
    ))
    .await
    .unwrap();
}

/// The next JSON frame, within `within`.
async fn next_frame(ws: &mut Socket, within: Duration) -> Value {
    loop {
        let frame = tokio::time::timeout(within, ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket stays open")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

fn replies(turn: &Value) -> Vec<&str> {
    turn["replies"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["text"].as_str()).collect())
        .unwrap_or_default()
}

/// Waits (bounded) until `cond` holds.
async fn eventually(within: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// The remote saw its slow streaming response dropped long before it would have finished, and
/// was asked twice (the interrupted message and the newer one).
async fn assert_slow_stream_abandoned(remote: &Remote) {
    assert!(
        eventually(Duration::from_secs(5), || remote
            .dropped
            .load(Ordering::SeqCst))
        .await,
        "the remote's slow stream was never dropped"
    );
    assert!(!remote.completed.load(Ordering::SeqCst));
    assert_eq!(remote.requests.load(Ordering::SeqCst), 2);
}

/// Frames up to and including the next turn frame: the frames before it, and the turn.
async fn until_turn(ws: &mut Socket, within: Duration) -> (Vec<Value>, Value) {
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(ws, within).await;
        if frame["type"] == "turn" {
            return (frames, frame);
        }
        frames.push(frame);
    }
}

/// Waits for the slow answer's first delta on `ws`: the generation is under way.
async fn slow_answer_streaming(ws: &mut Socket) {
    let frame = next_frame(ws, Duration::from_secs(10)).await;
    assert_eq!(frame["type"], "delta", "{frame}");
    let shown = frame["text"].as_str().unwrap_or_default();
    assert!(SLOW_FIRST.starts_with(shown), "{frame}");
}

/// The interrupted turn of message `m1` on `ws`, promptly after `since`: the rest of its draft
/// (if any), then the retraction, then its turn frame with no generated text.
async fn assert_interrupted_turn(ws: &mut Socket, since: Instant) {
    let (frames, turn) = until_turn(ws, Duration::from_secs(5)).await;
    let took = since.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the interrupted turn took {took:?}"
    );
    assert_eq!(
        frames.last().map(|f| f["type"].clone()),
        Some(json!("retract")),
        "{frames:?}"
    );
    assert!(
        frames[..frames.len() - 1]
            .iter()
            .all(|f| f["type"] == "delta"),
        "{frames:?}"
    );
    assert_eq!(turn["message_id"], "m1", "{turn}");
    assert_eq!(replies(&turn), vec!["Let me check that for you."], "{turn}");
}

/// The turn of message `m2` on `ws`: streamed deltas, then the model's answer.
async fn assert_answered_turn(ws: &mut Socket) {
    let (frames, turn) = until_turn(ws, Duration::from_secs(10)).await;
    assert!(frames.iter().all(|f| f["type"] == "delta"), "{frames:?}");
    assert_eq!(turn["message_id"], "m2", "{turn}");
    assert_eq!(
        replies(&turn),
        vec!["Let me check that for you.", FAST_ANSWER],
        "{turn}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_message_interrupts_a_streaming_generation() {
    let (remote_addr, remote) = fake_remote().await;
    let kefu = start_kefu(BOT, remote_addr, 30_000).await;

    let mut first = connect(&kefu, "c-int").await;
    send(&mut first, SLOW_QUESTION, "m1").await;
    slow_answer_streaming(&mut first).await;

    // The user writes again in the same conversation.
    let mut second = connect(&kefu, "c-int").await;
    let interrupted_at = Instant::now();
    send(&mut second, "how do returns work", "m2").await;

    // The first turn ends promptly: its draft is retracted and nothing generated is said.
    assert_interrupted_turn(&mut first, interrupted_at).await;
    // The second message is answered by the model.
    assert_answered_turn(&mut second).await;

    // The remote saw its streaming response abandoned long before it would have finished.
    assert_slow_stream_abandoned(&remote).await;

    // The transcript says what happened to the first generation.
    let view: Value = reqwest::get(format!("http://{}/v1/conversations/c-int", kefu.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generations: Vec<(&str, &str)> = view["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["role"] == "generation")
        .map(|e| {
            (
                e["message_id"].as_str().unwrap_or_default(),
                e["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        generations,
        vec![
            ("m1", "interrupted: a newer message arrived"),
            ("m2", "remote")
        ],
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_message_on_the_same_socket_interrupts_a_streaming_generation() {
    let (remote_addr, remote) = fake_remote().await;
    let kefu = start_kefu(BOT, remote_addr, 30_000).await;

    let mut ws = connect(&kefu, "c-one").await;
    send(&mut ws, SLOW_QUESTION, "m1").await;
    slow_answer_streaming(&mut ws).await;

    // The user types again into the same chat while the bot is still streaming.
    let interrupted_at = Instant::now();
    send(&mut ws, "how do returns work", "m2").await;

    // First the interrupted turn, then the second message's turn, in that order.
    assert_interrupted_turn(&mut ws, interrupted_at).await;
    assert_answered_turn(&mut ws).await;

    assert_slow_stream_abandoned(&remote).await;
}
