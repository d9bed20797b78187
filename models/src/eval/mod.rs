//! Evaluation on a designer's own data: [`nlu_eval`] for intents (with out-of-scope) and
//! [`emotion_eval`] for emotion labels. The `kefu nlu eval` and `kefu emotion eval`
//! commands print these reports.
//!
//! Intent decisions, as the runtime makes them: when the training data has `oos` examples
//! the classifier's learned threshold and `oos` class reject out-of-scope text, and a
//! rejection is the prediction `oos`; without `oos` examples there is nothing to learn a
//! threshold from and nothing out of scope to find, so the top-ranked intent is the
//! prediction (the report's `rejection` says which applied).
//!
//! Latency is measured per query over the whole test set on the path a turn takes
//! (normalise + classify, or the emotion scorer), after a warm-up pass.

mod data;
mod metrics;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::classifier::{IntentClassifier, IntentExample, OOS_INTENT};
use crate::config::ClassifierConfig;
use crate::emotion::{EmotionExample, EmotionLabel, EmotionModel};
use crate::error::{ModelError, Result};
use crate::normalize::{Lang, normalize};

pub use data::{LABEL_FIELDS, LabelMap, Labelled, TEXT_FIELDS, load_labelled, stratified_split};
pub use metrics::{f1_per_label, percentile};

/// The intent evaluation figures; serialises to exactly the keys scripts read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NluEvalReport {
    /// Share of test examples whose prediction (an intent, or `oos` when rejected) is right.
    pub accuracy: f64,
    /// Unweighted mean F1 over the labels of the test set and the predictions.
    pub macro_f1: f64,
    /// Accuracy on the examples not labelled `oos` (a rejection counts as wrong).
    pub inscope_accuracy: f64,
    /// Share of `oos` test examples rejected; `None` without `oos` test examples.
    pub oos_recall: Option<f64>,
    /// Share of rejections that were `oos`; `None` when nothing was rejected.
    pub oos_precision: Option<f64>,
    /// Training time in seconds (including calibration).
    pub train_seconds: f64,
    /// Median per-query latency in microseconds (normalise + classify).
    pub p50_us: f64,
    /// 99th-percentile per-query latency in microseconds.
    pub p99_us: f64,
}

/// Everything else an intent evaluation learned, for the human-readable output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NluEvalDetails {
    /// Training examples used.
    pub train_examples: usize,
    /// Test examples evaluated.
    pub test_examples: usize,
    /// In-scope intents learned.
    pub intents: usize,
    /// In-scope accuracy of the top-ranked intent, no rejection at all.
    pub inscope_top1_accuracy: f64,
    /// In-scope accuracy when only the `oos` class rejects (its probability beats every
    /// intent's) and no confidence threshold applies: the figure the learned threshold's
    /// budget (`oos_max_accuracy_drop`) is measured from. `None` without an `oos` class.
    pub inscope_no_threshold_accuracy: Option<f64>,
    /// How rejection worked: `learned threshold`, `oos class + min_confidence` or `none`.
    pub rejection: String,
    /// The confidence threshold in force (if rejection applied).
    pub threshold: Option<f32>,
    /// The fitted softmax temperature.
    pub temperature: f32,
}

/// One test example the classifier got wrong, for `kefu nlu eval --errors`: what a designer
/// reads to decide which examples to add or which intents to merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NluMiss {
    /// The test text as given.
    pub text: String,
    /// Its label.
    pub expected: String,
    /// The decision (`oos` when rejected).
    pub predicted: String,
    /// The top-ranked intent's calibrated confidence.
    pub confidence: f32,
}

/// The result of [`nlu_eval`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NluEval {
    /// The figures.
    pub report: NluEvalReport,
    /// Context for a human reader.
    pub details: NluEvalDetails,
    /// Every misclassified test example, in test-file order.
    pub misses: Vec<NluMiss>,
}

