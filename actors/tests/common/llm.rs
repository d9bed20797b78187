//! Test language models: a back-end whose answers a closure gives (recording every request
//! it is sent), a text stream, a scripted failure, and the service the tests put them behind.

use std::sync::Arc;

use async_trait::async_trait;
use kefu_actors::llm::{LlmService, LlmServiceConfig, ModelRungs};
use kefu_models::llm::{
    Completion, FinishReason, LlmBackend, LlmError, LlmRequest, Moderator, ModeratorConfig,
    PromptBuilder, StreamEvent, TokenStream, Usage, collect_stream,
};
use parking_lot::Mutex;

/// What a [`FnBackend`] answers a request with.
type Answer = dyn Fn(&LlmRequest) -> Result<TokenStream, LlmError> + Send + Sync;

/// A back-end that answers with its closure and records what it was sent.
pub struct FnBackend {
    name: &'static str,
    answer: Box<Answer>,
    /// Every request, oldest first.
    pub seen: Mutex<Vec<LlmRequest>>,
}

impl FnBackend {
    pub fn new(
        name: &'static str,
        answer: impl Fn(&LlmRequest) -> Result<TokenStream, LlmError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            answer: Box::new(answer),
            seen: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl LlmBackend for FnBackend {
    fn name(&self) -> &str {
        self.name
    }
    fn default_model(&self) -> &str {
        self.name
    }
    async fn complete(&self, req: LlmRequest) -> Result<Completion, LlmError> {
        let stream = self.stream(req).await?;
        collect_stream(stream, self.name, self.name).await
    }
    async fn stream(&self, req: LlmRequest) -> Result<TokenStream, LlmError> {
        let answer = (self.answer)(&req);
        self.seen.lock().push(req);
        answer
    }
}

/// `text` streamed in pieces of `chunk_chars` characters (0: one piece), then done.
pub fn text_stream(text: &str, chunk_chars: usize) -> TokenStream {
    let chars: Vec<char> = text.chars().collect();
    let size = if chunk_chars == 0 {
        chars.len().max(1)
    } else {
        chunk_chars
    };
    let mut events: Vec<Result<StreamEvent, LlmError>> = chars
        .chunks(size)
        .map(|c| Ok(StreamEvent::Delta(c.iter().collect())))
        .collect();
    events.push(Ok(StreamEvent::Done {
        finish_reason: FinishReason::Stop,
        usage: Usage {
            prompt_tokens: 20,
            completion_tokens: 5,
        },
    }));
    Box::pin(futures::stream::iter(events))
}

/// A stream that never yields: a hung model.
pub fn hung_stream() -> TokenStream {
    Box::pin(futures::stream::pending())
}

/// The error of a model that is down.
pub fn unavailable() -> LlmError {
    LlmError::Unavailable {
        backend: "scripted".into(),
        detail: "scripted failure".into(),
    }
}

/// The service with `backend` as its remote rung, the shop's system prompt and default
/// moderation.
pub fn service_over(backend: Arc<dyn LlmBackend>, config: LlmServiceConfig) -> LlmService {
    LlmService::new(
        config,
        ModelRungs {
            remote: Some(backend),
            local: None,
        },
        PromptBuilder::new("You are the shop's assistant.", 4096),
        Moderator::new(&ModeratorConfig::default(), "You are the shop's assistant."),
    )
}
