//! `kefu-tickets`: durable support tickets with an event history, a REST API and two skills.
//!
//! - [`model`]: tickets, events and the lifecycle rules (pure).
//! - [`TicketStore`]: storage contract; [`SledTicketStore`] (durable, in the runtime's sled
//!   database) and [`MemoryTicketStore`] (tests).
//! - [`api::router`]: the `/v1/tickets` REST API over any store.
//! - [`TicketsSkill`]: `tickets.create` and `tickets.status` for flows.
//!
//! Wiring, in the runtime:
//!
//! ```no_run
//! # fn wire(db: sled::Db) -> Result<(), kefu_tickets::TicketError> {
//! use std::sync::Arc;
//! use kefu_tickets::{SledTicketStore, TicketStore, TicketsSkill};
//! let store: Arc<dyn TicketStore> = Arc::new(SledTicketStore::new(db)?);
//! let routes = kefu_tickets::api::router(store.clone()); // merge behind the API-key layer
//! let [create, status] = TicketsSkill::all(store.clone()); // register both skills
//! let dashboard_feed = store.subscribe(); // every recorded TicketEvent
//! # let _ = (routes, create, status, dashboard_feed); Ok(()) }
//! ```

pub mod api;
pub mod error;
pub mod memory;
pub mod model;
pub mod skill;
pub mod sled_store;
pub mod store;

pub use error::{Result, TicketError};
pub use memory::MemoryTicketStore;
pub use model::{
    Change, EventKind, FieldChange, NewTicket, Priority, Status, Ticket, TicketEvent, TicketId,
    TicketPatch,
};
pub use skill::{CREATE_SKILL, STATUS_SKILL, TicketsSkill};
pub use sled_store::SledTicketStore;
pub use store::{Changed, TicketPage, TicketQuery, TicketStore};
