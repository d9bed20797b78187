//! The production [`TurnHandler`]: understanding (kefu-models) in front of the flow interpreter
//! (kefu-flows).
//!
//! One turn: normalise the text, apply the bot's synonyms, detect the language, classify the
//! intent, find entities, score the emotion and update the session's emotion history, run one
//! interpreter step, and while the interpreter waits on a skill (`call:`) or on generated text
//! (`generate:`), run it through the [`SkillHost`] (or the [`LlmService`], when one is attached
//! with [`FlowEngine::with_llm`]) and resume. Understanding and the interpreter are synchronous;
//! only skills and generation await. Without a service every `generate:` takes the flow's
//! `fallback:`; with one, the ladder's account of each generation is on the turn's report
//! ([`TurnReport::generations`]).
//!
//! **Versions.** The compiled bot (flows + trained classifier) sits behind an `ArcSwap` so a
//! reload swaps it atomically while sessions keep running. A session in the middle of a flow is
//! *pinned* to the bot version that started the flow ([`EngineState::bot_version`]): the engine
//! keeps the few most recent older versions alive ([`MAX_RETAINED_VERSIONS`]) and runs a pinned
//! session's turns on its version until the flow (and every interrupted flow) ends; then the
//! pin is dropped and the next turn runs on the current version. A retained version that no
//! turn used for [`FlowEngine::pin_retention`] is released, and a session pinned to a released
//! (or unknown, e.g. after a restart) version moves to the current one — the interpreter repairs
//! a state that no longer fits. The hot path takes no lock: the retained list is only consulted
//! when a session's pin differs from the current version, i.e. after a reload.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use kefu_flows::{Bot, Diagnostic, DialogState, Effect, External, Lang, SkillResult, TurnInput};
use kefu_models::{
    ClassifierConfig, EmotionHistory, EmotionModel, EntityExtractor, IntentClassifier,
    IntentExample, IntentRules, Nlu, Synonyms,
};
use kefu_plugin::{Caller, SkillError, SkillOutcome, SkillRequest};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::agents::{Handoff, HandoffSink};
use crate::api::{NluView, Reply, TurnStream};
use crate::handler::{DEFAULT_TENANT, HandledTurn, HandlerError, TurnContext, TurnHandler};
use crate::llm::{
    FlowGenerated, FlowGeneration, IntentCandidate, IntentQuestion, LlmService, choose_intent,
    generate_for_flow,
};
use crate::skills::SkillHost;
use crate::understand::{self, Understood};

/// Older bot versions kept alive for sessions pinned mid-flow (the current one not counted).
/// When a reload pushes past it, the least recently used old version is released.
pub const MAX_RETAINED_VERSIONS: usize = 8;

/// How long an old version stays alive after the last turn that used it, by default. A
/// session silent for longer than this in the middle of a flow continues on the current bot.
pub const DEFAULT_PIN_RETENTION: Duration = Duration::from_secs(30 * 60);

/// Why a bot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EngineLoadError {
    /// The flow files have errors; each is `file:line:col: message` with a hint.
    #[error("{}", render(.0))]
    Flows(Vec<Diagnostic>),
    /// The classifier could not be trained from the bot's examples.
    #[error("the intent classifier could not be trained: {0}")]
    Model(String),
}

fn render(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == kefu_flows::Severity::Error)
        .count();
    out.push_str(&format!("{errors} error(s)"));
    out
}

/// The same language in the models' vocabulary.
fn to_models_lang(lang: Lang) -> kefu_models::Lang {
    match lang {
        Lang::Zh => kefu_models::Lang::Zh,
        _ => kefu_models::Lang::En,
    }
}

/// The per-session state of the [`FlowEngine`]: the interpreter's state plus the bot version
/// the session is pinned to.
///
/// Serialised flat (the dialog fields at top level, `bot_version` beside them), so snapshots
/// written before versions existed load unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// The interpreter's state.
    #[serde(flatten)]
    pub dialog: DialogState,
    /// The version ([`Bot::version`]) of the bot that runs this session's flow; `None` when no
    /// flow is running (the next turn uses the current bot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_version: Option<String>,
    /// The language of the last message that showed one, used for messages that show none
    /// (an order number, an e-mail address), so an English conversation stays in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// The emotion of the user's recent messages (bounded), persisted with the session so
    /// policies see the trend across restarts and passivation.
    #[serde(default, skip_serializing_if = "EmotionHistory::is_empty")]
    pub emotion: EmotionHistory,
    /// The last user tags a trusted caller sent (`vip`, ...), kept so turns over channels that
    /// cannot send tags (WebSocket, webhooks) and a later hand-off still see them. Not written
    /// when empty, so sessions without tags pay nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl EngineState {
    /// True while a flow is running or waiting to resume: the session stays on its version.
    pub fn is_mid_flow(&self) -> bool {
        self.dialog.active.is_some() || !self.dialog.stack.is_empty()
    }
}

