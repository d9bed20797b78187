//! Help for the agent who takes a conversation over: the hand-off summary, and suggested
//! replies while they answer.
//!
//! Everything here builds requests and reads answers; the desk ([`super::Desk`]) runs them in
//! its own tasks, so neither the session actor nor the user's message path ever waits on a
//! model or a knowledge-base search.
//!
//! Invariants:
//! - **One summary path.** Without an LLM service, or when the ladder did not end on a model
//!   rung (remote or local), the agent reads the extractive summary ([`extractive`]), made from
//!   the ticket and the current transcript on every read. A knowledge-base, template or human
//!   answer of the ladder is never shown as a summary: it would be a quoted passage, not a
//!   summary.
//! - **Own generation keys.** Summaries and drafts are generated under the session key plus a
//!   suffix ([`SUMMARY_KEY_SUFFIX`], [`DRAFT_KEY_SUFFIX`]): the service cancels by key, so they
//!   neither cancel nor are cancelled by the user's own turns (a newer draft does supersede an
//!   older one of the same conversation, which is what "stale" means there).
//! - **Bounded prompts.** The summary sees at most [`SUMMARY_WINDOW`] transcript entries of at
//!   most [`ENTRY_CHARS`] characters each; the prompt builder and the service's PII masking,
//!   budgets, breaker, timeout and moderation apply as to any generation.
//! - **Suggestions are for the agent only.** They go to agent channels and the context view,
//!   never to the user; at most [`MAX_SUGGESTIONS`] of them.

use std::time::Duration;

