//! `kefu-skill-orders`: the built-in order-query skill and a demo order back-end.
//!
//! - [`OrdersSkill`] (a [`kefu_plugin::Skill`]) looks one order up in an HTTP back-end described
//!   by an [`OrdersConfig`] (URL template, auth header, how the caller's user id is passed,
//!   field mapping, timeout) and answers the flow with our own field names. A user only ever
//!   sees their own orders: see [`skill`] for the invariants.
//! - [`demo::router`] serves the shop bot's demo orders over HTTP, so the shipped bot and the
//!   tests talk to a real back-end.
//!
//! Wiring, in the runtime:
//!
//! ```no_run
//! # async fn wire() -> Result<(), Box<dyn std::error::Error>> {
//! use kefu_skill_orders::{OrdersConfig, OrdersSkill, demo};
//! let fixture = std::path::Path::new("dialog-flows/bots/shop").join(demo::DEMO_FIXTURE);
//! let backend = demo::router(demo::DemoOrders::load(&fixture, "demo-token")?);
//! // ... serve `backend` (or merge it into the runtime's router), then:
//! let skill = OrdersSkill::new(OrdersConfig::for_demo("http://127.0.0.1:8080", "demo-token"))?;
//! # let _ = (backend, skill); Ok(()) }
//! ```

pub mod config;
pub mod demo;
pub mod skill;

pub use config::{AuthHeaderConfig, ConfigError, FieldMap, OrdersConfig, SendUser};
pub use skill::OrdersSkill;
