//! Reading histograms out of a Prometheus text exposition, for the load generator: it scrapes
//! `/metrics` when a measurement starts and when it ends, and the difference of the cumulative
//! bucket counts is the histogram of that window alone (warm-up excluded).
//!
//! Quantiles are interpolated linearly inside the bucket that holds them, as PromQL's
//! `histogram_quantile` does, so they are only as fine as the server's buckets.

/// One histogram series: cumulative counts per upper bound (`+Inf` last).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// (upper bound in the metric's unit, cumulative count), bounds increasing.
    pub buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// The series `name` with exactly the labels `labels` (e.g. `phase="queue"`, or empty),
    /// from an exposition; `None` when it is not there.
    pub fn parse(text: &str, name: &str, labels: &str) -> Option<Histogram> {
        let prefix = format!("{name}_bucket{{");
        let mut buckets = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some((inside, value)) = rest.split_once("} ") else {
                continue;
            };
            // The bound is the last label; what precedes it must be exactly `labels`.
            let Some((others, le)) = inside.rsplit_once("le=\"") else {
                continue;
            };
            let others = others.trim_end_matches(',');
            if others != labels {
                continue;
            }
            let le = le.trim_end_matches('"');
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            buckets.push((bound, value.trim().parse().ok()?));
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!buckets.is_empty()).then_some(Histogram { buckets })
    }

    /// This histogram minus an earlier scrape of the same series (missing buckets count 0).
    pub fn since(&self, earlier: Option<&Histogram>) -> Histogram {
        let before = |bound: f64| {
            earlier
                .and_then(|e| e.buckets.iter().find(|(b, _)| *b == bound))
                .map_or(0.0, |(_, c)| *c)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(bound, count)| (bound, (count - before(bound)).max(0.0)))
                .collect(),
        }
    }

    /// Samples in the histogram.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |(_, c)| *c)
    }

    /// The `q` quantile (0..=1), interpolated inside its bucket; the largest finite bound
    /// when it falls in `+Inf`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut lower = 0.0;
        let mut below = 0.0;
        for &(bound, count) in &self.buckets {
            if count >= rank && count > below {
                if bound.is_infinite() {
                    return Some(lower);
                }
                return Some(lower + (bound - lower) * (rank - below) / (count - below));
            }
            if bound.is_finite() {
                lower = bound;
            }
            below = count;
        }
        Some(lower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE kefu_turn_phase_seconds histogram
kefu_turn_phase_seconds_bucket{phase="queue",le="0.001"} 90
kefu_turn_phase_seconds_bucket{phase="queue",le="0.01"} 99
kefu_turn_phase_seconds_bucket{phase="queue",le="0.1"} 100
kefu_turn_phase_seconds_bucket{phase="queue",le="+Inf"} 100
kefu_turn_phase_seconds_bucket{phase="append",le="0.001"} 1
kefu_turn_phase_seconds_bucket{phase="append",le="+Inf"} 3
kefu_turn_seconds_bucket{le="0.001"} 5
kefu_turn_seconds_bucket{le="+Inf"} 5
"#;

    #[test]
    fn parses_one_series_by_its_labels() {
        let queue = Histogram::parse(TEXT, "kefu_turn_phase_seconds", r#"phase="queue""#).unwrap();
        assert_eq!(queue.buckets.len(), 4);
        assert_eq!(queue.count(), 100.0);
        let total = Histogram::parse(TEXT, "kefu_turn_seconds", "").unwrap();
        assert_eq!(total.count(), 5.0);
        assert!(Histogram::parse(TEXT, "kefu_turn_phase_seconds", r#"phase="x""#).is_none());
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let queue = Histogram::parse(TEXT, "kefu_turn_phase_seconds", r#"phase="queue""#).unwrap();
        // Rank 50 of 90 in [0, 1 ms].
        let p50 = queue.quantile(0.5).unwrap();
        assert!((p50 - 0.001 * 50.0 / 90.0).abs() < 1e-12, "{p50}");
        // Rank 99: the top of the second bucket.
        assert!((queue.quantile(0.99).unwrap() - 0.01).abs() < 1e-12);
        // In +Inf: the largest finite bound.
        let append =
            Histogram::parse(TEXT, "kefu_turn_phase_seconds", r#"phase="append""#).unwrap();
        assert_eq!(append.quantile(0.99), Some(0.001));
    }

    #[test]
    fn the_difference_of_two_scrapes_is_the_window() {
        let later = Histogram::parse(TEXT, "kefu_turn_phase_seconds", r#"phase="queue""#).unwrap();
        let earlier = Histogram {
            buckets: vec![
                (0.001, 80.0),
                (0.01, 80.0),
                (0.1, 80.0),
                (f64::INFINITY, 80.0),
            ],
        };
        let window = later.since(Some(&earlier));
        assert_eq!(window.count(), 20.0);
        // 10 of the 20 in [0, 1 ms], 9 in (1, 10 ms], 1 in (10, 100 ms].
        assert_eq!(window.buckets[0].1, 10.0);
        assert!(window.quantile(0.99).unwrap() > 0.01);
        assert_eq!(Histogram { buckets: vec![] }.quantile(0.5), None);
    }
}
