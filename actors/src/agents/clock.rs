//! Where the desk's time comes from: the system clock in production, a hand-moved clock in
//! tests (SLA timers are tested without sleeping).

use std::sync::atomic::{AtomicU64, Ordering};

/// Where the desk's time comes from.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds (Unix epoch for the system clock; any origin for test clocks).
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::events::now_ms()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: u64) -> Self {
        Self(AtomicU64::new(ms))
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
