//! The per-session dialog state: what the interpreter remembers between turns.
//!
//! Kept deliberately small (hundreds of bytes of JSON for a typical session) because the
//! runtime holds one per active session — 100,000 of them — and persists it on every turn.
//! Empty fields are skipped when serialising. The state refers to flows by name and to
//! steps by index, so it is only meaningful with the bot version that produced it; the
//! interpreter never trusts it blindly (unknown flows, out-of-range steps, undefined or
//! mistyped slots and an over-deep stack are repaired, not panicked on).

use std::collections::BTreeMap;

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
}

impl Frame {
    /// A frame at the first step of `flow`.
    pub fn start(flow: &str) -> Frame {
        Frame {
            flow: flow.to_string(),
            step: 0,
            attempts: 0,
        }
    }
}

impl DialogState {
    /// True when no flow is running (the next message is matched against intents).
    pub fn is_idle(&self) -> bool {
        self.active.is_none()
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
        });
        s.slots.insert("order_id".into(), json!("A12345678"));
        s.slots.insert("return_kind".into(), json!("refund"));
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.len() < 300, "{} bytes: {text}", text.len());
        assert_eq!(serde_json::from_str::<DialogState>(&text).unwrap(), s);
    }
}
