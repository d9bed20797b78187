//! The LLM actor: every generation a session asks for goes through one [`LlmService`], which
//! owns the policies that span calls — a queue with a concurrency limit per back-end, token
//! budgets per session and per tenant, timeouts, a circuit breaker per back-end, cancellation
//! when the user interrupts, and the degradation ladder
//! (remote model → local model → knowledge-base answer → template → human).
//!
//! It is a cloneable handle rather than a ractor mailbox on purpose: generations are long and
//! independent, and a mailbox would serialise them (defeating the local model's batching);
//! its shared state is small and guarded by short, never-awaited locks. Sessions call
//! [`LlmService::generate`] from a spawned task and get the result back as a message, so a
//! session's mailbox never waits on a model.
//!
//! Invariants:
//! - `generate` always answers (the human rung cannot fail) unless it was superseded: a newer
//!   `generate` for the same session, or [`LlmService::cancel`], cancels the older one, which
//!   returns [`GenerateError::Cancelled`] promptly and stops its back-end call.
//! - The answer says which rung answered and why every rung above it did not
//!   ([`LlmAnswer::degraded`]), for the turn record.
//! - Text sent to the remote back-end has personal data masked ([`kefu_models::llm::PiiMasker`]);
//!   the reply is restored before anyone sees it.
//! - Nothing reaches the user (stream or answer) before the moderator passed it; streamed text
//!   is held back by [`kefu_models::llm::Moderator::holdback_chars`], and when a rung fails
//!   after some text was streamed, or the generation is cancelled after streaming some,
//!   [`StreamPiece::Retract`] tells the channel to drop it.
//! - A flow's `generate:` step goes through [`generate_for_flow`], which maps the ladder onto
//!   the flow (its own `fallback:` is the template rung) and gives the turn record its line.
//! - When the classifier is unsure between flows, [`choose_intent`] may ask the model to pick
//!   one of the bot's intents (strictly validated, time-boxed).
//! - The model rungs share one deadline (`ladder_deadline_ms`), so a hanging back-end delays
//!   the answer by at most that, and an open breaker by nothing.

mod breaker;
mod budget;
mod flow;
mod intents;
mod service;

pub use breaker::{BreakerState, CircuitBreaker};
pub use budget::{BudgetScope, TokenBudgets};
pub use flow::{FlowGenerated, FlowGeneration, INTERRUPTED, NOT_CONFIGURED, generate_for_flow};
pub use intents::{
    INTENT_CHOICE_TIMEOUT, IntentCandidate, IntentChoice, IntentQuestion, choose_intent,
    intent_candidates,
};
pub use service::{
    DegradeReason, GenerateError, GenerateRequest, LlmAnswer, LlmService, LlmServiceConfig,
    ModelRungs, Rung, RungSkip, StreamPiece,
};
