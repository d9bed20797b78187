//! Tests of the HTTP layer against an in-memory [`Conversations`] double.
//!
//! The double echoes, can be told to fail with any [`SendError`] or to panic, detects duplicate
//! message ids and records everything it received, which is all the HTTP layer can observe of
//! the session layer. End-to-end tests with real session actors live in `tests/`.

mod openai;
mod openapi;
mod rest;
mod ws;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use kefu_actors::api::{
    ConversationView, Conversations, Inbound, NluView, Reply, SendError, TranscriptEntry,
    TurnOutcome,
};
use kefu_actors::llm::StreamPiece;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, HttpConfig, app};

/// Text that makes the double panic, to test the panic guard.
const PANIC_TEXT: &str = "__panic__";
/// Texts starting with this make the double wait a little, to test ordering.
const SLOW_PREFIX: &str = "slow";
/// Texts starting with this get two replies, to test list shapes.
const MULTI_PREFIX: &str = "multi";
/// Texts starting with this are answered only once the gate is open, to hold turns in flight.
const GATE_PREFIX: &str = "gate";
/// Texts starting with this stream each following word as a delta (`!` as a retraction) before
/// they are answered, to test streamed frames.
const STREAM_PREFIX: &str = "stream ";

/// In-memory stand-in for the session layer.
#[derive(Default)]
pub(super) struct FakeConversations {
    received: Mutex<Vec<Inbound>>,
    fail_with: Mutex<Option<SendError>>,
    outcomes: Mutex<HashMap<(String, String), TurnOutcome>>,
    not_ready: AtomicBool,
    last_limit: Mutex<Option<usize>>,
    /// Gated turns wait until this is `true`.
    gate: tokio::sync::watch::Sender<bool>,
}

impl FakeConversations {
    /// Makes every following `send` fail with `err` (until cleared with `None`).
    pub(super) fn fail_with(&self, err: Option<SendError>) {
        *self.fail_with.lock().unwrap() = err;
    }

    /// Everything `send` was given, in order.
    pub(super) fn received(&self) -> Vec<Inbound> {
        self.received.lock().unwrap().clone()
    }

    /// Sets what `ready` answers.
    pub(super) fn set_ready(&self, ready: bool) {
        self.not_ready.store(!ready, Ordering::SeqCst);
    }

    /// Opens (or closes) the gate that turns of [`GATE_PREFIX`] texts wait on.
    pub(super) fn set_gate(&self, open: bool) {
        self.gate.send_replace(open);
    }

    /// The transcript limit of the last `conversation` call.
    pub(super) fn last_limit(&self) -> Option<usize> {
        *self.last_limit.lock().unwrap()
    }
}

#[async_trait]
impl Conversations for FakeConversations {
    async fn send(&self, msg: Inbound) -> Result<TurnOutcome, SendError> {
        assert!(msg.text != PANIC_TEXT, "the double was told to panic");
        if let Some(err) = self.fail_with.lock().unwrap().clone() {
            return Err(err);
        }
        // Like the session registry, the double takes the message at once (on the call's first
        // poll) and does the slow part afterwards, so `received` is the order of arrival.
        let id = (msg.session.clone(), msg.message_id.clone());
        let stored = self.outcomes.lock().unwrap().get(&id).cloned();
        let outcome = match stored {
            Some(done) => TurnOutcome {
                duplicate: true,
                ..done
            },
            None => self.take(&msg),
        };
        if msg.text.starts_with(SLOW_PREFIX) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if msg.text.starts_with(GATE_PREFIX) {
            let mut open = self.gate.subscribe();
            let _ = open.wait_for(|open| *open).await;
        }
        if let (Some(pieces), Some(rest)) = (&msg.stream, msg.text.strip_prefix(STREAM_PREFIX)) {
            for word in rest.split_whitespace() {
                let piece = if word == "!" {
                    StreamPiece::Retract
                } else {
                    StreamPiece::Delta(word.to_owned())
                };
                // A socket that went away stops listening; the turn still completes.
                let _ = pieces.sender().send(piece).await;
            }
        }
        Ok(outcome)
    }

    async fn conversation(
        &self,
        session: &str,
        transcript_limit: usize,
    ) -> Result<Option<ConversationView>, SendError> {
        *self.last_limit.lock().unwrap() = Some(transcript_limit);
        if let Some(err) = self.fail_with.lock().unwrap().clone() {
            return Err(err);
        }
        let received = self.received.lock().unwrap();
        let mine: Vec<&Inbound> = received.iter().filter(|m| m.session == session).collect();
        let Some(first) = mine.first() else {
            return Ok(None);
        };
        let transcript: Vec<TranscriptEntry> = mine
            .iter()
            .enumerate()
            .map(|(i, m)| TranscriptEntry {
                seq: i as u64 + 1,
                role: "user".into(),
                text: m.text.clone(),
                at_ms: 0,
                message_id: m.message_id.clone(),
            })
            .collect();
        let skip = transcript.len().saturating_sub(transcript_limit);
        Ok(Some(ConversationView {
            session: session.to_owned(),
            user: first.user.clone(),
            seq: mine.len() as u64,
            transcript: transcript.into_iter().skip(skip).collect(),
            state: json!({"active_flow": null}),
            parked: false,
        }))
    }

    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }
}

impl FakeConversations {
    /// Records a new message and builds its (echo) outcome.
    fn take(&self, msg: &Inbound) -> TurnOutcome {
        let mut received = self.received.lock().unwrap();
        received.push(msg.clone());
        let seq = received.iter().filter(|m| m.session == msg.session).count() as u64;
        let mut replies = vec![Reply {
            text: format!("echo: {}", msg.text),
        }];
        if msg.text.starts_with(MULTI_PREFIX) {
            replies.push(Reply {
                text: "second".into(),
            });
        }
        let outcome = TurnOutcome {
            session: msg.session.clone(),
            message_id: msg.message_id.clone(),
            replies,
            duplicate: false,
            seq,
            nlu: Some(NluView {
                intent: Some("echo".into()),
                confidence: 0.5,
                lang: "en".into(),
            }),
            active_flow: None,
            failed: false,
        };
        let id = (msg.session.clone(), msg.message_id.clone());
        self.outcomes.lock().unwrap().insert(id, outcome.clone());
        outcome
    }
}

/// A router over a fresh double.
pub(super) fn test_app(config: HttpConfig) -> (Router, Arc<FakeConversations>) {
    let (state, fake) = test_state(config);
    (app(state), fake)
}

/// The app state over a fresh double (for [`crate::http::serve`]).
pub(super) fn test_state(config: HttpConfig) -> (AppState, Arc<FakeConversations>) {
    let fake = Arc::new(FakeConversations::default());
    (AppState::new(fake.clone(), config), fake)
}

/// A response, with its body parsed as JSON (`Value::Null` when it is not JSON).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Value,
}

/// Sends one request through the router, without a socket.
pub(super) async fn call(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// A JSON POST.
pub(super) fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

/// A GET.
pub(super) fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Asserts the exact error shape `{"error": {"code", "message"}}` with this status and code.
#[track_caller]
pub(super) fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "body: {}", answer.body);
    assert_eq!(
        answer.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let object = answer
        .body
        .as_object()
        .expect("error body is a JSON object");
    assert_eq!(
        object.len(),
        1,
        "only `error` at top level: {}",
        answer.body
    );
    let error = object["error"].as_object().expect("`error` is an object");
    assert_eq!(error.len(), 2, "only code and message: {}", answer.body);
    assert_eq!(error["code"], code, "body: {}", answer.body);
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message is a non-empty string: {}",
        answer.body
    );
}
