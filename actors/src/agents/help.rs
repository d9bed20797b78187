//! The desk's tasks that help the agent: the hand-off summary and suggested replies.
//!
//! They run beside the conversation, never in its way: the hand-off hook (synchronous, inside
//! the session actor) and the user's message path only start them. What they build and how
//! they read the model's answers is in [`super::assist`].
//!
//! Invariants:
//! - A summary is stored with the ticket (durable, flushed) before any agent is told about it;
//!   one that finishes after the conversation left the desk is dropped.
//! - A suggestion round publishes only while it is the conversation's latest round and the
//!   conversation is still with the agent it was made for; the whole round is bounded by
//!   [`assist::SUGGESTION_TIMEOUT`].

use std::sync::Arc;

use kefu_models::llm::ChatMessage;
use kefu_plugin::Caller;
use tracing::{debug, warn};

use super::assist::{self, PendingMessage, Suggestion, SuggestionSource, Suggestions};
use super::desk::{AgentPush, Desk};
use super::model::{SummarySource, Ticket};
use crate::api::Inbound;
use crate::events::now_ms;
use crate::handler::DEFAULT_TENANT;
use crate::llm::{GenerateError, LlmService};
use crate::skills::SkillHost;

impl Desk {
    /// Starts the summary task of a conversation that just escalated (no-op without a model).
    /// Runs on the current Tokio runtime; the hook that calls it never waits.
    pub(super) fn spawn_summary(&self, session: String, message_id: String, text: String) {
        let (Some(llm), Some(me)) = (self.llm.get().cloned(), self.me.upgrade()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(session = %session, "No async runtime for the hand-off summary; extractive only");
            return;
        };
        runtime.spawn(async move {
            me.make_summary(&llm, &session, &message_id, &text).await;
        });
    }

    /// Asks the model for the hand-off summary and stores the outcome with the ticket.
    async fn make_summary(&self, llm: &LlmService, session: &str, message_id: &str, text: &str) {
        let Some(ticket) = self.router.ticket(session) else {
            return;
        };
        let transcript = match self
            .conversations
            .conversation(session, assist::SUMMARY_WINDOW * 2)
            .await
        {
            Ok(view) => view.map(|v| v.transcript).unwrap_or_default(),
            Err(e) => {
                warn!(session, error = %e, "Transcript unreadable for the summary; using the hand-off message only");
                Vec::new()
            }
        };
        let pending = PendingMessage { message_id, text };
        let request = assist::summary_request(&ticket, &transcript, Some(pending));
        let started = std::time::Instant::now();
        let result = llm.generate(request).await;
        if matches!(result, Err(GenerateError::Cancelled { .. })) {
            // A newer hand-off of the same conversation asked again; its summary will do.
            return;
        }
        let summary = assist::summary_outcome(result);
        tracing::info!(
            session,
            source = summary.source.as_str(),
            note = %summary.note,
            ms = started.elapsed().as_millis() as u64,
            "Hand-off summary made"
        );
        let stored = match self.router.set_summary(session, summary.clone()) {
            Ok(stored) => stored,
            Err(e) => {
                warn!(session, error = %e, "Hand-off summary not stored");
                return;
            }
        };
        if let Err(e) = self.router.flush().await {
            warn!(session, error = %e, "Desk flush failed after the summary");
        }
        if let Some(agent) = stored.and_then(|t| t.agent)
            && summary.source == SummarySource::Llm
        {
            let _ = self.agents.send(AgentPush::Summary {
                agent,
                session: session.to_owned(),
                summary: summary.text,
                source: summary.source,
            });
        }
    }

