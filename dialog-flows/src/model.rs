//! The loaded, validated form of a bot: intents, slots, flows and their steps.
//!
//! Invariants (established by the loader, relied on by the interpreter): every name a step
//! refers to exists (slots, flows, step indices are in range), every template and condition
//! is compiled, every regex is compiled, every `set` literal has its slot's type. Types are
//! `#[non_exhaustive]` where the language will grow (skills, `generate:`, sub-flow calls,
//! per-channel variants) so adding a step kind is not a breaking change for readers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::slot::SlotType;
use crate::template::{CondId, TemplateId};

/// A conversation language the flow language knows about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese (Mandarin, simplified script).
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Every language, in a stable order.
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    /// The short code used in YAML keys and in the API (`zh`, `en`).
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// Parses `zh`/`en`, also with a region or script suffix (`zh-CN`, `en_US`, `zh-Hans`).
    pub fn from_code(code: &str) -> Option<Lang> {
        let base = code.split(['-', '_']).next().unwrap_or(code);
        match base.to_ascii_lowercase().as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of `Lang::from_str`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language `{code}` (expected `zh` or `en`)")]
pub struct UnknownLang {
    /// What was given.
    pub code: String,
}

impl FromStr for Lang {
    type Err = UnknownLang;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lang::from_code(s).ok_or_else(|| UnknownLang {
            code: s.to_string(),
        })
    }
}

/// One value per language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerLang<T> {
    /// Chinese.
    pub zh: T,
    /// English.
    pub en: T,
}

impl<T> PerLang<T> {
    /// The value for `lang`.
    pub fn get(&self, lang: Lang) -> &T {
        match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        }
    }

    /// The value for `lang`, mutably.
    pub fn get_mut(&mut self, lang: Lang) -> &mut T {
        match lang {
            Lang::Zh => &mut self.zh,
            Lang::En => &mut self.en,
        }
    }
}

/// An intent: what the user wants, with training examples for the classifier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntentDef {
    /// What the intent means, for people and for LLM-based classifiers.
    pub description: Option<String>,
    /// Example utterances per language (training data for the classifier).
    pub examples: PerLang<Vec<String>>,
    /// Colloquial phrase -> canonical phrase (`啥时候能到` -> `什么时候到货`), applied by
    /// the normaliser before classification.
    pub synonyms: Vec<(String, String)>,
}

/// A slot: a named, typed value the bot collects or sets.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SlotDef {
    /// What the slot holds, for people.
    pub description: Option<String>,
    /// The type, which decides extraction from user text and validation.
    pub ty: SlotType,
}

/// Per-language text: a compiled template for each language that has one.
///
/// A plain string in YAML applies to every language; a `{zh: .., en: ..}` map gives one
/// per language. At render time a missing language falls back to the bot's default
/// language, then to any language present (the loader guarantees at least one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    pub(crate) by_lang: PerLang<Option<TemplateId>>,
}

impl Text {
    /// The template to use for `lang`, falling back to `default`, then to any language.
    pub(crate) fn pick(&self, lang: Lang, default: Lang) -> Option<TemplateId> {
        self.by_lang
            .get(lang)
            .or(*self.by_lang.get(default))
            .or_else(|| Lang::ALL.iter().find_map(|l| *self.by_lang.get(*l)))
    }
}

/// A flow: a named sequence of steps, started by an intent or by another flow.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FlowDef {
    /// What the flow does, for people.
    pub description: Option<String>,
    /// The intent that starts this flow, if any (flows without one are reached by `flow:`).
    pub trigger: Option<String>,
    /// The steps, run in order unless a step jumps.
    pub steps: Vec<StepDef>,
}

/// One step of a flow.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepDef {
    /// The step's `id:`, the target of `goto`/`branch`/`on_fail`.
    pub id: Option<String>,
    /// What the step does.
    pub kind: StepKind,
    /// 1-based line of the step in its file (for tracing and `kefu chat --explain`).
    pub line: u32,
}

/// What a step does. Jump targets are resolved to step indices within the same flow.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StepKind {
    /// Reply with a text.
    Say(Text),
    /// Collect a slot (skipped when the slot is already filled).
    Ask(AskStep),
    /// Set slots to literal values (`null` clears a slot).
    Set(Vec<(String, serde_json::Value)>),
    /// Jump to `then` when the condition holds, else to `otherwise` (or the next step).
    Branch {
        /// The compiled condition.
        cond: CondId,
        /// Step index when true.
        then: usize,
        /// Step index when false; `None` continues with the next step.
        otherwise: Option<usize>,
    },
    /// Jump to a step of this flow.
    Goto(usize),
    /// Leave this flow and start another (a jump, not a call: nothing returns here).
    Flow(String),
    /// Hand the conversation to a human agent.
    Handoff {
        /// Why, for the agent and for metrics.
        reason: String,
    },
    /// End this flow, or the whole conversation.
    End(EndScope),
}

/// The `ask:` step.
#[derive(Debug, Clone)]
pub struct AskStep {
    /// The slot to fill.
    pub slot: String,
    /// What to ask.
    pub prompt: Text,
    /// What to say after an answer that does not validate (defaults to `prompt`).
    pub reprompt: Option<Text>,
    /// Failed answers allowed before `on_fail` (>= 1).
    pub max_attempts: u8,
    /// What happens after `max_attempts` failed answers.
    pub on_fail: OnFail,
}

/// What an `ask:` step does once its attempts are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFail {
    /// Jump to this step index of the same flow.
    Step(usize),
    /// Say the fallback reply and end the flow.
    Fallback,
    /// Hand off to a human.
    Handoff,
}

/// What an `end` step ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndScope {
    /// This flow only; a flow interrupted by a digression resumes.
    Flow,
    /// The conversation: every flow is dropped and [`crate::Effect::End`] is emitted.
    Conversation,
}

/// `settings:` — bot-wide behaviour.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// Language used when the user's language has no text.
    pub default_language: Lang,
    /// Languages every per-language text should cover (missing ones are warnings).
    pub languages: Vec<Lang>,
    /// Consecutive out-of-scope messages before handing off (>= 1).
    pub max_fallbacks: u8,
    /// Minimum classifier confidence to start a flow.
    pub intent_threshold: f32,
    /// Minimum confidence for an intent to interrupt a flow that is asking for a slot.
    pub digression_threshold: f32,
    /// How many interrupted flows are remembered for resuming (0 disables resuming).
    pub max_stack_depth: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_language: Lang::Zh,
            languages: vec![Lang::Zh, Lang::En],
            max_fallbacks: 3,
            intent_threshold: 0.5,
            digression_threshold: 0.8,
            max_stack_depth: 3,
        }
    }
}

/// Upper bound on `settings.max_stack_depth`, keeping the state small whatever the YAML says.
pub const MAX_STACK_DEPTH: u8 = 8;

/// `responses:` — the bot's built-in replies.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Responses {
    /// Said when a message matches no intent (the out-of-scope reply).
    pub fallback: Text,
    /// Said before an automatic handoff (too many fallbacks, `on_fail: handoff`).
    pub handoff: Text,
    /// Said before re-asking when an interrupted flow resumes.
    pub resume: Text,
    /// Said when a turn would otherwise produce no reply (a flow of only `set` steps).
    pub anything_else: Text,
}
