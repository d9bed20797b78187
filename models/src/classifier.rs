//! [`IntentClassifier`]: trains at bot load, classifies every user turn in microseconds.
//!
//! Training ([`IntentClassifier::train`]):
//! 1. Example texts are normalised and featurised (see [`features`](crate::features));
//!    intents are indexed in sorted order, so the example order only affects shuffling.
//! 2. Unless `holdout_fraction` is 0, examples are scored out of sample (see
//!    [`calibrate`](crate::calibrate): k-fold cross-fitting for small sets, one stratified
//!    held-back share for large ones), and those scores are used to
//!    - fit a softmax **temperature** minimising the held-back log-loss, so confidences are
//!      calibrated probabilities whatever the number of intents and examples, and
//!    - when the examples include the [`OOS_INTENT`] class, choose the **confidence
//!      threshold** that maximises the mean of in-scope accuracy and out-of-scope recall
//!      while in-scope accuracy drops by at most `oos_max_accuracy_drop`.
//! 3. The final model is trained on all examples; without `oos` examples the threshold is
//!    `config.min_confidence`.
//!
//! Classification ([`IntentClassifier::classify`]) is a sparse-dense product over the
//! text's known features: allocation-light and lock-free; the classifier is immutable and
//! `Send + Sync`, so one instance serves every session.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calibrate::{argmax, calibration_folds, fit_temperature, learn_threshold};
use crate::config::ClassifierConfig;
use crate::error::{ModelError, Result};
use crate::features::SparseCounts;
use crate::linear::{LinearModel, TrainParams, softmax_in_place};
use crate::normalize::normalize;

/// The intent label of out-of-scope training examples: a class of its own, never predicted
/// as an intent (a prediction of it is `intent: None`).
pub const OOS_INTENT: &str = "oos";
/// How many intents [`IntentPrediction::ranking`] lists.
pub const RANKING_LEN: usize = 3;

/// One training example: a user phrasing and the intent it expresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentExample {
    /// What a user might say; normalised by training, so any width or case is fine.
    pub text: String,
    /// The intent name; [`OOS_INTENT`] marks an example the bot should not handle.
    pub intent: String,
}

impl IntentExample {
    /// Convenience constructor.
    pub fn new(text: impl Into<String>, intent: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            intent: intent.into(),
        }
    }
}

/// The result of classifying one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentPrediction {
    /// The recognised intent, or `None` when the text is out of scope (the `oos` class won,
    /// the confidence is below the threshold, or the text has no usable features).
    pub intent: Option<String>,
    /// Calibrated probability of the best in-scope intent (`ranking[0]`), also when it was
    /// rejected: a flow can tell "almost" from "no idea". 0 when nothing could be scored.
    pub confidence: f32,
    /// The best in-scope intents with their probabilities, best first (at most
    /// [`RANKING_LEN`]; empty for text without usable features).
    pub ranking: Vec<(String, f32)>,
}

/// How the trained classifier's confidence was calibrated; for diagnostics and evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Softmax temperature applied to the logits (1 when no examples were held back).
    pub temperature: f32,
    /// Confidence threshold below which predictions are out of scope.
    pub threshold: f32,
    /// Whether `threshold` was learned from `oos` examples (else it is `min_confidence`).
    pub threshold_learned: bool,
    /// Number of examples held back for calibration (0: calibration skipped).
    pub holdout_examples: usize,
    /// Accuracy (top class, no rejection) on the held-back examples, if any.
    pub holdout_accuracy: Option<f32>,
}

/// A trained intent classifier. Immutable and `Send + Sync`.
#[derive(Debug, Clone)]
pub struct IntentClassifier {
    model: LinearModel,
    /// Class names indexed like the model's outputs (sorted; may include `oos`).
    classes: Vec<String>,
    /// In-scope intent names, sorted (the `oos` class excluded).
    intents: Vec<String>,
    /// Index of the `oos` class, if trained with one.
    oos_class: Option<usize>,
    calibration: Calibration,
}