use kefu_models::llm::{ChatMessage, Passage, PromptParts};
use kefu_plugin::{Caller, SkillOutcome, SkillRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{StoredSummary, SummarySource, Ticket};
use crate::api::TranscriptEntry;
use crate::events::now_ms;
use crate::handler::DEFAULT_TENANT;
use crate::llm::{GenerateError, GenerateRequest, LlmAnswer, Rung};
use crate::skills::SkillHost;

/// Appended to the session key for the summary's generation (see the module invariants).
pub const SUMMARY_KEY_SUFFIX: &str = "#summary";
/// Appended to the session key for suggested-reply drafts.
pub const DRAFT_KEY_SUFFIX: &str = "#suggest";
/// Transcript entries (latest) the summary prompt sees.
pub const SUMMARY_WINDOW: usize = 20;
/// Characters of one transcript entry in the summary prompt.
pub const ENTRY_CHARS: usize = 300;
/// Longest summary kept from the model, in characters.
pub const SUMMARY_MAX_CHARS: usize = 800;
/// Most lines kept from the model's summary (the prompt asks for 2 to 4).
pub const SUMMARY_MAX_LINES: usize = 6;
/// Tokens the model may spend on a summary or a draft.
pub const ASSIST_MAX_TOKENS: u32 = 200;
/// Most suggested replies pushed for one user message.
pub const MAX_SUGGESTIONS: usize = 3;
/// The most a suggestion round may take (knowledge base plus draft); a slower one is dropped.
pub const SUGGESTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The skill asked for suggested answers: the bot's knowledge base.
pub const KB_SKILL: &str = "kb";

/// The extractive summary: the reason, the user's last three messages, the key facts.
pub fn extractive(ticket: &Ticket, transcript: &[TranscriptEntry]) -> String {
    let ctx = &ticket.escalation.context;
    let mut lines = vec![format!("Reason: {}", ctx.reason)];
    let said: Vec<&str> = transcript
        .iter()
        .rev()
        .filter(|e| e.role == "user")
        .take(3)
        .map(|e| e.text.as_str())
        .collect();
    if !said.is_empty() {
        let quoted: Vec<String> = said.iter().rev().map(|t| format!("“{t}”")).collect();
        lines.push(format!("Customer said: {}", quoted.join(" / ")));
    }
    if !ctx.slots.is_empty() {
        lines.push(format!("Known: {}", facts(ticket)));
    }
    if let Some(flow) = &ctx.active_flow {
        lines.push(format!("Was in flow: {flow}"));
    }
    if ticket.escalation.tier > 0 {
        lines.push(format!("Customer tier: {}", ticket.escalation.tier));
    }
    lines.join("\n")
}

/// The slots as `k=v, k=v`.
fn facts(ticket: &Ticket) -> String {
    ticket
        .escalation
        .context
        .slots
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => format!("{k}={s}"),
            None => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` cut to `max` characters (on a character boundary), with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The user message that handed off, which may not be in the stored transcript yet (the
/// hand-off hook runs inside the turn, before the turn is committed).
#[derive(Debug, Clone, Copy)]
pub struct PendingMessage<'a> {
    /// Its message id, to avoid counting it twice when the commit won the race.
    pub message_id: &'a str,
    /// Its text.
    pub text: &'a str,
}

/// The generation that asks for the hand-off summary of `ticket`'s conversation.
pub fn summary_request(
    ticket: &Ticket,
    transcript: &[TranscriptEntry],
    pending: Option<PendingMessage<'_>>,
) -> GenerateRequest {
    let ctx = &ticket.escalation.context;
    let mut lines: Vec<String> = transcript
        .iter()
        .filter_map(|e| {
            let who = match e.role.as_str() {
                "user" => "Customer",
                "bot" => "Bot",
                "agent" => "Agent",
                _ => return None,
            };
            Some(format!("{who}: {}", clip(e.text.trim(), ENTRY_CHARS)))
        })
        .collect();
    if let Some(p) = pending
        && !p.text.trim().is_empty()
        && !transcript
            .iter()
            .any(|e| e.role == "user" && e.message_id == p.message_id)
    {
        lines.push(format!("Customer: {}", clip(p.text.trim(), ENTRY_CHARS)));
    }
    let start = lines.len().saturating_sub(SUMMARY_WINDOW);
    let conversation = lines[start..].join("\n");
    let language = match ctx.lang.as_str() {
        "zh" => "Chinese (简体中文)",
        "en" => "English",
        _ => "the customer's language",
    };
    let instructions = format!(
        "A human agent is taking this conversation over from the bot. Summarise it for them in \
         2 to 4 short lines, written in {language}: what the customer wants, what has been \
         tried or said already, and the key facts (order numbers, products, dates). Do not \
         greet, do not address the customer, do not invent anything that is not in the \
         conversation or the reference data."
    );
    let mut passages = vec![Passage {
        source: "hand-off reason".to_owned(),
        text: ctx.reason.clone(),
    }];
    if !ctx.slots.is_empty() {
        passages.push(Passage {
            source: "known facts".to_owned(),
            text: facts(ticket),
        });
    }
    GenerateRequest {
        tenant: DEFAULT_TENANT.to_owned(),
        session: format!("{}{SUMMARY_KEY_SUFFIX}", ticket.escalation.session),
        prompt: PromptParts {
            step_instructions: Some(instructions),
            passages,
            history: Vec::new(),
            user: format!("The conversation to summarise:\n{conversation}"),
        },
        max_tokens: Some(ASSIST_MAX_TOKENS),
        temperature: Some(0.2),
        template: None,
        stream: None,
    }
}

/// What the desk stores for a summary generation: the model's text when a model rung answered,
/// else "extractive" with the reasons the model rungs gave.
pub fn summary_outcome(result: Result<LlmAnswer, GenerateError>) -> StoredSummary {
    let at_ms = now_ms();
    let extractive = |note: String| StoredSummary {
        source: SummarySource::Extractive,
        text: String::new(),
        note,
        at_ms,
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(GenerateError::Cancelled { .. }) => {
            return extractive("the summary generation was superseded".to_owned());
        }
    };
    match answer.rung {
        Rung::Remote | Rung::Local => {
            let text = tidy_summary(&answer.text);
            if text.is_empty() {
                return extractive(format!("{}: empty_answer", answer.rung.as_str()));
            }
            StoredSummary {
                source: SummarySource::Llm,
                text,
                note: answer.reason(),
                at_ms,
            }
        }
        Rung::KnowledgeBase | Rung::Template | Rung::Human => {
            let why = answer.skipped(|rung| matches!(rung, Rung::Remote | Rung::Local));
            extractive(if why.is_empty() {
                "no model answered".to_owned()
            } else {
                why
            })
        }
    }
}

/// The model's summary, trimmed: no blank lines, at most [`SUMMARY_MAX_LINES`] lines and
/// [`SUMMARY_MAX_CHARS`] characters.
fn tidy_summary(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(SUMMARY_MAX_LINES)
        .collect();
    clip(&lines.join("\n"), SUMMARY_MAX_CHARS)
}

/// Where a suggested reply comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionSource {
    /// A knowledge-base answer to the user's message.
    Kb,
    /// A reply the language model drafted from those answers.
    Llm,
}

/// One suggested reply: the agent may put it in the reply box, edit and send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The text.
    pub text: String,
    /// Where it comes from.
    pub source: SuggestionSource,
}

/// The latest suggestions of a conversation, for the user message they answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestions {
    /// The user message they answer.
    pub message_id: String,
    /// At most [`MAX_SUGGESTIONS`], best first.
    pub items: Vec<Suggestion>,
    /// When they were made (ms since the Unix epoch).
    pub at_ms: u64,
}

/// Knowledge-base answers to `text`: the best one and its alternatives (at most
/// [`MAX_SUGGESTIONS`]), each with its citation. Empty when the skill is missing, finds
/// nothing, or fails (suggestions are a help; their failure is logged, never surfaced).
pub async fn kb_answers(skills: &SkillHost, caller: Caller, text: &str) -> Vec<Passage> {
    if !skills.contains(KB_SKILL) {
        return Vec::new();
    }
    let mut args = Map::new();
    args.insert("query".to_owned(), Value::String(text.to_owned()));
    if matches!(caller.locale.as_str(), "zh" | "en") {
        args.insert("lang".to_owned(), Value::String(caller.locale.clone()));
    }
    let session = caller.session.clone();
    let request = SkillRequest {
        skill: KB_SKILL.to_owned(),
        caller,
        args,
    };
    let data = match skills.call(request).await {
        Ok(SkillOutcome::Found { data, .. }) => data,
        Ok(_) => return Vec::new(),
        Err(e) => {
            tracing::debug!(session = %session, error = %e, "No knowledge-base suggestions");
            return Vec::new();
        }
    };
    let hit = |v: &Value| -> Option<Passage> {
        let answer = v.get("answer")?.as_str()?.trim();
        (!answer.is_empty()).then(|| Passage {
            source: v
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or(KB_SKILL)
                .to_owned(),
            text: answer.to_owned(),
        })
    };
    let mut out: Vec<Passage> = hit(&data).into_iter().collect();
    if let Some(alternatives) = data.get("alternatives").and_then(Value::as_array) {
        out.extend(alternatives.iter().filter_map(hit));
    }
    out.dedup_by(|a, b| a.text == b.text);
    out.truncate(MAX_SUGGESTIONS);
    out
}

/// The generation that drafts one reply for the agent from `passages`.
pub fn draft_request(
    session: &str,
    lang: &str,
    text: &str,
    history: Vec<ChatMessage>,
    passages: Vec<Passage>,
) -> GenerateRequest {
    let language = match lang {
        "zh" => "Chinese (简体中文)",
        "en" => "English",
        _ => "the customer's language",
    };
    let instructions = format!(
        "You draft a reply that a human customer-service agent will review, edit and send to \
         the customer. Write it in {language}, one to three sentences, answering the \
         customer's latest message only from the reference data. Write only the reply."
    );
    GenerateRequest {
        tenant: DEFAULT_TENANT.to_owned(),
        session: format!("{session}{DRAFT_KEY_SUFFIX}"),
        prompt: PromptParts {
            step_instructions: Some(instructions),
            passages,
            history,
            user: text.to_owned(),
        },
        max_tokens: Some(ASSIST_MAX_TOKENS),
        temperature: Some(0.3),
        template: None,
        stream: None,
    }
}

/// The draft's text when a model rung wrote it; `None` otherwise (a knowledge-base quote would
/// repeat a suggestion the agent already has).
pub fn draft_text(result: Result<LlmAnswer, GenerateError>) -> Option<String> {
    let answer = result.ok()?;
    if !matches!(answer.rung, Rung::Remote | Rung::Local) {
        return None;
    }
    let text = answer.text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::model::{Escalation, HandoverContext, TicketState};
    use crate::llm::{DegradeReason, RungSkip};
    use kefu_models::llm::Usage;

    fn ticket() -> Ticket {
        Ticket {
            escalation: Escalation {
                session: "s1".into(),
                user: "u1".into(),
                skill: None,
                tier: 0,
                context: HandoverContext {
                    reason: "customer asked for a human".into(),
                    lang: "en".into(),
                    slots: [("order_id".to_owned(), Value::from("A123"))].into(),
                    ..HandoverContext::default()
                },
            },
            state: TicketState::Queued,
            agent: None,
            target_agent: None,
            escalated_ms: 0,
            queued_ms: 0,
            seq: 0,
            assigned_ms: None,
            first_reply_ms: None,
            sla_alerted: false,
            transfers: 0,
            summary: None,
        }
    }

    fn entry(role: &str, text: &str, id: &str) -> TranscriptEntry {
        TranscriptEntry {
            seq: 0,
            role: role.into(),
            text: text.into(),
            at_ms: 0,
            message_id: id.into(),
        }
    }

    fn answer(rung: Rung, text: &str, degraded: Vec<RungSkip>) -> LlmAnswer {
        LlmAnswer {
            rung,
            text: text.into(),
            usage: Usage::default(),
            degraded,
            pii_masked: 0,
        }
    }

    #[test]
    fn the_pending_message_is_added_once_and_the_window_is_bounded() {
        let t = ticket();
        let mut transcript: Vec<TranscriptEntry> = (0..30)
            .map(|i| entry("user", &format!("message {i}"), &format!("m{i}")))
            .collect();
        transcript.push(entry("system", "an agent joined", "m29"));
        let req = summary_request(
            &t,
            &transcript,
            Some(PendingMessage {
                message_id: "m30",
                text: "human please",
            }),
        );
        let user = &req.prompt.user;
        assert!(user.ends_with("Customer: human please"), "{user}");
        assert!(
            !user.contains("message 10\n"),
            "only the latest entries: {user}"
        );
        assert!(user.contains("message 11"), "{user}");
        assert!(!user.contains("agent joined"), "notices are left out");
        assert_eq!(req.session, "s1#summary");
        // Already committed: not counted twice.
        let req = summary_request(
            &t,
            &transcript,
            Some(PendingMessage {
                message_id: "m29",
                text: "message 29",
            }),
        );
        assert_eq!(req.prompt.user.matches("message 29").count(), 1);
        assert!(
            req.prompt
                .passages
                .iter()
                .any(|p| p.text == "order_id=A123")
        );
    }

    #[test]
    fn only_model_rungs_make_an_llm_summary() {
        let got = summary_outcome(Ok(answer(
            Rung::Remote,
            "\n Wants a refund.\n\n A123 \n",
            vec![],
        )));
        assert_eq!(got.source, SummarySource::Llm);
        assert_eq!(got.text, "Wants a refund.\nA123");
        assert_eq!(got.note, "remote");
        let skips = vec![
            RungSkip {
                rung: Rung::Remote,
                reason: DegradeReason::Timeout,
            },
            RungSkip {
                rung: Rung::Local,
                reason: DegradeReason::NotConfigured,
            },
        ];
        let got = summary_outcome(Ok(answer(
            Rung::KnowledgeBase,
            "From our help centre",
            skips,
        )));
        assert_eq!(got.source, SummarySource::Extractive);
        assert!(got.text.is_empty());
        assert_eq!(got.note, "remote: timeout; local: not_configured");
        let got = summary_outcome(Err(GenerateError::Cancelled {
            session: "s1#summary".into(),
        }));
        assert_eq!(got.source, SummarySource::Extractive);
        assert!(draft_text(Ok(answer(Rung::KnowledgeBase, "quote", vec![]))).is_none());
        assert_eq!(
            draft_text(Ok(answer(Rung::Local, " Sure. ", vec![]))).as_deref(),
            Some("Sure.")
        );
    }

    #[test]
    fn long_summaries_are_clipped_on_character_boundaries() {
        let long = "退".repeat(SUMMARY_MAX_CHARS + 10);
        let got = tidy_summary(&long);
        assert_eq!(got.chars().count(), SUMMARY_MAX_CHARS + 1);
        assert!(got.ends_with('…'));
        let many = (0..10)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(tidy_summary(&many).lines().count(), SUMMARY_MAX_LINES);
    }
}
