//! kefu's actors. A conversation is one supervised session actor; the registry finds or
//! activates exactly one per session key; the supervisor keeps failures contained, failed
//! sessions restart from the store, and sessions that keep failing are parked. No HTTP and no
//! storage back-end types live here: channels talk to [`Conversations`], sessions write through
//! [`kefu_store::Store`].

pub mod agents;
pub mod api;
pub mod engine;
pub mod events;
pub mod handler;
pub mod llm;
pub mod registry;
pub mod session;
pub mod skills;
pub mod supervisor;
pub mod telemetry;
mod understand;

pub use api::*;
pub use handler::{DEFAULT_TENANT, HandledTurn, HandlerError, TurnContext, TurnHandler};
pub use registry::{SessionConfig, SessionRegistry, StatsView};
pub use skills::{SkillConfig, SkillHost, SkillHostError, SkillStats};
