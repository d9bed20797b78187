//! The OpenAI-compatible back-end against a real HTTP server on 127.0.0.1 (axum) that plays
//! the remote API: what is sent, how answers and streams are read, and how failures map.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use kefu_models::llm::{
    ChatMessage, FinishReason, LlmBackend, LlmError, LlmRequest, OpenAiBackend, OpenAiConfig,
    StreamEvent,
};
use parking_lot::Mutex;
use serde_json::{Value, json};

#[derive(Clone, Copy)]
enum Mode {
    Ok,
    ServerError,
    BadRequest,
    Hang,
}

/// What the fake server received: the Authorization header and the JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone)]
struct Fake {
    mode: Mode,
    seen: Seen,
}

async fn chat(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    fake.seen.lock().push((auth, body.clone()));
    match fake.mode {
        Mode::ServerError => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/json")],
                r#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#,
            )
                .into_response();
        }
        Mode::BadRequest => {
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                r#"{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":"invalid_value"}}"#,
            )
                .into_response();
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Mode::Ok => {}
    }
    let last = body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = format!("echo: {last}");
    if body["stream"] == json!(true) {
        let mut sse = String::new();
        for (i, piece) in ["echo: ", last.as_str()].iter().enumerate() {
            let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                "model": "m", "choices": [{"index": 0, "delta": {"content": piece},
                "finish_reason": if i == 1 { json!("length") } else { Value::Null }}]});
            sse.push_str(&format!("data: {chunk}\n\n"));
        }
        let usage = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}});
        sse.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
        return ([("content-type", "text/event-stream")], sse).into_response();
    }
    axum::Json(json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}))
    .into_response()
}

async fn serve(mode: Mode) -> (String, Fake) {
    let fake = Fake {
        mode,
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), fake)
}

fn backend(base: &str, timeout_ms: u64) -> OpenAiBackend {
    let mut config = OpenAiConfig::new(base, "test-model");
    config.api_key = "sk-test".into();
    config.timeout_ms = timeout_ms;
    OpenAiBackend::new(config).unwrap()
}

fn request() -> LlmRequest {
    let mut req = LlmRequest::new(
        vec![
            ChatMessage::system("be brief"),
            ChatMessage::user("你好 hello"),
        ],
        32,
    );
    req.temperature = Some(0.0);
    req.stop = vec!["\n\n".into()];
    req
}

#[tokio::test]
async fn complete_sends_the_openai_shape_and_reads_the_answer() {
    let (base, fake) = serve(Mode::Ok).await;
    let done = backend(&base, 5000).complete(request()).await.unwrap();
    assert_eq!(done.text, "echo: 你好 hello");
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert_eq!(done.usage.total(), 10);
    let seen = fake.seen.lock();
    let (auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_tokens"], 32);
    assert_eq!(body["stop"], json!(["\n\n"]));
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert!(body.get("stream").is_none());
}

#[tokio::test]
async fn stream_yields_deltas_then_done_with_usage() {
    let (base, fake) = serve(Mode::Ok).await;
    let events: Vec<_> = backend(&base, 5000)
        .stream(request())
        .await
        .unwrap()
        .collect()
        .await;
    let events: Vec<StreamEvent> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(events[0], StreamEvent::Delta("echo: ".into()));
    assert_eq!(events[1], StreamEvent::Delta("你好 hello".into()));
    match &events[2] {
        StreamEvent::Done {
            finish_reason,
            usage,
        } => {
            assert_eq!(*finish_reason, FinishReason::Length);
            assert_eq!(usage.total(), 9);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fake.seen.lock()[0].1["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn failures_say_whose_fault_they_are() {
    let (base, _) = serve(Mode::ServerError).await;
    let err = backend(&base, 5000).complete(request()).await.unwrap_err();
    assert!(err.is_backend_failure(), "{err:?}");

    let (base, _) = serve(Mode::BadRequest).await;
    let err = backend(&base, 5000).complete(request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Api { client_fault: true, code: Some(c), .. } if c == "invalid_value"),
        "{err:?}"
    );
    assert!(!err.is_backend_failure());

    // Nothing listens on this port once the listener is dropped.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = backend(&format!("http://127.0.0.1:{port}/v1"), 5000)
        .complete(request())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_hanging_server_times_out_on_time() {
    let (base, _) = serve(Mode::Hang).await;
    let b = backend(&base, 200);
    let started = Instant::now();
    let err = b.complete(request()).await.unwrap_err();
    assert!(matches!(err, LlmError::Timeout { .. }), "{err:?}");
    let err = b.stream(request()).await.err().unwrap();
    assert!(matches!(err, LlmError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn config_is_validated_and_the_key_never_printed() {
    let mut config = OpenAiConfig::new("ftp://x", "m");
    assert!(OpenAiBackend::new(config.clone()).is_err());
    config.base_url = "http://127.0.0.1:1/v1".into();
    config.api_key = "sk-very-secret".into();
    assert!(!format!("{config:?}").contains("sk-very-secret"));
    let b = OpenAiBackend::new(config).unwrap();
    assert!(!format!("{b:?}").contains("sk-very-secret"));
    assert_eq!(b.default_model(), "m");
    let bad = LlmRequest::new(vec![], 10);
    assert!(bad.validate().is_err());
}
