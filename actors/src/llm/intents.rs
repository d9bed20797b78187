//! Asking the language model to choose among the bot's intents when the classifier is unsure
//! (issue #4).
//!
//! The engine asks only between flows (a message answering a slot prompt is usually a value,
//! not an intent) and only when the classifier's top confidence is below the bot's
//! `intent_threshold`. The model sees the intent names with their descriptions (or a couple of
//! examples) as reference data and must answer exactly one name or `none`.
//!
//! Invariants:
//! - The answer is validated strictly: after trimming whitespace, quotes, backticks and a final
//!   full stop, it must equal a candidate's name (or `none`); anything else chooses nothing, so
//!   the model cannot invent an intent or smuggle one in a sentence.
//! - The whole choice is time-boxed ([`INTENT_CHOICE_TIMEOUT`]): a slow model costs the user at
//!   most that, then the turn goes on as if it had not been asked.
//! - Only model rungs count: a knowledge-base, template or human answer of the ladder chooses
//!   nothing.
//! - It goes through the same [`LlmService`] (budgets, breaker, PII masking, moderation) with
//!   the turn's `(tenant, session)` key.

use std::time::Duration;

use kefu_flows::Bot;
use kefu_models::llm::{Passage, PromptParts};

use super::{GenerateRequest, LlmService, Rung};

/// The most time one intent choice may take, the model's whole answer included.
pub const INTENT_CHOICE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Tokens the answer may take: one intent name.
const ANSWER_TOKENS: u32 = 16;

/// The instruction the model gets; the candidates follow as reference data.
const INSTRUCTION: &str = "Choose the intent of the user's message from the intents listed in the reference data. \
Answer with exactly one intent name as listed, or `none` if no intent fits. Answer with the name only, nothing else.";

/// An intent the model may choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentCandidate {
    /// The intent's name, as flows trigger on it.
    pub name: String,
    /// What it means: its description, or a few examples when it has none.
    pub meaning: String,
}

/// One intent choice of a turn.
#[derive(Debug, Clone, Copy)]
pub struct IntentQuestion<'a> {
    /// The tenant (budgets, cancellation key).
    pub tenant: &'a str,
    /// The conversation (budgets, cancellation key).
    pub session: &'a str,
    /// The user's message.
    pub user: &'a str,
    /// The intents to choose from.
    pub candidates: &'a [IntentCandidate],
}

/// What the model chose, with a line for the turn record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentChoice {
    /// The chosen intent, `None` when the model chose none, answered something invalid, or did
    /// not answer in time.
    pub intent: Option<String>,
    /// E.g. `returns (remote)`, `none (remote)`, `invalid answer (remote)`, `timeout`,
    /// `no model answer: human (remote: circuit_open; ...)`.
    pub record: String,
}

/// The intents of `bot` an LLM may choose, each with what it means: its description, else a few
/// examples in the bot's default language.
pub fn intent_candidates(bot: &Bot) -> Vec<IntentCandidate> {
    let lang = bot.settings().default_language;
    bot.intents()
        .filter(|(name, _)| *name != kefu_flows::OOS_INTENT)
        .map(|(name, def)| {
            let meaning = match def.description.as_deref().map(str::trim) {
                Some(d) if !d.is_empty() => d.to_owned(),
                _ => {
                    let mut examples: Vec<&str> = def
                        .examples
                        .get(lang)
                        .iter()
                        .take(3)
                        .map(String::as_str)
                        .collect();
                    if examples.is_empty() {
                        examples = def
                            .examples
                            .get(kefu_flows::Lang::En)
                            .iter()
                            .take(3)
                            .map(String::as_str)
                            .collect();
                    }
                    format!("e.g. {}", examples.join(" / "))
                }
            };
            IntentCandidate {
                name: name.to_owned(),
                meaning,
            }
        })
        .collect()
}

/// Asks `service` to choose; see the module invariants.
pub async fn choose_intent(service: &LlmService, question: IntentQuestion<'_>) -> IntentChoice {
    if question.candidates.is_empty() {
        return IntentChoice {
            intent: None,
            record: "no candidates".to_owned(),
        };
    }
    let passages = question
        .candidates
        .iter()
        .map(|c| Passage {
            source: format!("intent {}", c.name),
            text: format!("{}: {}", c.name, c.meaning),
        })
        .collect();
    let request = GenerateRequest {
        tenant: question.tenant.to_owned(),
        session: question.session.to_owned(),
        prompt: PromptParts {
            step_instructions: Some(INSTRUCTION.to_owned()),
            passages,
            history: Vec::new(),
            user: question.user.to_owned(),
        },
        max_tokens: Some(ANSWER_TOKENS),
        temperature: Some(0.0),
        template: None,
        stream: None,
    };
    let answer = match tokio::time::timeout(INTENT_CHOICE_TIMEOUT, service.generate(request)).await
    {
        Err(_) => {
            return IntentChoice {
                intent: None,
                record: "timeout".to_owned(),
            };
        }
        Ok(Err(_cancelled)) => {
            return IntentChoice {
                intent: None,
                record: "cancelled".to_owned(),
            };
        }
        Ok(Ok(answer)) => answer,
    };
    let rung = answer.reason();
    if !matches!(answer.rung, Rung::Remote | Rung::Local) {
        // The ladder came down past the models; its account says why.
        return IntentChoice {
            intent: None,
            record: format!("no model answer: {rung}"),
        };
    }
    match parse_choice(&answer.text, question.candidates) {
        Some(Some(name)) => IntentChoice {
            record: format!("{name} ({rung})"),
            intent: Some(name),
        },
        Some(None) => IntentChoice {
            intent: None,
            record: format!("none ({rung})"),
        },
        None => IntentChoice {
            intent: None,
            record: format!("invalid answer ({rung})"),
        },
    }
}

/// `Some(Some(name))` for a candidate's name, `Some(None)` for `none`, `None` for anything else.
fn parse_choice(text: &str, candidates: &[IntentCandidate]) -> Option<Option<String>> {
    let trimmed = text
        .trim()
        .trim_end_matches(['.', '。'])
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c.is_whitespace());
    if trimmed.eq_ignore_ascii_case("none") {
        return Some(None);
    }
    candidates
        .iter()
        .find(|c| c.name == trimmed)
        .map(|c| Some(c.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<IntentCandidate> {
        ["returns", "complain"]
            .into_iter()
            .map(|n| IntentCandidate {
                name: n.into(),
                meaning: "m".into(),
            })
            .collect()
    }

    #[test]
    fn only_an_exact_name_or_none_is_accepted() {
        let c = candidates();
        assert_eq!(parse_choice("returns", &c), Some(Some("returns".into())));
        assert_eq!(
            parse_choice(" `returns`.\n", &c),
            Some(Some("returns".into()))
        );
        assert_eq!(
            parse_choice("\"complain\"", &c),
            Some(Some("complain".into()))
        );
        assert_eq!(parse_choice("None", &c), Some(None));
        assert_eq!(parse_choice("none.", &c), Some(None));
        assert_eq!(parse_choice("Returns", &c), None);
        assert_eq!(parse_choice("returns or complain", &c), None);
        assert_eq!(parse_choice("The intent is returns", &c), None);
        assert_eq!(parse_choice("refund", &c), None);
        assert_eq!(parse_choice("", &c), None);
    }
}