impl NluEval {
    /// The most frequent `(expected, predicted)` confusions, most frequent first (ties by
    /// name), at most `n`.
    #[must_use]
    pub fn top_confusions(&self, n: usize) -> Vec<(&str, &str, usize)> {
        let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for m in &self.misses {
            *counts
                .entry((m.expected.as_str(), m.predicted.as_str()))
                .or_default() += 1;
        }
        let mut pairs: Vec<_> = counts.into_iter().map(|((e, p), c)| (e, p, c)).collect();
        pairs.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (a.0, a.1).cmp(&(b.0, b.1))));
        pairs.truncate(n);
        pairs
    }
}

/// Options of [`nlu_eval`].
#[derive(Debug, Clone, Default)]
pub struct NluEvalOptions {
    /// The data's language, when known: picks [`ClassifierConfig::for_lang`].
    pub lang: Option<Lang>,
    /// A full classifier configuration, overriding `lang`'s.
    pub config: Option<ClassifierConfig>,
}

/// Trains on `train`, evaluates on `test` (labels already mapped; `oos` marks
/// out-of-scope).
///
/// # Errors
/// The classifier's training errors.
pub fn nlu_eval(
    train: &[Labelled],
    test: &[Labelled],
    options: &NluEvalOptions,
) -> Result<NluEval> {
    if test.is_empty() {
        return Err(ModelError::NoExamples);
    }
    let config = match (&options.config, options.lang) {
        (Some(c), _) => c.clone(),
        (None, Some(lang)) => ClassifierConfig::for_lang(lang),
        (None, None) => ClassifierConfig::default(),
    };
    let examples: Vec<IntentExample> = train
        .iter()
        .map(|l| IntentExample::new(l.text.clone(), l.label.clone()))
        .collect();
    let started = Instant::now();
    let clf = IntentClassifier::train(&examples, &config)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let reject = clf.has_oos_class();

    let predict = |text: &str| -> (String, Option<String>, f32) {
        let p = clf.classify(&normalize(text));
        let (top, confidence) = p
            .ranking
            .first()
            .map_or((None, 0.0), |(i, c)| (Some(i.clone()), *c));
        let decided = if reject {
            p.intent.unwrap_or_else(|| OOS_INTENT.to_owned())
        } else {
            top.clone().unwrap_or_else(|| OOS_INTENT.to_owned())
        };
        (decided, top, confidence)
    };
    // Warm-up: caches, the segmenter's dictionary, lazy statics.
    for ex in test.iter().take(200) {
        std::hint::black_box(predict(&ex.text));
    }
    let mut latencies = Vec::with_capacity(test.len());
    let mut predictions = Vec::with_capacity(test.len());
    for ex in test {
        let t = Instant::now();
        let out = std::hint::black_box(predict(&ex.text));
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        predictions.push(out);
    }

    let gold: Vec<&str> = test.iter().map(|l| l.label.as_str()).collect();
    let decided: Vec<&str> = predictions.iter().map(|(d, _, _)| d.as_str()).collect();
    let n = gold.len() as f64;
    let correct = gold.iter().zip(&decided).filter(|(g, d)| g == d).count();
    let in_scope: Vec<usize> = (0..gold.len()).filter(|&i| gold[i] != OOS_INTENT).collect();
    let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
    let inscope_correct = in_scope.iter().filter(|&&i| decided[i] == gold[i]).count();
    let top1_correct = in_scope
        .iter()
        .filter(|&&i| predictions[i].1.as_deref() == Some(gold[i]))
        .count();
    // Outside the timed loop: the full distribution, to see where the oos class alone wins.
    let no_threshold_correct = reject.then(|| {
        in_scope
            .iter()
            .filter(|&&i| {
                let probs = clf.class_probabilities(&normalize(&test[i].text));
                let p = |name: &str| probs.iter().find(|(c, _)| c == name).map(|(_, v)| *v);
                let top = predictions[i].1.as_deref();
                match (top, p(OOS_INTENT)) {
                    (Some(t), Some(oos)) => t == gold[i] && p(t).is_some_and(|v| v >= oos),
                    (Some(t), None) => t == gold[i],
                    (None, _) => false,
                }
            })
            .count()
    });
    let misses = (0..gold.len())
        .filter(|&i| decided[i] != gold[i])
        .map(|i| NluMiss {
            text: test[i].text.clone(),
            expected: gold[i].to_owned(),
            predicted: decided[i].to_owned(),
            confidence: predictions[i].2,
        })
        .collect();
    let oos_gold = gold.len() - in_scope.len();
    let oos_pred = decided.iter().filter(|d| **d == OOS_INTENT).count();
    let oos_hit = (0..gold.len())
        .filter(|&i| gold[i] == OOS_INTENT && decided[i] == OOS_INTENT)
        .count();
    let f1 = f1_per_label(&gold, &decided);
    let macro_f1 = if f1.is_empty() {
        0.0
    } else {
        f1.values().sum::<f64>() / f1.len() as f64
    };
    let cal = clf.calibration();
    let rejection = match (reject, cal.threshold_learned) {
        (false, _) => "none (no oos examples in training)",
        (true, true) => "learned threshold",
        (true, false) => "oos class + min_confidence",
    };
    Ok(NluEval {
        report: NluEvalReport {
            accuracy: correct as f64 / n,
            macro_f1,
            inscope_accuracy: ratio(inscope_correct, in_scope.len()).unwrap_or(0.0),
            oos_recall: ratio(oos_hit, oos_gold),
            oos_precision: ratio(oos_hit, oos_pred),
            train_seconds,
            p50_us: percentile(&mut latencies, 0.50),
            p99_us: percentile(&mut latencies, 0.99),
        },
        details: NluEvalDetails {
            train_examples: train.len(),
            test_examples: test.len(),
            intents: clf.intents().len(),
            inscope_top1_accuracy: ratio(top1_correct, in_scope.len()).unwrap_or(0.0),
            inscope_no_threshold_accuracy: no_threshold_correct
                .and_then(|c| ratio(c, in_scope.len())),
            rejection: rejection.to_owned(),
            threshold: reject.then_some(cal.threshold),
            temperature: cal.temperature,
        },
        misses,
    })
}

