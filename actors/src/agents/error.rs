//! The desk's error type. Refusals (not assigned, at capacity, ...) are errors of the call, not
//! of the desk: the HTTP layer maps each to a status and a stable code.

/// Why a desk operation was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    /// No agent with this id is configured.
    #[error("no agent {agent:?}")]
    UnknownAgent {
        /// The id.
        agent: String,
    },
    /// The conversation is not in the desk (never escalated, or already ended).
    #[error("conversation {session:?} is not with the human desk")]
    UnknownConversation {
        /// The conversation.
        session: String,
    },
    /// The conversation is not waiting in the queue (someone has it).
    #[error("conversation {session:?} is not waiting in the queue")]
    NotWaiting {
        /// The conversation.
        session: String,
    },
    /// The conversation is not assigned to this agent.
    #[error("conversation {session:?} is not assigned to agent {agent:?}")]
    NotAssigned {
        /// The conversation.
        session: String,
        /// The agent.
        agent: String,
    },
    /// The agent has as many conversations as their capacity.
    #[error("agent {agent:?} is at capacity")]
    AtCapacity {
        /// The agent.
        agent: String,
    },
    /// The agent may not take this conversation.
    #[error("agent {agent:?} cannot take this conversation: {reason}")]
    NotEligible {
        /// The agent.
        agent: String,
        /// Why (offline, tier, reserved for another agent).
        reason: &'static str,
    },
    /// The desk's storage failed; nothing was acknowledged.
    #[error("the desk's storage failed during {op}: {detail}")]
    Storage {
        /// What was being done.
        op: &'static str,
        /// What sled said.
        detail: String,
    },
}

/// Result of desk operations.
pub type DeskResult<T> = Result<T, DeskError>;