/// Featurised training data.
struct Prepared {
    docs: Vec<SparseCounts>,
    labels: Vec<usize>,
    classes: Vec<String>,
    oos_class: Option<usize>,
}

impl IntentClassifier {
    /// Trains a classifier; see the module docs for the procedure. Deterministic: the same
    /// examples (in the same order) and config give the same model.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a bad config, [`ModelError::NoExamples`],
    /// [`ModelError::EmptyIntent`] / [`ModelError::EmptyExample`] for unusable examples, and
    /// [`ModelError::TooFewIntents`] when fewer than two classes (`oos` included) exist.
    pub fn train(examples: &[IntentExample], config: &ClassifierConfig) -> Result<Self> {
        config.validate()?;
        let data = prepare(examples, config)?;
        let n_classes = data.classes.len();
        let params = TrainParams {
            epochs: config.epochs,
            learning_rate: config.learning_rate,
            l2: config.l2,
            seed: config.seed,
        };

        let folds = calibration_folds(&data.labels, n_classes, config);
        let held_examples: usize = folds.iter().map(Vec::len).sum();
        let mut calibration = Calibration {
            temperature: 1.0,
            threshold: config.min_confidence,
            threshold_learned: false,
            holdout_examples: held_examples,
            holdout_accuracy: None,
        };
        if held_examples > 0 {
            // Cross-fitting: each fold is scored by a model that never saw it, so the
            // temperature and threshold are fitted on honest, out-of-sample logits.
            let mut held: Vec<(Vec<f32>, usize)> = Vec::with_capacity(held_examples);
            let mut in_fold = vec![false; data.labels.len()];
            for fold in &folds {
                in_fold.fill(false);
                for &i in fold {
                    in_fold[i] = true;
                }
                let train_idx: Vec<usize> =
                    (0..data.labels.len()).filter(|&i| !in_fold[i]).collect();
                let docs: Vec<&SparseCounts> = train_idx.iter().map(|&i| &data.docs[i]).collect();
                let labels: Vec<usize> = train_idx.iter().map(|&i| data.labels[i]).collect();
                let probe =
                    LinearModel::fit(config.featurizer(), &docs, &labels, n_classes, params);
                for &i in fold {
                    let mut z = vec![0.0; n_classes];
                    probe.logits_into(&probe.vectorize(&data.docs[i]), &mut z);
                    held.push((z, data.labels[i]));
                }
            }
            let correct = held.iter().filter(|(z, y)| argmax(z) == *y).count();
            calibration.holdout_accuracy = Some(correct as f32 / held.len() as f32);
            calibration.temperature = fit_temperature(&held);
            let has_both = |oos: usize| {
                held.iter().any(|(_, y)| *y == oos) && held.iter().any(|(_, y)| *y != oos)
            };
            if let Some(oos) = data.oos_class.filter(|&o| has_both(o)) {
                calibration.threshold = learn_threshold(
                    &held,
                    oos,
                    calibration.temperature,
                    config.oos_max_accuracy_drop,
                );
                calibration.threshold_learned = true;
            }
        }

        let docs: Vec<&SparseCounts> = data.docs.iter().collect();
        let model = LinearModel::fit(config.featurizer(), &docs, &data.labels, n_classes, params);
        let intents = data
            .classes
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != data.oos_class)
            .map(|(_, name)| name.clone())
            .collect();
        Ok(Self {
            model,
            classes: data.classes,
            intents,
            oos_class: data.oos_class,
            calibration,
        })
    }

    /// Classifies already-normalised text (see [`normalize`](crate::normalize) and
    /// [`Synonyms`](crate::Synonyms)). Never fails: text without usable features is out of
    /// scope with confidence 0.
    pub fn classify(&self, text: &str) -> IntentPrediction {
        let (x, any_features) = self.model.vectorize_text(text);
        if !any_features {
            return IntentPrediction {
                intent: None,
                confidence: 0.0,
                ranking: Vec::new(),
            };
        }
        let mut probs = vec![0.0f32; self.model.n_classes()];
        self.model.logits_into(&x, &mut probs);
        softmax_in_place(&mut probs, self.calibration.temperature);

        // Top in-scope classes by a partial selection: RANKING_LEN is tiny, so repeated
        // max-scans beat sorting all classes.
        let mut top: [Option<usize>; RANKING_LEN] = [None; RANKING_LEN];
        for slot in 0..RANKING_LEN {
            let mut best: Option<usize> = None;
            for (k, &p) in probs.iter().enumerate() {
                if Some(k) == self.oos_class || top[..slot].contains(&Some(k)) {
                    continue;
                }
                if best.is_none_or(|b| p > probs[b]) {
                    best = Some(k);
                }
            }
            top[slot] = best;
        }
        let ranking: Vec<(String, f32)> = top
            .iter()
            .flatten()
            .map(|&k| (self.classes[k].clone(), probs[k]))
            .collect();
        let confidence = ranking.first().map_or(0.0, |(_, p)| *p);
        let oos_wins = self.oos_class.is_some_and(|o| probs[o] > confidence);
        let intent = match ranking.first() {
            Some((name, p)) if !oos_wins && *p >= self.calibration.threshold => Some(name.clone()),
            _ => None,
        };
        IntentPrediction {
            intent,
            confidence,
            ranking,
        }
    }

    /// Every class's calibrated probability for already-normalised text (the `oos` class
    /// included when trained with it), in class-name order; empty for text without usable
    /// features. For callers that need the whole distribution (the emotion model's blend).
    pub fn class_probabilities(&self, text: &str) -> Vec<(String, f32)> {
        let (x, any_features) = self.model.vectorize_text(text);
        if !any_features {
            return Vec::new();
        }
        let mut probs = vec![0.0f32; self.model.n_classes()];
        self.model.logits_into(&x, &mut probs);
        softmax_in_place(&mut probs, self.calibration.temperature);
        self.classes.iter().cloned().zip(probs).collect()
    }

    /// The in-scope intents this classifier knows, sorted (`oos` excluded).
    pub fn intents(&self) -> &[String] {
        &self.intents
    }

    /// Whether the classifier was trained with [`OOS_INTENT`] examples.
    pub fn has_oos_class(&self) -> bool {
        self.oos_class.is_some()
    }

    /// How confidence was calibrated and which threshold applies.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }
}

