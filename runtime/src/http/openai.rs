//! `POST /v1/chat/completions`: kefu's configured model behind the OpenAI chat-completions
//! protocol, so existing OpenAI clients (the official SDKs, another kefu's OpenAI back-end) can
//! use it.
//!
//! Non-streaming requests get one `chat.completion` object; `"stream": true` gets server-sent
//! events: a first chunk with the assistant role, one chunk per text delta, a last chunk with the
//! finish reason, a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`.
//!
//! Invariants: every error has OpenAI's shape (`{"error": {"message", "type", "param",
//! "code"}}`), so OpenAI clients raise their usual exceptions; internals (back-end addresses,
//! transport errors) are logged, never sent; without a configured model the answer is 503
//! `model_not_configured`; a client that goes away mid-stream stops the generation (the token
//! stream is dropped with the response).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kefu_models::llm::wire::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Delta, ErrorBody,
    ErrorDetail, WireUsage,
};
use kefu_models::llm::{LlmError, StreamEvent};

use super::AppState;

/// `max_tokens` when the client sets none: enough for a customer-service answer.
const DEFAULT_MAX_TOKENS: u32 = 512;

/// An error in OpenAI's shape.
#[derive(Debug)]
pub(crate) struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    param: Option<&'static str>,
    message: String,
}

impl OpenAiError {
    fn invalid(code: &'static str, message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code,
            param: None,
            message,
        }
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.kind.to_owned(),
                param: self.param.map(str::to_owned),
                code: Some(self.code.to_owned()),
            },
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<LlmError> for OpenAiError {
    fn from(err: LlmError) -> Self {
        let code = err.code();
        let server = |status, kind, message: &str| {
            tracing::warn!(error = %err, "Chat completion failed");
            Self {
                status,
                kind,
                code,
                param: None,
                message: message.to_owned(),
            }
        };
        match &err {
            LlmError::InvalidRequest { reason } => Self::invalid(code, reason.clone()),
            LlmError::ContextOverflow { .. } => Self {
                param: Some("messages"),
                ..Self::invalid(code, err.to_string())
            },
            LlmError::Api {
                client_fault: true,
                message,
                ..
            } => Self::invalid(code, format!("the model refused the request: {message}")),
            LlmError::Timeout { .. } => server(
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "the model did not answer in time",
            ),
            LlmError::Overloaded { .. } => server(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the model is overloaded; retry later",
            ),
            LlmError::Unavailable { .. } | LlmError::Api { .. } | LlmError::Protocol { .. } => {
                server(
                    StatusCode::BAD_GATEWAY,
                    "server_error",
                    "the model's back-end failed",
                )
            }
            LlmError::Config { .. } | LlmError::Model { .. } | LlmError::Cancelled => server(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the model failed",
            ),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The handler of `POST /v1/chat/completions`.
pub(crate) async fn chat_completions_post(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OpenAiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..OpenAiError::invalid(
                    "body_too_large",
                    format!(
                        "the request body is larger than {} bytes",
                        state.config.max_body_bytes
                    ),
                )
            }
        } else {
            OpenAiError::invalid(
                "unreadable_body",
                "the request body could not be read".into(),
            )
        }
    })?;
    let wire: ChatCompletionRequest = serde_json::from_slice(&body).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Data => "invalid_request",
            Category::Syntax | Category::Eof | Category::Io => "invalid_json",
        };
        OpenAiError::invalid(code, format!("the request body is not valid: {e}"))
    })?;
    let stream = wire.stream.unwrap_or(false);
    let include_usage = wire.stream_options.is_some_and(|o| o.include_usage);
    let req = wire.into_request(DEFAULT_MAX_TOKENS)?;
    // Bad input is the client's to fix whether or not a model is configured: check it first.
    let Some(backend) = state.llm.clone() else {
        return Err(OpenAiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            code: "model_not_configured",
            param: None,
            message: "no language model is configured on this server (see [llm] in the config)"
                .into(),
        });
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();

    if !stream {
        let completion = backend.complete(req).await?;
        return Ok(axum::Json(ChatCompletionResponse::from_completion(
            id, created, completion,
        ))
        .into_response());
    }

    // Start the generation before answering 200, so that a back-end that is down gets a proper
    // error status instead of a stream that fails at once.
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| backend.default_model().to_owned());
    let mut tokens = backend.stream(req).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(32);
    tokio::spawn(async move {
        let chunk =
            |delta: Delta, finish| ChatCompletionChunk::new(&id, created, &model, delta, finish);
        let json = |value: &ChatCompletionChunk| serde_json::to_string(value).unwrap_or_default();
        let first = chunk(
            Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
            },
            None,
        );
        if tx.send(json(&first)).await.is_err() {
            return;
        }
        while let Some(event) = tokens.next().await {
            let data = match event {
                Ok(StreamEvent::Delta(text)) => json(&chunk(
                    Delta {
                        role: None,
                        content: Some(text),
                    },
                    None,
                )),
                Ok(StreamEvent::Done {
                    finish_reason,
                    usage,
                }) => {
                    if tx
                        .send(json(&chunk(Delta::default(), Some(finish_reason))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if include_usage {
                        let mut last = chunk(Delta::default(), None);
                        last.choices.clear();
                        last.usage = Some(WireUsage::from(usage));
                        if tx.send(json(&last)).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send("[DONE]".to_owned()).await;
                    return;
                }
                Err(err) => {
                    // The status line is gone; OpenAI clients raise on an `error` event.
                    let body = OpenAiError::from(err).body();
                    let _ = tx
                        .send(serde_json::to_string(&body).unwrap_or_default())
                        .await;
                    return;
                }
            };
            // A send error means the client went away: dropping `tokens` stops the model.
            if tx.send(data).await.is_err() {
                return;
            }
        }
        let body = OpenAiError::from(LlmError::Protocol {
            backend: "stream".into(),
            detail: "the generation ended without a finish reason".into(),
        })
        .body();
        let _ = tx
            .send(serde_json::to_string(&body).unwrap_or_default())
            .await;
    });
    let events = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|data| Ok::<_, std::convert::Infallible>(Event::default().data(data)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
