//! kefu's actors. A conversation is one supervised session actor; the registry finds or
//! activates exactly one per session key; the supervisor restarts failed sessions from the store
//! and parks those that keep failing. No HTTP and no storage back-end types live here: channels
//! talk to [`Conversations`], sessions write through [`kefu_store::Store`].

pub mod api;
pub use api::*;
