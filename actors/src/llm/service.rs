//! The [`LlmService`] handle: the ladder, and one model rung's guarded call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use kefu_models::llm::{
    LlmBackend, LlmError, LlmRequest, ModerationVerdict, Moderator, PiiMasker, PiiVault,
    PromptBuilder, PromptParts, StreamEvent, Usage,
};
use kefu_models::{Lang, detect_lang};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{BudgetScope, CircuitBreaker, TokenBudgets};

/// Settings of the LLM service (`[llm.service]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmServiceConfig {
    /// Generations running at once per model back-end.
    pub max_concurrent: usize,
    /// Generations waiting for a slot per back-end beyond which the rung is skipped.
    pub max_queue: usize,
    /// Most milliseconds one model rung may take (queueing included).
    pub rung_timeout_ms: u64,
    /// Most milliseconds all model rungs together may take; then the ladder goes on to the
    /// knowledge base, the template and a human, which answer at once.
    pub ladder_deadline_ms: u64,
    /// Tokens a session may use per budget window.
    pub session_token_budget: u64,
    /// Tokens a tenant may use per budget window.
    pub tenant_token_budget: u64,
    /// Length of the budget window in seconds.
    pub budget_window_secs: u64,
    /// Back-end failures in a row that open its breaker.
    pub breaker_failures: u32,
    /// Milliseconds an open breaker waits before a trial call.
    pub breaker_open_ms: u64,
    /// `max_tokens` of a generation when the request sets none.
    pub max_tokens: u32,
    /// A generation is only started if the budget allows at least this many reply tokens.
    pub min_reply_tokens: u32,
}

impl Default for LlmServiceConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            max_queue: 64,
            // A conversation's turn waits on the whole ladder, and the session layer answers
            // 504 after `turn_timeout_secs` (10 s by default): the ladder must end well before
            // that, so a hanging model costs the user a fallback answer, not an error.
            rung_timeout_ms: 6_000,
            ladder_deadline_ms: 8_000,
            session_token_budget: 50_000,
            tenant_token_budget: 5_000_000,
            budget_window_secs: 3600,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            max_tokens: 512,
            min_reply_tokens: 16,
        }
    }
}

impl LlmServiceConfig {
    /// Checks values that parse but make no sense; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_concurrent", self.max_concurrent as u64),
            ("rung_timeout_ms", self.rung_timeout_ms),
            ("ladder_deadline_ms", self.ladder_deadline_ms),
            ("session_token_budget", self.session_token_budget),
            ("tenant_token_budget", self.tenant_token_budget),
            ("budget_window_secs", self.budget_window_secs),
            ("breaker_failures", u64::from(self.breaker_failures)),
            ("max_tokens", u64::from(self.max_tokens)),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("service.{key} must be at least 1"));
            }
        }
        if self.rung_timeout_ms > self.ladder_deadline_ms {
            return Err(format!(
                "service.rung_timeout_ms ({}) must not exceed service.ladder_deadline_ms ({})",
                self.rung_timeout_ms, self.ladder_deadline_ms
            ));
        }
        if self.min_reply_tokens > self.max_tokens {
            return Err(format!(
                "service.min_reply_tokens ({}) must not exceed service.max_tokens ({})",
                self.min_reply_tokens, self.max_tokens
            ));
        }
        Ok(())
    }
}

/// The model back-ends of the ladder's first two rungs.
#[derive(Clone, Default)]
pub struct ModelRungs {
    /// The remote (OpenAI-compatible) back-end; its input is PII-masked.
    pub remote: Option<Arc<dyn LlmBackend>>,
    /// The in-process back-end.
    pub local: Option<Arc<dyn LlmBackend>>,
}

/// A rung of the degradation ladder, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rung {
    /// The remote model.
    Remote,
    /// The local model.
    Local,
    /// The best knowledge-base passage, quoted.
    KnowledgeBase,
    /// The flow step's fallback template.
    Template,
    /// Hand the conversation to a human agent.
    Human,
}

