//! The skill host: every skill a bot can call, each hosted in its own pool of supervised actors
//! with a timeout, a circuit breaker, panic isolation and metrics.
//!
//! Flows call skills by name through [`SkillHost::call`]. What a caller can rely on:
//! - **It always returns**, within the skill's timeout plus a small grace: a slow skill is
//!   cancelled at the deadline and answers [`SkillError::Timeout`]; a skill that blocks its
//!   thread has its worker killed and replaced.
//! - **A panic is an error, not a crash**: the caller gets [`SkillError::Panicked`], the worker
//!   that ran it is replaced, the session and the other workers carry on.
//! - **A failing skill is left alone for a while**: after `breaker.failures` errors, timeouts
//!   or panics within `breaker.window`, calls are answered [`SkillError::CircuitOpen`] at once
//!   without reaching the skill, until the cool-down lets one trial call through (see
//!   [`breaker`]). [`SkillError::BadArgument`] does not count: it is the flow's mistake, not a
//!   sign the skill is unhealthy.
//! - **At most `pool` calls of one skill run at once**; further callers wait for a worker, and
//!   that wait counts toward their timeout.
//!
//! Pools start lazily on a skill's first call, or all at once with [`SkillHost::start`] (the
//! runtime does that at boot, so a pool that cannot start fails the boot, not a conversation).
//!
//! A skill that never blocks its thread may be hosted [`Isolation::Inline`]: called on the
//! caller's task instead of a pool worker, without the two actor hops, with the same timeout,
//! breaker, panic isolation, concurrency bound and metrics (the `inline` module says how).
//! The pool ([`Isolation::Pool`]) stays the default, since only it can rescue a skill that
//! blocks.
//!
//! The SDK's types are re-exported here, so embedders need only this crate.

pub mod breaker;
mod inline;
mod metrics;
mod pool;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use breaker::{BreakerConfig, BreakerState};
pub use kefu_plugin::{
    Caller, Skill, SkillError, SkillInfo, SkillOutcome, SkillRequest, async_trait,
};
pub use metrics::{LatencyStats, SkillStats, error_kind};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::{debug, warn};

use breaker::Breaker;
use inline::Inline;
use metrics::Metrics;
use pool::Pool;

/// Largest pool a skill may ask for; more workers than this is a configuration mistake.
const MAX_POOL: usize = 1024;

/// How one skill is hosted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillConfig {
    /// Workers in the skill's pool, or slots of an inline skill: how many calls may run at once
    /// (1..=1024).
    pub pool: usize,
    /// How long a call may take, waiting for a worker included.
    pub timeout: Duration,
    /// When the circuit opens and for how long.
    pub breaker: BreakerConfig,
    /// Where calls run: a worker of the skill's own actor pool (the default) or the caller's
    /// task. Either way at most `pool` calls run at once.
    pub isolation: Isolation,
}

impl Default for SkillConfig {
    fn default() -> Self {
        Self {
            pool: 4,
            timeout: Duration::from_secs(2),
            breaker: BreakerConfig::default(),
            isolation: Isolation::default(),
        }
    }
}

/// Where a skill's calls run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// On a worker of the skill's own pool of supervised actors: a skill that blocks its
    /// thread past the deadline has its worker killed and replaced, and a panicking worker is
    /// replaced. Costs two actor hops (context switches) per call.
    #[default]
    Pool,
    /// On the caller's task: no hop. The timeout (the call's future is dropped at the
    /// deadline), breaker, panic catching (`catch_unwind`), concurrency bound and metrics are
    /// the same, but a skill that blocks its thread blocks the caller's thread with it: only
    /// for skills that never block (async I/O, quick in-memory work).
    Inline,
}

impl SkillConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.pool == 0 || self.pool > MAX_POOL {
            return Err(format!("pool must be 1..={MAX_POOL}, not {}", self.pool));
        }
        if self.timeout.is_zero() {
            return Err("timeout must be more than zero".to_owned());
        }
        if self.breaker.failures == 0 {
            return Err("breaker.failures must be at least 1".to_owned());
        }
        if self.breaker.window.is_zero() || self.breaker.cool_down.is_zero() {
            return Err("breaker.window and breaker.cool_down must be more than zero".to_owned());
        }
        Ok(())
    }
}

/// Why a skill could not be registered or started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkillHostError {
    /// Skills need a name to be called by.
    #[error("a skill needs a non-empty name")]
    EmptyName,
    /// Two skills claim one name.
    #[error("a skill named `{name}` is already registered")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The skill's hosting configuration is unusable.
    #[error("skill `{name}`: {reason}")]
    InvalidConfig {
        /// The skill.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The skill's actor pool did not start.
    #[error("skill `{name}` could not start: {reason}")]
    Start {
        /// The skill.
        name: String,
        /// Why.
        reason: String,
    },
}

/// One registered skill and its hosting.
struct Hosted {
    name: String,
    skill: Arc<dyn Skill>,
    config: SkillConfig,
    breaker: Breaker,
    metrics: Arc<Metrics>,
    pool: OnceCell<Pool>,
    /// The fast path, for a skill hosted [`Isolation::Inline`] (`None` for a pooled one).
    inline: Option<Inline>,
    /// Set by shutdown, so a pool that never started is not started afterwards.
    closed: AtomicBool,
}

