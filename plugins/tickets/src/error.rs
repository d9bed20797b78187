//! The one error type of ticketing, with a stable machine-readable code per variant.
//!
//! Invariant: [`TicketError::code`] strings never change once shipped (clients branch on them);
//! messages are for people. Storage details are kept in the error for logs but the REST layer
//! never sends them to clients.

use crate::model::{Status, TicketId};

/// `Result` with [`TicketError`].
pub type Result<T, E = TicketError> = std::result::Result<T, E>;

/// Everything that can go wrong with a ticket operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The title is missing or blank.
    #[error("the title must not be empty")]
    EmptyTitle,
    /// A text field is longer than allowed.
    #[error("`{field}` is longer than {max} characters")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The maximum, in characters.
        max: usize,
    },
    /// A field's value is not acceptable (blank, control characters, too many entries).
    #[error("`{field}`: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Which rule it broke.
        reason: String,
    },
    /// The status is not one of ours.
    #[error("unknown status {0:?}; expected one of open, in_progress, pending, resolved, closed")]
    UnknownStatus(String),
    /// The priority is not one of ours.
    #[error("unknown priority {0:?}; expected one of low, normal, high, urgent")]
    UnknownPriority(String),
    /// The text is not a ticket id (`T-000123`).
    #[error("{0:?} is not a ticket id (expected the form T-000123)")]
    InvalidId(String),
    /// No ticket with this id.
    #[error("no ticket {0}")]
    NotFound(TicketId),
    /// The ticket is closed: reopen it before changing it.
    #[error("ticket {0} is closed; reopen it first")]
    Closed(TicketId),
    /// Reopening a ticket that is not closed.
    #[error("ticket {0} is not closed")]
    NotClosed(TicketId),
    /// A status change the lifecycle does not allow.
    #[error("a ticket cannot go from {from} to {to} this way: {hint}")]
    IllegalTransition {
        /// The current status.
        from: Status,
        /// The requested status.
        to: Status,
        /// What to do instead.
        hint: &'static str,
    },
    /// An update that names no field.
    #[error(
        "the update changes nothing: give at least one of title, description, status, priority, tags"
    )]
    EmptyPatch,
    /// The paging cursor is not one this API handed out.
    #[error("the cursor is invalid; use the next_cursor of the previous page")]
    InvalidCursor,
    /// The storage failed (I/O, flush). Retrying later may succeed.
    #[error("ticket storage failed during {op}: {detail}")]
    Storage {
        /// What was being done.
        op: &'static str,
        /// The storage's own message (logged, never sent to clients).
        detail: String,
    },
    /// Stored data could not be decoded (a bug or damaged files).
    #[error("stored ticket data is damaged ({what}): {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The decoder's message.
        detail: String,
    },
}

impl TicketError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TicketError::EmptyTitle => "empty_title",
            TicketError::TooLong { .. } => "too_long",
            TicketError::InvalidField { .. } => "invalid_field",
            TicketError::UnknownStatus(_) => "unknown_status",
            TicketError::UnknownPriority(_) => "unknown_priority",
            TicketError::InvalidId(_) => "invalid_ticket_id",
            TicketError::NotFound(_) => "ticket_not_found",
            TicketError::Closed(_) => "ticket_closed",
            TicketError::NotClosed(_) => "ticket_not_closed",
            TicketError::IllegalTransition { .. } => "illegal_transition",
            TicketError::EmptyPatch => "empty_patch",
            TicketError::InvalidCursor => "invalid_cursor",
            TicketError::Storage { .. } => "storage_unavailable",
            TicketError::Corrupt { .. } => "internal_error",
        }
    }

    /// Whether the error is the caller's input (as opposed to state conflicts or faults).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            TicketError::EmptyTitle
                | TicketError::TooLong { .. }
                | TicketError::InvalidField { .. }
                | TicketError::UnknownStatus(_)
                | TicketError::UnknownPriority(_)
                | TicketError::InvalidId(_)
                | TicketError::EmptyPatch
                | TicketError::InvalidCursor
        )
    }

    /// Whether the error is a fault of ours (storage), not of the request.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            TicketError::Storage { .. } | TicketError::Corrupt { .. }
        )
    }
}
