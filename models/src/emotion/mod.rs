//! Emotion per user turn: a label (anger, anxiety, sadness, joy, neutral) and an intensity
//! in 0..=1, from the shipped lexicons and, when designers give labelled examples, a learned
//! model blended with them; [`EmotionHistory`] keeps the session's recent turns and derives
//! the trend features flow policies read (negative streak, slope, peak).
//!
//! The lexicon scorer ([`EmotionModel::default`], no training data needed, Chinese and
//! English):
//! 1. The text is normalised and scanned left to right for the longest lexicon entry at each
//!    position: emotion terms, negators, intensifiers (see [`lexicon`]). English entries match
//!    whole words only.
//! 2. A term takes the negators and intensifiers seen at most [`SCOPE`] units before it
//!    (a unit is a Chinese character, an English word or an entry) in the same clause
//!    (`,`, `.`, `!`, `?`, `;` end a clause). An odd number of negators flips joy into
//!    sadness (`不开心`, `not happy`) and cancels a negative term (`没有不满意`, `not angry`).
//!    Intensifier factors multiply the term's weight.
//! 3. Arousal cues on the raw text: repeated `!` (anger or the dominant label), repeated `?`
//!    (impatience: anxiety, or the dominant negative label), SHOUTING in capitals (anger),
//!    repeated characters or words (`啊啊啊`, `快点快点`, `whyyyy`).
//! 4. The label with the highest score wins if it reaches [`MIN_EVIDENCE`]; otherwise the
//!    turn is neutral with intensity 0. Intensity is `1 - e^-score`.
//!
//! With examples ([`EmotionModel::train`]), the same TF-IDF linear model as intents learns
//! the labels; its probabilities are blended with the lexicon's (`learned_weight`, default
//! 0.7), so words the examples never showed still count.
//!
//! Scoring never fails and never panics; it costs a few microseconds per turn.

mod history;
pub mod lexicon;
mod scan;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::classifier::{IntentClassifier, IntentExample};
use crate::config::ClassifierConfig;
use crate::error::{ModelError, Result};

pub use history::{EmotionHistory, EmotionTrend, EmotionTurn, HISTORY_LEN, SLOPE_WINDOW};

/// How many units before a term a negator or intensifier still applies to.
pub const SCOPE: usize = 3;
/// The least lexicon score for a non-neutral label.
pub const MIN_EVIDENCE: f32 = 0.35;
/// Prior mass of "neutral" when lexicon scores are turned into probabilities.
const NEUTRAL_PRIOR: f32 = 0.6;

/// The emotion labels kefu distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmotionLabel {
    /// Anger, irritation, contempt.
    Anger,
    /// Anxiety, worry, fear, impatience.
    Anxiety,
    /// Sadness, disappointment, dissatisfaction.
    Sadness,
    /// Joy, satisfaction, gratitude.
    Joy,
    /// No notable emotion.
    Neutral,
}

impl EmotionLabel {
    /// All labels, in index order.
    pub const ALL: [EmotionLabel; 5] = [
        EmotionLabel::Anger,
        EmotionLabel::Anxiety,
        EmotionLabel::Sadness,
        EmotionLabel::Joy,
        EmotionLabel::Neutral,
    ];

    /// The label's name: `anger`, `anxiety`, `sadness`, `joy`, `neutral`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmotionLabel::Anger => "anger",
            EmotionLabel::Anxiety => "anxiety",
            EmotionLabel::Sadness => "sadness",
            EmotionLabel::Joy => "joy",
            EmotionLabel::Neutral => "neutral",
        }
    }

    /// Whether the label is a negative emotion (anger, anxiety, sadness).
    pub fn is_negative(self) -> bool {
        matches!(
            self,
            EmotionLabel::Anger | EmotionLabel::Anxiety | EmotionLabel::Sadness
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EmotionLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EmotionLabel {
    type Err = ModelError;

    /// Parses a label name or a common synonym (`angry`, `fear`, `sad`, `disappointment`,
    /// `happy`, `none`, ...), case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_lowercase().as_str() {
            "anger" | "angry" | "annoyance" | "annoyed" => EmotionLabel::Anger,
            "anxiety" | "anxious" | "fear" | "worry" | "worried" | "nervousness" => {
                EmotionLabel::Anxiety
            }
            "sadness" | "sad" | "disappointment" | "disappointed" => EmotionLabel::Sadness,
            "joy" | "happy" | "happiness" | "satisfaction" | "gratitude" => EmotionLabel::Joy,
            "neutral" | "none" | "other" => EmotionLabel::Neutral,
            _ => {
                return Err(ModelError::UnknownLabel {
                    label: s.to_owned(),
                    known: "anger, anxiety, sadness, joy, neutral".to_owned(),
                });
            }
        })
    }
}

/// The emotion of one turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emotion {
    /// The dominant label.
    pub label: EmotionLabel,
    /// How strong it is, 0..=1 (0 for neutral).
    pub intensity: f32,
    /// Probability per label, indexed like [`EmotionLabel::ALL`]; sums to 1.
    pub probabilities: [f32; 5],
}

