//! [`ClassifierConfig`]: how the intent classifier featurises, trains and rejects.
//!
//! Every field has a default that works for bots from a dozen intents with ten examples each
//! up to Banking77-sized sets (77 intents, 10k examples); [`ClassifierConfig::validate`]
//! checks the ranges and is called by training, so a bad value is reported, never silently
//! clamped. Deserialises from the flow files with unknown fields rejected.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::features::Featurizer;

/// Settings of [`IntentClassifier::train`](crate::IntentClassifier::train).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// Size of the hashed feature space, as a power of two (10..=24). Default 18
    /// (262,144 buckets): collisions are rare for a bot's vocabulary, and memory is spent
    /// only on buckets seen in training (plus a 4-byte index per bucket).
    pub hash_bits: u32,
    /// Shortest character n-gram taken inside Latin words (1..=8). Default 3.
    pub char_ngram_min: usize,
    /// Longest character n-gram taken inside Latin words (`char_ngram_min..=8`; equal to
    /// `char_ngram_min` for a single length). Default 5.
    pub char_ngram_max: usize,
    /// Longest character n-gram inside CJK runs (1..=4). Default 3 (unigrams, bigrams and
    /// trigrams: Chinese words are mostly one or two characters).
    pub cjk_ngram_max: usize,
    /// Whether adjacent Latin words also form a feature (`not working`). Default true.
    pub word_bigrams: bool,
    /// Whether CJK runs are also segmented into words with jieba (word and word-bigram
    /// features beside the character n-grams). Default true.
    pub cjk_words: bool,
    /// Passes over the training set (1..=100). Default 12: Adagrad converges quickly on
    /// sparse text features; more epochs mostly cost time.
    pub epochs: usize,
    /// Adagrad base learning rate (> 0, ≤ 10). Default 0.5.
    pub learning_rate: f32,
    /// L2 regularisation strength per update (0..1). Default 1e-5: enough to keep rare
    /// features from dominating without washing out the signal of small example sets.
    pub l2: f32,
    /// Seed of the shuffles and of the held-out split: the same examples and config always
    /// give the same model.
    pub seed: u64,
    /// Share of each intent's examples held back (0..=0.5) to calibrate confidence
    /// (temperature scaling) and, when `oos` examples exist, to learn the out-of-scope
    /// threshold. Sets of up to 4,000 examples are cross-fitted with `round(1/fraction)`
    /// folds instead, so every example is scored once. The final model is then trained on
    /// all examples. 0 disables calibration. Default 0.2. Intents with a single example are
    /// never held back.
    pub holdout_fraction: f32,
    /// Confidence below which a prediction is out of scope (`intent: None`) when the
    /// examples have no `oos` intent to learn a threshold from (0..1). Default 0.45: with
    /// calibrated probabilities, a text the model is less than ~45% sure about is more
    /// often wrong than right.
    pub min_confidence: f32,
    /// When learning the out-of-scope threshold from `oos` examples: the most in-scope
    /// accuracy (0..=1, on out-of-sample scores) the threshold may cost compared with
    /// rejecting only where the `oos` class wins. Default 0.03 (three points): out-of-scope
    /// recall is bought with at most that much in-scope accuracy.
    pub oos_max_accuracy_drop: f32,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            hash_bits: 18,
            char_ngram_min: 3,
            char_ngram_max: 5,
            cjk_ngram_max: 3,
            word_bigrams: true,
            cjk_words: true,
            epochs: 12,
            learning_rate: 0.5,
            l2: 1e-5,
            seed: 0x6B65_6675, // "kefu"
            holdout_fraction: 0.2,
            min_confidence: 0.45,
            oos_max_accuracy_drop: 0.03,
        }
    }
}

fn invalid(field: &'static str, reason: &str) -> ModelError {
    ModelError::InvalidConfig {
        field,
        reason: reason.to_owned(),
    }
}

impl ClassifierConfig {
    /// Defaults for data in one language: Chinese keeps jieba word features; English turns
    /// them off (there are no CJK runs to segment, and the dictionary need not load).
    pub fn for_lang(lang: crate::Lang) -> Self {
        Self {
            cjk_words: lang == crate::Lang::Zh,
            ..Self::default()
        }
    }

    /// Checks every field's range.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        if !(10..=24).contains(&self.hash_bits) {
            return Err(invalid("hash_bits", "must be between 10 and 24"));
        }
        if !(1..=8).contains(&self.char_ngram_min) {
            return Err(invalid("char_ngram_min", "must be between 1 and 8"));
        }
        if !(self.char_ngram_min..=8).contains(&self.char_ngram_max) {
            return Err(invalid(
                "char_ngram_max",
                "must be between char_ngram_min and 8",
            ));
        }
        if !(1..=4).contains(&self.cjk_ngram_max) {
            return Err(invalid("cjk_ngram_max", "must be between 1 and 4"));
        }
        if !(1..=100).contains(&self.epochs) {
            return Err(invalid("epochs", "must be between 1 and 100"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 10.0) {
            return Err(invalid("learning_rate", "must be in (0, 10]"));
        }
        if !(self.l2 >= 0.0 && self.l2 < 1.0) {
            return Err(invalid("l2", "must be in [0, 1)"));
        }
        if !(self.holdout_fraction >= 0.0 && self.holdout_fraction <= 0.5) {
            return Err(invalid("holdout_fraction", "must be in [0, 0.5]"));
        }
        if !(self.min_confidence >= 0.0 && self.min_confidence < 1.0) {
            return Err(invalid("min_confidence", "must be in [0, 1)"));
        }
        if !(0.0..=1.0).contains(&self.oos_max_accuracy_drop) {
            return Err(invalid("oos_max_accuracy_drop", "must be in [0, 1]"));
        }
        Ok(())
    }

    pub(crate) fn featurizer(&self) -> Featurizer {
        Featurizer {
            hash_bits: self.hash_bits,
            char_ngram_min: self.char_ngram_min,
            char_ngram_max: self.char_ngram_max,
            cjk_ngram_max: self.cjk_ngram_max,
            word_bigrams: self.word_bigrams,
            cjk_words: self.cjk_words,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ClassifierConfig::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let cases: [(&str, ClassifierConfig); 5] = [
            (
                "hash_bits",
                ClassifierConfig {
                    hash_bits: 30,
                    ..Default::default()
                },
            ),
            (
                "char_ngram_max",
                ClassifierConfig {
                    char_ngram_min: 4,
                    char_ngram_max: 3,
                    ..Default::default()
                },
            ),
            (
                "epochs",
                ClassifierConfig {
                    epochs: 0,
                    ..Default::default()
                },
            ),
            (
                "learning_rate",
                ClassifierConfig {
                    learning_rate: f32::NAN,
                    ..Default::default()
                },
            ),
            (
                "min_confidence",
                ClassifierConfig {
                    min_confidence: 1.0,
                    ..Default::default()
                },
            ),
        ];
        for (field, cfg) in cases {
            match cfg.validate() {
                Err(ModelError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn deserialises_with_defaults_and_rejects_unknown_fields() {
        let cfg: ClassifierConfig = match serde_json::from_str(r#"{"epochs": 5}"#) {
            Ok(c) => c,
            Err(e) => panic!("should parse: {e}"),
        };
        assert_eq!(cfg.epochs, 5);
        assert_eq!(cfg.hash_bits, 18);
        assert!(serde_json::from_str::<ClassifierConfig>(r#"{"epoch": 5}"#).is_err());
    }
}
