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
    /// The entity the slot's values come from, when its type names one (`type: sku`,
    /// `type: mobile`): a value the NLU found for that entity is used before the text.
    pub entity: Option<String>,
}

/// Per-language templates, with optional per-channel versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Localized {
    /// The main text per language.
    pub(crate) by_lang: PerLang<Option<TemplateId>>,
    /// Channel name -> a version for that channel (e.g. a 140-character `sms` text).
    pub(crate) channels: Vec<(String, PerLang<Option<TemplateId>>)>,
}

impl Localized {
    /// The template for `lang` on `channel`: the channel's version in the user's language,
    /// then the main text in that language, then the same two in `default`, then any text.
    /// (A channel version in another language is worse than the main text in the user's.)
    pub(crate) fn pick(&self, lang: Lang, default: Lang, channel: &str) -> Option<TemplateId> {
        let ch = self
            .channels
            .iter()
            .find(|(name, _)| !channel.is_empty() && name == channel)
            .map(|(_, t)| t);
        ch.and_then(|t| *t.get(lang))
            .or(*self.by_lang.get(lang))
            .or_else(|| ch.and_then(|t| *t.get(default)))
            .or(*self.by_lang.get(default))
            .or_else(|| Lang::ALL.iter().find_map(|l| *self.by_lang.get(*l)))
    }
}

/// An A/B-tested text: one [`Localized`] text per variant of a declared experiment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TextExperiment {
    /// The experiment (declared under `experiments:`).
    pub(crate) name: String,
    /// Variant name -> its text; the loader guarantees every declared variant is here.
    pub(crate) variants: Vec<(String, Localized)>,
}

/// A reply text: per-language templates, optionally per channel, optionally A/B-tested.
///
/// A plain string in YAML applies to every language; a `{zh: .., en: ..}` map gives one
/// per language (plus `channels:`); `{experiment: name, variants: {a: .., b: ..}}` gives
/// one text per variant. At render time a missing language falls back to the bot's default
/// language, then to any language present (the loader guarantees at least one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    /// The text when there is no experiment (for an experiment: its first variant, used
    /// by tooling and when a variant cannot be found).
    pub(crate) base: Localized,
    /// Set for A/B-tested texts.
    pub(crate) experiment: Option<Box<TextExperiment>>,
}

impl Text {
    /// The main template to use for `lang`, falling back to `default`, then to any language
    /// (ignoring channels and experiments; for tooling).
    pub(crate) fn pick(&self, lang: Lang, default: Lang) -> Option<TemplateId> {
        self.base.pick(lang, default, "")
    }

    /// The experiment this text belongs to, if it is A/B-tested.
    pub fn experiment(&self) -> Option<&str> {
        self.experiment.as_ref().map(|e| e.name.as_str())
    }
}

/// An A/B experiment declared under `experiments:`: variants and their weights.
///
/// Assignment is stable: the same user always gets the same variant of an experiment
/// (FNV-1a of user id and experiment name, modulo the total weight), across turns,
/// sessions, restarts and machines, with no state stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExperimentDef {
    /// What is being tested, for people.
    pub description: Option<String>,
    /// Variant names with their weights (each >= 1), in declaration order.
    pub variants: Vec<(String, u32)>,
}

impl ExperimentDef {
    /// The variant `user` is assigned to in the experiment called `name`.
    pub fn assign(&self, name: &str, user: &str) -> &str {
        let total: u64 = self.variants.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return self.variants.first().map_or("", |(v, _)| v.as_str());
        }
        let mut h = fnv1a(FNV_OFFSET, user.as_bytes());
        h = fnv1a(h, &[0]);
        h = fnv1a(h, name.as_bytes());
        let mut point = h % total;
        for (variant, w) in &self.variants {
            let w = u64::from(*w);
            if point < w {
                return variant;
            }
            point -= w;
        }
        self.variants.last().map_or("", |(v, _)| v.as_str())
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64 bit): fixed and portable, unlike std's randomly seeded hasher, so A/B
/// assignments never change between processes or versions.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    h
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
        /// The agent queue to route to (e.g. `vip`), when not the default one.
        queue: Option<String>,
    },
    /// End this flow, or the whole conversation.
    End(EndScope),
    /// Call a skill (the turn suspends until its result is given to [`crate::resume`]).
    Call(CallStep),
    /// Generate a reply with the LLM (the turn suspends until the text is given to
    /// [`crate::resume`]).
    Generate(GenerateStep),
    /// Run another flow as a sub-flow; when it ends, continue with the next step here.
    CallFlow(String),
}

