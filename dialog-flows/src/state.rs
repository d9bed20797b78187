//! The per-session dialog state: what the interpreter remembers between turns.
//!
//! Kept deliberately small (hundreds of bytes of JSON for a typical session) because the
//! runtime holds one per active session — 100,000 of them — and persists it on every turn.
//! Empty fields are skipped when serialising. The state refers to flows by name and to
//! steps by index, so it is only meaningful with the bot version that produced it; the
//! interpreter never trusts it blindly (unknown flows, out-of-range steps, undefined or
//! mistyped slots and an over-deep stack are repaired, not panicked on).
//!
//! Between turns the active flow waits at an `ask` step, or — while `waiting` is set — at
//! the `call`/`generate` step whose result the runtime is fetching.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The dialog state of one session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DialogState {
    /// The flow being run; it is always waiting at an `ask` step between turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Frame>,
    /// Flows interrupted by a digression, innermost last; resumed when `active` ends.
    /// Never deeper than the bot's `settings.max_stack_depth` (itself at most 8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<Frame>,
    /// Filled slots as typed JSON values (a string for `text`, a number for `integer`, ...).
    /// Slots live for the whole session; a `set: {slot: null}` step clears one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, serde_json::Value>,
    /// Consecutive out-of-scope messages; reset by any understood message.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fallbacks: u8,
    /// Set while the turn is suspended on a skill call or a generation: the active frame is
    /// at that step, and the result goes to [`crate::resume`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// Policies that have fired in this session (for their `first:` action); cleared by a
    /// handoff or the end of the conversation.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub fired: BTreeSet<String>,
}

/// What a suspended turn waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Waiting {
    /// The result of a skill call.
    Skill {
        /// The skill called.
        skill: String,
    },
    /// Text from the LLM.
    Generation,
}

/// Where a finished sub-flow (`call_flow`) returns to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    /// The calling flow.
    pub flow: String,
    /// The step to continue at (the one after the `call_flow` step).
    pub step: u32,
}

/// Where one flow is: its name, the step it is at, failed answers to the current `ask`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The flow's name.
    pub flow: String,
    /// Index of the current step in the flow's `steps`.
    pub step: u32,
    /// Failed answers to the `ask` at `step`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u8,
    /// Callers of this flow when it runs as a sub-flow (`call_flow`), innermost last.
    /// Never longer than the bot's `settings.max_call_depth`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<Return>,
}

impl Frame {
    /// A frame at the first step of `flow`.
    pub fn start(flow: &str) -> Frame {
        Frame {
            flow: flow.to_string(),
            step: 0,
            attempts: 0,
            returns: Vec::new(),
        }
    }
}

impl DialogState {
    /// True when no flow is running (the next message is matched against intents).
    pub fn is_idle(&self) -> bool {
        self.active.is_none()
    }

    /// True while a turn is suspended on a skill call or a generation.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// A slot's value, if filled.
    pub fn slot(&self, name: &str) -> Option<&serde_json::Value> {
        self.slots.get(name).filter(|v| !v.is_null())
    }
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_state_serialises_to_empty_object() {
        assert_eq!(
            serde_json::to_string(&DialogState::default()).unwrap(),
            "{}"
        );
        let back: DialogState = serde_json::from_str("{}").unwrap();
        assert_eq!(back, DialogState::default());
    }

    #[test]
    fn typical_state_is_small() {
        let mut s = DialogState {
            active: Some(Frame::start("order_status")),
            ..Default::default()
        };
        s.stack.push(Frame {
            flow: "return_exchange".into(),
            step: 2,
            attempts: 1,
            returns: vec![Return {
                flow: "verify".into(),
                step: 3,
            }],
        });
        s.slots.insert("order_id".into(), json!("A12345678"));
        s.slots.insert("return_kind".into(), json!("refund"));
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.len() < 350, "{} bytes: {text}", text.len());
        assert_eq!(serde_json::from_str::<DialogState>(&text).unwrap(), s);
    }
}
