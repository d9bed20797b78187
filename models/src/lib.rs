//! kefu's understanding models: what happens to a user's text before the dialog flow sees it.
//!
//! Per user turn, the session actor runs, in this order:
//! 1. [`normalize`] — NFKC, invisible characters removed, lowercased, whitespace collapsed;
//! 2. [`Synonyms::apply`] — colloquial phrases rewritten to the canonical ones of the bot;
//! 3. [`detect_lang`] — Chinese or English, to pick reply templates;
//! 4. [`IntentRules`] — designer rules (regexes) that win over the model when they match;
//! 5. [`IntentClassifier::classify`] — the intent, its calibrated confidence, a top-3
//!    ranking, and out-of-scope rejection (`intent: None`).
//!
//! [`Nlu::understand`] runs these steps in that order; the pieces are public for callers
//! that need only some of them. Beside the intent, a turn gets:
//! 6. [`entities`] — [`EntityExtractor::extract`] (or [`extract_entities`] for the
//!    built-ins): validated IDs, cards, mobiles, e-mails, dates relative to a given day,
//!    amounts, order numbers and the designer's regex/lookup entities, with spans into the
//!    original text;
//! 7. [`emotion`] — [`EmotionModel::score`]: label and intensity; the session keeps an
//!    [`EmotionHistory`] whose [`EmotionHistory::trend`] drives soothing/escalation policies.
//!
//! [`eval`] measures all this on labelled data (`kefu nlu eval`, `kefu emotion eval`).
//!
//! Everything here is synchronous, allocation-light and immutable once built (`Send +
//! Sync`): one classifier per bot version is shared by all sessions. Classification costs a
//! few microseconds; training runs at bot load (well under a second for a few thousand
//! examples). Errors are [`ModelError`]; classification itself cannot fail.

mod calibrate;
mod classifier;
mod config;
pub mod emotion;
pub mod entities;
mod error;
pub mod eval;
mod features;
mod linear;
pub mod llm;
mod nlu;
mod normalize;
mod rules;
mod synonyms;

pub use classifier::{
    Calibration, IntentClassifier, IntentExample, IntentPrediction, OOS_INTENT, RANKING_LEN,
};
pub use config::ClassifierConfig;
pub use emotion::{
    Emotion, EmotionExample, EmotionHistory, EmotionLabel, EmotionModel, EmotionTrend, EmotionTurn,
};
pub use entities::{
    Entity, EntityConfig, EntityExtractor, EntityKind, LookupEntity, LookupEntry, RegexEntity,
    extract_entities, today_at_offset,
};
pub use error::{ModelError, Result};
pub use features::warm_up_segmenter;
pub use llm::{LlmBackend, LlmError, LlmRequest};
pub use nlu::{IntentSource, Nlu, Understanding};
pub use normalize::{Lang, detect_lang, detect_lang_or, is_cjk, normalize};
pub use rules::{IntentRule, IntentRules};
pub use synonyms::Synonyms;
