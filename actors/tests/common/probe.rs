//! The probe skill the skill-host tests (pool and inline) drive, and the request they send it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kefu_actors::skills::{
    Caller, Skill, SkillConfig, SkillError, SkillHost, SkillOutcome, SkillRequest, async_trait,
};

/// Does what its arguments say: `panic` panics before any await, `sleep_ms` awaits,
/// `block_ms` blocks the thread, `late_panic` panics after those, `fail` errors unless
/// `healthy` is set. Counts the calls that reached it, those running, and the most at once.
#[derive(Default)]
pub struct Probe {
    pub reached: AtomicUsize,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub healthy: AtomicBool,
}

/// Counts a call as finished when it ends or its future is dropped.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Skill for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        self.reached.fetch_add(1, Ordering::SeqCst);
        if req.arg("panic").is_some() {
            panic!("probe panics on purpose");
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let _running = Running(&self.running);
        if let Some(ms) = req.arg("sleep_ms").and_then(|v| v.as_u64()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(ms) = req.arg("block_ms").and_then(|v| v.as_u64()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if req.arg("late_panic").is_some() {
            panic!("probe panics after an await");
        }
        if req.arg("fail").is_some() && !self.healthy.load(Ordering::SeqCst) {
            return Err(SkillError::Backend("probe back-end is down".into()));
        }
        Ok(SkillOutcome::found(
            serde_json::json!({ "user": req.caller.user }),
        ))
    }
}

/// A host with `probe` registered as `config` says.
pub fn hosted(probe: &Arc<Probe>, config: SkillConfig) -> SkillHost {
    let mut host = SkillHost::new();
    host.register(probe.clone(), config).expect("registers");
    host
}

/// A call of the probe for user `u1`.
pub fn req() -> SkillRequest {
    SkillRequest::new(
        "probe",
        Caller {
            user: "u1".into(),
            ..Caller::default()
        },
    )
}
