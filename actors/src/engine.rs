//! The production [`TurnHandler`]: understanding (kefu-models) in front of the flow interpreter
//! (kefu-flows).
//!
//! One turn: normalise the text, apply the bot's synonyms, detect the language, classify the
//! intent, run one interpreter step, turn its effects into replies. Everything here is
//! synchronous and allocation-light; it runs inside the session actor.
//!
//! The compiled bot (flows + trained classifier) sits behind an `ArcSwap` so a reload can swap it
//! atomically while sessions keep running.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use kefu_flows::{Bot, Diagnostic, DialogState, Effect, Lang, TurnInput};
use kefu_models::{ClassifierConfig, IntentClassifier, IntentExample, IntentRules, Nlu, Synonyms};

use crate::api::{NluView, Reply};
use crate::handler::{HandledTurn, HandlerError, TurnContext, TurnHandler};

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

/// A bot ready to run: its flows and the models trained from them.
pub struct CompiledBot {
    /// The flows.
    pub bot: Bot,
    nlu: Nlu,
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
        Ok(Self {
            bot,
            nlu: Nlu::new(classifier, synonyms, IntentRules::default()),
            train_ms: started.elapsed().as_secs_f64() * 1000.0,
            examples: examples.len(),
        })
    }

    /// Understands `text` and runs one step.
    pub fn turn(
        &self,
        state: &DialogState,
        text: &str,
        channel: &str,
    ) -> (DialogState, HandledTurn) {
        let understood = self
            .nlu
            .understand(text, to_models_lang(self.bot.settings().default_language));
        let lang = Lang::from_code(understood.lang.as_str())
            .unwrap_or(self.bot.settings().default_language);
        let prediction = understood.prediction;
        let mut input = TurnInput::new(&understood.text, lang).on_channel(channel);
        if let Some(intent) = prediction.intent.as_deref() {
            input = input.with_intent(intent, prediction.confidence);
        }
        let step = kefu_flows::step(&self.bot, state, &input);
        let mut replies = Vec::new();
        for effect in &step.effects {
            if let Effect::Say { text } = effect {
                replies.push(Reply { text: text.clone() });
            }
        }
        if replies.is_empty() {
            // The interpreter always produces a visible effect; a hand-off or an end without
            // words still deserves a sentence.
            replies.push(Reply {
                text: match lang {
                    Lang::Zh => "好的，正在为您转接人工客服，请稍候。".to_owned(),
                    _ => "Alright, I'm passing you to a colleague now; please hold on.".to_owned(),
                },
            });
        }
        let active_flow = step.state.active.as_ref().map(|f| f.flow.clone());
        let handled = HandledTurn {
            replies,
            nlu: Some(NluView {
                intent: prediction.intent,
                confidence: prediction.confidence,
                lang: lang.as_str().to_owned(),
            }),
            active_flow,
        };
        (step.state, handled)
    }
}

/// Flows plus understanding, swappable at run time.
pub struct FlowEngine {
    current: ArcSwap<CompiledBot>,
}

impl FlowEngine {
    /// Loads, validates and compiles the bot in `dir`.
    pub fn load(dir: &Path) -> Result<Self, EngineLoadError> {
        let bot = Bot::load_dir(dir).map_err(EngineLoadError::Flows)?;
        Ok(Self::from_compiled(CompiledBot::compile(bot)?))
    }

    /// Wraps an already compiled bot.
    pub fn from_compiled(compiled: CompiledBot) -> Self {
        Self {
            current: ArcSwap::from_pointee(compiled),
        }
    }

    /// Replaces the running bot with `compiled`; turns already running finish on the old one.
    pub fn swap(&self, compiled: CompiledBot) {
        self.current.store(Arc::new(compiled));
    }

    /// The bot now in use.
    pub fn current(&self) -> Arc<CompiledBot> {
        self.current.load_full()
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
}

impl TurnHandler for FlowEngine {
    type State = DialogState;

    async fn handle(
        &self,
        state: &mut DialogState,
        turn: &TurnContext<'_>,
    ) -> Result<HandledTurn, HandlerError> {
        let compiled = self.current.load();
        let (next, handled) = compiled.turn(state, turn.text, turn.channel);
        *state = next;
        Ok(handled)
    }
}
