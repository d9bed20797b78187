//! The human desk: when the bot cannot help, a person takes over without the user repeating
//! anything.
//!
//! - [`router`]: agents, presence, the priority queue, assignment, transfers, SLA timers and
//!   the dashboard's figures; durable in sled.
//! - [`desk`]: the conversation side: the hand-off hook the engine calls, human mode (the bot
//!   stays silent, user messages go to the agent), agent messages into the transcript and out
//!   to the user's channel, hand back and close.
//! - [`model`]: the data both share, and the configuration.
//! - [`assist`]: help for the agent: the hand-off summary (LLM when configured, extractive
//!   otherwise) and suggested replies (knowledge base, plus an LLM draft).
//!
//! No HTTP here: the runtime's agent API and console sit on top of [`Desk`].

pub mod assist;
mod clock;
pub mod desk;
mod error;
mod help;
pub mod model;
pub mod router;

#[cfg(test)]
mod tests;

pub use assist::{Suggestion, SuggestionSource, Suggestions};
pub use desk::{AgentPush, ContextView, Desk, DeskConversations, Handoff, HandoffSink, UserPush};
pub use model::{
    AgentAccount, AgentProfile, DeskConfig, DeskEvent, Escalation, HandoverContext, Outcome,
    Presence, StoredSummary, SummarySource, Ticket, TicketState,
};
pub use router::{
    AgentView, Clock, DeskError, DeskResult, ManualClock, QueuePosition, Router, SystemClock,
    TransferTarget,
};
