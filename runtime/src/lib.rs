//! kefu's runtime: what an operator embeds and runs. It wires the store, the session layer and
//! the HTTP/WebSocket API, and holds the `kefu` command's subcommands.

pub mod builtin;
pub mod config;
pub mod flowtest;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod reload;
pub mod server;

pub use config::Config;
pub use server::{
    Runtime, RuntimeBuilder, RuntimeError, open_sled, open_sled_store, open_sled_store_with,
};
