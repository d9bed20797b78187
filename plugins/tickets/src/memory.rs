//! [`MemoryTicketStore`]: tickets in process memory, for tests and for runs without storage.
//!
//! Same contract as every [`TicketStore`] except durability: everything is lost with the
//! process. One mutex guards all state; it is never held across an `.await`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::error::{Result, TicketError};
use crate::model::{Change, NewTicket, Ticket, TicketEvent, TicketId, now_ms};
use crate::store::{
    Changed, EVENT_CHANNEL_CAPACITY, TicketPage, TicketQuery, TicketStore, events_page_size,
};

/// Tickets in memory. See the module docs.
#[derive(Debug)]
pub struct MemoryTicketStore {
    state: Mutex<State>,
    events_tx: broadcast::Sender<TicketEvent>,
}

#[derive(Debug, Default)]
struct State {
    last_id: u64,
    tickets: BTreeMap<TicketId, Ticket>,
    /// Keyed by (ticket, seq) so one ticket's events are a contiguous range.
    events: BTreeMap<(TicketId, u64), TicketEvent>,
}

impl Default for MemoryTicketStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTicketStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryTicketStore {
            state: Mutex::new(State::default()),
            events_tx: broadcast::channel(EVENT_CHANNEL_CAPACITY).0,
        }
    }

    fn publish(&self, event: Option<&TicketEvent>) {
        if let Some(event) = event {
            // No receivers is fine: nobody is watching.
            let _ = self.events_tx.send(event.clone());
        }
    }
}

#[async_trait]
impl TicketStore for MemoryTicketStore {
    async fn create(&self, new: NewTicket, actor: &str) -> Result<Ticket> {
        let applied = {
            let mut state = self.state.lock();
            let id = TicketId(state.last_id + 1);
            let applied = Ticket::create(id, new, actor, now_ms())?;
            state.last_id = id.0;
            state.tickets.insert(id, applied.ticket.clone());
            if let Some(event) = &applied.event {
                state.events.insert((id, event.seq), event.clone());
            }
            applied
        };
        self.publish(applied.event.as_ref());
        Ok(applied.ticket)
    }

    async fn get(&self, id: TicketId) -> Result<Ticket> {
        self.state
            .lock()
            .tickets
            .get(&id)
            .cloned()
            .ok_or(TicketError::NotFound(id))
    }

    async fn change(&self, id: TicketId, actor: &str, change: Change) -> Result<Changed> {
        let applied = {
            let mut state = self.state.lock();
            let ticket = state.tickets.get(&id).ok_or(TicketError::NotFound(id))?;
            let applied = ticket.apply(actor, change, now_ms())?;
            if let Some(event) = &applied.event {
                state.tickets.insert(id, applied.ticket.clone());
                state.events.insert((id, event.seq), event.clone());
            }
            applied
        };
        self.publish(applied.event.as_ref());
        Ok(Changed {
            ticket: applied.ticket,
            event: applied.event,
        })
    }

    async fn list(&self, query: &TicketQuery) -> Result<TicketPage> {
        let size = query.page_size();
        let state = self.state.lock();
        let upper = query.cursor.unwrap_or(TicketId(u64::MAX));
        let matches = state
            .tickets
            .range(..upper)
            .rev()
            .map(|(_, t)| t)
            .filter(|t| query.matches(t))
            .take(size + 1)
            .cloned()
            .collect();
        Ok(TicketPage::from_matches(matches, size))
    }

    async fn events(&self, id: TicketId, after: u64, limit: usize) -> Result<Vec<TicketEvent>> {
        let state = self.state.lock();
        if !state.tickets.contains_key(&id) {
            return Err(TicketError::NotFound(id));
        }
        Ok(state
            .events
            .range((id, after.saturating_add(1))..=(id, u64::MAX))
            .map(|(_, e)| e.clone())
            .take(events_page_size(limit))
            .collect())
    }

    fn subscribe(&self) -> broadcast::Receiver<TicketEvent> {
        self.events_tx.subscribe()
    }
}
