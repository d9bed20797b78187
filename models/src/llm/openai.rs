//! The OpenAI-compatible back-end: any server speaking `POST {base}/chat/completions`
//! (OpenAI, vLLM, llama-server, another kefu), through `async-openai`'s client with kefu's own
//! wire types ([`super::wire`]) so the client and kefu's endpoint share one format.
//!
//! Invariants: the API key is never logged or printed (`Debug` redacts it); every call is
//! bounded in time (`timeout_ms` for a whole answer and for the first streamed chunk,
//! `stream_idle_ms` between chunks), so a hanging server costs at most those; dropping a
//! stream drops the HTTP response, which stops the remote generation; errors say whether they
//! are the server's fault (5xx, 429, transport) or ours (4xx).

use std::fmt;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;

use super::wire::{ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse};
use super::{
    Completion, FinishReason, LlmBackend, LlmError, LlmRequest, StreamEvent, TokenStream, Usage,
    wire,
};

/// Settings of the OpenAI-compatible back-end (`[llm.openai]` in kefu's config).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API base, up to and including the version: `https://api.openai.com/v1`,
    /// `http://127.0.0.1:8080/v1` for another kefu.
    pub base_url: String,
    /// The API key sent as `Authorization: Bearer`; empty sends none (local servers).
    #[serde(default)]
    pub api_key: String,
    /// The model asked for when a request does not name one.
    pub model: String,
    /// Most milliseconds for a whole non-streamed answer, and for the first streamed chunk.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most milliseconds between two streamed chunks.
    #[serde(default = "default_stream_idle_ms")]
    pub stream_idle_ms: u64,
    /// The model's `tokenizer.json` (Hugging Face format), for exact token counts of the
    /// conversation window; without one, a conservative estimate is used.
    #[serde(default)]
    pub tokenizer: Option<std::path::PathBuf>,
}

fn default_timeout_ms() -> u64 {
    20_000
}
fn default_stream_idle_ms() -> u64 {
    10_000
}

// Hand-written so the API key never reaches a log line.
impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field(
                "api_key",
                &if self.api_key.is_empty() {
                    ""
                } else {
                    "[redacted]"
                },
            )
            .field("model", &self.model)
            .field("timeout_ms", &self.timeout_ms)
            .field("stream_idle_ms", &self.stream_idle_ms)
            .field("tokenizer", &self.tokenizer)
            .finish()
    }
}

impl OpenAiConfig {
    /// A config for `base_url` and `model`, no key, default timeouts.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: String::new(),
            model: model.into(),
            timeout_ms: default_timeout_ms(),
            stream_idle_ms: default_stream_idle_ms(),
            tokenizer: None,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), LlmError> {
        let bad = |field, reason: &str| {
            Err(LlmError::Config {
                backend: "openai",
                field,
                reason: reason.to_owned(),
            })
        };
        let base = self.base_url.trim();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return bad("base_url", "must start with http:// or https://");
        }
        if self.model.trim().is_empty() {
            return bad("model", "must not be empty");
        }
        if self.timeout_ms == 0 || self.stream_idle_ms == 0 {
            return bad("timeout_ms", "timeouts must be positive");
        }
        Ok(())
    }
}

/// A back-end that calls an OpenAI-compatible server.
pub struct OpenAiBackend {
    client: Client<OpenAIConfig>,
    config: OpenAiConfig,
    name: String,
}

