//! What the caller tells the interpreter about one user message: the text, the language,
//! the channel, the user, the classifier's verdict, the entities found and the signals
//! (emotion trend, VIP status) the runtime tracks.
//!
//! Everything here is already understood by the caller (the NLU and the session actor);
//! the interpreter only reads it, so it stays pure.

use serde::{Deserialize, Serialize};

use crate::model::Lang;

/// The classifier's verdict on a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntentMatch<'a> {
    /// Intent name, as defined in the bot.
    pub name: &'a str,
    /// Confidence in `0.0..=1.0`.
    pub confidence: f32,
}

/// What the runtime knows about the user's mood and standing, for escalation policies.
///
/// `Default` means "nothing known": no emotion, zero trend, not VIP, no tags. Conditions
/// see it as `emotion.label`, `emotion.intensity`, `emotion.negative_streak`,
/// `emotion.slope`, `emotion.peak`, `user.vip` and `user.tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Signals {
    /// The emotion of this message (`angry`, `anxious`, `neutral`, ...), if known.
    pub emotion: Option<String>,
    /// Its intensity in `0.0..=1.0`.
    pub intensity: f32,
    /// Consecutive negative messages up to and including this one.
    pub negative_streak: u32,
    /// Trend of the intensity of negative emotion over recent turns (> 0: getting worse).
    pub slope: f32,
    /// Highest negative intensity seen in the session.
    pub peak: f32,
    /// The user is a VIP customer.
    pub vip: bool,
    /// Other tags the runtime or CRM attaches to the user (`new_customer`, `b2b`, ...).
    pub tags: Vec<String>,
}

/// An entity value the NLU found in the message (e.g. `mobile` = `13800138000`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityValue {
    /// The entity's name (built-in or declared under `entities:`).
    pub name: String,
    /// The normalised value.
    pub value: serde_json::Value,
}

/// One user message, already understood by the caller.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TurnInput<'a> {
    /// The normalised message text (slot values are extracted from it).
    pub text: &'a str,
    /// The language to reply in.
    pub lang: Lang,
    /// The channel the message came from (visible to templates as `channel`; picks
    /// per-channel reply variants).
    pub channel: &'a str,
    /// A stable id of the user (A/B variants are assigned by it; `""` when unknown).
    pub user: &'a str,
    /// The best intent, or `None` when the message is out of scope.
    pub intent: Option<IntentMatch<'a>>,
    /// Emotion trend and user standing, for policies and conditions.
    pub signals: Signals,
    /// Entity values the NLU found; a slot whose type is that entity takes its value from
    /// here before looking at the text.
    pub entities: Vec<EntityValue>,
}

impl<'a> TurnInput<'a> {
    /// A message with no intent on no particular channel from an unknown user.
    pub fn new(text: &'a str, lang: Lang) -> Self {
        TurnInput {
            text,
            lang,
            channel: "",
            user: "",
            intent: None,
            signals: Signals::default(),
            entities: Vec::new(),
        }
    }

    /// The same message classified as `name` with `confidence`.
    pub fn with_intent(mut self, name: &'a str, confidence: f32) -> Self {
        self.intent = Some(IntentMatch { name, confidence });
        self
    }

    /// The same message on `channel`.
    pub fn on_channel(mut self, channel: &'a str) -> Self {
        self.channel = channel;
        self
    }

    /// The same message from `user` (a stable id: A/B variants are assigned by it).
    pub fn from_user(mut self, user: &'a str) -> Self {
        self.user = user;
        self
    }

    /// The same message with these signals.
    pub fn with_signals(mut self, signals: Signals) -> Self {
        self.signals = signals;
        self
    }

    /// The same message with one more entity value found by the NLU.
    pub fn with_entity(mut self, name: &str, value: serde_json::Value) -> Self {
        self.entities.push(EntityValue {
            name: name.to_string(),
            value,
        });
        self
    }
}
