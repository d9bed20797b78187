//! [`Nlu`]: the per-turn understanding pipeline, in the one order the runtime uses.
//!
//! `understand(text)`:
//! 1. [`normalize`] the raw text;
//! 2. detect its language (on the normalised text, before any rewriting);
//! 3. apply the bot's [`Synonyms`];
//! 4. the first matching [`IntentRules`] rule decides the intent, else the
//!    [`IntentClassifier`] does.
//!
//! The pipeline is immutable and `Send + Sync`; a bot version builds one at load and shares
//! it (e.g. in an `Arc`) between all its sessions. It cannot fail on any input.

use serde::{Deserialize, Serialize};

use crate::classifier::{IntentClassifier, IntentPrediction};
use crate::normalize::{Lang, detect_lang_or, normalize};
use crate::rules::IntentRules;
use crate::synonyms::Synonyms;

/// What decided the intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentSource {
    /// A designer's rule matched.
    Rule,
    /// The classifier decided (the intent may still be `None`: out of scope).
    Model,
}

/// The understanding of one user turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Understanding {
    /// The text as matched: normalised, then rewritten by the synonyms.
    pub text: String,
    /// The detected language.
    pub lang: Lang,
    /// The intent prediction.
    pub prediction: IntentPrediction,
    /// Whether a rule or the model produced `prediction`.
    pub source: IntentSource,
}

/// Synonyms, rules and classifier of one bot version.
#[derive(Debug, Clone)]
pub struct Nlu {
    synonyms: Synonyms,
    rules: IntentRules,
    classifier: IntentClassifier,
}

impl Nlu {
    /// Assembles a pipeline; pass `Synonyms::default()` / `IntentRules::default()` for none.
    pub fn new(classifier: IntentClassifier, synonyms: Synonyms, rules: IntentRules) -> Self {
        Self {
            synonyms,
            rules,
            classifier,
        }
    }

    /// Understands one raw user text. `fallback_lang` is used when the text shows no
    /// language (emoji, digits); a session passes its previous turn's language.
    pub fn understand(&self, raw: &str, fallback_lang: Lang) -> Understanding {
        let normalised = normalize(raw);
        let lang = detect_lang_or(&normalised, fallback_lang);
        let text = self.synonyms.apply(&normalised).into_owned();
        let (prediction, source) = match self.rules.predict(&text) {
            Some(p) => (p, IntentSource::Rule),
            None => (self.classifier.classify(&text), IntentSource::Model),
        };
        Understanding {
            text,
            lang,
            prediction,
            source,
        }
    }

    /// The classifier, e.g. to list its intents.
    pub fn classifier(&self) -> &IntentClassifier {
        &self.classifier
    }

    /// The synonym table.
    pub fn synonyms(&self) -> &Synonyms {
        &self.synonyms
    }

    /// The rules.
    pub fn rules(&self) -> &IntentRules {
        &self.rules
    }
}
