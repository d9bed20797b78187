//! The OpenAI chat-completions wire format, shared by kefu's OpenAI-compatible client (what it
//! sends and parses) and its `/v1/chat/completions` endpoint (what it parses and sends), so the
//! two sides cannot drift apart.
//!
//! Invariants: parsing is lenient where real clients differ (unknown fields are ignored,
//! `content` may be a string or a list of text parts, `stop` a string or a list,
//! `max_completion_tokens` is accepted for `max_tokens`, `developer` means `system`) and strict
//! where meaning would be lost (tool, function and image content are refused, not dropped).

use serde::{Deserialize, Serialize};

use super::{ChatMessage, Completion, FinishReason, LlmError, LlmRequest, Role, Usage};

/// `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<WireMessage>,
    /// Most tokens to generate (legacy name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Most tokens to generate (current name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Whether to stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Number of choices; only 1 is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
}

/// `stream_options` of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// One message on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// `system`, `developer`, `user`, `assistant` (others are refused).
    pub role: String,
    /// The text: a string, a list of parts, or null.
    #[serde(default)]
    pub content: Option<Content>,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts; only `{"type": "text", "text": ...}` is supported.
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// The part's type (`text`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl ChatCompletionRequest {
    /// The wire form of `req` (what the client sends).
    pub fn from_request(req: &LlmRequest, model: &str, stream: bool) -> Self {
        Self {
            model: Some(req.model.clone().unwrap_or_else(|| model.to_owned())),
            messages: req
                .messages
                .iter()
                .map(|m| WireMessage {
                    role: m.role.as_str().to_owned(),
                    content: Some(Content::Text(m.content.clone())),
                })
                .collect(),
            max_tokens: Some(req.max_tokens),
            max_completion_tokens: None,
            temperature: req.temperature,
            stop: (!req.stop.is_empty()).then(|| Stop::Many(req.stop.clone())),
            stream: stream.then_some(true),
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
            n: None,
        }
    }

    /// The back-end request this wire request asks for (what the endpoint runs); `default_max`
    /// applies when the client sets no token limit. Errors name the offending field.
    pub fn into_request(self, default_max: u32) -> Result<LlmRequest, LlmError> {
        let invalid = |reason: String| LlmError::InvalidRequest { reason };
        if self.n.is_some_and(|n| n != 1) {
            return Err(invalid("n: only one choice is supported".into()));
        }
        let messages = self
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let role = match m.role.as_str() {
                    "system" | "developer" => Role::System,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    other => {
                        return Err(invalid(format!(
                            "messages[{i}].role: `{other}` is not supported"
                        )));
                    }
                };
                let content = match m.content {
                    None => String::new(),
                    Some(Content::Text(text)) => text,
                    Some(Content::Parts(parts)) => {
                        let mut text = String::new();
                        for part in parts {
                            match (part.kind.as_str(), part.text) {
                                ("text", Some(t)) => text.push_str(&t),
                                (kind, _) => {
                                    return Err(invalid(format!(
                                        "messages[{i}].content: `{kind}` parts are not supported"
                                    )));
                                }
                            }
                        }
                        text
                    }
                };
                Ok(ChatMessage { role, content })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let req = LlmRequest {
            model: self.model.filter(|m| !m.is_empty()),
            messages,
            max_tokens: self
                .max_completion_tokens
                .or(self.max_tokens)
                .unwrap_or(default_max),
            temperature: self.temperature,
            stop: match self.stop {
                None => Vec::new(),
                Some(Stop::One(s)) => vec![s],
                Some(Stop::Many(v)) => v,
            },
        };
        req.validate()?;
        Ok(req)
    }
}

/// Token usage on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

impl From<Usage> for WireUsage {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total(),
        }
    }
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }
    }
}

/// The answer's message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    pub role: String,
    /// The text (null when the model only called tools, which kefu never asks for).
    #[serde(default)]
    pub content: Option<String>,
}

/// One choice of a non-streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Its index (0).
    pub index: u32,
    /// The message.
    pub message: ResponseMessage,
    /// Why it ended (`stop`, `length`, `content_filter`, `tool_calls`...).
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A non-streamed answer (`object: chat.completion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    /// The completion id.
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// The choices (one).
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

impl ChatCompletionResponse {
    /// The wire form of a completion (what the endpoint sends).
    pub fn from_completion(id: String, created: u64, c: Completion) -> Self {
        Self {
            id,
            object: "chat.completion".into(),
            created,
            model: c.model,
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant".into(),
                    content: Some(c.text),
                },
                finish_reason: Some(c.finish_reason.as_str().into()),
            }],
            usage: Some(c.usage.into()),
        }
    }

    /// The completion this answer carries (what the client returns).
    pub fn into_completion(self, backend: &str) -> Result<Completion, LlmError> {
        let model = self.model;
        let usage = self.usage.map(Usage::from).unwrap_or_default();
        let choice = self
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Protocol {
                backend: backend.to_owned(),
                detail: "the answer has no choices".into(),
            })?;
        Ok(Completion {
            text: choice.message.content.unwrap_or_default(),
            finish_reason: parse_finish_reason(choice.finish_reason.as_deref()),
            usage,
            model,
        })
    }
}

/// A streamed chunk's delta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant` on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The next text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// One choice of a streamed chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Its index (0).
    pub index: u32,
    /// The new text.
    pub delta: Delta,
    /// Set on the last content chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One streamed chunk (`object: chat.completion.chunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// The completion id (same on every chunk).
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model.
    pub model: String,
    /// The choices (one; none on the usage chunk).
    pub choices: Vec<ChunkChoice>,
    /// Token usage, on the last chunk when `include_usage` was asked for.
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

impl ChatCompletionChunk {
    /// A chunk with one choice.
    pub fn new(
        id: &str,
        created: u64,
        model: &str,
        delta: Delta,
        finish: Option<FinishReason>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            object: "chat.completion.chunk".into(),
            created,
            model: model.to_owned(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(|f| f.as_str().to_owned()),
            }],
            usage: None,
        }
    }
}

/// Maps a wire finish reason to ours; anything unknown (tool calls, a missing value) counts as
/// a normal stop because the text is all kefu uses.
pub fn parse_finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Human text.
    pub message: String,
    /// `invalid_request_error`, `server_error`...
    #[serde(rename = "type")]
    pub kind: String,
    /// The offending parameter, if one.
    pub param: Option<String>,
    /// A stable code.
    pub code: Option<String>,
}
