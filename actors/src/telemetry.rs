//! Turn metrics for operators: how long a turn took in total and in each phase, and how turns
//! ended, through the `metrics` facade (the runtime installs a Prometheus recorder and serves
//! `/metrics`; without a recorder every call is a no-op).
//!
//! Phases, in order: `queue` (accepted by the registry until its session actor starts it: time
//! behind earlier messages of the same session and behind other actors for a worker), `handle`
//! (the handler: understanding, flows, skills, generation), `append` (the durable append,
//! including the wait for its group-commit flush). `kefu_turn_seconds` is the whole turn as the
//! caller sees it, so a long tail can be attributed to the phase whose tail matches.
//!
//! Handles are taken once when the registry starts (a recorder must be installed before that)
//! so the hot path only records: no key hashing or registry look-up per turn.

use metrics::{Counter, Histogram};

/// Metric: seconds from a message's acceptance to its answer.
pub const TURN_SECONDS: &str = "kefu_turn_seconds";
/// Metric: seconds per turn phase (`phase` = `queue` | `handle` | `append`).
pub const TURN_PHASE_SECONDS: &str = "kefu_turn_phase_seconds";
/// Metric: seconds a skill call ran (after it got a pool worker or an inline slot), by `skill`.
pub const SKILL_CALL_SECONDS: &str = "kefu_skill_call_seconds";
/// Metric: turns answered, by `result` (`ok` | `error`), and messages `refused` for load.
pub const TURNS_TOTAL: &str = "kefu_turns_total";

/// The registry's metric handles.
pub(crate) struct TurnMetrics {
    pub(crate) total: Histogram,
    pub(crate) queue: Histogram,
    pub(crate) handle: Histogram,
    pub(crate) append: Histogram,
    pub(crate) ok: Counter,
    pub(crate) error: Counter,
    pub(crate) refused: Counter,
}

impl TurnMetrics {
    /// Takes the handles from the installed recorder (no-op handles when there is none).
    pub(crate) fn new() -> Self {
        Self {
            total: metrics::histogram!(TURN_SECONDS),
            queue: metrics::histogram!(TURN_PHASE_SECONDS, "phase" => "queue"),
            handle: metrics::histogram!(TURN_PHASE_SECONDS, "phase" => "handle"),
            append: metrics::histogram!(TURN_PHASE_SECONDS, "phase" => "append"),
            ok: metrics::counter!(TURNS_TOTAL, "result" => "ok"),
            error: metrics::counter!(TURNS_TOTAL, "result" => "error"),
            refused: metrics::counter!(TURNS_TOTAL, "result" => "refused"),
        }
    }
}