/// Everything one turn did, for the session actor, `kefu test` and `kefu chat`.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnReport {
    /// What the session actor records and sends.
    pub handled: HandledTurn,
    /// The hand-off reason when the turn handed the conversation to a human.
    pub handoff: Option<String>,
    /// True when the turn ended the whole conversation.
    pub ended: bool,
    /// The user's emotion in this message (`anger`, `anxiety`, `sadness`, `joy`, `neutral`)
    /// with its intensity, e.g. `anger 0.82`.
    pub emotion: Option<String>,
    /// Skills the turn called, in order, with their outcome (`found`, `not_found`, ..., or the
    /// error kind), for the transcript and `kefu chat /debug`.
    pub calls: Vec<(String, String)>,
    /// The turn's `generate:` steps, in order: which rung of the LLM ladder answered and why
    /// the ones above did not (`remote`, `local (remote: circuit_open)`), or
    /// `fallback (...)` when the flow's `fallback:` text was used.
    pub generations: Vec<String>,
    /// When the classifier was unsure and the LLM was asked to choose the intent: what it
    /// chose and through which rung, e.g. `returns (remote)`, `none (remote)`, `timeout`.
    pub intent_choice: Option<String>,
    /// The bot version that ran the turn.
    pub bot_version: String,
}

/// A bot ready to run: its flows and the models trained from them.
pub struct CompiledBot {
    /// The flows.
    pub bot: Bot,
    nlu: Nlu,
    entities: EntityExtractor,
    emotion: EmotionModel,
    /// The intents an LLM may choose among when the classifier is unsure (all but `oos`),
    /// built once here rather than per turn.
    intent_candidates: Vec<IntentCandidate>,
    /// How long training took, in milliseconds.
    pub train_ms: f64,
    /// Training examples used.
    pub examples: usize,
}

impl CompiledBot {
    /// Trains the models of `bot`.
    pub fn compile(bot: Bot) -> Result<Self, EngineLoadError> {
        let started = Instant::now();
        let synonyms =
            Synonyms::new(bot.synonyms()).map_err(|e| EngineLoadError::Model(e.to_string()))?;
        let mut examples = Vec::new();
        for (name, def) in bot.intents() {
            for lang in [Lang::Zh, Lang::En] {
                for text in def.examples.get(lang) {
                    let text = synonyms.apply(&kefu_models::normalize(text)).into_owned();
                    examples.push(IntentExample::new(text, name));
                }
            }
        }
        let classifier = IntentClassifier::train(&examples, &ClassifierConfig::default())
            .map_err(|e| EngineLoadError::Model(e.to_string()))?;
        let entities = EntityExtractor::new(&understand::entity_config(&bot))
            .map_err(|e| EngineLoadError::Model(e.to_string()))?;
        let intent_candidates = crate::llm::intent_candidates(&bot);
        Ok(Self {
            bot,
            intent_candidates,
            nlu: Nlu::new(classifier, synonyms, IntentRules::default()),
            entities,
            emotion: EmotionModel::default(),
            train_ms: started.elapsed().as_secs_f64() * 1000.0,
            examples: examples.len(),
        })
    }

    /// The bot's version (a content hash of its files).
    pub fn version(&self) -> &str {
        self.bot.version()
    }

    /// Understands one message: intent, entities, emotion.
    fn understand(&self, text: &str, session_lang: Option<Lang>) -> Understood {
        let fallback_lang = session_lang.unwrap_or(self.bot.settings().default_language);
        let understood = self.nlu.understand(text, to_models_lang(fallback_lang));
        let today = kefu_models::today_at_offset(CHINA_UTC_OFFSET_MINUTES);
        let found = self.entities.extract(text, today);
        // An order number or an e-mail address is written in Latin letters whatever language
        // the user speaks: a message with no words besides such values keeps the conversation's
        // language instead of switching a Chinese conversation to English.
        let lang = if understand::only_values(text, &found) {
            fallback_lang
        } else {
            Lang::from_code(understood.lang.as_str()).unwrap_or(fallback_lang)
        };
        let entities = found
            .iter()
            .filter_map(understand::to_flow_entity)
            .collect();
        Understood {
            words: understand::slot_text(text),
            lang,
            intent: understood.prediction.intent,
            confidence: understood.prediction.confidence,
            entities,
            emotion: self.emotion.score(text),
        }
    }