impl Emotion {
    /// Whether the turn is negative (anger, anxiety or sadness).
    pub fn is_negative(&self) -> bool {
        self.label.is_negative()
    }

    /// The probability of one label.
    pub fn probability(&self, label: EmotionLabel) -> f32 {
        self.probabilities[label.index()]
    }
}

/// One labelled emotion example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmotionExample {
    /// What a user said.
    pub text: String,
    /// Its emotion.
    pub label: EmotionLabel,
}

/// The emotion scorer: the shipped lexicons, plus a learned model when trained.
/// Immutable, `Send + Sync`; share one per bot version.
#[derive(Debug, Clone)]
pub struct EmotionModel {
    learned: Option<IntentClassifier>,
    learned_weight: f32,
}

impl Default for EmotionModel {
    /// The lexicon-only model: works with no training data, in Chinese and English.
    fn default() -> Self {
        Self {
            learned: None,
            learned_weight: 0.0,
        }
    }
}

impl EmotionModel {
    /// Trains a learned model on labelled examples, to be blended with the lexicons with
    /// `learned_weight` (0..=1; 0.7 is a good default: the examples dominate, the lexicons
    /// cover words they never showed).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a weight out of range, and the classifier's
    /// training errors (no examples, fewer than two labels, empty texts).
    pub fn train(
        examples: &[EmotionExample],
        config: &ClassifierConfig,
        learned_weight: f32,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&learned_weight) {
            return Err(ModelError::InvalidConfig {
                field: "learned_weight",
                reason: "must be in [0, 1]".to_owned(),
            });
        }
        let as_intents: Vec<IntentExample> = examples
            .iter()
            .map(|e| IntentExample::new(e.text.clone(), e.label.as_str()))
            .collect();
        let clf = IntentClassifier::train(&as_intents, config)?;
        Ok(Self {
            learned: Some(clf),
            learned_weight,
        })
    }

    /// Whether a learned model is blended in.
    pub fn is_trained(&self) -> bool {
        self.learned.is_some()
    }

    /// Scores one raw user turn (not normalised: capitals and punctuation are cues).
    pub fn score(&self, raw: &str) -> Emotion {
        let lex = scan::lexicon_scores(raw);
        let lex_probs = lexicon_probabilities(&lex);
        let Some(clf) = &self.learned else {
            let (label, intensity) = lexicon_decision(&lex);
            return Emotion {
                label,
                intensity,
                probabilities: lex_probs,
            };
        };
        let mut learned = [0.0f32; 5];
        for (name, p) in clf.class_probabilities(&crate::normalize::normalize(raw)) {
            if let Ok(label) = name.parse::<EmotionLabel>() {
                learned[label.index()] += p;
            }
        }
        let w = self.learned_weight;
        let mut probabilities = [0.0f32; 5];
        for (k, p) in probabilities.iter_mut().enumerate() {
            *p = w * learned[k] + (1.0 - w) * lex_probs[k];
        }
        let label = EmotionLabel::ALL
            .into_iter()
            .max_by(|a, b| probabilities[a.index()].total_cmp(&probabilities[b.index()]))
            .unwrap_or(EmotionLabel::Neutral);
        let intensity = if label == EmotionLabel::Neutral {
            0.0
        } else {
            let lex_intensity = 1.0 - (-lex[label.index()]).exp();
            (0.5 * probabilities[label.index()] + 0.5 * lex_intensity).clamp(0.0, 1.0)
        };
        Emotion {
            label,
            intensity,
            probabilities,
        }
    }
}

/// Label and intensity from lexicon scores alone.
fn lexicon_decision(scores: &[f32; 5]) -> (EmotionLabel, f32) {
    let best = EmotionLabel::ALL[..4]
        .iter()
        .copied()
        .max_by(|a, b| scores[a.index()].total_cmp(&scores[b.index()]));
    match best {
        Some(label) if scores[label.index()] >= MIN_EVIDENCE => {
            (label, 1.0 - (-scores[label.index()]).exp())
        }
        _ => (EmotionLabel::Neutral, 0.0),
    }
}