/// Where a step goes next for one outcome (`on:` of a `call` step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Continue with the next step.
    Next,
    /// Jump to this step index of the same flow.
    Step(usize),
    /// Say the fallback reply and end the flow.
    Fallback,
    /// Hand off to a human.
    Handoff,
}

/// The outcome of a skill call, as reported in [`crate::SkillResult::outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The skill found what was asked (`found`).
    Found,
    /// Nothing matched (`not_found`).
    NotFound,
    /// The skill refused, e.g. a policy forbids it (`declined`).
    Declined,
    /// The skill says a person must take over (`needs_human`).
    NeedsHuman,
    /// The call failed: timeout, backend down, bad argument, unknown outcome (`error`).
    Error,
}

impl Outcome {
    /// Every outcome, in the order the YAML reference lists them.
    pub const ALL: [Outcome; 5] = [
        Outcome::Found,
        Outcome::NotFound,
        Outcome::Declined,
        Outcome::NeedsHuman,
        Outcome::Error,
    ];

    /// The name used in YAML and in [`crate::SkillResult::outcome`].
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::NotFound => "not_found",
            Outcome::Declined => "declined",
            Outcome::NeedsHuman => "needs_human",
            Outcome::Error => "error",
        }
    }

    /// Parses an outcome name; anything unknown is an `Error` (fail closed).
    pub fn parse(s: &str) -> Outcome {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .unwrap_or(Outcome::Error)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `call:` step.
#[derive(Debug, Clone)]
pub struct CallStep {
    /// The skill's name (e.g. `orders`, `tickets.create`).
    pub skill: String,
    /// Arguments: name -> a template (rendered to a string) or a literal JSON scalar.
    pub args: Vec<(String, CallArg)>,
    /// The `json` slot that keeps `data` of a `found` result (cleared on other outcomes).
    pub save: Option<String>,
    /// Where each outcome goes, indexed like [`Outcome::ALL`].
    pub(crate) routes: [Route; 5],
}

impl CallStep {
    /// Where `outcome` goes.
    pub fn route(&self, outcome: Outcome) -> Route {
        self.routes[outcome.index()]
    }

    /// The defaults: `found` and `not_found` continue with the next step, `needs_human`
    /// hands off, `declined` and `error` say the fallback reply and end the flow.
    pub(crate) fn default_routes() -> [Route; 5] {
        [
            Route::Next,
            Route::Next,
            Route::Fallback,
            Route::Handoff,
            Route::Fallback,
        ]
    }
}

/// One argument of a `call:` step.
#[derive(Debug, Clone)]
pub enum CallArg {
    /// A template, rendered (to a string) when the step runs.
    Template(TemplateId),
    /// A literal number, boolean or null, passed as is.
    Literal(serde_json::Value),
}

/// The `generate:` step.
#[derive(Debug, Clone)]
pub struct GenerateStep {
    /// The instruction for the model (a template).
    pub prompt: TemplateId,
    /// Grounding passages (templates); those that render empty are left out.
    pub context: Vec<TemplateId>,
    /// The slot (`text` or `json`) that keeps the generated text; without one it is said.
    pub save: Option<String>,
    /// Used instead of the generated text when generation fails or returns nothing.
    pub fallback: Text,
    /// The step's answer length in tokens (`max_tokens:`, 1..=[`MAX_GENERATE_TOKENS`]);
    /// `None` leaves it to the runtime's default.
    pub max_tokens: Option<u32>,
    /// The step's sampling temperature (`temperature:`); `None` leaves it to the runtime.
    pub temperature: Option<Temperature>,
}

/// Most tokens a `generate:` step may ask for with `max_tokens:`: a chat answer, not a
/// document (the runtime's budgets cut further).
pub const MAX_GENERATE_TOKENS: u32 = 4096;

/// A sampling temperature: finite, in `0.0..=`[`Temperature::MAX`]. Only constructed through
/// [`Temperature::new`] (or deserialised through it), so it is never NaN and may be `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Temperature(f32);

impl Temperature {
    /// The highest temperature a flow may set (OpenAI's upper bound).
    pub const MAX: f32 = 2.0;

    /// The temperature `value`, if it is finite and within `0.0..=MAX`.
    pub fn new(value: f32) -> Option<Self> {
        (value.is_finite() && (0.0..=Self::MAX).contains(&value)).then_some(Self(value))
    }

    /// The value.
    pub fn get(self) -> f32 {
        self.0
    }
}

// Sound: the constructor rejects NaN, the one value for which `==` is not reflexive.
impl Eq for Temperature {}

/// A temperature outside `0.0..=`[`Temperature::MAX`] (or not a number).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("temperature {0} is not between 0 and 2")]
pub struct TemperatureOutOfRange(pub f32);

impl TryFrom<f32> for Temperature {
    type Error = TemperatureOutOfRange;

    fn try_from(value: f32) -> Result<Self, Self::Error> {
        Self::new(value).ok_or(TemperatureOutOfRange(value))
    }
}

impl From<Temperature> for f32 {
    fn from(t: Temperature) -> Self {
        t.0
    }
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
    /// Ask even when the message that reached this step already holds a value for the slot
    /// (Rasa's name for it). By default such a value fills the slot and the question is
    /// skipped, so "帮我查订单 A12345678" goes straight to the look-up.
    pub ask_before_filling: bool,
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
    /// How deeply `call_flow` sub-flows may nest (1..=[`MAX_CALL_DEPTH`]).
    pub max_call_depth: u8,
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
            max_call_depth: 4,
        }
    }
}

