//! The conversation side of the human desk: the engine's hand-off hook, human mode, and the
//! messages between a user and an agent.
//!
//! Human mode is "the conversation has a ticket in the router" ([`Router::is_human`]), so it is
//! as durable as the router's tickets and survives restarts. While it lasts:
//! - the engine runs no bot turn (see `FlowEngine::attach_desk`): the user's message is
//!   recorded in the transcript by the session actor with no reply, and the dialog state is
//!   left as it was, so the bot resumes exactly where it stopped after a hand back;
//! - [`DeskConversations`] forwards the message to the assigned agent ([`AgentPush`]) or, while
//!   the conversation waits, answers with its queue position (not stored: it changes);
//! - agent messages are appended to the session's log as `agent` events (with the session's
//!   snapshot, in one atomic append that fails on a concurrent turn and is retried), then
//!   pushed to the user's sockets ([`UserPush`]).
//!
//! With an LLM service attached ([`Desk::attach_llm`]) a hand-off also starts a summary task
//! (the hook itself stays synchronous and cheap); with a skill host holding the knowledge base
//! ([`Desk::attach_skills`]) every user message to an agent starts a suggestion task. Both are
//! described in [`super::assist`].
//!
//! Invariants: an agent reaches only conversations assigned to them (the router checks every
//! call); a message is pushed only after it is durable in the transcript; desk changes are
//! flushed before the caller is answered; nothing the desk computes for the agent (summaries,
//! suggestions) is ever sent to the user or delays the user's message.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use kefu_store::{AppendOutcome, AppendRequest, Store};
use serde::Serialize;
use tokio::sync::broadcast;
use tracing::{debug, warn};

use super::assist::{self, Suggestion, Suggestions};
use super::model::{DeskEvent, Escalation, HandoverContext, Outcome, SummarySource, Ticket};
use super::router::{DeskError, DeskResult, QueuePosition, Router};
use crate::api::{
    ConversationView, Conversations, Inbound, Reply, SendError, TranscriptEntry, TurnOutcome,
};
use crate::events::{SessionEvent, now_ms};
use crate::llm::LlmService;
use crate::skills::SkillHost;

/// What the engine reports when a turn hands the conversation to a human.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handoff {
    /// The conversation's key.
    pub session: String,
    /// Its user.
    pub user: String,
    /// The channel of the message that handed off.
    pub channel: String,
    /// The flow's hand-off reason.
    pub reason: String,
    /// The conversation's language.
    pub lang: String,
    /// The intent of the message that handed off.
    pub intent: Option<String>,
    /// The flow that was running before the hand-off.
    pub active_flow: Option<String>,
    /// The dialog's slots.
    pub slots: BTreeMap<String, serde_json::Value>,
    /// The emotion of the message, when an emotion model is configured.
    pub emotion: Option<String>,
    /// The user's tags (`vip`, ...): those sent with the message, else the last ones kept on
    /// the session. They raise the customer tier as `tag_tiers` says.
    pub tags: Vec<String>,
    /// The id of the user message that handed off.
    pub message_id: String,
    /// Its text (the summary needs it: the turn is not in the stored transcript yet).
    pub text: String,
}

/// The hook the engine calls on every turn. Synchronous: it runs inside the session actor.
pub trait HandoffSink: Send + Sync + 'static {
    /// True while a person handles the conversation: the bot stays silent.
    fn is_human(&self, session: &str) -> bool;
    /// A turn handed the conversation to a human.
    fn handed_off(&self, handoff: Handoff);
}

