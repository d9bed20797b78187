//! What a turn produces: [`Effect`]s for the runtime to carry out, in order, and — for a
//! suspended turn — what it waits for; plus what the runtime hands back ([`External`]).
//!
//! Invariant: a [`Step`] either contains a visible effect (`Say`, `Handoff`, `End`) or ends
//! with exactly one pending effect (`Call` or `Generate`), which is its last effect — except a
//! turn resumed with [`External::Interrupted`], which may end silently (the user's newer
//! message is answered instead). The effects before a pending one (e.g. "let me look that
//! up") are delivered right away.

use serde::{Deserialize, Serialize};

use crate::model::Temperature;
use crate::state::DialogState;

/// What the runtime must do after a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Effect {
    /// Send this reply to the user.
    Say {
        /// The rendered reply.
        text: String,
    },
    /// Hand the conversation to a human agent; the bot's flows are cleared.
    Handoff {
        /// Why, for the agent and for metrics.
        reason: String,
        /// The agent queue to route to (e.g. `vip`), when not the default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
    },
    /// The conversation is complete from the bot's side (e.g. after goodbye).
    End,
    /// Call a skill, then give its result to [`crate::resume`]. Always the last effect.
    Call {
        /// The skill's name.
        skill: String,
        /// Its arguments (templates already rendered).
        args: serde_json::Map<String, serde_json::Value>,
    },
    /// Generate text with the LLM, then give it (or the failure) to [`crate::resume`].
    /// Always the last effect.
    Generate {
        /// The rendered instruction.
        prompt: String,
        /// Grounding passages the answer must keep to (empty ones left out).
        context: Vec<String>,
        /// The slot the text will be saved in; `None` means it will be said.
        save: Option<String>,
        /// The step's `max_tokens:`; `None` means the runtime's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_tokens: Option<u32>,
        /// The step's `temperature:`; `None` means the runtime's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temperature: Option<Temperature>,
    },
    /// The reply that follows used this variant of an A/B experiment (for analytics).
    Experiment {
        /// The experiment's name.
        name: String,
        /// The variant the user is assigned to.
        variant: String,
    },
}

impl Effect {
    /// True for effects the user perceives (a reply, a transfer, an ending).
    pub fn is_visible(&self) -> bool {
        matches!(
            self,
            Effect::Say { .. } | Effect::Handoff { .. } | Effect::End
        )
    }

    /// True for effects that suspend the turn (`Call`, `Generate`).
    pub fn is_pending(&self) -> bool {
        matches!(self, Effect::Call { .. } | Effect::Generate { .. })
    }
}

/// The result of one turn (or of resuming one).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The state to keep for the next turn (or to resume with).
    pub state: DialogState,
    /// What to do, in order.
    pub effects: Vec<Effect>,
}

impl Step {
    /// The `Call`/`Generate` the turn is suspended on, if any: run it, then call
    /// [`crate::resume`] with this step's state and the result. The effects before it are
    /// to be delivered first, in order.
    pub fn pending(&self) -> Option<&Effect> {
        self.effects.last().filter(|e| e.is_pending())
    }
}

/// The result of a skill call, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillResult {
    /// `found`, `not_found`, `declined`, `needs_human` or `error` (anything else counts as
    /// `error`).
    pub outcome: String,
    /// The data of a `found` result (saved in the step's `save` slot).
    #[serde(default)]
    pub data: serde_json::Value,
    /// A reason or note from the skill (used as the handoff reason for `needs_human`).
    #[serde(default)]
    pub message: Option<String>,
}

impl SkillResult {
    /// A `found` result with `data`.
    pub fn found(data: serde_json::Value) -> SkillResult {
        SkillResult {
            outcome: "found".into(),
            data,
            message: None,
        }
    }

    /// A result with `outcome` (`not_found`, `declined`, `needs_human`, `error`) and a reason.
    pub fn other(outcome: &str, message: impl Into<String>) -> SkillResult {
        SkillResult {
            outcome: outcome.into(),
            data: serde_json::Value::Null,
            message: Some(message.into()),
        }
    }
}

/// What the runtime gives back to a suspended turn.
#[derive(Debug, Clone, PartialEq)]
pub enum External {
    /// The result of a `Call`.
    Skill(SkillResult),
    /// The text of a `Generate`, or why generation failed.
    Generated(Result<String, String>),
    /// The `Generate` was cut short because a newer user message arrived: a said text is left
    /// unsaid (the newer message gets the answer), a saved one takes the step's `fallback:`,
    /// and the turn owes no reply of its own.
    Interrupted,
}