    /// The interpreter's view of an understood message.
    fn input<'a>(
        &self,
        u: &'a Understood,
        history: &EmotionHistory,
        meta: &'a TurnMeta<'a>,
    ) -> TurnInput<'a> {
        let mut input = TurnInput::new(&u.words, u.lang)
            .on_channel(meta.channel)
            .from_user(meta.user)
            .with_signals(understand::signals(&u.emotion, &history.trend(), meta.tags));
        for e in &u.entities {
            input = input.with_entity(&e.name, e.value.clone());
        }
        if let Some(intent) = u.intent.as_deref() {
            input = input.with_intent(intent, u.confidence);
        }
        input
    }

    /// Turns the effects of a whole turn into the report the session records and sends.
    fn report(
        &self,
        state: DialogState,
        effects: Vec<Effect>,
        u: &Understood,
        calls: Vec<(String, String)>,
        generations: Vec<String>,
    ) -> (DialogState, TurnReport) {
        let mut replies = Vec::new();
        let mut handoff = None;
        let mut ended = false;
        for effect in &effects {
            match effect {
                Effect::Say { text } => replies.push(Reply { text: text.clone() }),
                Effect::Handoff { reason, .. } => handoff = Some(reason.clone()),
                Effect::End => ended = true,
                // Experiments and other bookkeeping effects are not visible to the user.
                _ => {}
            }
        }
        // A turn whose generation a newer message interrupted may end silently: that message
        // gets the answer (see `crate::llm::generate_for_flow`).
        let interrupted = generations.iter().any(|g| g == crate::llm::INTERRUPTED);
        if replies.is_empty() && !interrupted {
            // The interpreter always produces a visible effect; a hand-off or an end without
            // words still deserves a sentence.
            replies.push(Reply {
                text: match u.lang {
                    Lang::Zh => "好的，正在为您转接人工客服，请稍候。".to_owned(),
                    _ => "Alright, I'm passing you to a colleague now; please hold on.".to_owned(),
                },
            });
        }
        let active_flow = state.active.as_ref().map(|f| f.flow.clone());
        let report = TurnReport {
            handled: HandledTurn {
                replies,
                nlu: Some(NluView {
                    intent: u.intent.clone(),
                    confidence: u.confidence,
                    lang: u.lang.as_str().to_owned(),
                }),
                active_flow,
                generations: generations.clone(),
            },
            handoff,
            ended,
            emotion: Some(format!(
                "{} {:.2}",
                u.emotion.label.as_str(),
                u.emotion.intensity
            )),
            calls,
            generations,
            intent_choice: None,
            bot_version: self.bot.version().to_owned(),
        };
        (state, report)
    }
}

/// Most skill calls and generations one turn may make, whatever the flow does (a loop of
/// `call:` steps is also bounded by the interpreter's own step budget).
pub const MAX_EXTERNAL_PER_TURN: usize = 8;

/// Dates such as 明天 are resolved in China's time zone (UTC+8), where the shipped bot's
/// customers are; an offset per tenant belongs in the config when there are tenants elsewhere.
const CHINA_UTC_OFFSET_MINUTES: i32 = 8 * 60;

/// Who a turn is for, beyond its text.
#[derive(Debug, Clone, Copy)]
pub struct TurnMeta<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The user (skills scope data by it; A/B variants are assigned by it).
    pub user: &'a str,
    /// The conversation's key.
    pub session: &'a str,
    /// The channel (reply variants depend on it).
    pub channel: &'a str,
    /// The user's tags (`vip`, ...), as the channel or CRM supplied them.
    pub tags: &'a [String],
    /// Where generated text that is said streams while the model runs (WebSocket turns).
    pub stream: Option<&'a TurnStream>,
    /// The conversation before this message, oldest first: the context of `generate:` steps.
    pub history: &'a [kefu_models::llm::ChatMessage],
}

impl Default for TurnMeta<'_> {
    fn default() -> Self {
        TurnMeta {
            tenant: DEFAULT_TENANT,
            user: "",
            session: "",
            channel: "",
            tags: &[],
            stream: None,
            history: &[],
        }
    }
}

/// What [`FlowEngine::swap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapOutcome {
    /// The new bot is now current; `from` is retained for sessions pinned to it.
    Swapped {
        /// The version replaced.
        from: String,
        /// The version now current.
        to: String,
    },
    /// The new bot has the same version as the current one; nothing changed.
    Unchanged {
        /// The current version.
        version: String,
    },
}

