//! kefu's dialog flow language: bots written in YAML by designers, loaded with
//! `file:line:col` diagnostics, and run by a pure interpreter.
//!
//! - [`Bot::load_dir`] / [`Bot::load_str`] parse and validate a bot (every error, with
//!   positions and hints — see [`Diagnostic`]);
//! - [`step`] runs one turn: `(bot, state, input) -> (state, effects)`, with no I/O, so the
//!   session actor owns all side effects and tests can run conversations directly; a turn
//!   that needs a skill or the LLM ends with a pending [`Effect::Call`]/[`Effect::Generate`]
//!   ([`Step::pending`]) and continues with [`resume`] once the runtime has the result;
//! - [`DialogState`] is the small, serde-able per-session state.
//!
//! The language reference for designers is `dialog-flows/README.md`; the JSON Schema for
//! editors is `dialog-flows/schema/kefu-flows.schema.json` (kept in sync with
//! [`TOP_LEVEL_KEYS`] by a test).

mod bot;
mod check_graph;
mod diagnostic;
mod effect;
mod entity;
mod external;
mod input;
mod interpreter;
mod load;
mod load_defs;
mod load_extras;
mod load_flow;
mod load_settings;
mod load_steps;
mod load_text;
mod model;
mod slot;
mod slot_builtin;
mod state;
mod template;
mod yaml;

pub use bot::{Bot, LoadOptions};
pub use diagnostic::{Diagnostic, Pos, Severity};
pub use effect::{Effect, External, SkillResult, Step};
pub use entity::{BuiltinEntity, EntityDef, EntityKind};
pub use external::MAX_SAVED_DATA_BYTES;
pub use input::{EntityValue, IntentMatch, Signals, TurnInput};
pub use interpreter::{MAX_STEPS_PER_TURN, resume, step};
pub use load::{OOS_INTENT, RESPONSE_KEYS, TOP_LEVEL_KEYS};
pub use load_flow::STEP_KINDS;
pub use model::{
    AskStep, CallArg, CallStep, EndScope, ExperimentDef, FlowDef, GenerateStep, IntentDef, Lang,
    MAX_CALL_DEPTH, MAX_GENERATE_TOKENS, MAX_STACK_DEPTH, OnFail, Outcome, PerLang, PolicyAction,
    PolicyDef, PolicyThen, Responses, Route, Settings, SlotDef, StepDef, StepKind, Temperature,
    TemperatureOutOfRange, Text, UnknownLang,
};
pub use slot::{EnumValue, MAX_TEXT_SLOT_CHARS, SLOT_TYPE_NAMES, SlotType};
pub use state::{DialogState, Frame, Return, Waiting};
pub use template::{CondId, TemplateId};
