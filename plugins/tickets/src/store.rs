//! The [`TicketStore`] trait: what the REST API and the skills need from ticket storage.
//!
//! Contract every implementation keeps:
//! - A write (`create`, `change`) returns only once the ticket and its event are durable (for
//!   the sled store: flushed to disk), and the ticket and its event are written atomically.
//! - Every recorded event is then sent to [`TicketStore::subscribe`] receivers, in commit order
//!   per ticket. Receivers that fall behind lose events (`RecvError::Lagged`) rather than
//!   slowing writers down; the event list stays the source of truth.
//! - Lifecycle rules are the model's ([`crate::model::Ticket::apply`]); stores only persist.
//! - Listing is newest first; `next_cursor` is the id of the last ticket of the page, and the
//!   next page holds tickets with smaller ids.

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::error::Result;
use crate::model::{Change, NewTicket, Status, Ticket, TicketEvent, TicketId};

/// Tickets on one page when the query does not say.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Most tickets on one page.
pub const MAX_PAGE_SIZE: usize = 100;
/// Most events in one events page.
pub const MAX_EVENTS_PAGE: usize = 1_000;
/// How many events a slow subscriber may fall behind before it starts losing them.
pub const EVENT_CHANNEL_CAPACITY: usize = 1_024;

/// Which tickets to list. All filters must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketQuery {
    /// Only this tenant's tickets.
    pub tenant: Option<String>,
    /// Only this customer's tickets.
    pub user: Option<String>,
    /// Only tickets in this status.
    pub status: Option<Status>,
    /// Only tickets assigned to this person.
    pub assignee: Option<String>,
    /// Page size (clamped to 1..=[`MAX_PAGE_SIZE`]; 0 means the default).
    pub limit: usize,
    /// Continue after this ticket (the previous page's `next_cursor`).
    pub cursor: Option<TicketId>,
}

impl TicketQuery {
    /// Whether `ticket` passes the filters (not the cursor).
    pub fn matches(&self, ticket: &Ticket) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == ticket.tenant)
            && self.user.as_ref().is_none_or(|u| *u == ticket.user)
            && self.status.is_none_or(|s| s == ticket.status)
            && self
                .assignee
                .as_ref()
                .is_none_or(|a| ticket.assignee.as_ref() == Some(a))
    }

    /// The effective page size.
    pub fn page_size(&self) -> usize {
        if self.limit == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            self.limit.min(MAX_PAGE_SIZE)
        }
    }
}

/// One page of tickets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketPage {
    /// The tickets, newest first.
    pub tickets: Vec<Ticket>,
    /// Pass as `cursor` to get the next page; `None` when this is the last one.
    pub next_cursor: Option<TicketId>,
}

impl TicketPage {
    /// Builds a page from up to `size + 1` matches (the extra one only says "there is more").
    pub(crate) fn from_matches(mut tickets: Vec<Ticket>, size: usize) -> TicketPage {
        let more = tickets.len() > size;
        tickets.truncate(size);
        let next_cursor = if more {
            tickets.last().map(|t| t.id)
        } else {
            None
        };
        TicketPage {
            tickets,
            next_cursor,
        }
    }
}

/// A ticket after a change, with the event it produced (`None` when nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The ticket as it is now.
    pub ticket: Ticket,
    /// The recorded event.
    pub event: Option<TicketEvent>,
}

/// Durable ticket storage. See the module docs for the contract.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Opens a ticket (status open, a fresh id); `actor` is who opened it.
    async fn create(&self, new: NewTicket, actor: &str) -> Result<Ticket>;

    /// The ticket with this id ([`crate::TicketError::NotFound`] if none).
    async fn get(&self, id: TicketId) -> Result<Ticket>;

    /// Applies one change by `actor`.
    async fn change(&self, id: TicketId, actor: &str, change: Change) -> Result<Changed>;

    /// Tickets matching `query`, newest first.
    async fn list(&self, query: &TicketQuery) -> Result<TicketPage>;

    /// The ticket's events with `seq > after`, oldest first, at most `limit` (clamped to
    /// 1..=[`MAX_EVENTS_PAGE`]). [`crate::TicketError::NotFound`] if the ticket does not exist.
    async fn events(&self, id: TicketId, after: u64, limit: usize) -> Result<Vec<TicketEvent>>;

    /// A receiver of every event recorded from now on.
    fn subscribe(&self) -> broadcast::Receiver<TicketEvent>;
}

/// Clamps an events page size.
pub(crate) fn events_page_size(limit: usize) -> usize {
    limit.clamp(1, MAX_EVENTS_PAGE)
}