/// An old bot version kept for sessions pinned to it.
struct Retained {
    bot: Arc<CompiledBot>,
    /// Last turn that ran on it (or when it stopped being current): the idle clock.
    last_used: Instant,
}

/// Flows plus understanding, swappable at run time, with older versions kept for pinned
/// sessions (see the module docs).
pub struct FlowEngine {
    current: ArcSwap<CompiledBot>,
    /// Older versions, at most [`MAX_RETAINED_VERSIONS`]. Locked only by swaps and by turns of
    /// sessions pinned to a non-current version.
    retained: Mutex<Vec<Retained>>,
    pin_retention: Duration,
    skills: Arc<SkillHost>,
    /// The human desk, when agents are configured: consulted on every turn (human mode keeps
    /// the bot silent) and told about hand-offs. Set once at start-up.
    desk: OnceLock<Arc<dyn HandoffSink>>,
    /// The LLM service for `generate:` steps; `None` makes every one take its `fallback:`.
    llm: Option<LlmService>,
    /// Whether the LLM may choose the intent when the classifier is unsure (with a service).
    llm_intents: bool,
}

impl FlowEngine {
    /// Loads, validates and compiles the bot in `dir`.
    pub fn load(dir: &Path) -> Result<Self, EngineLoadError> {
        Ok(Self::from_compiled(Self::compile_dir(dir)?))
    }

    /// Loads, validates and compiles the bot in `dir` with loader options (e.g. the skills
    /// that exist, so a `call:` of an unknown skill is an error with its position).
    pub fn load_with(
        dir: &Path,
        options: &kefu_flows::LoadOptions,
    ) -> Result<Self, EngineLoadError> {
        let bot = Bot::load_dir_with(dir, options).map_err(EngineLoadError::Flows)?;
        Ok(Self::from_compiled(CompiledBot::compile(bot)?))
    }

    /// Loads, validates and compiles the bot in `dir` without installing it (CPU-heavy: the
    /// classifier is trained here; async callers run it on a blocking thread).
    pub fn compile_dir(dir: &Path) -> Result<CompiledBot, EngineLoadError> {
        let bot = Bot::load_dir(dir).map_err(EngineLoadError::Flows)?;
        CompiledBot::compile(bot)
    }

    /// Wraps an already compiled bot.
    pub fn from_compiled(compiled: CompiledBot) -> Self {
        Self {
            current: ArcSwap::from_pointee(compiled),
            retained: Mutex::new(Vec::new()),
            pin_retention: DEFAULT_PIN_RETENTION,
            skills: Arc::new(SkillHost::new()),
            desk: OnceLock::new(),
            llm: None,
            llm_intents: true,
        }
    }

    /// The same engine calling `skills` for the flows' `call:` steps.
    pub fn with_skills(mut self, skills: Arc<SkillHost>) -> Self {
        self.skills = skills;
        self
    }

    /// The skills the flows can call.
    pub fn skills(&self) -> &Arc<SkillHost> {
        &self.skills
    }

    /// The same engine generating the flows' `generate:` texts with `llm` (see the module docs).
    pub fn with_llm(mut self, llm: LlmService) -> Self {
        self.llm = Some(llm);
        self
    }

    /// The same engine letting the LLM (when attached) choose the intent of messages the
    /// classifier is unsure about between flows (`true` by default), or not.
    pub fn with_llm_intents(mut self, on: bool) -> Self {
        self.llm_intents = on;
        self
    }

    /// The LLM service `generate:` steps use, if any.
    pub fn llm(&self) -> Option<&LlmService> {
        self.llm.as_ref()
    }

    /// Connects the human desk; returns false when one was already connected (it stays).
    pub fn attach_desk(&self, desk: Arc<dyn HandoffSink>) -> bool {
        self.desk.set(desk).is_ok()
    }

    /// The same engine releasing old versions `retention` after their last use.
    pub fn with_pin_retention(mut self, retention: Duration) -> Self {
        self.pin_retention = retention;
        self
    }

    /// How long an old version outlives its last use.
    pub fn pin_retention(&self) -> Duration {
        self.pin_retention
    }

    /// Makes `compiled` the current bot: new sessions and sessions between flows use it from
    /// their next turn; sessions in the middle of a flow finish it on their version. A bot with
    /// the current version changes nothing.
    pub fn swap(&self, compiled: CompiledBot) -> SwapOutcome {
        let mut retained = self.retained.lock();
        let old = self.current.load_full();
        if old.version() == compiled.version() {
            return SwapOutcome::Unchanged {
                version: old.version().to_owned(),
            };
        }
        let to = compiled.version().to_owned();
        let from = old.version().to_owned();
        // Retain the old version before publishing the new one, so a turn pinned to it never
        // finds it missing; drop any older copy of the new version (a revert).
        retained.retain(|r| r.bot.version() != to && r.bot.version() != from);
        retained.push(Retained {
            bot: old,
            last_used: Instant::now(),
        });
        self.current.store(Arc::new(compiled));
        self.prune(&mut retained, Instant::now());
        SwapOutcome::Swapped { from, to }
    }

