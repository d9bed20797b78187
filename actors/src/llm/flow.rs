//! A flow's `generate:` step on the [`LlmService`]: what the engine asks, and what the flow
//! and the turn record get back.
//!
//! The flow's own `fallback:` text is the ladder's template rung, so the request carries no
//! template: when the ladder comes down to the template or the human rung, the flow is told
//! that generation failed and answers (or saves) its `fallback:` — the flow decides, not the
//! service. Model and knowledge-base answers are given to the flow as generated text.
//!
//! Invariants:
//! - The request is keyed by the turn's `(tenant, session)`, the same key every other
//!   generation of the session uses, so a newer generation of the session supersedes an older
//!   one (the service cancels by that key).
//! - Text is streamed only when the step *says* it (no `save:`) and the channel gave a sink;
//!   text saved into a slot is never shown while it is generated.
//! - Every call yields one line for the turn record: which rung answered and why the ones above
//!   did not ([`LlmAnswer::reason`]), or why the flow's fallback was used.
//! - A generation cancelled because a newer user message arrived (the session registry calls
//!   [`crate::handler::TurnHandler::interrupt`], the engine [`LlmService::cancel`]) comes back
//!   as [`FlowGenerated::interrupted`]: the service has retracted what it streamed, and the
//!   flow leaves a said text unsaid (a saved one takes the step's `fallback:`).
//! - The step's own `max_tokens:`/`temperature:` go to the request as given; absent, the
//!   service's defaults apply (its `max_tokens`, the back-end's temperature).

use kefu_models::llm::{ChatMessage, Passage, PromptParts};

use super::{GenerateError, GenerateRequest, LlmAnswer, LlmService, Rung};
use crate::api::TurnStream;

/// One `generate:` step of a flow, as the engine hands it over.
#[derive(Debug, Clone, Copy)]
pub struct FlowGeneration<'a> {
    /// The tenant of the conversation (budgets, cancellation key).
    pub tenant: &'a str,
    /// The conversation's key (budgets, cancellation key).
    pub session: &'a str,
    /// The step's rendered instruction.
    pub prompt: &'a str,
    /// The step's grounding passages, most relevant first (empty ones already left out).
    pub context: &'a [String],
    /// True when the text will be said (no `save:`): only then is it streamed.
    pub said: bool,
    /// The user's current message.
    pub user: &'a str,
    /// The conversation before this message, oldest first.
    pub history: &'a [ChatMessage],
    /// The channel's sink for streamed text, if it takes any.
    pub stream: Option<&'a TurnStream>,
    /// The step's `max_tokens:` (answer length); `None` uses the service's default.
    pub max_tokens: Option<u32>,
    /// The step's `temperature:`; `None` leaves it to the back-end.
    pub temperature: Option<f32>,
}

/// What a generation gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowGenerated {
    /// The text for the flow, or why generation failed (the flow then uses its `fallback:`).
    pub result: Result<String, String>,
    /// One line for the turn record, e.g. `remote`, `local (remote: circuit_open)` or
    /// `fallback (remote: backend_error code=server; local: not_configured; ...)`.
    pub record: String,
    /// True when a newer user message cancelled the generation ([`INTERRUPTED`]): the flow
    /// says nothing for the step (a saved text takes its fallback).
    pub interrupted: bool,
}

/// The record of a generation a newer user message cancelled.
pub const INTERRUPTED: &str = "interrupted: a newer message arrived";

/// The record of a turn that generates without a service: the flow's fallback answers.
pub const NOT_CONFIGURED: &str = "fallback (no language model configured)";

impl FlowGenerated {
    /// The outcome when no language model is configured: the flow's fallback answers.
    pub fn not_configured() -> Self {
        Self {
            result: Err("no language model configured".to_owned()),
            record: NOT_CONFIGURED.to_owned(),
            interrupted: false,
        }
    }

    /// The outcome of a generation a newer user message cancelled.
    pub fn interrupted() -> Self {
        Self {
            result: Err("interrupted by a newer message".to_owned()),
            record: INTERRUPTED.to_owned(),
            interrupted: true,
        }
    }
}

