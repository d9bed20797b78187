//! Prometheus metrics: the process-wide recorder behind the `metrics` facade that kefu's crates
//! record into, and what `GET /metrics` renders.
//!
//! Install the recorder ([`install`]) before opening the store and starting the runtime: the
//! store and the session registry take their metric handles when they start, and a handle taken
//! before the recorder exists stays a no-op. `kefu serve` installs it first thing;
//! [`crate::RuntimeBuilder::new`] installs it too (idempotent), so turn metrics work for
//! embedders that forget.
//!
//! Latencies are histograms with fixed buckets from 100 µs to 10 s (Prometheus sums them across
//! scrapes and instances, which summaries cannot), so a p99 is read with `histogram_quantile`.
//! If the embedding process already installed another recorder, kefu records into that one and
//! `/metrics` renders only what reached ours (nothing): the operator's recorder wins.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Bucket bounds in seconds, for every histogram.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histogram samples are folded into the buckets (bounds their memory between
/// scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs kefu's Prometheus recorder as the process's global recorder (once; later calls
/// return the same handle) and starts its upkeep thread.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Only fails on bounds that are empty or not increasing; ours are constant.
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "Another metrics recorder is installed; /metrics will not show kefu's figures"
                );
            }
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("kefu-metrics".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                // Rendering also folds samples in, so scrapes still see everything.
                tracing::warn!(error = %e, "Metrics upkeep thread not started");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_histograms_render_with_the_buckets() {
        let handle = install();
        metrics::histogram!("kefu_test_seconds", "phase" => "x").record(0.003);
        let text = handle.render();
        assert!(
            text.contains(r#"kefu_test_seconds_bucket{phase="x",le="0.005"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kefu_test_seconds_bucket{phase="x",le="0.0025"} 0"#),
            "{text}"
        );
        // A second install is the same recorder.
        metrics::histogram!("kefu_test_seconds", "phase" => "x").record(0.003);
        assert!(
            install()
                .render()
                .contains(r#"kefu_test_seconds_bucket{phase="x",le="0.005"} 2"#)
        );
    }
}