    /// Loads, validates and compiles `dir`, then swaps it in; on error the running bot stays.
    pub fn reload(&self, dir: &Path) -> Result<SwapOutcome, EngineLoadError> {
        let compiled = Self::compile_dir(dir)?;
        Ok(self.swap(compiled))
    }

    /// The bot now in use for new sessions.
    pub fn current(&self) -> Arc<CompiledBot> {
        self.current.load_full()
    }

    /// The versions alive: the current one first, then retained ones, oldest first.
    pub fn versions(&self) -> Vec<String> {
        let retained = self.retained.lock();
        let mut out = vec![self.current.load().version().to_owned()];
        out.extend(retained.iter().map(|r| r.bot.version().to_owned()));
        out
    }

    /// One line about the loaded bot, for logs and `kefu check`.
    pub fn summary(&self) -> String {
        let c = self.current.load();
        format!(
            "bot {} v{}: {} intents, {} flows, {} examples, classifier trained in {:.0} ms",
            c.bot.name(),
            c.bot.version(),
            c.bot.intents().count(),
            c.bot.flows().count(),
            c.examples,
            c.train_ms
        )
    }

    /// Runs one turn of a session: on its pinned version while mid-flow, else on the current
    /// bot; updates `state` (dialog, pin, language, emotion history) in place. Skills the
    /// flow calls run on the engine's [`SkillHost`]; their failures take the flow's error
    /// route, so the turn always completes.
    pub async fn step(
        &self,
        state: &mut EngineState,
        text: &str,
        meta: &TurnMeta<'_>,
    ) -> TurnReport {
        let bot = self.bot_for(state);
        let session_lang = state.lang.as_deref().and_then(Lang::from_code);
        let mut u = bot.understand(text, session_lang);
        let intent_choice = self.ask_intent(&bot, state, &mut u, text, meta).await;
        state.emotion.push(&u.emotion);
        let input = bot.input(&u, &state.emotion, meta);
        let mut step = kefu_flows::step(&bot.bot, &state.dialog, &input);
        let mut effects = Vec::new();
        let mut calls = Vec::new();
        let mut generations = Vec::new();
        for _ in 0..MAX_EXTERNAL_PER_TURN {
            let Some(pending) = step.pending().cloned() else {
                break;
            };
            let result = match pending {
                Effect::Call { skill, args } => {
                    let outcome = self.call(&skill, args, meta, u.lang).await;
                    calls.push((skill, outcome.outcome.clone()));
                    External::Skill(outcome)
                }
                Effect::Generate {
                    prompt,
                    context,
                    save,
                    max_tokens,
                    temperature,
                } => {
                    let settings = (max_tokens, temperature.map(kefu_flows::Temperature::get));
                    let generated = self
                        .generate(&prompt, &context, save.is_none(), settings, text, meta)
                        .await;
                    generations.push(generated.record);
                    if generated.interrupted {
                        External::Interrupted
                    } else {
                        External::Generated(generated.result)
                    }
                }
                // `pending()` only yields calls and generations; anything else is a bug in the
                // interpreter, answered like a failed call so the flow takes its error route.
                other => {
                    tracing::error!(effect = ?other, "Unexpected pending effect");
                    External::Skill(SkillResult::other("error", "unexpected pending effect"))
                }
            };
            effects.extend(step.effects.drain(..).filter(|e| !e.is_pending()));
            step = kefu_flows::resume(&bot.bot, &step.state, &input, result);
        }
        if step.pending().is_some() {
            // Budget spent with the flow still waiting: fail the wait so the state is clean.
            effects.extend(step.effects.drain(..).filter(|e| !e.is_pending()));
            let failed = External::Skill(SkillResult::other("error", "too many calls in one turn"));
            step = kefu_flows::resume(&bot.bot, &step.state, &input, failed);
        }
        effects.append(&mut step.effects);
        let (next, mut report) = bot.report(step.state, effects, &u, calls, generations);
        report.intent_choice = intent_choice;
        state.dialog = next;
        state.bot_version = state.is_mid_flow().then(|| report.bot_version.clone());
        if let Some(nlu) = &report.handled.nlu {
            state.lang = Some(nlu.lang.clone());
        }
        report
    }

