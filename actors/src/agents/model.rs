//! The desk's vocabulary: agents and their presence, escalated conversations (tickets), the
//! context handed over, the figures recorded for the dashboard, and the desk's configuration.
//!
//! Everything here is plain data (serde), so the router can persist it and the HTTP layer can
//! send it as is.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The customer tier a `vip` user tag gives by default (`[agents] tag_tiers`): the tier the
/// docs call "a tier-2 VIP".
pub const VIP_TAG_TIER: u8 = 2;

/// Whether an agent takes conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Signed in and taking conversations.
    Online,
    /// Signed in, keeps current conversations, takes no new ones.
    Away,
    /// Not signed in; their conversations go back to the queue.
    Offline,
}

/// One human agent: who they are and what they can take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProfile {
    /// Stable id (sign-in name).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Skills (`returns`, `billing`, ...); a conversation that needs a skill goes only to
    /// agents who have it.
    #[serde(default)]
    pub skills: Vec<String>,
    /// The highest customer tier the agent serves (0 = everyone; a VIP tier-2 customer needs
    /// an agent of tier 2 or more).
    #[serde(default)]
    pub tier: u8,
    /// Languages the agent writes (`zh`, `en`); empty = any.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Conversations the agent handles at once.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
}

fn default_capacity() -> u32 {
    3
}

/// What the agent gets on assignment so the user never repeats anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandoverContext {
    /// Why the bot handed over (the flow's hand-off reason).
    pub reason: String,
    /// The conversation's language.
    pub lang: String,
    /// The channel the user is on.
    pub channel: String,
    /// Filled slots of the dialog at hand-off.
    pub slots: BTreeMap<String, serde_json::Value>,
    /// Intents recognised up to the hand-off (latest last).
    pub intents: Vec<String>,
    /// The flow that was running, if any.
    pub active_flow: Option<String>,
    /// Emotions detected (latest last; empty until an emotion model is configured).
    pub emotions: Vec<String>,
    /// The ticket id, when a skill opened one (slot `ticket_id`).
    pub ticket_id: Option<String>,
}

/// An escalation as the session layer reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// The conversation's key.
    pub session: String,
    /// Its user.
    pub user: String,
    /// The skill needed (`None`: any agent).
    pub skill: Option<String>,
    /// Customer tier (0 normal, higher = more important), from user tags or a skill's RFM score.
    pub tier: u8,
    /// What was known at hand-off.
    pub context: HandoverContext,
}

/// Where an escalated conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Waiting in the queue.
    Queued,
    /// With an agent.
    Assigned,
}

/// An escalated conversation, queued or assigned. Persisted as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// The escalation.
    pub escalation: Escalation,
    /// Queued or assigned.
    pub state: TicketState,
    /// The agent, while assigned.
    pub agent: Option<String>,
    /// Only this agent may take it (a transfer to a named agent).
    pub target_agent: Option<String>,
    /// When it was first queued (ms, desk clock): wait time and SLA count from here.
    pub escalated_ms: u64,
    /// When it (re)entered the queue: ordering among equals.
    pub queued_ms: u64,
    /// Queue order within the same millisecond.
    pub seq: u64,
    /// When the current agent got it.
    pub assigned_ms: Option<u64>,
    /// First human reply (ms), the SLA's end.
    pub first_reply_ms: Option<u64>,
    /// True once the SLA alert was raised (raised once).
    pub sla_alerted: bool,
    /// Transfers so far.
    pub transfers: u32,
    /// The hand-off summary made for the agent, once the desk's summary task has run (only
    /// when an LLM service is attached). Absent in tickets stored before summaries existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<StoredSummary>,
}

/// Where the summary an agent reads comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummarySource {
    /// A language model wrote it (the ladder's remote or local rung answered).
    Llm,
    /// Made from the ticket and the transcript: the reason, the user's last messages, the
    /// known slots. Needs nothing, so it is the fallback for everything else.
    Extractive,
}

impl SummarySource {
    /// `llm` or `extractive`, as the API says it.
    pub fn as_str(self) -> &'static str {
        match self {
            SummarySource::Llm => "llm",
            SummarySource::Extractive => "extractive",
        }
    }
}

