//! Calibration of the intent classifier: out-of-sample scores, the softmax temperature and
//! the out-of-scope threshold.
//!
//! Out-of-sample scores come from [`calibration_folds`]: for sets up to
//! [`CROSS_FIT_MAX_EXAMPLES`] examples, k-fold cross-fitting with `k = round(1 /
//! holdout_fraction)` (every example is scored once by a model that did not see it: a bot's
//! few `oos` examples all count); for larger sets a single stratified held-back share (one
//! extra training instead of k, which keeps Banking77-sized training within its budget, and
//! thousands of held-back examples are plenty). Intents with a single example are never held
//! back. Everything is seeded and deterministic.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::config::ClassifierConfig;
use crate::linear::softmax_in_place;

/// Above this many examples, one held-back share replaces k-fold cross-fitting.
pub(crate) const CROSS_FIT_MAX_EXAMPLES: usize = 4_000;

/// The held-back index sets (folds); each is scored by a model trained on all other
/// examples. Empty when `holdout_fraction` is 0.
pub(crate) fn calibration_folds(
    labels: &[usize],
    n_classes: usize,
    config: &ClassifierConfig,
) -> Vec<Vec<usize>> {
    if config.holdout_fraction <= 0.0 {
        return Vec::new();
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &y) in labels.iter().enumerate() {
        if let Some(list) = by_class.get_mut(y) {
            list.push(i);
        }
    }
    // A different stream from the training shuffles, so the two never correlate.
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5EED_5EED_5EED_5EED);
    let cross_fit = labels.len() <= CROSS_FIT_MAX_EXAMPLES;
    let k = if cross_fit {
        ((1.0 / config.holdout_fraction).round() as usize).clamp(2, 10)
    } else {
        1
    };
    let mut folds: Vec<Vec<usize>> = vec![Vec::new(); k];
    // Rotating the first fold per class spreads small classes over all folds.
    let mut offset = 0usize;
    for mut list in by_class {
        if list.len() < 2 {
            continue;
        }
        list.shuffle(&mut rng);
        if cross_fit {
            for (j, &i) in list.iter().enumerate() {
                folds[(j + offset) % k].push(i);
            }
            offset += list.len();
        } else {
            let n = list.len();
            let held =
                ((n as f32 * config.holdout_fraction).round() as usize).min(n.saturating_sub(1));
            folds[0].extend_from_slice(&list[..held]);
        }
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    folds.retain(|f| !f.is_empty());
    folds
}

pub(crate) fn argmax(z: &[f32]) -> usize {
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
pub(crate) fn fit_temperature(held: &[(Vec<f32>, usize)]) -> f32 {
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
/// example when it is rejected (the `oos` class wins or confidence < threshold), among the
/// thresholds whose in-scope accuracy is at most `max_drop` below that of threshold 0 (the
/// `oos` class alone). Among equal scores the middle of the best plateau is taken, leaving
/// margin on both sides.
pub(crate) fn learn_threshold(
    held: &[(Vec<f32>, usize)],
    oos: usize,
    temperature: f32,
    max_drop: f32,
) -> f32 {
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
    let score = |t: f32| -> (f32, f32) {
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
        (ok_in / n_in, ok_oos / n_oos)
    };
    let mut confs: Vec<f32> = rows.iter().map(|r| r.0).collect();
    confs.sort_by(f32::total_cmp);
    confs.dedup();
    // Candidates: accept everything, each midpoint between observed confidences.
    let mut candidates = vec![0.0f32];
    candidates.extend(confs.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    let base_in = score(0.0).0;
    let scores: Vec<f32> = candidates
        .iter()
        .map(|&t| {
            let (acc_in, recall) = score(t);
            if acc_in + 1e-6 >= base_in - max_drop {
                (acc_in + recall) / 2.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
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
