//! `POST /v1/chat/completions`: OpenAI's shapes for answers, streams and errors, over a
//! scripted back-end.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use kefu_models::llm::{
    Completion, FinishReason, LlmBackend, LlmError, LlmRequest, StreamEvent, TokenStream, Usage,
};
use serde_json::{Value, json};

use super::{FakeConversations, call, post_json};
use crate::http::{AppState, HttpConfig, app};

/// Answers "你好, <last user message>" in two deltas, or fails as told.
struct Scripted {
    fail: Option<LlmError>,
}

#[async_trait]
impl LlmBackend for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn default_model(&self) -> &str {
        "scripted-1"
    }
    async fn complete(&self, req: LlmRequest) -> Result<Completion, LlmError> {
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        let last = req
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        Ok(Completion {
            text: format!("你好, {last}"),
            finish_reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 5,
                completion_tokens: 3,
            },
            model: "scripted-1".into(),
        })
    }
    async fn stream(&self, req: LlmRequest) -> Result<TokenStream, LlmError> {
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        let last = req
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        Ok(Box::pin(futures::stream::iter(vec![
            Ok(StreamEvent::Delta("你好, ".into())),
            Ok(StreamEvent::Delta(last)),
            Ok(StreamEvent::Done {
                finish_reason: FinishReason::Length,
                usage: Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2,
                },
            }),
        ])))
    }
}

fn router(backend: Option<Scripted>, config: HttpConfig) -> axum::Router {
    let mut state = AppState::new(Arc::new(FakeConversations::default()), config);
    if let Some(b) = backend {
        state = state.with_llm(Arc::new(b));
    }
    app(state)
}

fn ok_router() -> axum::Router {
    router(Some(Scripted { fail: None }), HttpConfig::default())
}

#[track_caller]
fn assert_openai_error(body: &Value, kind: &str, code: &str) {
    let e = &body["error"];
    assert_eq!(e["type"], kind, "{body}");
    assert_eq!(e["code"], code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e.get("param").is_some(), "{body}");
}

#[tokio::test]
async fn answers_a_completion_in_openai_shape() {
    let body = json!({"model": "x", "messages": [
        {"role": "developer", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "在吗"}]}]});
    let a = call(
        &ok_router(),
        post_json("/v1/chat/completions", body.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["object"], "chat.completion");
    assert!(a.body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(a.body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(a.body["choices"][0]["message"]["content"], "你好, 在吗");
    assert_eq!(a.body["choices"][0]["finish_reason"], "stop");
    assert_eq!(a.body["usage"]["total_tokens"], 8);
}

#[tokio::test]
async fn streams_chunks_then_done() {
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true,
        "stream_options": {"include_usage": true}});
    let response = tower::ServiceExt::oneshot(
        ok_router(),
        post_json("/v1/chat/completions", body.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "你好, hi");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 7);
}

#[tokio::test]
async fn bad_input_gets_openai_errors() {
    let cases = [
        ("{not json", "invalid_json"),
        (r#"{"messages": "hi"}"#, "invalid_request"),
        (r#"{"messages": []}"#, "invalid_request"),
        (
            r#"{"messages": [{"role": "tool", "content": "x"}]}"#,
            "invalid_request",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#,
            "invalid_request",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x"}], "temperature": 9}"#,
            "invalid_request",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}"#,
            "invalid_request",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x"}], "n": 3}"#,
            "invalid_request",
        ),
    ];
    for (body, code) in cases {
        let a = call(&ok_router(), post_json("/v1/chat/completions", body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.body);
        assert_openai_error(&a.body, "invalid_request_error", code);
    }
    let big = format!(
        r#"{{"messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "x".repeat(100_000)
    );
    let a = call(&ok_router(), post_json("/v1/chat/completions", big)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert_openai_error(&a.body, "invalid_request_error", "body_too_large");
}

#[tokio::test]
async fn no_model_is_a_clear_503_and_back_end_failures_hide_internals() {
    let body = r#"{"messages": [{"role": "user", "content": "x"}]}"#;
    let a = call(
        &router(None, HttpConfig::default()),
        post_json("/v1/chat/completions", body),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_openai_error(&a.body, "server_error", "model_not_configured");

    let failing = |fail| router(Some(Scripted { fail: Some(fail) }), HttpConfig::default());
    let down = LlmError::Unavailable {
        backend: "openai:x".into(),
        detail: "connect to 10.0.0.7:443 refused".into(),
    };
    for stream in [false, true] {
        let body = json!({"messages": [{"role": "user", "content": "x"}], "stream": stream});
        let a = call(
            &failing(down.clone()),
            post_json("/v1/chat/completions", body.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY);
        assert_openai_error(&a.body, "server_error", "backend_unavailable");
        assert!(!a.body.to_string().contains("10.0.0.7"), "{}", a.body);
    }
    let slow = LlmError::Timeout {
        backend: "x".into(),
        after: std::time::Duration::from_secs(1),
    };
    let a = call(&failing(slow), post_json("/v1/chat/completions", body)).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn keys_are_required_when_configured() {
    let config = HttpConfig {
        api_keys: vec!["k1".into()],
        ..HttpConfig::default()
    };
    let r = router(Some(Scripted { fail: None }), config);
    let body = r#"{"messages": [{"role": "user", "content": "x"}]}"#;
    let a = call(&r, post_json("/v1/chat/completions", body)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer k1")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(call(&r, request).await.status, StatusCode::OK);
}