fn prepare(examples: &[IntentExample], config: &ClassifierConfig) -> Result<Prepared> {
    if examples.is_empty() {
        return Err(ModelError::NoExamples);
    }
    let featurizer = config.featurizer();
    let mut class_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut docs = Vec::with_capacity(examples.len());
    for (index, ex) in examples.iter().enumerate() {
        let intent = ex.intent.trim();
        if intent.is_empty() {
            return Err(ModelError::EmptyIntent { index });
        }
        let counts = featurizer.extract(&normalize(&ex.text));
        if counts.is_empty() {
            return Err(ModelError::EmptyExample {
                index,
                intent: intent.to_owned(),
                text: ex.text.clone(),
            });
        }
        class_of.insert(intent, 0);
        docs.push(counts);
    }
    if class_of.len() < 2 {
        return Err(ModelError::TooFewIntents {
            found: class_of.len(),
        });
    }
    for (i, slot) in class_of.values_mut().enumerate() {
        *slot = i;
    }
    let labels = examples
        .iter()
        .map(|ex| class_of.get(ex.intent.trim()).copied().unwrap_or(0))
        .collect();
    let oos_class = class_of.get(OOS_INTENT).copied();
    let classes = class_of.keys().map(|k| (*k).to_owned()).collect();
    Ok(Prepared {
        docs,
        labels,
        classes,
        oos_class,
    })
}