impl Hosted {
    async fn pool(&self) -> Result<&Pool, SkillHostError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SkillHostError::Start {
                name: self.name.clone(),
                reason: "the skill host is shut down".to_owned(),
            });
        }
        self.pool
            .get_or_try_init(|| async {
                Pool::start(
                    &self.name,
                    self.skill.clone(),
                    self.config.pool,
                    self.metrics.clone(),
                )
                .await
                .map_err(|reason| SkillHostError::Start {
                    name: self.name.clone(),
                    reason,
                })
            })
            .await
    }

    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        let _in_flight = self.metrics.start();
        let admission = match self.breaker.admit() {
            Ok(admission) => admission,
            Err(rejected) => {
                let err = SkillError::CircuitOpen(format!(
                    "skill `{}` failed repeatedly; next try in {} ms",
                    self.name,
                    rejected.retry_in.as_millis()
                ));
                self.metrics.finish(&Err(err.clone()), None);
                return Err(err);
            }
        };
        let deadline = Instant::now() + self.config.timeout;
        let timeout_ms = self
            .config
            .timeout
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX);
        let (result, started) = match &self.inline {
            Some(inline) => inline.run(req, deadline, timeout_ms).await,
            None => match self.pool().await {
                Ok(pool) => pool.run(req, deadline, timeout_ms).await,
                Err(e) => (Err(SkillError::Backend(e.to_string())), None),
            },
        };
        admission.record(matches!(&result, Err(e) if counts_against_breaker(e)));
        self.metrics
            .finish(&result, started.map(|s| Instant::now().duration_since(s)));
        match &result {
            Ok(outcome) => debug!(skill = %self.name, outcome = outcome.kind(), "Skill answered"),
            Err(e) => {
                warn!(skill = %self.name, kind = error_kind(e), error = %e, "Skill call failed")
            }
        }
        result
    }

    fn stats(&self) -> SkillStats {
        self.metrics.snapshot(
            &self.name,
            self.config.pool,
            self.config.timeout,
            self.breaker.state(),
            self.breaker.opened(),
        )
    }
}

/// Whether an error says the skill is unhealthy. A bad argument is the flow's mistake.
fn counts_against_breaker(err: &SkillError) -> bool {
    !matches!(err, SkillError::BadArgument { .. })
}

/// Every skill a bot can call, by name. Register skills first, then share it (`Arc`) with the
/// engine: calls take `&self`.
#[derive(Default)]
pub struct SkillHost {
    skills: BTreeMap<String, Arc<Hosted>>,
}

impl std::fmt::Debug for SkillHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillHost")
            .field("skills", &self.names())
            .finish()
    }
}

impl SkillHost {
    /// A host with no skills.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hosts `skill` under its own name.
    pub fn register(
        &mut self,
        skill: Arc<dyn Skill>,
        config: SkillConfig,
    ) -> Result<(), SkillHostError> {
        let name = skill.name().to_owned();
        self.register_as(name, skill, config)
    }

    /// Hosts `skill` under `name` (one plugin may serve several names, e.g. `tickets.create`
    /// and `tickets.close`; each name gets its own pool, breaker and metrics).
    pub fn register_as(
        &mut self,
        name: impl Into<String>,
        skill: Arc<dyn Skill>,
        config: SkillConfig,
    ) -> Result<(), SkillHostError> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(SkillHostError::EmptyName);
        }
        if self.skills.contains_key(&name) {
            return Err(SkillHostError::Duplicate { name });
        }
        config
            .validate()
            .map_err(|reason| SkillHostError::InvalidConfig {
                name: name.clone(),
                reason,
            })?;
        let inline = match config.isolation {
            Isolation::Inline => Some(Inline::new(&name, skill.clone(), config.pool)),
            Isolation::Pool => None,
        };
        let hosted = Hosted {
            name: name.clone(),
            skill,
            breaker: Breaker::new(config.breaker.clone()),
            config,
            metrics: Arc::new(Metrics::new(&name)),
            pool: OnceCell::new(),
            inline,
            closed: AtomicBool::new(false),
        };
        self.skills.insert(name, Arc::new(hosted));
        Ok(())
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.skills.keys().cloned().collect()
    }

    /// Whether a skill is registered under `name` (for `kefu check` of flows).
    pub fn contains(&self, name: &str) -> bool {
        self.skills.contains_key(name)
    }

    /// What the skill under `name` says about itself.
    pub fn info(&self, name: &str) -> Option<SkillInfo> {
        self.skills.get(name).map(|h| h.skill.info())
    }

    /// Starts every skill's pool now instead of on its first call (inline skills have none).
    pub async fn start(&self) -> Result<(), SkillHostError> {
        for hosted in self.skills.values().filter(|h| h.inline.is_none()) {
            hosted.pool().await?;
        }
        Ok(())
    }

    /// Calls the skill named by `req.skill`. Never panics and never waits past the skill's
    /// timeout (plus a short grace for a skill that blocks its thread).
    pub async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        match self.skills.get(&req.skill) {
            Some(hosted) => hosted.call(req).await,
            None => Err(SkillError::Unknown(req.skill)),
        }
    }

    /// Every skill's figures, sorted by name.
    pub fn stats(&self) -> Vec<SkillStats> {
        self.skills.values().map(|h| h.stats()).collect()
    }

    /// Stops every pool; later calls answer an error.
    pub async fn shutdown(&self) {
        for hosted in self.skills.values() {
            hosted.closed.store(true, Ordering::Release);
            if let Some(inline) = &hosted.inline {
                inline.shutdown();
            }
            if let Some(pool) = hosted.pool.get() {
                pool.shutdown().await;
            }
        }
    }
}
