//! kefu's runtime: what an operator embeds and runs.
pub mod http;
