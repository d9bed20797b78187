//! kefu's dialog flow language: bots written in YAML by designers, loaded with
//! `file:line:col` diagnostics, and run by a pure interpreter.
//!
//! - [`Bot::load_dir`] / [`Bot::load_str`] parse and validate a bot (every error, with
//!   positions and hints — see [`Diagnostic`]);
//! - [`step`] runs one turn: `(bot, state, input) -> (state, effects)`, with no I/O, so the
//!   session actor owns all side effects and tests can run conversations directly;
//! - [`DialogState`] is the small, serde-able per-session state.
//!
//! The language reference for designers is `dialog-flows/README.md`; the JSON Schema for
//! editors is `dialog-flows/schema/kefu-flows.schema.json` (kept in sync with
//! [`TOP_LEVEL_KEYS`] by a test).

mod bot;
mod diagnostic;
mod interpreter;
mod load;
mod load_defs;
mod load_flow;
mod load_settings;
mod model;
mod slot;
mod state;
mod template;
mod yaml;

pub use bot::Bot;
pub use diagnostic::{Diagnostic, Pos, Severity};
pub use interpreter::{Effect, IntentMatch, MAX_STEPS_PER_TURN, Step, TurnInput, step};
pub use load::{RESPONSE_KEYS, TOP_LEVEL_KEYS};
pub use load_flow::STEP_KINDS;
pub use model::{
    AskStep, EndScope, FlowDef, IntentDef, Lang, MAX_STACK_DEPTH, OnFail, PerLang, Responses,
    Settings, SlotDef, StepDef, StepKind, Text, UnknownLang,
};
pub use slot::{EnumValue, MAX_TEXT_SLOT_CHARS, SLOT_TYPE_NAMES, SlotType};
pub use state::{DialogState, Frame};
pub use template::{CondId, TemplateId};
