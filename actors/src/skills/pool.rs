//! A skill's pool: a supervisor actor with `size` linked worker actors, each running one call at
//! a time.
//!
//! Invariants:
//! - A worker is in the idle queue exactly when it can take a call right away, and the queue's
//!   semaphore holds one permit per queued worker (the worker is queued first, then the permit
//!   is added), so at most `size` calls run at once and a caller holding a permit always finds
//!   a worker.
//! - A worker queues itself: when it starts (also after a restart) and when it finishes a call.
//!   A caller never has to give a worker back, so a caller whose future is dropped mid-call
//!   cannot leak one.
//! - The worker enforces the deadline itself (the skill's future is dropped when it expires, so
//!   a slow call is cancelled, not left running). A skill that blocks its thread cannot be
//!   cancelled that way: the caller gives up a little after the deadline and kills the worker.
//! - A panicking call is caught, answered as a panic, and the worker then stops with an error;
//!   the supervisor spawns a replacement, so whatever the panic left behind in the worker dies
//!   with it. A killed worker is replaced the same way. A killed worker that had already queued
//!   itself is skipped by the next caller (its message cannot be delivered).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use kefu_plugin::{Skill, SkillError, SkillOutcome, SkillRequest};
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{error, warn};

use super::metrics::Metrics;

/// How long after the deadline a caller waits for a worker to report its own timeout before it
/// decides the worker is wedged (blocking its thread) and kills it.
const WEDGE_GRACE: Duration = Duration::from_millis(250);

/// What the pool's actors share with callers.
pub(crate) struct PoolShared {
    pub(crate) name: String,
    skill: Arc<dyn Skill>,
    idle: Mutex<VecDeque<ActorRef<WorkerMsg>>>,
    available: Semaphore,
    metrics: Arc<Metrics>,
    /// Set on shutdown: stopped workers are then not replaced.
    closed: AtomicBool,
}

impl PoolShared {
    fn put(&self, worker: ActorRef<WorkerMsg>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.idle.lock().push_back(worker);
        self.available.add_permits(1);
    }

    /// Waits for an idle worker; `None` once the pool is shut down.
    async fn take(&self) -> Option<ActorRef<WorkerMsg>> {
        let permit = self.available.acquire().await.ok()?;
        permit.forget();
        self.idle.lock().pop_front()
    }
}

/// A message to a worker: run one call.
pub(crate) struct WorkerMsg {
    req: SkillRequest,
    deadline: Instant,
    reply: RpcReplyPort<WorkerReply>,
}

/// How a worker's call ended.
enum WorkerReply {
    Done(Result<SkillOutcome, SkillError>),
    TimedOut,
    Panicked(String),
}

struct SkillWorker {
    shared: Arc<PoolShared>,
}

impl Actor for SkillWorker {
    type Msg = WorkerMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.shared.put(myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: WorkerMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let skill = self.shared.skill.clone();
        let req = msg.req;
        // The call is inside the async block so a skill that panics before its first await is
        // caught as well.
        let call = AssertUnwindSafe(async move { skill.call(req).await }).catch_unwind();
        let reply = match tokio::time::timeout_at(msg.deadline, call).await {
            Ok(Ok(result)) => WorkerReply::Done(result),
            Ok(Err(panic)) => WorkerReply::Panicked(panic_message(panic.as_ref())),
            Err(_elapsed) => WorkerReply::TimedOut,
        };
        if let WorkerReply::Panicked(reason) = &reply {
            let reason = format!("skill `{}` panicked: {reason}", self.shared.name);
            let _ = msg.reply.send(reply);
            // Stop with an error: the supervisor replaces this worker.
            return Err(reason.into());
        }
        self.shared.put(myself);
        // The caller may have gone away; the worker is free again either way.
        let _ = msg.reply.send(reply);
        Ok(())
    }
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// The pool's supervisor: spawns the workers and replaces those that stop.
struct PoolSupervisor {
    shared: Arc<PoolShared>,
}

impl Actor for PoolSupervisor {
    type Msg = ();
    type State = ();
    type Arguments = usize;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        size: usize,
    ) -> Result<(), ActorProcessingErr> {
        for _ in 0..size {
            self.spawn_worker(&myself).await?;
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let why = match event {
            SupervisionEvent::ActorFailed(_, err) => err.to_string(),
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                reason.unwrap_or_else(|| "killed".to_owned())
            }
            _ => return Ok(()),
        };
        if self.shared.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.shared.metrics.restarted();
        warn!(skill = %self.shared.name, reason = %why, "Skill worker stopped; starting a replacement");
        if let Err(e) = self.spawn_worker(&myself).await {
            // The pool runs one worker short; callers time out if none are left and the breaker
            // opens, which is what operators see.
            error!(skill = %self.shared.name, error = %e, "Skill worker could not be replaced");
        }
        Ok(())
    }
}

