//! What a generation request and its answer look like, independent of any back-end.
//!
//! Invariants: a [`LlmRequest`] that passed [`LlmRequest::validate`] has at least one message,
//! a positive `max_tokens` and a finite temperature in `0..=2`; token counts in [`Usage`] are
//! what the back-end reported (or counted itself), never estimates passed off as exact.

use serde::{Deserialize, Serialize};

use super::LlmError;

/// Largest `max_tokens` a request may ask for: a guard against a runaway generation, far above
/// what a customer-service reply needs.
pub const MAX_TOKENS_LIMIT: u32 = 8192;
/// Most stop sequences per request (OpenAI's limit).
pub const MAX_STOP_SEQUENCES: usize = 4;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the operator (the bot), never from the user.
    System,
    /// The end user.
    User,
    /// The model (earlier replies).
    Assistant,
}

impl Role {
    /// The OpenAI wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// One generation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRequest {
    /// The model to use; `None` means the back-end's configured model.
    pub model: Option<String>,
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature; `None` means the back-end's default. `0` is greedy.
    pub temperature: Option<f32>,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
}

impl LlmRequest {
    /// A request with the back-end's model, no stop sequences and the default temperature.
    pub fn new(messages: Vec<ChatMessage>, max_tokens: u32) -> Self {
        Self {
            model: None,
            messages,
            max_tokens,
            temperature: None,
            stop: Vec::new(),
        }
    }

    /// Checks the invariants every back-end relies on.
    pub fn validate(&self) -> Result<(), LlmError> {
        let invalid = |reason: String| Err(LlmError::InvalidRequest { reason });
        if self.messages.is_empty() {
            return invalid("at least one message is needed".into());
        }
        if self.max_tokens == 0 || self.max_tokens > MAX_TOKENS_LIMIT {
            return invalid(format!(
                "max_tokens must be 1 to {MAX_TOKENS_LIMIT}, not {}",
                self.max_tokens
            ));
        }
        if let Some(t) = self.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return invalid(format!("temperature must be 0 to 2, not {t}"));
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return invalid(format!("at most {MAX_STOP_SEQUENCES} stop sequences"));
        }
        if self.stop.iter().any(String::is_empty) {
            return invalid("stop sequences must not be empty".into());
        }
        Ok(())
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer or hit a stop sequence.
    Stop,
    /// `max_tokens` (or the context) ran out.
    Length,
    /// The back-end's or our moderation withheld the text.
    ContentFilter,
}

impl FinishReason {
    /// The OpenAI wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content_filter",
        }
    }
}

/// Tokens used by one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

impl Usage {
    /// Prompt plus completion.
    pub fn total(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The generated text.
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens used.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
}

/// One event of a streamed generation: text deltas, then exactly one `Done` (unless an error
/// ends the stream first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StreamEvent {
    /// The next piece of text (one or more tokens, always whole UTF-8 characters).
    Delta(String),
    /// The generation ended.
    Done {
        /// Why.
        finish_reason: FinishReason,
        /// Tokens used.
        usage: Usage,
    },
}