/// The outcome of a conversation's hand-off summary, stored with its ticket so an agent who
/// opens it later (or after a restart) reads the same summary without asking the model again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSummary {
    /// Who wrote it.
    pub source: SummarySource,
    /// The model's text; empty for [`SummarySource::Extractive`], whose text is made on every
    /// read from the current transcript (so it never goes stale).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Which model rung answered (`remote`, `local`), or for an extractive summary why no model
    /// did (the ladder's reasons, e.g. `remote: timeout; local: not_configured`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// When it was made (ms since the Unix epoch).
    pub at_ms: u64,
}

/// How a handled conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The agent gave the conversation back to the bot.
    HandedBack,
    /// The agent closed it.
    Closed,
}

/// Figures and happenings for the dashboard; broadcast live and persisted in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeskEvent {
    /// A conversation entered the queue.
    Queued {
        /// Conversation key.
        session: String,
        /// Customer tier.
        tier: u8,
        /// Skill needed.
        skill: Option<String>,
        /// Position in the queue right after.
        position: usize,
        /// Desk clock, ms.
        at_ms: u64,
    },
    /// An agent got a conversation.
    Assigned {
        /// Conversation key.
        session: String,
        /// The agent.
        agent: String,
        /// Time in the queue before this assignment, ms.
        queue_wait_ms: u64,
        /// Desk clock, ms.
        at_ms: u64,
    },
    /// The first human reply of a conversation.
    FirstReply {
        /// Conversation key.
        session: String,
        /// The agent.
        agent: String,
        /// Time from escalation to the reply, ms.
        first_reply_ms: u64,
        /// Desk clock, ms.
        at_ms: u64,
    },
    /// The first-reply SLA was exceeded.
    SlaBreached {
        /// Conversation key.
        session: String,
        /// The agent, if assigned.
        agent: Option<String>,
        /// Waited so far, ms.
        waited_ms: u64,
        /// The SLA, ms.
        sla_ms: u64,
        /// Desk clock, ms.
        at_ms: u64,
    },
    /// A conversation moved from one agent to another agent or a queue.
    Transferred {
        /// Conversation key.
        session: String,
        /// From this agent.
        from: String,
        /// To this agent (`None`: back to the queue).
        to_agent: Option<String>,
        /// To this skill's queue.
        to_skill: Option<String>,
        /// Desk clock, ms.
        at_ms: u64,
    },
    /// A conversation went back to the queue because its agent left.
    Requeued {
        /// Conversation key.
        session: String,
        /// The agent who left.
        agent: String,
        /// Desk clock, ms.
        at_ms: u64,
    },
    /// A conversation left the desk.
    Ended {
        /// Conversation key.
        session: String,
        /// The agent.
        agent: String,
        /// Handed back or closed.
        outcome: Outcome,
        /// Assignment to end, ms.
        handle_ms: u64,
        /// Desk clock, ms.
        at_ms: u64,
    },
    /// An agent's presence changed; `load` is their conversations now.
    Presence {
        /// The agent.
        agent: String,
        /// New presence.
        presence: Presence,
        /// Conversations held.
        load: usize,
        /// Desk clock, ms.
        at_ms: u64,
    },
}

/// The desk's configuration (`[agents]` in the runtime's TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeskConfig {
    /// The agents and their sign-in secrets. No agents: the desk is off and hand-offs only
    /// produce the bot's hand-off message.
    pub agents: Vec<AgentAccount>,
    /// Seconds to the first human reply before an SLA alert.
    pub first_reply_sla_secs: f64,
    /// True: the router gives waiting conversations to agents itself; false: agents pick
    /// from the queue (`accept`).
    pub auto_assign: bool,
    /// Average handling time assumed before any was measured, for wait estimates (s).
    pub default_handle_secs: f64,
    /// Queue credit per customer tier (s): a tier-2 customer ranks as if they had waited
    /// `2 * tier_credit_secs` longer.
    pub tier_credit_secs: f64,
    /// Queue credit for a negative emotion at hand-off (s).
    pub negative_emotion_credit_secs: f64,
    /// Customer tier by user id (tags imported from the CRM).
    pub user_tiers: HashMap<String, u8>,
    /// Customer tier by user tag, for tags the operator's integration sends with messages
    /// (`"tags": ["vip"]`); default `vip = 2`.
    pub tag_tiers: HashMap<String, u8>,
    /// Skill needed by intent or flow name (e.g. `return_goods = "returns"`).
    pub skills_by_topic: HashMap<String, String>,
    /// Ask for a 1–5 rating when an agent closes a conversation.
    pub csat_on_close: bool,
    /// Seconds an agent who was assigned conversations before a restart has to come back
    /// before they are requeued.
    pub restart_grace_secs: f64,
}

