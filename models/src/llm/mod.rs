//! Generation: language-model back-ends behind one trait, and the helpers that keep what goes
//! in and out of a model safe (grounded prompts, PII masking, output moderation, token counts).
//!
//! - [`LlmBackend`] — `complete` and `stream` over an [`LlmRequest`] (system/user/assistant
//!   messages, `max_tokens`, temperature, stop sequences, model); implemented by
//!   [`OpenAiBackend`] (any OpenAI-compatible server) and, with the `llama` feature,
//!   `LlamaBackend` (llama.cpp in-process, several sessions decoded in one batch).
//! - [`wire`] — the OpenAI chat-completions format, shared by the client and kefu's endpoint.
//! - [`PromptBuilder`] — the system prompt first and unoverridable, knowledge-base passages
//!   quoted as reference data, the conversation window cut to a token budget.
//! - [`PiiMasker`] — phone numbers, ID numbers, bank cards, e-mails replaced by placeholders
//!   before text leaves the machine, restored in the reply.
//! - [`Moderator`] — a blocklist and a leak check (system prompt, planted secrets) run on every
//!   answer before a user sees it.
//!
//! Back-ends are `Send + Sync` and shared as `Arc<dyn LlmBackend>`; policies that span calls
//! (queues, budgets, breakers, the degradation ladder) live in kefu-actors' LLM service.

mod backend;
mod config;
mod error;
#[cfg(feature = "llama")]
mod llama;
mod moderation;
mod openai;
mod pii;
mod prompt;
mod tokens;
mod types;
pub mod wire;

pub use backend::{LlmBackend, TokenStream, collect_stream, completion_stream};
pub use config::{LlamaConfig, LlmBackends, LlmConfig};
pub use error::LlmError;
#[cfg(feature = "llama")]
pub use llama::LlamaBackend;
pub use moderation::{ModerationVerdict, Moderator, ModeratorConfig};
pub use openai::{OpenAiBackend, OpenAiConfig};
pub use pii::{PiiKind, PiiMasker, PiiVault};
pub use prompt::{Passage, PromptBuilder, PromptParts};
pub use tokens::{CharEstimate, HfTokenCounter, TokenCounter};
pub use types::{
    ChatMessage, Completion, FinishReason, LlmRequest, MAX_STOP_SEQUENCES, MAX_TOKENS_LIMIT, Role,
    StreamEvent, Usage,
};