/// The emotion evaluation figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmotionEvalReport {
    /// Share of test examples with the right label.
    pub accuracy: f64,
    /// Unweighted mean of the per-label F1.
    pub macro_f1: f64,
    /// F1 per label (labels of the test set and of the predictions).
    pub f1: BTreeMap<String, f64>,
    /// Training time in seconds (0 for the shipped lexicon model).
    pub train_seconds: f64,
    /// Median per-turn latency in microseconds.
    pub p50_us: f64,
    /// 99th-percentile per-turn latency in microseconds.
    pub p99_us: f64,
}

/// Parses mapped labels into [`EmotionLabel`]s.
///
/// # Errors
/// [`ModelError::UnknownLabel`] for a label that is not ours (map it first).
pub fn emotion_examples(rows: &[Labelled]) -> Result<Vec<EmotionExample>> {
    rows.iter()
        .map(|r| {
            Ok(EmotionExample {
                text: r.text.clone(),
                label: r.label.parse()?,
            })
        })
        .collect()
}

/// Evaluates the emotion model on `test`: the shipped lexicon model without `train`, or a
/// model trained on `train` and blended with the lexicons (weight 0.7).
///
/// # Errors
/// [`ModelError::UnknownLabel`] for labels that are not ours, and training errors.
pub fn emotion_eval(train: Option<&[Labelled]>, test: &[Labelled]) -> Result<EmotionEvalReport> {
    if test.is_empty() {
        return Err(ModelError::NoExamples);
    }
    let test = emotion_examples(test)?;
    let started = Instant::now();
    let model = match train {
        Some(rows) => {
            EmotionModel::train(&emotion_examples(rows)?, &ClassifierConfig::default(), 0.7)?
        }
        None => EmotionModel::default(),
    };
    let train_seconds = if train.is_some() {
        started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    for ex in test.iter().take(200) {
        std::hint::black_box(model.score(&ex.text));
    }
    let mut latencies = Vec::with_capacity(test.len());
    let mut predicted: Vec<EmotionLabel> = Vec::with_capacity(test.len());
    for ex in &test {
        let t = Instant::now();
        let e = std::hint::black_box(model.score(&ex.text));
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        predicted.push(e.label);
    }
    let gold: Vec<&str> = test.iter().map(|e| e.label.as_str()).collect();
    let pred: Vec<&str> = predicted.iter().map(|l| l.as_str()).collect();
    let correct = gold.iter().zip(&pred).filter(|(g, p)| g == p).count();
    let f1 = f1_per_label(&gold, &pred);
    let macro_f1 = if f1.is_empty() {
        0.0
    } else {
        f1.values().sum::<f64>() / f1.len() as f64
    };
    Ok(EmotionEvalReport {
        accuracy: correct as f64 / gold.len() as f64,
        macro_f1,
        f1,
        train_seconds,
        p50_us: percentile(&mut latencies, 0.50),
        p99_us: percentile(&mut latencies, 0.99),
    })
}

/// Reads and evaluates files in one call, as the CLI does: see [`load_labelled`] and
/// [`nlu_eval`].
///
/// # Errors
/// Data and training errors.
pub fn nlu_eval_files(
    train: &Path,
    test: &Path,
    map: &LabelMap,
    options: &NluEvalOptions,
) -> Result<NluEval> {
    let train = load_labelled(train, map)?;
    let test = load_labelled(test, map)?;
    nlu_eval(&train, &test, options)
}

/// Reads and evaluates emotion files in one call: see [`emotion_eval`].
///
/// # Errors
/// Data, label and training errors.
pub fn emotion_eval_files(
    train: Option<&Path>,
    test: &Path,
    map: &LabelMap,
) -> Result<EmotionEvalReport> {
    let train = train.map(|p| load_labelled(p, map)).transpose()?;
    let test = load_labelled(test, map)?;
    emotion_eval(train.as_deref(), &test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(list: &[(&str, &str)]) -> Vec<Labelled> {
        list.iter()
            .map(|(t, l)| Labelled {
                text: (*t).to_owned(),
                label: (*l).to_owned(),
            })
            .collect()
    }

    #[test]
    fn nlu_report_counts_oos_both_ways() {
        let mut train = Vec::new();
        for i in 0..8 {
            train.push((format!("where is my parcel {i}"), "track"));
            train.push((format!("i want my money back {i}"), "refund"));
            train.push((format!("what is the weather like {i}"), "oos"));
        }
        let train: Vec<Labelled> = train
            .iter()
            .map(|(t, l)| Labelled {
                text: t.clone(),
                label: (*l).to_owned(),
            })
            .collect();
        let test = rows(&[
            ("where is my parcel", "track"),
            ("money back please", "refund"),
            ("what's the weather", "oos"),
        ]);
        let eval = match nlu_eval(&train, &test, &NluEvalOptions::default()) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        let r = &eval.report;
        assert!(r.accuracy > 0.6, "{eval:?}");
        assert!(r.oos_recall.is_some());
        assert!(r.p99_us >= r.p50_us && r.p50_us > 0.0);
        assert_eq!(eval.details.intents, 2);
        let json = serde_json::to_value(r).unwrap_or_default();
        let keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 8, "{keys:?}");
    }

    #[test]
    fn emotion_eval_without_training_uses_the_lexicons() {
        let test = rows(&[
            ("气死我了", "anger"),
            ("谢谢你", "joy"),
            ("查一下订单", "neutral"),
            ("I'm so worried", "anxiety"),
        ]);
        let r = match emotion_eval(None, &test) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(r.accuracy, 1.0);
        assert_eq!(r.f1.get("anger"), Some(&1.0));
        let bad = rows(&[("x", "surprise")]);
        assert!(matches!(
            emotion_eval(None, &bad),
            Err(ModelError::UnknownLabel { .. })
        ));
    }
}
