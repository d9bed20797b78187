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
//! that need only some of them.
//!
//! Everything here is synchronous, allocation-light and immutable once built (`Send +
//! Sync`): one classifier per bot version is shared by all sessions. Classification costs a
//! few microseconds; training runs at bot load (well under a second for a few thousand
//! examples). Errors are [`ModelError`]; classification itself cannot fail.

mod classifier;
mod config;
mod error;
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
pub use error::{ModelError, Result};
pub use llm::{LlmBackend, LlmError, LlmRequest};
pub use nlu::{IntentSource, Nlu, Understanding};
pub use normalize::{Lang, detect_lang, detect_lang_or, is_cjk, normalize};
pub use rules::{IntentRule, IntentRules};
pub use synonyms::Synonyms;
