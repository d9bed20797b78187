//! A circuit breaker per back-end: after `failures` back-end failures in a row the back-end is
//! skipped for `open_for`, then one trial call decides whether it is healthy again.
//!
//! Invariants: only back-end failures ([`kefu_models::LlmError::is_backend_failure`]) are
//! recorded as failures, so users sending bad requests cannot open it; while half-open exactly
//! one caller gets through (a trial), the others are refused until it reports; time comes from
//! `tokio::time` so tests can pause the clock.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// What a breaker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` in a row so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// When a trial may go through.
        until: Instant,
    },
    /// One trial call is in flight.
    HalfOpen,
}

/// A circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `threshold` consecutive failures (at least 1) for
    /// `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go through now (claiming the trial when the open period is over).
    pub fn allow(&self) -> bool {
        let mut state = self.state.lock();
        match *state {
            BreakerState::Closed { .. } => true,
            BreakerState::HalfOpen => false,
            BreakerState::Open { until } => {
                if Instant::now() >= until {
                    *state = BreakerState::HalfOpen;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Records a successful call: the breaker closes.
    pub fn on_success(&self) {
        *self.state.lock() = BreakerState::Closed { failures: 0 };
    }

    /// Records a back-end failure: the breaker opens at the threshold, or again after a failed
    /// trial.
    pub fn on_failure(&self) {
        let mut state = self.state.lock();
        let open = BreakerState::Open {
            until: Instant::now() + self.open_for,
        };
        *state = match *state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => open,
        };
    }

    /// Records a call that ended without telling anything about the back-end's health
    /// (cancelled, refused as the caller's fault): a claimed trial is given back.
    pub fn on_neutral(&self) {
        let mut state = self.state.lock();
        if *state == BreakerState::HalfOpen {
            *state = BreakerState::Open {
                until: Instant::now(),
            };
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        *self.state.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_recovers_through_one_trial() {
        let b = CircuitBreaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            assert!(b.allow());
            b.on_failure();
        }
        assert!(b.allow());
        b.on_success();
        for _ in 0..3 {
            assert!(b.allow());
            b.on_failure();
        }
        assert!(!b.allow(), "open after 3 failures in a row");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.allow(), "the trial");
        assert!(!b.allow(), "only one trial at a time");
        b.on_failure();
        assert!(!b.allow(), "a failed trial opens it again");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.allow());
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert!(b.allow() && b.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_neutral_trial_gives_the_trial_back() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        b.on_failure();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(b.allow());
        b.on_neutral();
        assert!(b.allow());
    }
}