    /// Between flows, when the classifier's confidence is below the bot's `intent_threshold`,
    /// asks the LLM (if attached and allowed) to choose among the bot's intents; a valid choice
    /// replaces the classifier's, at exactly the threshold (enough to start a flow, never
    /// enough to digress). Returns the record of the choice when one was asked.
    async fn ask_intent(
        &self,
        bot: &CompiledBot,
        state: &EngineState,
        u: &mut Understood,
        text: &str,
        meta: &TurnMeta<'_>,
    ) -> Option<String> {
        let llm = self.llm.as_ref().filter(|_| self.llm_intents)?;
        let threshold = bot.bot.settings().intent_threshold;
        // Mid-flow, a message is mostly a slot value: asking would cost a model call per answer.
        if state.is_mid_flow() || u.confidence >= threshold || bot.intent_candidates.is_empty() {
            return None;
        }
        let choice = choose_intent(
            llm,
            IntentQuestion {
                tenant: meta.tenant,
                session: meta.session,
                user: text,
                candidates: &bot.intent_candidates,
            },
        )
        .await;
        tracing::info!(
            session = %meta.session,
            classifier = ?u.intent,
            confidence = u.confidence,
            choice = %choice.record,
            "LLM intent choice"
        );
        if let Some(name) = choice.intent {
            u.intent = Some(name);
            u.confidence = threshold;
        }
        Some(choice.record)
    }

    /// Runs one `generate:` step on the LLM service (or answers "use your fallback" without
    /// one), keyed by the turn's tenant and session so that the service's per-session
    /// cancellation sees every generation of the conversation.
    async fn generate(
        &self,
        prompt: &str,
        context: &[String],
        said: bool,
        (max_tokens, temperature): (Option<u32>, Option<f32>),
        text: &str,
        meta: &TurnMeta<'_>,
    ) -> FlowGenerated {
        let Some(llm) = &self.llm else {
            return FlowGenerated::not_configured();
        };
        let step = FlowGeneration {
            tenant: meta.tenant,
            session: meta.session,
            prompt,
            context,
            said,
            user: text,
            history: meta.history,
            stream: meta.stream,
            max_tokens,
            temperature,
        };
        generate_for_flow(llm, step).await
    }

    /// Calls one skill for the flow, with the caller's identity from the session (never from
    /// the message), and translates the answer into the interpreter's vocabulary.
    async fn call(
        &self,
        skill: &str,
        args: serde_json::Map<String, serde_json::Value>,
        meta: &TurnMeta<'_>,
        lang: Lang,
    ) -> SkillResult {
        let caller = Caller {
            tenant: meta.tenant.to_owned(),
            user: meta.user.to_owned(),
            session: meta.session.to_owned(),
            channel: meta.channel.to_owned(),
            locale: lang.as_str().to_owned(),
        };
        let mut req = SkillRequest::new(skill, caller);
        req.args = args;
        match self.skills.call(req).await {
            Ok(outcome) => skill_result(outcome),
            Err(e) => {
                tracing::warn!(skill, error = %e, "skill call failed; the flow takes its error route");
                SkillResult::other("error", error_message(&e))
            }
        }
    }

    /// The bot a session's next turn runs on.
    fn bot_for(&self, state: &EngineState) -> Arc<CompiledBot> {
        let current = self.current.load_full();
        let pinned = match &state.bot_version {
            Some(v) if state.is_mid_flow() && v != current.version() => v,
            _ => return current,
        };
        let now = Instant::now();
        let mut retained = self.retained.lock();
        self.prune(&mut retained, now);
        match retained.iter_mut().find(|r| r.bot.version() == pinned) {
            Some(r) => {
                r.last_used = now;
                r.bot.clone()
            }
            // Released or never known here (a restart): continue on the current bot.
            None => current,
        }
    }

    /// Releases versions idle past the retention, then the least recently used beyond the cap.
    fn prune(&self, retained: &mut Vec<Retained>, now: Instant) {
        retained.retain(|r| now.saturating_duration_since(r.last_used) < self.pin_retention);
        while retained.len() > MAX_RETAINED_VERSIONS {
            let oldest = retained
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.last_used)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    retained.remove(i);
                }
                None => break,
            }
        }
    }
}

/// The interpreter's view of a skill's answer.
fn skill_result(outcome: SkillOutcome) -> SkillResult {
    let kind = outcome.kind();
    match outcome {
        SkillOutcome::Found { data, messages } => {
            let mut r = SkillResult::found(data);
            if !messages.is_empty() {
                r.message = Some(messages.join("\n"));
            }
            r
        }
        SkillOutcome::NotFound { reason } => SkillResult {
            outcome: kind.to_owned(),
            data: serde_json::Value::Null,
            message: reason,
        },
        SkillOutcome::Declined { reason } | SkillOutcome::NeedsHuman { reason } => {
            SkillResult::other(kind, reason)
        }
    }
}

