//! [`IntentClassifier`]: trains at bot load, classifies every user turn in microseconds.
//!
//! Training ([`IntentClassifier::train`]):
//! 1. Example texts are normalised and featurised (see [`features`](crate::features));
//!    intents are indexed in sorted order, so the example order only affects shuffling.
//! 2. Unless `holdout_fraction` is 0, a stratified, seeded share of each intent's examples is
//!    held back; a model trained on the rest is used to
//!    - fit a softmax **temperature** minimising the held-back log-loss, so confidences are
//!      calibrated probabilities whatever the number of intents and examples, and
//!    - when the examples include the [`OOS_INTENT`] class, choose the **confidence
//!      threshold** that maximises the mean of in-scope accuracy and out-of-scope recall.
//! 3. The final model is trained on all examples; without `oos` examples the threshold is
//!    `config.min_confidence`.
//!
//! Classification ([`IntentClassifier::classify`]) is a sparse-dense product over the
//! text's known features: allocation-light and lock-free; the classifier is immutable and
//! `Send + Sync`, so one instance serves every session.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

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

        let (train_idx, held_idx) = stratified_split(&data.labels, n_classes, config);
        let mut calibration = Calibration {
            temperature: 1.0,
            threshold: config.min_confidence,
            threshold_learned: false,
            holdout_examples: held_idx.len(),
            holdout_accuracy: None,
        };
        if !held_idx.is_empty() {
            let docs: Vec<&SparseCounts> = train_idx.iter().map(|&i| &data.docs[i]).collect();
            let labels: Vec<usize> = train_idx.iter().map(|&i| data.labels[i]).collect();
            let probe = LinearModel::fit(config.featurizer(), &docs, &labels, n_classes, params);
            let held: Vec<(Vec<f32>, usize)> = held_idx
                .iter()
                .map(|&i| {
                    let mut z = vec![0.0; n_classes];
                    probe.logits_into(&probe.vectorize(&data.docs[i]), &mut z);
                    (z, data.labels[i])
                })
                .collect();
            let correct = held.iter().filter(|(z, y)| argmax(z) == *y).count();
            calibration.holdout_accuracy = Some(correct as f32 / held.len() as f32);
            calibration.temperature = fit_temperature(&held);
            let has_both = |oos: usize| {
                held.iter().any(|(_, y)| *y == oos) && held.iter().any(|(_, y)| *y != oos)
            };
            if let Some(oos) = data.oos_class.filter(|&o| has_both(o)) {
                calibration.threshold = learn_threshold(&held, oos, calibration.temperature);
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

/// Splits example indices into (train, held back): per class, a seeded shuffle, then
/// `round(n · fraction)` examples held back, never all of a class.
fn stratified_split(
    labels: &[usize],
    n_classes: usize,
    config: &ClassifierConfig,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &y) in labels.iter().enumerate() {
        if let Some(list) = by_class.get_mut(y) {
            list.push(i);
        }
    }
    // A different stream from the training shuffles, so the two never correlate.
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5EED_5EED_5EED_5EED);
    let mut train = Vec::with_capacity(labels.len());
    let mut held = Vec::new();
    for mut list in by_class {
        list.shuffle(&mut rng);
        let n = list.len();
        let k = ((n as f32 * config.holdout_fraction).round() as usize).min(n.saturating_sub(1));
        held.extend_from_slice(&list[..k]);
        train.extend_from_slice(&list[k..]);
    }
    train.sort_unstable();
    held.sort_unstable();
    (train, held)
}

fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (k, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = k;
        }
    }
    best
}

/// The temperature in [0.05, 20] (log grid, then a finer grid around the best) minimising
/// the mean negative log-likelihood of the held-back examples.
fn fit_temperature(held: &[(Vec<f32>, usize)]) -> f32 {
    let nll = |t: f32| -> f64 {
        let mut total = 0.0f64;
        let mut p = Vec::new();
        for (z, y) in held {
            p.clear();
            p.extend_from_slice(z);
            softmax_in_place(&mut p, t);
            total -= f64::from(p.get(*y).copied().unwrap_or(0.0).max(1e-12)).ln();
        }
        total
    };
    let grid = |lo: f32, hi: f32, steps: usize| -> f32 {
        let (llo, lhi) = (lo.ln(), hi.ln());
        let mut best = (f64::INFINITY, 1.0f32);
        for s in 0..=steps {
            let t = (llo + (lhi - llo) * s as f32 / steps as f32).exp();
            let v = nll(t);
            if v < best.0 {
                best = (v, t);
            }
        }
        best.1
    };
    let coarse = grid(0.05, 20.0, 40);
    grid(coarse / 1.2, coarse * 1.2, 20)
}

/// The threshold maximising `(in-scope accuracy + oos recall) / 2` on held-back examples,
/// where an in-scope example counts when its intent is predicted and accepted, and an `oos`
/// example when it is rejected (the `oos` class wins or confidence < threshold). Among equal
/// scores the middle of the best plateau is taken, leaving margin on both sides.
fn learn_threshold(held: &[(Vec<f32>, usize)], oos: usize, temperature: f32) -> f32 {
    // (best in-scope confidence, the example counts as correct if accepted, is oos, oos won)
    let mut rows: Vec<(f32, bool, bool, bool)> = Vec::with_capacity(held.len());
    for (z, y) in held {
        let mut p = z.clone();
        softmax_in_place(&mut p, temperature);
        let mut best = None::<usize>;
        for (k, &v) in p.iter().enumerate() {
            if k != oos && best.is_none_or(|b| v > p[b]) {
                best = Some(k);
            }
        }
        let Some(b) = best else { continue };
        let oos_won = p[oos] > p[b];
        rows.push((p[b], b == *y, *y == oos, oos_won));
    }
    let n_in = rows.iter().filter(|r| !r.2).count().max(1) as f32;
    let n_oos = rows.iter().filter(|r| r.2).count().max(1) as f32;
    let score = |t: f32| -> f32 {
        let mut ok_in = 0.0;
        let mut ok_oos = 0.0;
        for &(conf, correct, is_oos, oos_won) in &rows {
            let accepted = !oos_won && conf >= t;
            if is_oos {
                ok_oos += f32::from(u8::from(!accepted));
            } else {
                ok_in += f32::from(u8::from(accepted && correct));
            }
        }
        (ok_in / n_in + ok_oos / n_oos) / 2.0
    };
    let mut confs: Vec<f32> = rows.iter().map(|r| r.0).collect();
    confs.sort_by(f32::total_cmp);
    confs.dedup();
    // Candidates: accept everything, each midpoint between observed confidences.
    let mut candidates = vec![0.0f32];
    candidates.extend(confs.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    let scores: Vec<f32> = candidates.iter().map(|&t| score(t)).collect();
    let best = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let plateau: Vec<f32> = candidates
        .iter()
        .zip(&scores)
        .filter(|(_, s)| **s >= best - 1e-6)
        .map(|(t, _)| *t)
        .collect();
    let lo = plateau.first().copied().unwrap_or(0.0);
    let hi = plateau.last().copied().unwrap_or(lo);
    ((lo + hi) / 2.0).clamp(0.0, 0.99)
}
