//! Classification metrics: per-label F1 and latency percentiles.

use std::collections::{BTreeMap, BTreeSet};

/// F1 per label over the labels that occur in `gold` or `predicted` (as scikit-learn's
/// macro average does). A label never predicted nor present scores nothing; a label with
/// no true positives scores 0.
pub fn f1_per_label(gold: &[&str], predicted: &[&str]) -> BTreeMap<String, f64> {
    let labels: BTreeSet<&str> = gold.iter().chain(predicted).copied().collect();
    let mut out = BTreeMap::new();
    for label in labels {
        let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
        for (g, p) in gold.iter().zip(predicted) {
            match (*g == label, *p == label) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fneg += 1,
                (false, false) => {}
            }
        }
        let denom = 2 * tp + fp + fneg;
        let f1 = if denom == 0 {
            0.0
        } else {
            2.0 * tp as f64 / denom as f64
        };
        out.insert(label.to_owned(), f1);
    }
    out
}

/// The `q`-quantile (0..=1) of `values` by the nearest-rank method; sorts `values`.
/// 0 for an empty slice.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    values[rank.saturating_sub(1).min(values.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_matches_hand_computation() {
        let gold = ["a", "a", "b", "oos"];
        let pred = ["a", "b", "b", "a"];
        let f1 = f1_per_label(&gold, &pred);
        // a: tp 1, fp 1, fn 1 → 0.5; b: tp 1, fp 1, fn 0 → 2/3; oos: tp 0 → 0.
        assert!((f1["a"] - 0.5).abs() < 1e-9);
        assert!((f1["b"] - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(f1["oos"], 0.0);
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut v, 1.0), 100.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }
}