/// Lexicon scores as probabilities, neutral holding a prior mass.
fn lexicon_probabilities(scores: &[f32; 5]) -> [f32; 5] {
    let total: f32 = scores[..4].iter().sum::<f32>() + NEUTRAL_PRIOR;
    let mut p = [0.0f32; 5];
    for k in 0..4 {
        p[k] = scores[k] / total;
    }
    p[EmotionLabel::Neutral.index()] = NEUTRAL_PRIOR / total;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(text: &str) -> Emotion {
        EmotionModel::default().score(text)
    }

    #[test]
    fn negation_flips_or_cancels() {
        assert_eq!(score("我对这个服务不满意").label, EmotionLabel::Sadness);
        assert_eq!(score("我没有不满意").label, EmotionLabel::Neutral);
        assert_eq!(score("我很开心").label, EmotionLabel::Joy);
        assert_eq!(score("我不开心").label, EmotionLabel::Sadness);
        assert_eq!(score("一点也不开心").label, EmotionLabel::Sadness);
        assert_eq!(
            score("I am not happy with this").label,
            EmotionLabel::Sadness
        );
        assert_eq!(
            score("I'm not angry, just asking").label,
            EmotionLabel::Neutral
        );
        // Negation does not cross a clause boundary.
        assert_eq!(score("不是我说,真的很生气").label, EmotionLabel::Anger);
    }

    #[test]
    fn exasperated_questions_read_as_anger() {
        for text in [
            "你们到底管不管？！",
            "你们到底管不管",
            "有没有人管啊",
            "这是什么态度？",
            "说了多少遍了，还要等多久",
            "what the hell, does anyone care?!",
            "快递慢死了",
        ] {
            let e = score(text);
            assert_eq!(e.label, EmotionLabel::Anger, "{text}: {e:?}");
            assert!(e.intensity >= 0.5, "{text}: {e:?}");
        }
        // The insistence of 到底 and the ?! both sharpen it.
        assert!(score("你们到底管不管？！").intensity > score("你们管不管").intensity);
        // A plain question stays neutral; the same question with ?! is indignant.
        assert_eq!(score("到底几点发货？").label, EmotionLabel::Neutral);
        let indignant = score("怎么还没发货？！");
        assert!(indignant.is_negative(), "{indignant:?}");
        assert!(indignant.intensity > score("怎么还没发货？").intensity);
    }

    #[test]
    fn intensifiers_strengthen_and_soften() {
        let plain = score("我生气").intensity;
        let strong = score("我非常生气").intensity;
        let soft = score("我有点生气").intensity;
        assert!(strong > plain && plain > soft, "{strong} {plain} {soft}");
        let en_plain = score("I am disappointed").intensity;
        let en_strong = score("I am really disappointed").intensity;
        assert!(en_strong > en_plain);
    }

    #[test]
    fn punctuation_caps_and_repetition_raise_intensity() {
        let calm = score("怎么还没发货");
        let loud = score("怎么还没发货？？？");
        assert!(loud.is_negative(), "{loud:?}");
        assert!(loud.intensity > calm.intensity);
        let angry = score("太气人了");
        let angrier = score("太气人了！！！");
        assert_eq!(angrier.label, EmotionLabel::Anger);
        assert!(angrier.intensity > angry.intensity);
        let shout = score("WHERE IS MY ORDER");
        assert_eq!(shout.label, EmotionLabel::Anger, "{shout:?}");
        let rep = score("快点快点快点");
        assert_eq!(rep.label, EmotionLabel::Anxiety);
        assert!(rep.intensity > score("快点").intensity);
    }

    #[test]
    fn english_and_neutral_text() {
        assert_eq!(
            score("This is ridiculous, I want a refund").label,
            EmotionLabel::Anger
        );
        assert_eq!(
            score("I'm worried my card was stolen").label,
            EmotionLabel::Anxiety
        );
        assert_eq!(
            score("Thank you so much, that was helpful!").label,
            EmotionLabel::Joy
        );
        for neutral in ["where is my order", "我想查一下订单", "", "12345", "😀"] {
            let e = score(neutral);
            if neutral == "😀" {
                assert_eq!(e.label, EmotionLabel::Joy);
            } else {
                assert_eq!(e.label, EmotionLabel::Neutral, "{neutral}");
                assert_eq!(e.intensity, 0.0);
            }
            let sum: f32 = e.probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn labels_parse_with_synonyms() {
        assert_eq!(
            "Fear".parse::<EmotionLabel>().ok(),
            Some(EmotionLabel::Anxiety)
        );
        assert_eq!(
            "disappointment".parse::<EmotionLabel>().ok(),
            Some(EmotionLabel::Sadness)
        );
        assert!("surprise".parse::<EmotionLabel>().is_err());
    }

    #[test]
    fn a_learned_model_picks_up_new_words() {
        let mut examples = Vec::new();
        for (text, label) in [
            ("这破快递又丢件", EmotionLabel::Anger),
            ("丢件还不赔", EmotionLabel::Anger),
            ("你们又丢件了", EmotionLabel::Anger),
            ("查一下物流", EmotionLabel::Neutral),
            ("物流到哪了", EmotionLabel::Neutral),
            ("帮我查下订单", EmotionLabel::Neutral),
        ] {
            examples.push(EmotionExample {
                text: text.to_owned(),
                label,
            });
        }
        let model = match EmotionModel::train(&examples, &ClassifierConfig::default(), 0.7) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        assert!(model.is_trained());
        // No lexicon word: only the learned model knows `丢件`.
        assert_eq!(score("又丢件").label, EmotionLabel::Neutral);
        assert_eq!(model.score("又丢件").label, EmotionLabel::Anger);
        assert_eq!(model.score("查物流").label, EmotionLabel::Neutral);
        assert!(EmotionModel::train(&examples, &ClassifierConfig::default(), 1.5).is_err());
    }
}