/// Upper bound on `settings.max_stack_depth`, keeping the state small whatever the YAML says.
pub const MAX_STACK_DEPTH: u8 = 8;

/// Upper bound on `settings.max_call_depth` (nested `call_flow` sub-flows).
pub const MAX_CALL_DEPTH: u8 = 8;

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

/// `policies:` — one escalation rule, checked at the start of every user turn (before the
/// flow logic), in declaration order; the first whose condition holds fires.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicyDef {
    /// The policy's name (for metrics and the handoff reason).
    pub name: String,
    /// When it fires (a condition over `emotion`, `user`, `intent`, `fallbacks`, `slots`, ...).
    pub when: CondId,
    /// What to do the first time it fires in a session, when different (e.g. soothe first).
    pub first: Option<PolicyAction>,
    /// What to do (every time, or from the second time on when `first` is given).
    pub action: PolicyAction,
    /// Handoff reason for `then: handoff`.
    pub reason: String,
    /// Agent queue for `then: handoff` (e.g. `vip`).
    pub queue: Option<String>,
}

/// What a firing policy does.
#[derive(Debug, Clone)]
pub struct PolicyAction {
    /// Said first, if given (for a handoff without one, the `handoff` reply is said).
    pub say: Option<Text>,
    /// What happens next.
    pub then: PolicyThen,
}

/// How a policy ends its part of the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyThen {
    /// Hand off to a human (flows are cleared).
    Handoff,
    /// Go on with the normal turn (the flow logic runs after the policy's reply).
    Continue,
    /// The policy's reply is the whole turn; a flow waiting at a question keeps waiting.
    Reply,
}