/// A skill error as the flow may see it: the kind only, never back-end details.
fn error_message(e: &SkillError) -> String {
    crate::skills::error_kind(e).to_owned()
}

/// Recent messages (user and bot) a session keeps for `generate:` prompts when an LLM service
/// is attached: a few turns of context; the prompt builder cuts further to fit the model.
pub const GENERATION_HISTORY: usize = 8;

impl TurnHandler for FlowEngine {
    type State = EngineState;

    fn history_window(&self) -> usize {
        if self.llm.is_some() {
            GENERATION_HISTORY
        } else {
            0
        }
    }

    /// A newer message arrived while a turn of `session` runs: cancel the generation it may
    /// be waiting for, so the newer message is not held back by a long answer (see
    /// [`crate::llm::generate_for_flow`] for what the interrupted step does).
    fn interrupt(&self, tenant: &str, session: &str) {
        if let Some(llm) = &self.llm {
            llm.cancel(tenant, session);
        }
    }

    async fn handle(
        &self,
        state: &mut EngineState,
        turn: &TurnContext<'_>,
    ) -> Result<HandledTurn, HandlerError> {
        // An interruption meant for an earlier turn must not cancel this one's generations,
        // and one meant for this turn must not outlive it.
        let _boundary = self
            .llm
            .as_ref()
            .map(|llm| TurnBoundary::begin(llm, turn.tenant, turn.session));
        // Tags sent with the message replace the kept ones (an empty list clears them), even in
        // human mode: a later hand-off must see the latest.
        if let Some(tags) = turn.tags {
            state.tags = tags.to_vec();
        }
        let tags = state.tags.clone();
        let desk = self.desk.get();
        if desk.is_some_and(|d| d.is_human(turn.session)) {
            // Human mode: the message is recorded, the agent answers; the dialog state is left
            // as it was so the bot resumes where it stopped after a hand back.
            return Ok(HandledTurn::default());
        }
        let before = state.dialog.active.as_ref().map(|f| f.flow.clone());
        let meta = TurnMeta {
            tenant: turn.tenant,
            user: turn.user,
            session: turn.session,
            channel: turn.channel,
            tags: &tags,
            stream: turn.stream,
            history: turn.history,
        };
        let report = self.step(state, turn.text, &meta).await;
        if let (Some(reason), Some(desk)) = (&report.handoff, desk) {
            let nlu = report.handled.nlu.as_ref();
            desk.handed_off(Handoff {
                session: turn.session.to_owned(),
                user: turn.user.to_owned(),
                channel: turn.channel.to_owned(),
                reason: reason.clone(),
                lang: nlu.map(|n| n.lang.clone()).unwrap_or_default(),
                intent: nlu.and_then(|n| n.intent.clone()),
                active_flow: before.or_else(|| report.handled.active_flow.clone()),
                slots: state.dialog.slots.clone(),
                emotion: report.emotion.clone(),
                tags,
                message_id: turn.message_id.to_owned(),
                text: turn.text.to_owned(),
            });
        }
        Ok(report.handled)
    }
}

/// Clears the session's interruption mark when a turn starts and again when it ends, however
/// it ends.
struct TurnBoundary<'a> {
    llm: &'a LlmService,
    tenant: &'a str,
    session: &'a str,
}

impl<'a> TurnBoundary<'a> {
    fn begin(llm: &'a LlmService, tenant: &'a str, session: &'a str) -> Self {
        llm.turn_boundary(tenant, session);
        Self {
            llm,
            tenant,
            session,
        }
    }
}