/// A frame pushed to the user's live channels (WebSocket).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserPush {
    /// An agent wrote.
    AgentMessage {
        /// The agent's display name.
        agent: String,
        /// The text.
        text: String,
        /// Its sequence number in the transcript.
        seq: u64,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A desk notice (an agent joined, the bot is back, a rating question).
    Notice {
        /// The text.
        text: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
}

/// A frame pushed to agents' live channels; each carries the agent it is for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentPush {
    /// The user wrote in a conversation the agent holds.
    UserMessage {
        /// The agent it is for.
        agent: String,
        /// The conversation.
        session: String,
        /// The text.
        text: String,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The language model's hand-off summary is ready (it arrives after the assignment when
    /// the model is slower than the router); re-read the context to see it with its note.
    Summary {
        /// The agent it is for.
        agent: String,
        /// The conversation.
        session: String,
        /// The summary.
        summary: String,
        /// `llm` (a frame is only sent for model summaries).
        source: SummarySource,
    },
    /// Suggested replies to the user's latest message, best first: shown to the agent as
    /// buttons that fill the reply box, never sent to the user. A later frame for the same
    /// conversation replaces the earlier one (the draft follows the knowledge-base answers).
    Suggestions {
        /// The agent it is for.
        agent: String,
        /// The conversation.
        session: String,
        /// The user message they answer.
        message_id: String,
        /// At most three, each `{text, source}` with source `kb` or `llm`.
        items: Vec<Suggestion>,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
}

impl AgentPush {
    /// The agent this frame is for.
    pub fn agent(&self) -> &str {
        match self {
            AgentPush::UserMessage { agent, .. }
            | AgentPush::Summary { agent, .. }
            | AgentPush::Suggestions { agent, .. } => agent,
        }
    }
}

/// What an agent reads on assignment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextView {
    /// The ticket (escalation, context, timings).
    pub ticket: Ticket,
    /// The transcript, oldest first (bounded).
    pub transcript: Vec<TranscriptEntry>,
    /// A few lines for a quick read: the language model's summary when one was made, else the
    /// extractive one (why, what the user said last, the key facts).
    pub summary: String,
    /// Who wrote [`ContextView::summary`].
    pub summary_source: SummarySource,
    /// For a model summary, the rung that wrote it (`remote`, `local (remote: timeout)`); for
    /// an extractive one after a failed model summary, why no model answered; else `None`.
    pub summary_note: Option<String>,
    /// The latest suggested replies, when a user message was answered by any.
    pub suggestions: Option<Suggestions>,
}

/// The human desk: the router plus the conversation plumbing. Share it as `Arc<Desk>`.
pub struct Desk {
    /// Itself, for the tasks the synchronous hand-off hook starts.
    pub(super) me: Weak<Desk>,
    pub(super) router: Arc<Router>,
    store: Arc<dyn Store>,
    pub(super) conversations: Arc<dyn Conversations>,
    users: DashMap<String, broadcast::Sender<UserPush>>,
    pub(super) agents: broadcast::Sender<AgentPush>,
    /// The model for hand-off summaries and drafted replies; none = extractive only.
    pub(super) llm: OnceLock<LlmService>,
    /// The skills, for knowledge-base suggestions; none = no suggestions.
    pub(super) skills: OnceLock<Arc<SkillHost>>,
    /// The latest suggestions per conversation in the desk (dropped when it leaves).
    pub(super) suggestions: DashMap<String, Suggestions>,
    /// Suggestion rounds started per conversation: a round whose number is no longer the
    /// latest is stale (a newer user message came) and publishes nothing.
    pub(super) rounds: DashMap<String, u64>,
}

impl Desk {
    /// The desk over `router`, writing agent messages into `store`'s session logs and reading
    /// transcripts through `conversations` (the session registry).
    pub fn new(
        router: Arc<Router>,
        store: Arc<dyn Store>,
        conversations: Arc<dyn Conversations>,
    ) -> Arc<Self> {
        let (agents, _) = broadcast::channel(4096);
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            router,
            store,
            conversations,
            users: DashMap::new(),
            agents,
            llm: OnceLock::new(),
            skills: OnceLock::new(),
            suggestions: DashMap::new(),
            rounds: DashMap::new(),
        })
    }

    /// Gives the desk the LLM service (the instance the flows use, so budgets and breakers are
    /// shared): hand-offs then get a model summary, and suggestions a drafted reply. Returns
    /// false when one was already attached (it stays).
    pub fn attach_llm(&self, service: LlmService) -> bool {
        self.llm.set(service).is_ok()
    }

    /// Gives the desk the skills; when they include `kb`, agents get suggested replies from
    /// the knowledge base. Returns false when skills were already attached (they stay).
    pub fn attach_skills(&self, skills: Arc<SkillHost>) -> bool {
        self.skills.set(skills).is_ok()
    }

    /// Starts the desk's background work until the desk is dropped: the router's periodic
    /// work (SLA alerts, restart grace) every `period`, and the "an agent joined" notice to the
    /// user on every assignment, however it happened (auto-assign, accept, transfer).
    pub fn spawn_tasks(self: &Arc<Self>, period: Duration) {
        let weak = Arc::downgrade(self);
        let mut events = self.router.subscribe();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(
                            missed = n,
                            "Desk announcer lagged; some join notices were skipped"
                        );
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let Some(desk) = weak.upgrade() else { break };
                if let DeskEvent::Assigned { session, agent, .. } = event
                    && let Some(ticket) = desk.router.ticket(&session)
                {
                    desk.announce_assignment(&agent, &ticket).await;
                }
            }
        });
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(desk) = weak.upgrade() else { break };
                if let Err(e) = desk.router.tick() {
                    warn!(error = %e, "Desk tick failed");
                }
                if let Err(e) = desk.router.flush().await {
                    warn!(error = %e, "Desk flush failed");
                }
            }
        });
    }

    /// The router.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// Live frames for a user's sockets in `session`.
    pub fn subscribe_user(&self, session: &str) -> broadcast::Receiver<UserPush> {
        self.users
            .entry(session.to_owned())
            .or_insert_with(|| broadcast::channel(64).0)
            .subscribe()
    }

    /// Live frames for agents (filter with [`AgentPush::agent`]).
    pub fn subscribe_agents(&self) -> broadcast::Receiver<AgentPush> {
        self.agents.subscribe()
    }

    /// Live desk events (assignments, queue changes, SLA alerts, figures).
    pub fn subscribe_events(&self) -> broadcast::Receiver<DeskEvent> {
        self.router.subscribe()
    }

    fn push_user(&self, session: &str, frame: UserPush) {
        let gone = match self.users.get(session) {
            Some(tx) => tx.send(frame).is_err(),
            None => false,
        };
        if gone {
            // Nobody listens any more: drop the channel unless someone subscribed meanwhile.
            self.users
                .remove_if(session, |_, tx| tx.receiver_count() == 0);
        }
    }

    /// Builds the escalation from a hand-off: tier from the user's tags (`tag_tiers`, the
    /// configured `user_tiers`) or a skill's score, whichever is highest; skill from the topic.
    fn escalation(&self, h: Handoff) -> Escalation {
        let config = self.router.config();
        let slot_tier = ["vip_tier", "customer_tier", "rfm_tier"]
            .iter()
            .filter_map(|k| h.slots.get(*k))
            .filter_map(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
            .max()
            .unwrap_or(0)
            .min(u64::from(u8::MAX)) as u8;
        let tag_tier = h
            .tags
            .iter()
            .filter_map(|t| config.tag_tiers.get(t.as_str()))
            .copied()
            .max()
            .unwrap_or(0);
        let tier = config
            .user_tiers
            .get(&h.user)
            .copied()
            .unwrap_or(0)
            .max(slot_tier)
            .max(tag_tier);
        let skill = [
            h.active_flow.as_deref(),
            h.intent.as_deref(),
            Some(&h.reason),
        ]
        .into_iter()
        .flatten()
        .find_map(|topic| config.skills_by_topic.get(topic).cloned());
        let ticket_id = h
            .slots
            .get("ticket_id")
            .and_then(|v| v.as_str().map(str::to_owned));
        Escalation {
            session: h.session,
            user: h.user,
            skill,
            tier,
            context: HandoverContext {
                reason: h.reason,
                lang: h.lang,
                channel: h.channel,
                slots: h.slots,
                intents: h.intent.into_iter().collect(),
                active_flow: h.active_flow,
                emotions: h.emotion.into_iter().collect(),
                ticket_id,
            },
        }
    }

    /// The transcript and summary of a conversation in the desk.
    pub async fn context(&self, session: &str, transcript_limit: usize) -> DeskResult<ContextView> {
        let ticket = self
            .router
            .ticket(session)
            .ok_or_else(|| DeskError::UnknownConversation {
                session: session.to_owned(),
            })?;
        let view = self
            .conversations
            .conversation(session, transcript_limit)
            .await
            .map_err(|e| DeskError::Storage {
                op: "read transcript",
                detail: e.to_string(),
            })?;
        let transcript = view.map(|v| v.transcript).unwrap_or_default();
        let (summary, summary_source, summary_note) = match &ticket.summary {
            Some(s) if s.source == SummarySource::Llm && !s.text.is_empty() => {
                (s.text.clone(), SummarySource::Llm, Some(s.note.clone()))
            }
            stored => (
                assist::extractive(&ticket, &transcript),
                SummarySource::Extractive,
                stored
                    .as_ref()
                    .map(|s| s.note.clone())
                    .filter(|n| !n.is_empty()),
            ),
        };
        let suggestions = self.suggestions.get(session).map(|s| s.clone());
        Ok(ContextView {
            ticket,
            transcript,
            summary,
            summary_source,
            summary_note,
            suggestions,
        })
    }

    /// Appends one desk event to the session's log (with its current snapshot, so the log and
    /// snapshot stay level), retrying when a turn got in first. Returns its sequence number.
    async fn append(&self, session: &str, event: SessionEvent) -> DeskResult<u64> {
        let storage = |op| {
            move |e: kefu_store::StoreError| DeskError::Storage {
                op,
                detail: e.to_string(),
            }
        };
        for _ in 0..8 {
            let loaded = self
                .store
                .load(session)
                .await
                .map_err(storage("load session"))?
                .ok_or_else(|| DeskError::UnknownConversation {
                    session: session.to_owned(),
                })?;
            let req = AppendRequest {
                expected_seq: loaded.seq,
                idempotency_key: None,
                user: loaded.user,
                events: vec![event.encode()],
                snapshot: loaded.snapshot,
            };
            match self
                .store
                .append(session, req)
                .await
                .map_err(storage("append"))?
            {
                AppendOutcome::Appended { last_seq, .. }
                | AppendOutcome::Duplicate { last_seq, .. } => return Ok(last_seq),
                AppendOutcome::Conflict { .. } => {
                    debug!(
                        session,
                        "A turn got in first; appending the desk event again"
                    );
                }
            }
        }
        Err(DeskError::Storage {
            op: "append",
            detail: "the conversation kept moving; try again".into(),
        })
    }

    async fn flush(&self) -> DeskResult<()> {
        self.router.flush().await?;
        self.store.flush().await.map_err(|e| DeskError::Storage {
            op: "flush",
            detail: e.to_string(),
        })
    }

    /// An agent writes to the user: recorded in the transcript, then pushed to the user.
    pub async fn agent_message(&self, agent: &str, session: &str, text: &str) -> DeskResult<u64> {
        self.router.assigned(agent, session)?;
        let name = self.router.agent(agent)?.profile.name;
        let at_ms = now_ms();
        let seq = self
            .append(
                session,
                SessionEvent::Agent {
                    agent: agent.to_owned(),
                    name: name.clone(),
                    text: text.to_owned(),
                    at_ms,
                },
            )
            .await?;
        self.router.record_reply(agent, session)?;
        self.flush().await?;
        self.push_user(
            session,
            UserPush::AgentMessage {
                agent: name,
                text: text.to_owned(),
                seq,
                at_ms,
            },
        );
        Ok(seq)
    }

    /// Sends a notice to the user and records it.
    async fn notice(&self, session: &str, text: String) -> DeskResult<()> {
        let at_ms = now_ms();
        self.append(
            session,
            SessionEvent::Notice {
                text: text.clone(),
                at_ms,
            },
        )
        .await?;
        self.push_user(session, UserPush::Notice { text, at_ms });
        Ok(())
    }

    /// The agent takes a waiting conversation (the user is told by the background task).
    pub async fn accept(&self, agent: &str, session: &str) -> DeskResult<Ticket> {
        let ticket = self.router.accept(agent, session)?;
        self.router.flush().await?;
        Ok(ticket)
    }

    /// Tells the user an agent joined (best effort: the assignment itself is durable).
    pub async fn announce_assignment(&self, agent: &str, ticket: &Ticket) {
        let name = self
            .router
            .agent(agent)
            .map(|a| a.profile.name)
            .unwrap_or_else(|_| agent.to_owned());
        let text = match ticket.escalation.context.lang.as_str() {
            "zh" => format!("人工客服 {name} 已接入，正在查看您的问题。"),
            _ => format!("{name} from our team has joined and is reading your conversation."),
        };
        if let Err(e) = self.notice(&ticket.escalation.session, text).await {
            warn!(session = %ticket.escalation.session, error = %e, "Join notice not delivered");
        }
    }

    /// The agent gives the conversation back to the bot, which continues where it stopped.
    pub async fn hand_back(&self, agent: &str, session: &str) -> DeskResult<Ticket> {
        let ticket = self.router.end(agent, session, Outcome::HandedBack)?;
        self.router.flush().await?;
        self.forget(session);
        let text = match ticket.escalation.context.lang.as_str() {
            "zh" => "人工客服已结束服务，接下来由智能助手继续为您服务。".to_owned(),
            _ => "Our agent has handed you back to the assistant; just keep typing.".to_owned(),
        };
        self.notice(session, text).await?;
        self.store.flush().await.map_err(|e| DeskError::Storage {
            op: "flush",
            detail: e.to_string(),
        })?;
        Ok(ticket)
    }

    /// The agent closes the conversation (with the rating question when configured).
    pub async fn close(&self, agent: &str, session: &str) -> DeskResult<Ticket> {
        let ticket = self.router.end(agent, session, Outcome::Closed)?;
        self.router.flush().await?;
        self.forget(session);
        let zh = ticket.escalation.context.lang == "zh";
        let text = match (self.router.config().csat_on_close, zh) {
            (true, true) => "本次服务已结束。请为本次服务打分（1-5 分，5 分为非常满意）。",
            (true, false) => {
                "This conversation is closed. How did we do? Rate us from 1 (poor) to 5 (great)."
            }
            (false, true) => "本次服务已结束，感谢您的耐心。",
            (false, false) => "This conversation is closed. Thank you for your patience.",
        };
        self.notice(session, text.to_owned()).await?;
        self.store.flush().await.map_err(|e| DeskError::Storage {
            op: "flush",
            detail: e.to_string(),
        })?;
        Ok(ticket)
    }

    /// What the user hears while waiting.
    fn waiting_notice(lang: &str, pos: QueuePosition) -> String {
        let minutes = pos.estimated_wait_secs.div_ceil(60).max(1);
        match lang {
            "zh" => format!(
                "您前面还有 {} 位用户在排队，预计等待约 {} 分钟。",
                pos.position - 1,
                minutes
            ),
            _ => format!(
                "You are number {} in the queue; the estimated wait is about {} min.",
                pos.position, minutes
            ),
        }
    }
}