/// Runs one `generate:` step on `service`; see the module invariants.
pub async fn generate_for_flow(service: &LlmService, step: FlowGeneration<'_>) -> FlowGenerated {
    let passages = step
        .context
        .iter()
        .enumerate()
        .map(|(i, text)| Passage {
            source: format!("step context {}", i + 1),
            text: text.clone(),
        })
        .collect();
    let instructions = step.prompt.trim();
    let request = GenerateRequest {
        tenant: step.tenant.to_owned(),
        session: step.session.to_owned(),
        prompt: PromptParts {
            step_instructions: (!instructions.is_empty()).then(|| instructions.to_owned()),
            passages,
            history: step.history.to_vec(),
            user: step.user.to_owned(),
        },
        max_tokens: step.max_tokens,
        temperature: step.temperature,
        // The flow's `fallback:` is the template rung; see the module docs.
        template: None,
        stream: step
            .stream
            .filter(|_| step.said)
            .map(|s| s.sender().clone()),
    };
    let started = std::time::Instant::now();
    let generated = match service.generate(request).await {
        Ok(answer) => from_answer(&answer),
        // Within a session only one turn runs at a time, so what cancels a flow's generation
        // is the user's next message (or an explicit cancel on their behalf).
        Err(GenerateError::Cancelled { .. }) => FlowGenerated::interrupted(),
    };
    tracing::info!(
        session = %step.session,
        rung = %generated.record,
        said = step.said,
        ms = started.elapsed().as_millis() as u64,
        "Flow generation answered"
    );
    generated
}

/// Maps the ladder's answer onto the flow: model and knowledge-base answers are the generated
/// text; the template and human rungs mean "use your fallback".
fn from_answer(answer: &LlmAnswer) -> FlowGenerated {
    match answer.rung {
        Rung::Remote | Rung::Local | Rung::KnowledgeBase => FlowGenerated {
            result: Ok(answer.text.clone()),
            record: answer.reason(),
            interrupted: false,
        },
        Rung::Template | Rung::Human => {
            // The ladder's own last rungs (no template was given, so it ends at `human`) are
            // not what happened: the flow's fallback answered. Keep the model and knowledge
            // rungs' reasons, leave out the template rung's.
            let why = answer.skipped(|rung| rung != Rung::Template);
            FlowGenerated {
                result: Err(if why.is_empty() {
                    "no answer".to_owned()
                } else {
                    why.clone()
                }),
                record: if why.is_empty() {
                    "fallback".to_owned()
                } else {
                    format!("fallback ({why})")
                },
                interrupted: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{DegradeReason, RungSkip};
    use kefu_models::llm::Usage;

    fn answer(rung: Rung, degraded: Vec<RungSkip>) -> LlmAnswer {
        LlmAnswer {
            rung,
            text: if rung == Rung::Human {
                String::new()
            } else {
                "text".into()
            },
            usage: Usage::default(),
            degraded,
            pii_masked: 0,
        }
    }

    #[test]
    fn model_and_knowledge_answers_are_text_for_the_flow() {
        let got = from_answer(&answer(Rung::Remote, vec![]));
        assert_eq!(got.result, Ok("text".into()));
        assert_eq!(got.record, "remote");
        let got = from_answer(&answer(
            Rung::KnowledgeBase,
            vec![RungSkip {
                rung: Rung::Remote,
                reason: DegradeReason::CircuitOpen,
            }],
        ));
        assert_eq!(got.result, Ok("text".into()));
        assert_eq!(got.record, "knowledge_base (remote: circuit_open)");
    }

    #[test]
    fn the_human_rung_means_the_flow_fallback_answers() {
        let got = from_answer(&answer(
            Rung::Human,
            vec![
                RungSkip {
                    rung: Rung::Remote,
                    reason: DegradeReason::Timeout,
                },
                RungSkip {
                    rung: Rung::Local,
                    reason: DegradeReason::NotConfigured,
                },
                RungSkip {
                    rung: Rung::KnowledgeBase,
                    reason: DegradeReason::NoPassages,
                },
                RungSkip {
                    rung: Rung::Template,
                    reason: DegradeReason::NoTemplate,
                },
            ],
        ));
        assert_eq!(
            got.record,
            "fallback (remote: timeout; local: not_configured; knowledge_base: no_passages)"
        );
        assert!(got.result.is_err());
    }
}