impl Drop for TurnBoundary<'_> {
    fn drop(&mut self) {
        self.llm.turn_boundary(self.tenant, self.session);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn shop_files() -> Vec<(PathBuf, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dialog-flows/bots/shop");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let src = std::fs::read_to_string(&p).unwrap();
                (p, src)
            })
            .collect()
    }

    /// The shop bot with `from` replaced by `to` in its files.
    fn shop_edited(from: &str, to: &str) -> CompiledBot {
        let files: Vec<(PathBuf, String)> = shop_files()
            .into_iter()
            .map(|(p, s)| (p, s.replace(from, to)))
            .collect();
        CompiledBot::compile(Bot::load_files("shop", &files).unwrap()).unwrap()
    }

    /// One turn on the web channel, driven to completion on this thread (no skills here).
    fn step_web(engine: &FlowEngine, state: &mut EngineState, text: &str) -> TurnReport {
        let meta = TurnMeta {
            channel: "web",
            user: "u-test",
            ..TurnMeta::default()
        };
        futures::executor::block_on(engine.step(state, text, &meta))
    }

    const ORDER_PROMPT: &str = "请告诉我需要处理的订单号。";

    fn say(engine: &FlowEngine, state: &mut EngineState, text: &str) -> String {
        let report = step_web(engine, state, text);
        report
            .handled
            .replies
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_session_mid_flow_finishes_on_its_version_and_new_sessions_use_the_new_one() {
        let engine = FlowEngine::from_compiled(shop_edited("", ""));
        let v1 = engine.current().version().to_owned();
        let mut old = EngineState::default();
        assert!(say(&engine, &mut old, "申请售后").contains("退货退款，还是换货"));
        assert_eq!(old.bot_version.as_deref(), Some(v1.as_str()));

        let outcome = engine.swap(shop_edited(ORDER_PROMPT, "V2：订单号是多少？"));
        let SwapOutcome::Swapped { from, to } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(from, v1);
        assert_eq!(engine.versions(), vec![to.clone(), v1.clone()]);

        // The old session continues on v1 ...
        assert!(say(&engine, &mut old, "退货").contains(ORDER_PROMPT));
        // ... while a new one gets v2.
        let mut new = EngineState::default();
        say(&engine, &mut new, "申请售后");
        assert!(say(&engine, &mut new, "退货").contains("V2：订单号是多少？"));
        assert_eq!(new.bot_version.as_deref(), Some(to.as_str()));

        // The old session finishes its flow; the pin is gone and its next flow runs on v2.
        say(&engine, &mut old, "A12345678");
        say(&engine, &mut old, "质量问题");
        assert!(!old.is_mid_flow(), "{old:?}");
        assert_eq!(old.bot_version, None);
        // Every slot is known now, so the next flow runs to its end in one turn: on v2.
        let report = step_web(&engine, &mut old, "我要退货");
        assert_eq!(report.bot_version, to);
        assert_eq!(old.bot_version, None);
    }

    #[test]
    fn same_version_swap_changes_nothing_and_released_versions_fall_back_to_current() {
        let engine =
            FlowEngine::from_compiled(shop_edited("", "")).with_pin_retention(Duration::ZERO);
        let v1 = engine.current().version().to_owned();
        assert_eq!(
            engine.swap(shop_edited("", "")),
            SwapOutcome::Unchanged { version: v1 }
        );
        let mut s = EngineState::default();
        say(&engine, &mut s, "申请售后");
        engine.swap(shop_edited(ORDER_PROMPT, "V2：订单号是多少？"));
        // Zero retention: v1 is released at once, the session continues on v2.
        assert_eq!(engine.versions().len(), 1);
        assert!(say(&engine, &mut s, "退货").contains("V2：订单号是多少？"));
    }

    #[test]
    fn retained_versions_are_bounded() {
        let engine = FlowEngine::from_compiled(shop_edited("", ""));
        for i in 0..(MAX_RETAINED_VERSIONS + 3) {
            engine.swap(shop_edited(ORDER_PROMPT, &format!("V{i}")));
        }
        assert_eq!(engine.versions().len(), MAX_RETAINED_VERSIONS + 1);
    }

    #[test]
    fn snapshots_from_before_versions_still_load_and_state_stays_flat() {
        let old = r#"{"active":{"flow":"order_status","step":0},"slots":{"order_id":"A12345678"}}"#;
        let state: EngineState = serde_json::from_str(old).unwrap();
        assert_eq!(state.dialog.active.as_ref().unwrap().flow, "order_status");
        assert_eq!(state.bot_version, None);
        assert_eq!(
            serde_json::to_string(&EngineState::default()).unwrap(),
            "{}"
        );
        let pinned = EngineState {
            bot_version: Some("abc".into()),
            ..state
        };
        let text = serde_json::to_string(&pinned).unwrap();
        assert!(text.contains(r#""bot_version":"abc""#), "{text}");
        assert_eq!(serde_json::from_str::<EngineState>(&text).unwrap(), pinned);
    }

    #[test]
    fn a_message_without_language_keeps_the_conversation_language() {
        let engine = FlowEngine::from_compiled(shop_edited("", ""));
        let mut s = EngineState::default();
        assert!(say(&engine, &mut s, "where is my order").contains("order number"));
        let reply = say(&engine, &mut s, "A12345678");
        assert!(reply.contains("looking up order A12345678"), "{reply}");
    }
}
