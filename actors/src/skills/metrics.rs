//! Per-skill metrics: counters for every call and how it ended, and latency percentiles over
//! the most recent calls.
//!
//! Counters are lock-free atomics bumped on the call path; the latency window is a small ring
//! behind a mutex held for one store. [`SkillStats`] is the serde view the runtime shows
//! operators. Every call is counted exactly once: as an outcome (by kind) or as an error (by
//! kind); timeouts, panics and circuit rejections are errors with their own counters too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kefu_plugin::{SkillError, SkillOutcome};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::breaker::BreakerState;

/// How many recent call latencies the percentiles are computed over.
const LATENCY_WINDOW: usize = 1024;

const OUTCOME_KINDS: [&str; 4] = ["found", "not_found", "declined", "needs_human"];
const ERROR_KINDS: [&str; 7] = [
    "bad_argument",
    "backend",
    "config",
    "timeout",
    "panicked",
    "circuit_open",
    "unknown",
];

/// The name of an error's kind, as stats and logs show it.
pub fn error_kind(err: &SkillError) -> &'static str {
    ERROR_KINDS[error_index(err)]
}

fn error_index(err: &SkillError) -> usize {
    match err {
        SkillError::BadArgument { .. } => 0,
        SkillError::Backend(_) => 1,
        SkillError::Config(_) => 2,
        SkillError::Timeout { .. } => 3,
        SkillError::Panicked(_) => 4,
        SkillError::CircuitOpen(_) => 5,
        SkillError::Unknown(_) => 6,
    }
}

fn outcome_index(outcome: &SkillOutcome) -> usize {
    match outcome {
        SkillOutcome::Found { .. } => 0,
        SkillOutcome::NotFound { .. } => 1,
        SkillOutcome::Declined { .. } => 2,
        SkillOutcome::NeedsHuman { .. } => 3,
    }
}

/// A skill's live counters.
#[derive(Debug)]
pub(crate) struct Metrics {
    calls: AtomicU64,
    in_flight: AtomicU64,
    outcomes: [AtomicU64; 4],
    errors: [AtomicU64; 7],
    restarts: AtomicU64,
    latency: Mutex<LatencyWindow>,
    /// The same latencies for `/metrics` (`kefu_skill_call_seconds{skill}`); a no-op handle
    /// until a recorder is installed.
    seconds: metrics::Histogram,
}

/// Keeps the in-flight gauge right even when a caller's future is dropped mid-call.
pub(crate) struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counters for the skill `name`, its histogram taken from the installed recorder.
    pub(crate) fn new(name: &str) -> Self {
        Self {
            calls: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            outcomes: Default::default(),
            errors: Default::default(),
            restarts: AtomicU64::new(0),
            latency: Mutex::new(LatencyWindow::default()),
            seconds: metrics::histogram!(crate::telemetry::SKILL_CALL_SECONDS, "skill" => name.to_owned()),
        }
    }

    /// Counts a call starting; the guard counts it finishing.
    pub(crate) fn start(&self) -> InFlight<'_> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Counts how a call ended; `latency` is `None` for calls that never reached the skill.
    pub(crate) fn finish(
        &self,
        result: &Result<SkillOutcome, SkillError>,
        latency: Option<Duration>,
    ) {
        match result {
            Ok(outcome) => self.outcomes[outcome_index(outcome)].fetch_add(1, Ordering::Relaxed),
            Err(err) => self.errors[error_index(err)].fetch_add(1, Ordering::Relaxed),
        };
        if let Some(latency) = latency {
            self.latency.lock().push(latency);
            self.seconds.record(latency);
        }
    }

    /// Counts a pool worker replaced after a panic or a wedge.
    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// The serde view.
    pub(crate) fn snapshot(
        &self,
        name: &str,
        pool: usize,
        timeout: Duration,
        breaker: BreakerState,
        breaker_opened: u64,
    ) -> SkillStats {
        let count = |kinds: &[&str], values: &[AtomicU64]| -> BTreeMap<String, u64> {
            kinds
                .iter()
                .zip(values)
                .map(|(k, v)| ((*k).to_owned(), v.load(Ordering::Relaxed)))
                .collect()
        };
        let errors = count(&ERROR_KINDS, &self.errors);
        SkillStats {
            name: name.to_owned(),
            pool,
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            calls: self.calls.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            outcomes: count(&OUTCOME_KINDS, &self.outcomes),
            timeouts: errors.get("timeout").copied().unwrap_or(0),
            panics: errors.get("panicked").copied().unwrap_or(0),
            rejected: errors.get("circuit_open").copied().unwrap_or(0),
            errors,
            restarts: self.restarts.load(Ordering::Relaxed),
            breaker,
            breaker_opened,
            latency: self.latency.lock().stats(),
        }
    }
}