impl Default for DeskConfig {
    fn default() -> Self {
        Self {
            agents: Vec::new(),
            first_reply_sla_secs: 30.0,
            auto_assign: true,
            default_handle_secs: 180.0,
            tier_credit_secs: 600.0,
            negative_emotion_credit_secs: 120.0,
            user_tiers: HashMap::new(),
            tag_tiers: HashMap::from([("vip".to_owned(), VIP_TAG_TIER)]),
            skills_by_topic: HashMap::new(),
            csat_on_close: true,
            restart_grace_secs: 60.0,
        }
    }
}

impl DeskConfig {
    /// Checks the values make sense; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("first_reply_sla_secs", self.first_reply_sla_secs),
            ("default_handle_secs", self.default_handle_secs),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "agents.{name} must be a positive number of seconds"
                ));
            }
        }
        for (name, v) in [
            ("tier_credit_secs", self.tier_credit_secs),
            (
                "negative_emotion_credit_secs",
                self.negative_emotion_credit_secs,
            ),
            ("restart_grace_secs", self.restart_grace_secs),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("agents.{name} must be zero or more seconds"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.agents {
            if a.id.trim().is_empty() || a.id.len() > 64 {
                return Err("agents.agents: every agent needs an id of 1 to 64 characters".into());
            }
            if !seen.insert(a.id.as_str()) {
                return Err(format!("agents.agents: the id {:?} is used twice", a.id));
            }
            if a.secret.len() < 8 {
                return Err(format!(
                    "agents.agents: the secret of {:?} must have at least 8 characters",
                    a.id
                ));
            }
            if a.capacity == 0 {
                return Err(format!(
                    "agents.agents: the capacity of {:?} must be at least 1",
                    a.id
                ));
            }
        }
        Ok(())
    }

    /// True when agents are configured.
    pub fn enabled(&self) -> bool {
        !self.agents.is_empty()
    }
}

/// An agent's account in the configuration: the profile plus the sign-in secret (kept apart
/// from the operator's API keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentAccount {
    /// Stable id (sign-in name).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Skills.
    #[serde(default)]
    pub skills: Vec<String>,
    /// The highest customer tier served.
    #[serde(default)]
    pub tier: u8,
    /// Languages written; empty = any.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Conversations at once.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// The sign-in secret (at least 8 characters).
    pub secret: String,
}

impl AgentAccount {
    /// The public part.
    pub fn profile(&self) -> AgentProfile {
        AgentProfile {
            id: self.id.clone(),
            name: if self.name.is_empty() {
                self.id.clone()
            } else {
                self.name.clone()
            },
            skills: self.skills.clone(),
            tier: self.tier,
            languages: self.languages.clone(),
            capacity: self.capacity,
        }
    }
}

/// A waiting conversation's place, for the user's waiting message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueuePosition {
    /// 1 = next.
    pub position: usize,
    /// Seconds until an agent is expected to take it.
    pub estimated_wait_secs: u64,
}

/// Where a transfer sends a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// A named agent (directly when they have room, else reserved for them in the queue).
    Agent(String),
    /// The queue of agents with this skill (a team).
    Skill(String),
}

/// An agent as the desk sees them now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    /// The profile.
    #[serde(flatten)]
    pub profile: AgentProfile,
    /// Presence.
    pub presence: Presence,
    /// Conversations held, sorted.
    pub conversations: Vec<String>,
}
