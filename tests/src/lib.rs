//! Helpers shared by kefu's black-box tests, the crash test and the load generator: finding and
//! starting the `kefu` binary, and a small keep-alive HTTP/1 client for loopback.

#![allow(unreachable_pub)]

pub mod client;
pub mod process;
pub mod prom;
pub mod stats;
pub mod threads;