impl HandoffSink for Desk {
    fn is_human(&self, session: &str) -> bool {
        self.router.is_human(session)
    }

    fn handed_off(&self, mut handoff: Handoff) {
        let session = handoff.session.clone();
        let message_id = std::mem::take(&mut handoff.message_id);
        let text = std::mem::take(&mut handoff.text);
        let escalation = self.escalation(handoff);
        match self.router.escalate(escalation) {
            Ok(position) => {
                debug!(session = %session, ?position, "Conversation escalated");
                self.spawn_summary(session, message_id, text);
            }
            Err(e) => warn!(session = %session, error = %e, "Escalation not recorded"),
        }
    }
}

/// The session layer with the desk in front: what channels call when agents are configured.
pub struct DeskConversations {
    desk: Arc<Desk>,
}

impl DeskConversations {
    /// Wraps the desk (which holds the session layer).
    pub fn new(desk: Arc<Desk>) -> Self {
        Self { desk }
    }
}

#[async_trait]
impl Conversations for DeskConversations {
    async fn send(&self, msg: Inbound) -> Result<TurnOutcome, SendError> {
        let desk = &self.desk;
        let router = &desk.router;
        let was_human = router.is_human(&msg.session);
        let mut outcome = desk.conversations.send(msg.clone()).await?;
        if outcome.duplicate || !router.is_human(&msg.session) {
            return Ok(outcome);
        }
        // The escalation (or the message) must be durable before the user hears about it.
        router.flush().await.map_err(|e| {
            warn!(session = %msg.session, error = %e, "Desk flush failed");
            SendError::Storage
        })?;
        let Some(ticket) = router.ticket(&msg.session) else {
            return Ok(outcome);
        };
        let lang = ticket.escalation.context.lang.clone();
        match (&ticket.agent, router.position(&msg.session)) {
            (Some(agent), _) if was_human => {
                let _ = desk.agents.send(AgentPush::UserMessage {
                    agent: agent.clone(),
                    session: msg.session.clone(),
                    text: msg.text.clone(),
                    at_ms: now_ms(),
                });
                desk.spawn_suggestions(agent.clone(), &ticket, &msg);
            }
            // Assigned during the hand-off turn itself: the join notice follows by push.
            (Some(_), _) => {}
            (None, Some(pos)) => outcome.replies.push(Reply {
                text: Desk::waiting_notice(&lang, pos),
            }),
            (None, None) => {}
        }
        Ok(outcome)
    }

    async fn conversation(
        &self,
        session: &str,
        transcript_limit: usize,
    ) -> Result<Option<ConversationView>, SendError> {
        self.desk
            .conversations
            .conversation(session, transcript_limit)
            .await
    }

    fn ready(&self) -> bool {
        self.desk.conversations.ready()
    }
}