/// Why a rung did not answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum DegradeReason {
    /// No back-end is configured for it.
    NotConfigured,
    /// Its breaker is open.
    CircuitOpen,
    /// A token budget is exhausted.
    BudgetExhausted {
        /// `session` or `tenant`.
        scope: &'static str,
    },
    /// Too many generations were waiting.
    QueueFull,
    /// The rung or the ladder ran out of time.
    Timeout,
    /// The prompt does not fit the context.
    ContextOverflow,
    /// The back-end failed.
    BackendError {
        /// The error's stable code.
        code: &'static str,
    },
    /// The moderator withheld the answer.
    Moderated {
        /// `secret`, `blocklist`, `system_prompt_leak`.
        check: &'static str,
    },
    /// The model answered nothing.
    EmptyAnswer,
    /// There were no passages to answer from.
    NoPassages,
    /// The step has no fallback template.
    NoTemplate,
}

/// A rung skipped on the way down, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RungSkip {
    /// The rung.
    pub rung: Rung,
    /// Why it did not answer.
    #[serde(flatten)]
    pub reason: DegradeReason,
}

/// What the user is shown while a model streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPiece {
    /// More text (moderated, PII restored).
    Delta(String),
    /// Drop everything streamed so far: that rung failed, the final answer replaces it.
    Retract,
}

/// One generation asked for by a session.
#[derive(Debug, Clone, Default)]
pub struct GenerateRequest {
    /// The tenant (budgets).
    pub tenant: String,
    /// The session (budgets, cancellation).
    pub session: String,
    /// The prompt's variable parts (step instructions, passages, history, user text).
    pub prompt: PromptParts,
    /// `max_tokens`; `None` uses the service's.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// The flow step's fallback text (the template rung).
    pub template: Option<String>,
    /// Where to stream moderated text as it is generated (WebSocket channels).
    pub stream: Option<mpsc::Sender<StreamPiece>>,
}

/// The ladder's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmAnswer {
    /// The rung that answered.
    pub rung: Rung,
    /// The text for the user (empty for [`Rung::Human`]: the engine hands off).
    pub text: String,
    /// Tokens the answering model used (zero for the other rungs).
    pub usage: Usage,
    /// The rungs above that did not answer, and why (empty when the first rung answered).
    pub degraded: Vec<RungSkip>,
    /// How many distinct personal-data values were masked before leaving the machine.
    pub pii_masked: usize,
}

impl Rung {
    /// The rung's name in records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Rung::Remote => "remote",
            Rung::Local => "local",
            Rung::KnowledgeBase => "knowledge_base",
            Rung::Template => "template",
            Rung::Human => "human",
        }
    }
}

impl RungSkip {
    /// `remote: backend_error code=server`: the rung and why it did not answer.
    pub fn describe(&self) -> String {
        let why = serde_json::to_value(&self.reason)
            .ok()
            .and_then(|v| {
                let parts: Vec<String> = v
                    .as_object()?
                    .iter()
                    .map(|(k, v)| match (k.as_str(), v.as_str()) {
                        ("reason", Some(s)) => s.to_owned(),
                        (k, Some(s)) => format!("{k}={s}"),
                        (k, None) => format!("{k}={v}"),
                    })
                    .collect();
                Some(parts.join(" "))
            })
            .unwrap_or_default();
        format!("{}: {why}", self.rung.as_str())
    }
}

impl LlmAnswer {
    /// A one-line account for the turn record: `local (remote: circuit_open)`.
    pub fn reason(&self) -> String {
        if self.degraded.is_empty() {
            return self.rung.as_str().to_owned();
        }
        format!("{} ({})", self.rung.as_str(), self.skipped(|_| true))
    }