impl fmt::Debug for OpenAiBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OpenAiBackend {
    /// A back-end for `config` (validated here).
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        config.validate()?;
        let mut client_config =
            OpenAIConfig::new().with_api_base(config.base_url.trim().trim_end_matches('/'));
        if !config.api_key.is_empty() {
            client_config = client_config.with_api_key(config.api_key.clone());
        } else {
            // async-openai falls back to $OPENAI_API_KEY; an operator who left the key empty
            // must not have an unrelated key from the environment sent to a third party.
            client_config = client_config.with_api_key("");
        }
        Ok(Self {
            client: Client::with_config(client_config),
            name: format!("openai:{}", config.model),
            config,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    fn map_error(&self, err: OpenAIError) -> LlmError {
        map_openai_error(&self.name, err)
    }
}

/// Maps the client's errors to ours, deciding whose fault each is.
fn map_openai_error(backend: &str, err: OpenAIError) -> LlmError {
    let backend = backend.to_owned();
    match err {
        OpenAIError::ApiError(resp) => {
            let status = resp.status_code.as_u16();
            LlmError::Api {
                backend,
                code: resp
                    .api_error
                    .code
                    .clone()
                    .or_else(|| Some(format!("http_{status}"))),
                message: resp.api_error.message.clone(),
                // 429 and 5xx are the server's trouble; other 4xx mean our request was wrong.
                client_fault: (400..500).contains(&status) && status != 429 && status != 408,
            }
        }
        OpenAIError::Reqwest(e) => LlmError::Unavailable {
            backend,
            detail: e.to_string(),
        },
        OpenAIError::StreamError(e) => LlmError::Unavailable {
            backend,
            detail: e.to_string(),
        },
        OpenAIError::JSONDeserialize(e, _) => LlmError::Protocol {
            backend,
            detail: e.to_string(),
        },
        OpenAIError::InvalidArgument(detail) => LlmError::InvalidRequest { reason: detail },
        OpenAIError::FileSaveError(detail) | OpenAIError::FileReadError(detail) => {
            LlmError::Protocol { backend, detail }
        }
    }
}

#[async_trait]
impl LlmBackend for OpenAiBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn default_model(&self) -> &str {
        &self.config.model
    }

    async fn complete(&self, req: LlmRequest) -> Result<Completion, LlmError> {
        req.validate()?;
        let body = ChatCompletionRequest::from_request(&req, &self.config.model, false);
        let chat = self.client.chat();
        let call = chat.create_byot(body);
        let response: ChatCompletionResponse = tokio::time::timeout(self.timeout(), call)
            .await
            .map_err(|_| LlmError::Timeout {
                backend: self.name.clone(),
                after: self.timeout(),
            })?
            .map_err(|e| self.map_error(e))?;
        response.into_completion(&self.name)
    }

    async fn stream(&self, req: LlmRequest) -> Result<TokenStream, LlmError> {
        req.validate()?;
        let body = ChatCompletionRequest::from_request(&req, &self.config.model, true);
        let chat = self.client.chat();
        let call = chat.create_stream_byot(body);
        let upstream = tokio::time::timeout(self.timeout(), call)
            .await
            .map_err(|_| LlmError::Timeout {
                backend: self.name.clone(),
                after: self.timeout(),
            })?
            .map_err(|e| self.map_error(e))?;
        Ok(Box::pin(futures::stream::unfold(
            ChunkReader {
                upstream,
                backend: self.name.clone(),
                first_wait: self.timeout(),
                idle: Duration::from_millis(self.config.stream_idle_ms),
                seen_chunk: false,
                finish: None,
                usage: None,
                done: false,
            },
            ChunkReader::next_event,
        )))
    }
}

/// Turns the server's chunks into [`StreamEvent`]s: deltas as they come, then one `Done` with
/// the finish reason and usage (usage may come in a later chunk than the finish reason, so
/// `Done` is emitted when the server's stream ends).
struct ChunkReader {
    upstream: async_openai::types::stream::StreamResponse<ChatCompletionChunk>,
    backend: String,
    first_wait: Duration,
    idle: Duration,
    seen_chunk: bool,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl ChunkReader {
    async fn next_event(mut self) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        loop {
            if self.done {
                return None;
            }
            let wait = if self.seen_chunk {
                self.idle
            } else {
                self.first_wait
            };
            let next = match tokio::time::timeout(wait, self.upstream.next()).await {
                Err(_) => {
                    self.done = true;
                    let err = LlmError::Timeout {
                        backend: self.backend.clone(),
                        after: wait,
                    };
                    return Some((Err(err), self));
                }
                Ok(next) => next,
            };
            self.seen_chunk = true;
            match next {
                None => {
                    self.done = true;
                    let event = StreamEvent::Done {
                        finish_reason: self.finish.unwrap_or(FinishReason::Stop),
                        usage: self.usage.unwrap_or_default(),
                    };
                    return Some((Ok(event), self));
                }
                Some(Err(e)) => {
                    self.done = true;
                    let err = map_openai_error(&self.backend, e);
                    return Some((Err(err), self));
                }
                Some(Ok(chunk)) => {
                    if let Some(usage) = chunk.usage {
                        self.usage = Some(usage.into());
                    }
                    let mut text = String::new();
                    for choice in chunk.choices {
                        if let Some(content) = choice.delta.content {
                            text.push_str(&content);
                        }
                        if let Some(reason) = choice.finish_reason {
                            self.finish = Some(wire::parse_finish_reason(Some(&reason)));
                        }
                    }
                    if !text.is_empty() {
                        return Some((Ok(StreamEvent::Delta(text)), self));
                    }
                }
            }
        }
    }
}