    /// Starts a suggestion round for a user message that went to `agent` (no-op without a
    /// knowledge base). Bounded by [`assist::SUGGESTION_TIMEOUT`]; a round overtaken by a newer
    /// message of the conversation publishes nothing.
    pub(super) fn spawn_suggestions(
        self: &Arc<Self>,
        agent: String,
        ticket: &Ticket,
        msg: &Inbound,
    ) {
        let Some(skills) = self.skills.get().filter(|s| s.contains(assist::KB_SKILL)) else {
            return;
        };
        let skills = skills.clone();
        let round = {
            let mut latest = self.rounds.entry(msg.session.clone()).or_insert(0);
            *latest += 1;
            *latest
        };
        let caller = Caller {
            tenant: DEFAULT_TENANT.to_owned(),
            user: ticket.escalation.user.clone(),
            session: msg.session.clone(),
            channel: msg.channel.clone(),
            locale: ticket.escalation.context.lang.clone(),
        };
        let me = self.clone();
        let (message_id, text) = (msg.message_id.clone(), msg.text.clone());
        tokio::spawn(async move {
            let session = caller.session.clone();
            let work = me.suggest(&skills, &agent, caller, &message_id, &text, round);
            if tokio::time::timeout(assist::SUGGESTION_TIMEOUT, work)
                .await
                .is_err()
            {
                debug!(session = %session, "Suggestion round too slow; dropped");
            }
        });
    }

    /// One suggestion round: the knowledge base's answers at once, then (with a model) the same
    /// with a drafted reply. No knowledge-base answer, no frame: there is nothing to ground a
    /// draft on either.
    async fn suggest(
        &self,
        skills: &SkillHost,
        agent: &str,
        caller: Caller,
        message_id: &str,
        text: &str,
        round: u64,
    ) {
        let session = caller.session.clone();
        let lang = caller.locale.clone();
        let passages = assist::kb_answers(skills, caller, text).await;
        if passages.is_empty() {
            return;
        }
        let mut items: Vec<Suggestion> = passages
            .iter()
            .map(|p| Suggestion {
                text: p.text.clone(),
                source: SuggestionSource::Kb,
            })
            .collect();
        if !self.publish_suggestions(agent, &session, message_id, items.clone(), round) {
            return;
        }
        let Some(llm) = self.llm.get() else { return };
        let history = self.recent_history(&session, message_id).await;
        let request = assist::draft_request(&session, &lang, text, history, passages);
        let Some(draft) = assist::draft_text(llm.generate(request).await) else {
            return;
        };
        // The best knowledge-base answer first (it is verbatim policy), then the draft.
        items.insert(
            1.min(items.len()),
            Suggestion {
                text: draft,
                source: SuggestionSource::Llm,
            },
        );
        items.truncate(assist::MAX_SUGGESTIONS);
        self.publish_suggestions(agent, &session, message_id, items, round);
    }

    /// The conversation's latest messages before `message_id`, as the draft's history.
    async fn recent_history(&self, session: &str, message_id: &str) -> Vec<ChatMessage> {
        let view = match self.conversations.conversation(session, 16).await {
            Ok(view) => view,
            Err(e) => {
                debug!(session, error = %e, "No history for the draft");
                None
            }
        };
        view.map(|v| v.transcript)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.message_id != message_id || e.role != "user")
            .filter_map(|e| match e.role.as_str() {
                "user" => Some(ChatMessage::user(e.text)),
                "bot" | "agent" => Some(ChatMessage::assistant(e.text)),
                _ => None,
            })
            .collect()
    }

    /// Records and pushes suggestions unless they are stale (a newer round started, or the
    /// conversation is no longer this agent's). Returns whether they were published.
    fn publish_suggestions(
        &self,
        agent: &str,
        session: &str,
        message_id: &str,
        items: Vec<Suggestion>,
        round: u64,
    ) -> bool {
        let current = self.rounds.get(session).is_some_and(|r| *r == round);
        let holder = self.router.ticket(session).and_then(|t| t.agent);
        if !current || holder.as_deref() != Some(agent) {
            debug!(session, round, "Stale suggestions dropped");
            return false;
        }
        let at_ms = now_ms();
        self.suggestions.insert(
            session.to_owned(),
            Suggestions {
                message_id: message_id.to_owned(),
                items: items.clone(),
                at_ms,
            },
        );
        let _ = self.agents.send(AgentPush::Suggestions {
            agent: agent.to_owned(),
            session: session.to_owned(),
            message_id: message_id.to_owned(),
            items,
            at_ms,
        });
        true
    }

    /// Forgets what the desk kept for a conversation that left it.
    pub(super) fn forget(&self, session: &str) {
        self.suggestions.remove(session);
        self.rounds.remove(session);
    }
}