/// The latest call latencies, in microseconds, in a ring.
#[derive(Debug, Default)]
struct LatencyWindow {
    samples: Vec<u64>,
    next: usize,
}

impl LatencyWindow {
    fn push(&mut self, latency: Duration) {
        let us = latency.as_micros().try_into().unwrap_or(u64::MAX);
        if self.samples.len() < LATENCY_WINDOW {
            self.samples.push(us);
        } else {
            self.samples[self.next] = us;
        }
        self.next = (self.next + 1) % LATENCY_WINDOW;
    }

    fn stats(&self) -> LatencyStats {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        // Nearest-rank percentile: the smallest sample with at least p% of samples at or below.
        let pick = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            let us = sorted[rank.clamp(1, sorted.len()) - 1];
            us as f64 / 1000.0
        };
        LatencyStats {
            samples: sorted.len() as u64,
            p50_ms: pick(50.0),
            p99_ms: pick(99.0),
            max_ms: sorted.last().map_or(0.0, |us| *us as f64 / 1000.0),
        }
    }
}

/// One skill's figures, for the runtime's stats endpoint and dashboards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillStats {
    /// The name flows call it by.
    pub name: String,
    /// Workers in its pool: at most this many calls run at once.
    pub pool: usize,
    /// Per-call timeout.
    pub timeout_ms: u64,
    /// Calls made, including rejected ones.
    pub calls: u64,
    /// Calls running or waiting for a worker now.
    pub in_flight: u64,
    /// Calls that answered, by outcome kind (`found`, `not_found`, `declined`, `needs_human`).
    pub outcomes: BTreeMap<String, u64>,
    /// Calls that failed, by error kind (`bad_argument`, `backend`, `config`, `timeout`,
    /// `panicked`, `circuit_open`, `unknown`).
    pub errors: BTreeMap<String, u64>,
    /// Calls that ran past the timeout (also in `errors`).
    pub timeouts: u64,
    /// Calls whose skill panicked (also in `errors`).
    pub panics: u64,
    /// Calls rejected by the open circuit without reaching the skill (also in `errors`).
    pub rejected: u64,
    /// Pool workers replaced after a panic or a wedged call.
    pub restarts: u64,
    /// The circuit breaker's state now.
    pub breaker: BreakerState,
    /// How many times the circuit has opened since start.
    pub breaker_opened: u64,
    /// Latency of the most recent calls that reached a worker.
    pub latency: LatencyStats,
}

/// Latency percentiles over the most recent calls (up to 1,024).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// How many calls the figures are computed from.
    pub samples: u64,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// Slowest, in milliseconds.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_latest_window() {
        let mut w = LatencyWindow::default();
        assert_eq!(w.stats().samples, 0);
        for ms in 1..=100 {
            w.push(Duration::from_millis(ms));
        }
        let s = w.stats();
        assert_eq!(s.samples, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        for _ in 0..LATENCY_WINDOW {
            w.push(Duration::from_millis(2));
        }
        let s = w.stats();
        assert_eq!(s.samples, LATENCY_WINDOW as u64);
        assert_eq!(s.max_ms, 2.0, "old samples rolled out");
    }

    #[test]
    fn every_call_is_counted_once_by_kind() {
        let m = Metrics::new("probe");
        for result in [
            Ok(SkillOutcome::not_found("none")),
            Err(SkillError::Timeout { ms: 5 }),
            Err(SkillError::CircuitOpen("x".into())),
        ] {
            let _g = m.start();
            m.finish(&result, None);
        }
        let s = m.snapshot("s", 1, Duration::from_secs(1), BreakerState::Closed, 0);
        assert_eq!(s.calls, 3);
        assert_eq!(s.in_flight, 0);
        assert_eq!(s.outcomes["not_found"], 1);
        assert_eq!(s.timeouts, 1);
        assert_eq!(s.rejected, 1);
        assert_eq!(s.errors.values().sum::<u64>(), 2);
        assert_eq!(error_kind(&SkillError::Panicked("p".into())), "panicked");
    }
}
