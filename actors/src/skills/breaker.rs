//! A skill's circuit breaker: stop calling a skill that keeps failing, so a dead back-end costs
//! the user a fast fallback instead of a full timeout on every turn.
//!
//! States and transitions:
//! - **Closed**: calls go through. Failures are remembered with their time; when `failures`
//!   of them fall within `window`, the circuit opens. Successes do not erase earlier failures:
//!   the window alone decides, so a skill failing every other call still trips it.
//! - **Open**: calls are rejected at once (they never reach the skill) until `cool_down` has
//!   passed since opening.
//! - **Half-open**: the first call after the cool-down is let through as a trial, every other
//!   call is rejected while it runs. Trial success closes the circuit (forgetting old failures);
//!   trial failure opens it for another cool-down. A trial whose caller went away without a
//!   result frees the trial slot for the next call rather than wedging the breaker.
//!
//! Results of calls admitted before the circuit opened are ignored once it is open: they say
//! nothing about the skill's health now.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// When a skill's circuit opens and how long it stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures (errors, timeouts, panics) within `window` that open the circuit; at least 1.
    pub failures: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long the circuit stays open before one trial call is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            window: Duration::from_secs(30),
            cool_down: Duration::from_secs(10),
        }
    }
}

/// A breaker's state, as shown in stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are rejected until the cool-down ends.
    Open,
    /// One trial call decides whether the circuit closes.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { trial_running: bool },
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Times of recent failures while closed, oldest first.
    failures: VecDeque<Instant>,
    /// How many times the circuit has opened, for stats.
    opened: u64,
}

/// The breaker of one skill.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejected {
    /// How long until a trial call may be admitted (zero while a trial runs).
    pub(crate) retry_in: Duration,
}

/// Permission to make one call; report its result with [`Admission::record`].
#[must_use = "a call's result must be recorded"]
pub(crate) struct Admission<'a> {
    breaker: &'a Breaker,
    trial: bool,
    recorded: bool,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                state: State::Closed,
                failures: VecDeque::new(),
                opened: 0,
            }),
        }
    }

    /// Admits a call, or says why not.
    pub(crate) fn admit(&self) -> Result<Admission<'_>, Rejected> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let trial = match inner.state {
            State::Closed => false,
            State::Open { until } if now >= until => {
                inner.state = State::HalfOpen {
                    trial_running: true,
                };
                true
            }
            State::Open { until } => {
                return Err(Rejected {
                    retry_in: until - now,
                });
            }
            State::HalfOpen {
                trial_running: true,
            } => {
                return Err(Rejected {
                    retry_in: Duration::ZERO,
                });
            }
            State::HalfOpen {
                trial_running: false,
            } => {
                inner.state = State::HalfOpen {
                    trial_running: true,
                };
                true
            }
        };
        Ok(Admission {
            breaker: self,
            trial,
            recorded: false,
        })
    }

    /// The state now, for stats.
    pub(crate) fn state(&self) -> BreakerState {
        match self.inner.lock().state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How many times the circuit has opened.
    pub(crate) fn opened(&self) -> u64 {
        self.inner.lock().opened
    }

    fn record(&self, trial: bool, failed: bool) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if trial {
            if failed {
                self.open(&mut inner, now);
            } else {
                inner.state = State::Closed;
                inner.failures.clear();
            }
            return;
        }
        if !failed || !matches!(inner.state, State::Closed) {
            return;
        }
        inner.failures.push_back(now);
        while let Some(&oldest) = inner.failures.front() {
            if now.duration_since(oldest) > self.config.window {
                inner.failures.pop_front();
            } else {
                break;
            }
        }
        if inner.failures.len() >= self.config.failures as usize {
            self.open(&mut inner, now);
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.state = State::Open {
            until: now + self.config.cool_down,
        };
        inner.failures.clear();
        inner.opened += 1;
    }

    fn abandon_trial(&self) {
        let mut inner = self.inner.lock();
        if let State::HalfOpen { .. } = inner.state {
            inner.state = State::HalfOpen {
                trial_running: false,
            };
        }
    }
}

impl Admission<'_> {
    /// Reports how the admitted call went.
    pub(crate) fn record(mut self, failed: bool) {
        self.recorded = true;
        self.breaker.record(self.trial, failed);
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        // The caller went away mid-call (its future was dropped): a trial that never finished
        // proves nothing, so let the next call try instead.
        if !self.recorded && self.trial {
            self.breaker.abandon_trial();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_the_window_and_closes_after_a_good_trial() {
        let b = breaker();
        for _ in 0..2 {
            b.admit().unwrap().record(true);
        }
        b.admit().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Closed, "2 failures < 3");
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened(), 1);
        let rejected = b.admit().err().unwrap();
        assert_eq!(rejected.retry_in, Duration::from_secs(5));

        tokio::time::advance(Duration::from_secs(5)).await;
        let trial = b.admit().unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.admit().is_err(), "only one trial at a time");
        trial.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
        // Old failures were forgotten: one more failure does not reopen it.
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_count() {
        let b = breaker();
        b.admit().unwrap().record(true);
        b.admit().unwrap().record(true);
        tokio::time::advance(Duration::from_secs(11)).await;
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_and_an_abandoned_trial_frees_the_slot() {
        let b = breaker();
        for _ in 0..3 {
            b.admit().unwrap().record(true);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened(), 2);

        tokio::time::advance(Duration::from_secs(5)).await;
        drop(b.admit().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.admit()
            .expect("the abandoned trial's slot is free")
            .record(false);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn late_results_of_calls_admitted_before_opening_are_ignored() {
        let b = breaker();
        let late = b.admit().unwrap();
        for _ in 0..3 {
            b.admit().unwrap().record(true);
        }
        late.record(false);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