    /// Why the rungs that `keep` selects did not answer, `; `-separated
    /// (`remote: timeout; local: not_configured`); empty when none of them was skipped.
    pub fn skipped(&self, keep: impl Fn(Rung) -> bool) -> String {
        self.degraded
            .iter()
            .filter(|s| keep(s.rung))
            .map(RungSkip::describe)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Why `generate` gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// A newer message for the session (or an explicit cancel) superseded this generation.
    #[error("the generation for session {session} was superseded")]
    Cancelled {
        /// The session.
        session: String,
    },
}

/// One model back-end with its guards.
struct ModelSlot {
    rung: Rung,
    backend: Arc<dyn LlmBackend>,
    breaker: CircuitBreaker,
    slots: Semaphore,
    waiting: AtomicUsize,
    /// Mask personal data before calling it (the back-end is off the machine).
    mask: bool,
}

struct Inner {
    config: LlmServiceConfig,
    models: Vec<ModelSlot>,
    prompt: PromptBuilder,
    moderator: Moderator,
    budgets: TokenBudgets,
    inflight: DashMap<(String, String), (u64, CancellationToken)>,
    /// Sessions whose running turn a newer message superseded: every generation that turn
    /// still asks for ends at once as cancelled, also one it had not started when the newer
    /// message arrived. Cleared when a turn of the session starts or ends
    /// ([`LlmService::turn_boundary`]), so it never outlives the superseded turn.
    superseded: DashMap<(String, String), ()>,
    /// How many marks `superseded` holds: `turn_boundary` runs twice per turn and usually has
    /// nothing to clear, so it reads this instead of allocating a key or visiting every shard.
    superseded_marks: AtomicUsize,
    next_id: AtomicU64,
}

/// The LLM service handle (cheap to clone; all clones share queues, budgets and breakers).
#[derive(Clone)]
pub struct LlmService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LlmService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmService")
            .field("config", &self.inner.config)
            .field(
                "models",
                &self
                    .inner
                    .models
                    .iter()
                    .map(|m| m.backend.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What one model rung produced.
enum RungOutcome {
    Answered { text: String, usage: Usage },
    Skipped(DegradeReason),
    Cancelled,
}

impl LlmService {
    /// A service over `models`, building prompts with `prompt` and checking answers with
    /// `moderator`.
    pub fn new(
        config: LlmServiceConfig,
        models: ModelRungs,
        prompt: PromptBuilder,
        moderator: Moderator,
    ) -> Self {
        let slot = |rung, backend, mask| ModelSlot {
            rung,
            backend,
            breaker: CircuitBreaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_open_ms),
            ),
            slots: Semaphore::new(config.max_concurrent.max(1)),
            waiting: AtomicUsize::new(0),
            mask,
        };
        let mut slots = Vec::new();
        if let Some(remote) = models.remote {
            slots.push(slot(Rung::Remote, remote, true));
        }
        if let Some(local) = models.local {
            slots.push(slot(Rung::Local, local, false));
        }
        Self {
            inner: Arc::new(Inner {
                budgets: TokenBudgets::new(
                    config.session_token_budget,
                    config.tenant_token_budget,
                    Duration::from_secs(config.budget_window_secs.max(1)),
                ),
                config,
                models: slots,
                prompt,
                moderator,
                inflight: DashMap::new(),
                superseded: DashMap::new(),
                superseded_marks: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The breaker state of a model rung (`None` if that rung has no back-end).
    pub fn breaker_state(&self, rung: Rung) -> Option<super::BreakerState> {
        self.inner
            .models
            .iter()
            .find(|m| m.rung == rung)
            .map(|m| m.breaker.state())
    }

    /// The user interrupted the session's running turn: cancels its in-flight generation, if
    /// any, and every generation the same turn asks for later (until
    /// [`LlmService::turn_boundary`]).
    pub fn cancel(&self, tenant: &str, session: &str) {
        let key = (tenant.to_owned(), session.to_owned());
        // Marked before the in-flight entry is looked at; `generate` registers before it reads
        // the mark. Whatever the interleaving, a starting generation sees one or the other.
        if self.inner.superseded.insert(key.clone(), ()).is_none() {
            self.inner.superseded_marks.fetch_add(1, Ordering::AcqRel);
        }
        if let Some((_, (_, token))) = self.inner.inflight.remove(&key) {
            token.cancel();
        }
    }

    /// A turn of the session starts or ends: an interruption recorded for an earlier turn no
    /// longer applies.
    pub fn turn_boundary(&self, tenant: &str, session: &str) {
        // A mark for this session is set before its newer message is queued, so a turn that
        // starts after it sees the count.
        if self.inner.superseded_marks.load(Ordering::Acquire) == 0 {
            return;
        }
        if self
            .inner
            .superseded
            .remove(&(tenant.to_owned(), session.to_owned()))
            .is_some()
        {
            self.inner.superseded_marks.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Runs the ladder for `req`; see the module invariants.
    pub async fn generate(&self, req: GenerateRequest) -> Result<LlmAnswer, GenerateError> {
        let key = (req.tenant.clone(), req.session.clone());
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        // A new message for the session supersedes its running generation.
        if let Some((_, old)) = self.inner.inflight.insert(key.clone(), (id, token.clone())) {
            old.cancel();
        }
        if self.inner.superseded.contains_key(&key) {
            // The turn asking was superseded before this step began (it was busy with a skill,
            // say): the newer message should not wait for a whole generation.
            self.inner
                .inflight
                .remove_if(&key, |_, (current, _)| *current == id);
            return Err(GenerateError::Cancelled {
                session: req.session.clone(),
            });
        }
        let result = self.ladder(&req, &token).await;
        self.inner
            .inflight
            .remove_if(&key, |_, (current, _)| *current == id);
        result
    }

    async fn ladder(
        &self,
        req: &GenerateRequest,
        cancel: &CancellationToken,
    ) -> Result<LlmAnswer, GenerateError> {
        let inner = &self.inner;
        let deadline = Instant::now() + Duration::from_millis(inner.config.ladder_deadline_ms);
        let mut degraded = Vec::new();
        let mut vault = PiiVault::new();
        for rung in [Rung::Remote, Rung::Local] {
            let Some(model) = inner.models.iter().find(|m| m.rung == rung) else {
                degraded.push(RungSkip {
                    rung,
                    reason: DegradeReason::NotConfigured,
                });
                continue;
            };
            match self
                .model_rung(model, req, &mut vault, deadline, cancel)
                .await
            {
                RungOutcome::Answered { text, usage } => {
                    return Ok(LlmAnswer {
                        rung,
                        text,
                        usage,
                        degraded,
                        pii_masked: vault.len(),
                    });
                }
                RungOutcome::Skipped(reason) => {
                    tracing::info!(session = %req.session, ?rung, ?reason, "LLM rung skipped");
                    degraded.push(RungSkip { rung, reason });
                }
                RungOutcome::Cancelled => {
                    return Err(GenerateError::Cancelled {
                        session: req.session.clone(),
                    });
                }
            }
        }
        let lang = detect_lang(&req.prompt.user);
        let answer = |rung, text, degraded| LlmAnswer {
            rung,
            text,
            usage: Usage::default(),
            degraded,
            pii_masked: vault.len(),
        };
        match req.prompt.passages.first() {
            Some(p) => {
                let text = match lang {
                    Lang::Zh => format!("根据我们的资料：{}", p.text.trim()),
                    _ => format!("From our help centre: {}", p.text.trim()),
                };
                match inner.moderator.check(&text) {
                    ModerationVerdict::Allow => {
                        return Ok(answer(Rung::KnowledgeBase, text, degraded));
                    }
                    ModerationVerdict::Block { reason } => degraded.push(RungSkip {
                        rung: Rung::KnowledgeBase,
                        reason: DegradeReason::Moderated { check: reason },
                    }),
                }
            }
            None => degraded.push(RungSkip {
                rung: Rung::KnowledgeBase,
                reason: DegradeReason::NoPassages,
            }),
        }
        match req
            .template
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            Some(t) => Ok(answer(Rung::Template, t.to_owned(), degraded)),
            None => {
                degraded.push(RungSkip {
                    rung: Rung::Template,
                    reason: DegradeReason::NoTemplate,
                });
                Ok(answer(Rung::Human, String::new(), degraded))
            }
        }
    }

    /// One guarded call of one model back-end.
    async fn model_rung(
        &self,
        model: &ModelSlot,
        req: &GenerateRequest,
        vault: &mut PiiVault,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> RungOutcome {
        let inner = &self.inner;
        let now = Instant::now();
        if now >= deadline {
            return RungOutcome::Skipped(DegradeReason::Timeout);
        }
        let rung_deadline = deadline.min(now + Duration::from_millis(inner.config.rung_timeout_ms));
        if !model.breaker.allow() {
            return RungOutcome::Skipped(DegradeReason::CircuitOpen);
        }
        // From here on every path reports to the breaker exactly once.
        let outcome = self
            .guarded_call(model, req, vault, rung_deadline, cancel)
            .await;
        match &outcome {
            Ok(_) => model.breaker.on_success(),
            Err(Failure::Backend(_)) => model.breaker.on_failure(),
            Err(Failure::Neutral(_) | Failure::Cancelled) => model.breaker.on_neutral(),
        }
        match outcome {
            Ok((text, usage)) => RungOutcome::Answered { text, usage },
            Err(Failure::Cancelled) => RungOutcome::Cancelled,
            Err(Failure::Neutral(reason) | Failure::Backend(reason)) => {
                RungOutcome::Skipped(reason)
            }
        }
    }

    async fn guarded_call(
        &self,
        model: &ModelSlot,
        req: &GenerateRequest,
        vault: &mut PiiVault,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<(String, Usage), Failure> {
        let inner = &self.inner;
        // The prompt: masked for a back-end off the machine.
        let wanted = req.max_tokens.unwrap_or(inner.config.max_tokens).max(1);
        let mut parts = req.prompt.clone();
        if model.mask {
            let masker = PiiMasker::new();
            parts.user = masker.mask(&parts.user, vault);
            for m in &mut parts.history {
                m.content = masker.mask(&m.content, vault);
            }
            for p in &mut parts.passages {
                p.text = masker.mask(&p.text, vault);
            }
        }
        let messages = inner
            .prompt
            .build(&parts, wanted as usize)
            .map_err(|_| Failure::Neutral(DegradeReason::ContextOverflow))?;
        let counter = kefu_models::llm::CharEstimate::default();
        let prompt_tokens: u64 = messages
            .iter()
            .map(|m| kefu_models::llm::TokenCounter::count_message(&counter, &m.content) as u64)
            .sum();
        let min_reply = u64::from(inner.config.min_reply_tokens);
        let left = inner
            .budgets
            .available(&req.tenant, &req.session, prompt_tokens + min_reply)
            .map_err(|scope| {
                Failure::Neutral(DegradeReason::BudgetExhausted {
                    scope: match scope {
                        BudgetScope::Session => "session",
                        BudgetScope::Tenant => "tenant",
                    },
                })
            })?;
        // The reply may not outgrow what the budget has left.
        let max_tokens = u64::from(wanted).min(left - prompt_tokens) as u32;
        let mut request = LlmRequest::new(messages, max_tokens.max(1));
        request.temperature = req.temperature;

        // Queue for a slot, bounded in length and in time.
        if model.waiting.fetch_add(1, Ordering::AcqRel) >= inner.config.max_queue {
            model.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Failure::Neutral(DegradeReason::QueueFull));
        }
        let permit = tokio::select! {
            p = tokio::time::timeout_at(deadline, model.slots.acquire()) => p,
            () = cancel.cancelled() => {
                model.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(Failure::Cancelled);
            }
        };
        model.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = match permit {
            Ok(Ok(p)) => p,
            Ok(Err(_)) | Err(_) => return Err(Failure::Neutral(DegradeReason::Timeout)),
        };

        let mut streamed = Streamer::new(&inner.moderator, req.stream.clone(), vault);
        let call = async {
            let mut tokens = model.backend.stream(request).await?;
            while let Some(event) = tokens.next().await {
                match event? {
                    StreamEvent::Delta(d) => {
                        if let Err(check) = streamed.push(&d).await {
                            return Ok(Err(check));
                        }
                    }
                    StreamEvent::Done { usage, .. } => return Ok(Ok(usage)),
                }
            }
            Err(LlmError::Protocol {
                backend: model.backend.name().to_owned(),
                detail: "the stream ended without a finish reason".into(),
            })
        };
        let result = tokio::select! {
            r = tokio::time::timeout_at(deadline, call) => r,
            () = cancel.cancelled() => {
                // Leaving the select dropped the call and with it the back-end's stream, which
                // stops the generation (the remote request is closed, the local sequence freed).
                self.charge_estimate(req, prompt_tokens, &streamed);
                // The user moved on: whatever this generation showed is withdrawn.
                streamed.retract().await;
                return Err(Failure::Cancelled);
            }
        };
        let failure = match result {
            Err(_) => Some(Failure::Backend(DegradeReason::Timeout)),
            Ok(Err(e)) if e.is_backend_failure() => {
                tracing::warn!(backend = model.backend.name(), error = %e, "LLM back-end failed");
                Some(Failure::Backend(match e {
                    LlmError::Timeout { .. } => DegradeReason::Timeout,
                    other => DegradeReason::BackendError { code: other.code() },
                }))
            }
            Ok(Err(LlmError::Cancelled)) => Some(Failure::Cancelled),
            Ok(Err(e)) => Some(Failure::Neutral(match e {
                LlmError::ContextOverflow { .. } => DegradeReason::ContextOverflow,
                other => DegradeReason::BackendError { code: other.code() },
            })),
            Ok(Ok(Err(check))) => Some(Failure::Neutral(DegradeReason::Moderated { check })),
            Ok(Ok(Ok(usage))) => {
                let usage = if usage.total() == 0 {
                    Usage {
                        prompt_tokens: prompt_tokens as u32,
                        completion_tokens: streamed.estimate_tokens() as u32,
                    }
                } else {
                    usage
                };
                inner
                    .budgets
                    .charge(&req.tenant, &req.session, u64::from(usage.total()));
                return match streamed.finish().await {
                    Ok(text) if text.trim().is_empty() => {
                        Err(Failure::Neutral(DegradeReason::EmptyAnswer))
                    }
                    Ok(text) => Ok((text, usage)),
                    Err(check) => Err(Failure::Neutral(DegradeReason::Moderated { check })),
                };
            }
        };
        self.charge_estimate(req, prompt_tokens, &streamed);
        streamed.retract().await;
        Err(failure.unwrap_or(Failure::Backend(DegradeReason::EmptyAnswer)))
    }

    /// Charges what a failed or cancelled generation used, so retries cannot dodge a budget.
    fn charge_estimate(&self, req: &GenerateRequest, prompt_tokens: u64, streamed: &Streamer<'_>) {
        self.inner.budgets.charge(
            &req.tenant,
            &req.session,
            prompt_tokens + streamed.estimate_tokens(),
        );
    }
}

/// How a guarded call failed, for the breaker.
enum Failure {
    /// The back-end's fault: counts against the breaker.
    Backend(DegradeReason),
    /// Not the back-end's fault (budget, queue, moderation, bad request).
    Neutral(DegradeReason),
    /// Superseded.
    Cancelled,
}

/// Accumulates a generation, restores personal data, moderates, and releases text to the
/// stream sink only up to the moderator's hold-back.
struct Streamer<'a> {
    moderator: &'a Moderator,
    sink: Option<mpsc::Sender<StreamPiece>>,
    vault: &'a PiiVault,
    raw: String,
    sent_chars: usize,
}

impl<'a> Streamer<'a> {
    fn new(
        moderator: &'a Moderator,
        sink: Option<mpsc::Sender<StreamPiece>>,
        vault: &'a PiiVault,
    ) -> Self {
        Self {
            moderator,
            sink,
            vault,
            raw: String::new(),
            sent_chars: 0,
        }
    }

    fn estimate_tokens(&self) -> u64 {
        kefu_models::llm::TokenCounter::count(&kefu_models::llm::CharEstimate::default(), &self.raw)
            as u64
    }

    fn restored(&self) -> String {
        self.vault.restore(&self.raw)
    }

    async fn push(&mut self, delta: &str) -> Result<(), &'static str> {
        self.raw.push_str(delta);
        let text = self.restored();
        if let ModerationVerdict::Block { reason } = self.moderator.check(&text) {
            return Err(reason);
        }
        let total = text.chars().count();
        let release_to = total.saturating_sub(self.moderator.holdback_chars());
        self.release(&text, release_to).await;
        Ok(())
    }

    async fn release(&mut self, text: &str, upto: usize) {
        if upto <= self.sent_chars {
            return;
        }
        if let Some(sink) = &self.sink {
            let piece: String = text
                .chars()
                .skip(self.sent_chars)
                .take(upto - self.sent_chars)
                .collect();
            // A channel that went away stops listening; the answer is still returned.
            let _ = sink.send(StreamPiece::Delta(piece)).await;
        }
        self.sent_chars = upto;
    }

    async fn finish(&mut self) -> Result<String, &'static str> {
        let text = self.restored();
        if let ModerationVerdict::Block { reason } = self.moderator.check(&text) {
            self.retract().await;
            return Err(reason);
        }
        let total = text.chars().count();
        self.release(&text, total).await;
        Ok(text.trim().to_owned())
    }

    async fn retract(&mut self) {
        if self.sent_chars > 0
            && let Some(sink) = &self.sink
        {
            let _ = sink.send(StreamPiece::Retract).await;
        }
        self.sent_chars = 0;
    }
}