impl PoolSupervisor {
    async fn spawn_worker(&self, myself: &ActorRef<()>) -> Result<(), ActorProcessingErr> {
        let worker = SkillWorker {
            shared: self.shared.clone(),
        };
        Actor::spawn_linked(None, worker, (), myself.get_cell()).await?;
        Ok(())
    }
}

/// A running pool.
pub(crate) struct Pool {
    shared: Arc<PoolShared>,
    supervisor: ActorRef<()>,
}

impl Pool {
    /// Starts `size` workers for `skill`.
    pub(crate) async fn start(
        name: &str,
        skill: Arc<dyn Skill>,
        size: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let shared = Arc::new(PoolShared {
            name: name.to_owned(),
            skill,
            idle: Mutex::new(VecDeque::with_capacity(size)),
            available: Semaphore::new(0),
            metrics,
            closed: AtomicBool::new(false),
        });
        let sup = PoolSupervisor {
            shared: shared.clone(),
        };
        let (supervisor, _) = Actor::spawn(None, sup, size)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self { shared, supervisor })
    }

    /// Runs `req` on a free worker, waiting for one until `deadline`. `timeout_ms` is what a
    /// timeout error reports. Returns the result and, when the call reached a worker, whether
    /// the host should time it (waiting for a worker is not the skill's latency).
    pub(crate) async fn run(
        &self,
        req: SkillRequest,
        deadline: Instant,
        timeout_ms: u64,
    ) -> (Result<SkillOutcome, SkillError>, Option<Instant>) {
        let timeout = SkillError::Timeout { ms: timeout_ms };
        let mut req = Some(req);
        loop {
            let worker = match tokio::time::timeout_at(deadline, self.shared.take()).await {
                Err(_) => return (Err(timeout), None),
                Ok(None) => {
                    return (
                        Err(SkillError::Backend(format!(
                            "skill `{}` is shut down",
                            self.shared.name
                        ))),
                        None,
                    );
                }
                Ok(Some(worker)) => worker,
            };
            let Some(call) = req.take() else {
                // Unreachable: the request is put back whenever the loop goes round.
                return (Err(SkillError::Backend("request lost".to_owned())), None);
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            let started = Instant::now();
            let msg = WorkerMsg {
                req: call,
                deadline,
                reply: tx.into(),
            };
            if let Err(undelivered) = worker.send_message(msg) {
                // A worker killed after it had queued itself; its replacement is queued too.
                if let ractor::MessagingErr::SendErr(WorkerMsg { req: back, .. }) = undelivered {
                    req = Some(back);
                    continue;
                }
                return (
                    Err(SkillError::Backend("the skill's worker is gone".to_owned())),
                    None,
                );
            }
            let result = match tokio::time::timeout_at(deadline + WEDGE_GRACE, rx).await {
                Ok(Ok(WorkerReply::Done(result))) => result,
                Ok(Ok(WorkerReply::TimedOut)) => Err(timeout),
                Ok(Ok(WorkerReply::Panicked(reason))) => Err(SkillError::Panicked(reason)),
                Ok(Err(_)) => Err(SkillError::Backend(
                    "the skill's worker stopped mid-call".to_owned(),
                )),
                Err(_) => {
                    warn!(skill = %self.shared.name, "Skill call blocked its worker past the deadline; killing the worker");
                    worker.kill();
                    Err(timeout)
                }
            };
            return (result, Some(started));
        }
    }

    /// Stops the workers and the supervisor; callers waiting for a worker get an error.
    pub(crate) async fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.available.close();
        self.shared.idle.lock().clear();
        let wait = Some(Duration::from_secs(5));
        self.supervisor.stop_children_and_wait(None, wait).await;
        let _ = self.supervisor.stop_and_wait(None, wait).await;
    }
}
