//! The one capability trait every generation back-end implements, and helpers around it.
//!
//! Invariants: `stream` yields zero or more [`StreamEvent::Delta`]s followed by exactly one
//! [`StreamEvent::Done`], or ends with an `Err` item; dropping the stream cancels the
//! generation (back-ends must not keep generating for nobody); `complete` and a collected
//! `stream` give the same text for the same request at temperature 0.

use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};

use super::{Completion, LlmError, LlmRequest, StreamEvent};

/// A stream of generation events; see the module invariants.
pub type TokenStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// A language-model back-end: remote (OpenAI-compatible) or in-process (llama.cpp).
#[async_trait]
pub trait LlmBackend: Send + Sync + 'static {
    /// A short name for logs and error messages (`openai:gpt-4o-mini`, `llama:tiny.gguf`).
    fn name(&self) -> &str;

    /// The model answered when a request does not name one.
    fn default_model(&self) -> &str;

    /// Generates the whole answer.
    async fn complete(&self, req: LlmRequest) -> Result<Completion, LlmError>;

    /// Generates the answer as a stream of text deltas.
    async fn stream(&self, req: LlmRequest) -> Result<TokenStream, LlmError>;
}

/// Collects a [`TokenStream`] into a [`Completion`]. A stream that ends without `Done` is a
/// protocol error: the back-end went away mid-answer.
pub async fn collect_stream(
    mut stream: TokenStream,
    backend: &str,
    model: &str,
) -> Result<Completion, LlmError> {
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(delta) => text.push_str(&delta),
            StreamEvent::Done {
                finish_reason,
                usage,
            } => {
                return Ok(Completion {
                    text,
                    finish_reason,
                    usage,
                    model: model.to_owned(),
                });
            }
        }
    }
    Err(LlmError::Protocol {
        backend: backend.to_owned(),
        detail: "the stream ended without a finish reason".into(),
    })
}

/// A stream that yields `completion` as one delta and its `Done`: for back-ends or fallbacks
/// that only produce whole answers.
pub fn completion_stream(completion: Completion) -> TokenStream {
    let Completion {
        text,
        finish_reason,
        usage,
        ..
    } = completion;
    let mut events = Vec::with_capacity(2);
    if !text.is_empty() {
        events.push(Ok(StreamEvent::Delta(text)));
    }
    events.push(Ok(StreamEvent::Done {
        finish_reason,
        usage,
    }));
    Box::pin(futures::stream::iter(events))
}
