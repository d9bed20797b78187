//! A user who sends a new message while the bot is still generating its answer interrupts
//! that generation: the session registry calls the flow engine's `interrupt` hook before the
//! new message queues behind the running turn, the engine cancels the session's generation,
//! the back-end's stream is dropped, what was streamed is retracted, and the interrupted turn
//! ends at once — a said text unsaid, a saved one taking its `fallback:` — with the record
//! `interrupted: a newer message arrived`. A turn busy with a skill when the newer message
//! arrives skips the generation it had not started yet; the interruption does not reach the
//! newer turn. A retry of the running message (same id) or of a message already answered, and
//! a message for another session, interrupt nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::llm::service_over;
use common::probe::{Probe, hosted};
use kefu_actors::api::TurnStream;
use kefu_actors::engine::{CompiledBot, FlowEngine};
use kefu_actors::llm::{INTERRUPTED, LlmServiceConfig, StreamPiece};
use kefu_actors::skills::SkillConfig;
use kefu_actors::{Conversations, Inbound, SessionConfig, SessionRegistry, TurnOutcome};
use kefu_flows::Bot;
use kefu_models::llm::{
    Completion, FinishReason, LlmBackend, LlmError, LlmRequest, Role, StreamEvent, TokenStream,
    Usage, collect_stream,
};
use kefu_store::{MemoryStore, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const BOT: &str = r#"
settings:
  default_language: en
  languages: [en]
slots:
  title: {type: text}
intents:
  returns:
    examples:
      en: [what is your return policy, can I return an item, how do returns work,
           return policy please, tell me about returns, I want to return something,
           how many days do I have to return, returning a product]
  complain:
    examples:
      en: [I want to complain, I have a complaint, file a complaint,
           I want to make a complaint about the courier, complaint about my order,
           I need to lodge a complaint, this deserves a complaint]
  greet:
    examples:
      en: [hi, hello, hey there, good morning, hello anyone there, hi there]
  lookup:
    examples:
      en: [look up my account, check my account balance, account lookup please,
           show me my account, find my account details, what does my account say]
  ping:
    examples:
      en: [ping the system, run a system ping, system ping please, ping it,
           send a ping to the system, is the system up ping]
  oos:
    examples:
      en: [what is the weather, tell me a joke, who won the game, what time is it,
           sing me a song, how old are you, what is the capital of France]
flows:
  greeting:
    trigger: {intent: greet}
    steps:
      - say: Hi! How can I help?
  returns:
    trigger: {intent: returns}
    steps:
      - say: Let me check that for you.
      - generate: "Answer the customer's question about returns."
        fallback: Sorry, I can't answer that right now.
      - end
  lookup:
    trigger: {intent: lookup}
    steps:
      # Busy with a skill first: a newer message arrives before the generation starts.
      - call: probe
        args: {sleep_ms: 600}
      - generate: "Summarise the customer's account."
        fallback: Account summary unavailable.
      - end
  ping:
    trigger: {intent: ping}
    steps:
      - call: probe
        args: {sleep_ms: 600}
      - say: Checked.
      - end
  complaint:
    trigger: {intent: complain}
    steps:
      - generate: "Write a short title for this complaint: {{ text }}"
        save: title
        fallback: Customer complaint
      - say: "Registered: {{ slots.title }}"
      - end
"#;

/// The user message whose answer the back-end streams slowly.
const SLOW: &str = "what is your return policy";
/// How long the slow answer pauses after its first delta: far longer than an interrupted turn
/// may take to end.
const PAUSE: Duration = Duration::from_millis(1500);
/// The slow answer's first delta: longer than the moderator's hold-back, so some of it streams.
const FIRST: &str = "Items can be returned within seven days of delivery, provided that ";
const REST: &str = "they are unused.";

/// Sets its flag when dropped: the back-end's stream was let go.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A back-end that answers [`SLOW`] (and the complaint title) with a first delta, a long
/// pause, then the rest; everything else at once. It records whether its slow streams were
/// dropped and whether they ran to the end.
#[derive(Default)]
struct Slow {
    /// Generations asked for, of any text.
    asked: AtomicUsize,
    started: AtomicBool,
    dropped: Arc<AtomicBool>,
    completed: Arc<AtomicBool>,
}

fn usage() -> Usage {
    Usage {
        prompt_tokens: 20,
        completion_tokens: 5,
    }
}

#[async_trait]
impl LlmBackend for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn default_model(&self) -> &str {
        "slow"
    }
    async fn complete(&self, req: LlmRequest) -> Result<Completion, LlmError> {
        let stream = self.stream(req).await?;
        collect_stream(stream, "slow", "slow").await
    }
    async fn stream(&self, req: LlmRequest) -> Result<TokenStream, LlmError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let user = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        if user != SLOW && !user.contains("complain") {
            return Ok(Box::pin(futures::stream::iter([
                Ok(StreamEvent::Delta("Within 7 days.".into())),
                Ok(StreamEvent::Done {
                    finish_reason: FinishReason::Stop,
                    usage: usage(),
                }),
            ])));
        }
        self.started.store(true, Ordering::SeqCst);
        let guard = DropFlag(self.dropped.clone());
        let completed = self.completed.clone();
        Ok(Box::pin(futures::stream::unfold(
            (0u8, guard),
            move |(step, guard)| {
                let completed = completed.clone();
                async move {
                    let event = match step {
                        0 => StreamEvent::Delta(FIRST.into()),
                        1 => {
                            tokio::time::sleep(PAUSE).await;
                            StreamEvent::Delta(REST.into())
                        }
                        2 => {
                            completed.store(true, Ordering::SeqCst);
                            StreamEvent::Done {
                                finish_reason: FinishReason::Stop,
                                usage: usage(),
                            }
                        }
                        _ => return None,
                    };
                    Some((Ok(event), (step + 1, guard)))
                }
            },
        )))
    }
}

struct Fixture {
    registry: SessionRegistry<FlowEngine>,
    backend: Arc<Slow>,
    probe: Arc<Probe>,
}

async fn fixture() -> Fixture {
    let backend = Arc::new(Slow::default());
    let probe = Arc::new(Probe::default());
    let skills = Arc::new(hosted(&probe, SkillConfig::default()));
    let service = service_over(
        backend.clone(),
        LlmServiceConfig {
            // Only an interruption can end the slow turn early.
            rung_timeout_ms: 20_000,
            ladder_deadline_ms: 20_000,
            ..LlmServiceConfig::default()
        },
    );
    let files = vec![(std::path::PathBuf::from("bot.yaml"), BOT.to_owned())];
    let bot = Bot::load_files("interrupt", &files).expect("the test bot loads");
    let engine = FlowEngine::from_compiled(CompiledBot::compile(bot).expect("the bot compiles"))
        .with_llm(service)
        .with_skills(skills);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let config = SessionConfig {
        turn_timeout_secs: 30.0,
        ..SessionConfig::default()
    };
    let registry = SessionRegistry::start(store, Arc::new(engine), config)
        .await
        .expect("registry starts");
    Fixture {
        registry,
        backend,
        probe,
    }
}

fn msg(session: &str, text: &str, id: &str, stream: Option<TurnStream>) -> Inbound {
    Inbound {
        session: session.into(),
        user: "u".into(),
        channel: "ws".into(),
        text: text.into(),
        message_id: id.into(),
        tags: None,
        stream,
    }
}

/// Sends `m` on a task, so the test can act while its turn runs.
fn spawn_send(registry: &SessionRegistry<FlowEngine>, m: Inbound) -> JoinHandle<TurnOutcome> {
    let registry = registry.clone();
    tokio::spawn(async move { registry.send(m).await.expect("the turn is answered") })
}

/// Waits (bounded) for the first streamed delta: the slow generation is under way.
async fn first_delta(rx: &mut mpsc::Receiver<StreamPiece>) -> String {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(StreamPiece::Delta(text))) => text,
        other => panic!("expected a delta, got {other:?}"),
    }
}

/// Sends [`SLOW`] as message `id` of "conv" with a stream, and waits until its first delta
/// has streamed: the slow generation is under way. The receiver gets the rest of the stream.
async fn start_slow(
    registry: &SessionRegistry<FlowEngine>,
    id: &str,
) -> (JoinHandle<TurnOutcome>, mpsc::Receiver<StreamPiece>) {
    let (tx, mut rx) = mpsc::channel(16);
    let task = spawn_send(registry, msg("conv", SLOW, id, Some(TurnStream::new(tx))));
    let shown = first_delta(&mut rx).await;
    assert!(FIRST.starts_with(&shown), "{shown}");
    (task, rx)
}

/// The slow generation ran to its end and its whole text was said.
fn assert_slow_answer_said(backend: &Slow, outcome: &TurnOutcome) {
    assert!(backend.completed.load(Ordering::SeqCst));
    let answer = format!("{FIRST}{REST}");
    assert_eq!(
        texts(outcome),
        vec!["Let me check that for you.", answer.as_str()]
    );
}

async fn outcome(task: JoinHandle<TurnOutcome>, within: Duration) -> TurnOutcome {
    tokio::time::timeout(within, task)
        .await
        .expect("the turn ends in time")
        .expect("the send task did not panic")
}

fn texts(outcome: &TurnOutcome) -> Vec<&str> {
    outcome.replies.iter().map(|r| r.text.as_str()).collect()
}

async fn generation_records(
    registry: &SessionRegistry<FlowEngine>,
    session: &str,
) -> Vec<(String, String)> {
    let view = registry
        .conversation(session, 100)
        .await
        .expect("readable")
        .expect("the conversation exists");
    view.transcript
        .into_iter()
        .filter(|e| e.role == "generation")
        .map(|e| (e.message_id, e.text))
        .collect()
}

#[tokio::test]
async fn a_newer_message_interrupts_a_said_generation() {
    let Fixture {
        registry, backend, ..
    } = fixture().await;
    let (first, mut rx) = start_slow(&registry, "m1").await;

    let interrupted_at = Instant::now();
    let second = spawn_send(&registry, msg("conv", "how do returns work", "m2", None));
    let first = outcome(first, Duration::from_secs(5)).await;
    // Promptly: well under the back-end's pause, which the turn no longer waits for.
    assert!(
        interrupted_at.elapsed() < PAUSE / 2,
        "the interrupted turn took {:?}",
        interrupted_at.elapsed()
    );
    // The generated text is not said (nor the fallback); the flow's own words before it are.
    assert_eq!(texts(&first), vec!["Let me check that for you."]);
    assert!(!first.duplicate && !first.failed);
    // What streamed is withdrawn.
    let mut rest = Vec::new();
    while let Ok(Some(piece)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
        rest.push(piece);
    }
    assert_eq!(rest.last(), Some(&StreamPiece::Retract), "{rest:?}");
    // The back-end call was really stopped, not left running.
    assert!(backend.dropped.load(Ordering::SeqCst));
    assert!(!backend.completed.load(Ordering::SeqCst));

    let second = outcome(second, Duration::from_secs(5)).await;
    assert_eq!(
        texts(&second),
        vec!["Let me check that for you.", "Within 7 days."]
    );
    assert_eq!(
        generation_records(&registry, "conv").await,
        vec![
            ("m1".to_owned(), INTERRUPTED.to_owned()),
            ("m2".to_owned(), "remote".to_owned())
        ]
    );
    registry.shutdown().await;
}

#[tokio::test]
async fn an_interrupted_saved_generation_takes_the_fallback() {
    let Fixture {
        registry, backend, ..
    } = fixture().await;
    let first = spawn_send(&registry, msg("conv", "I want to complain", "m1", None));
    // Nothing streams for a saved text: wait until the back-end has been asked.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !backend.started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the generation starts");
    let interrupted_at = Instant::now();
    let second = spawn_send(&registry, msg("conv", "hi", "m2", None));
    let first = outcome(first, Duration::from_secs(5)).await;
    assert!(interrupted_at.elapsed() < PAUSE / 2);
    assert_eq!(texts(&first), vec!["Registered: Customer complaint"]);
    let second = outcome(second, Duration::from_secs(5)).await;
    assert_eq!(texts(&second), vec!["Hi! How can I help?"]);
    assert_eq!(
        generation_records(&registry, "conv").await,
        vec![("m1".to_owned(), INTERRUPTED.to_owned())]
    );
    registry.shutdown().await;
}

#[tokio::test]
async fn a_retry_of_the_running_message_does_not_interrupt_it() {
    let Fixture {
        registry, backend, ..
    } = fixture().await;
    let (first, _rx) = start_slow(&registry, "m1").await;
    // The channel resends the same message (same id), e.g. after a dropped connection.
    let retry = spawn_send(&registry, msg("conv", SLOW, "m1", None));
    let first = outcome(first, Duration::from_secs(10)).await;
    assert_slow_answer_said(&backend, &first);
    let retry = outcome(retry, Duration::from_secs(5)).await;
    assert!(retry.duplicate);
    assert_eq!(retry.replies, first.replies);
    assert_eq!(
        generation_records(&registry, "conv").await,
        vec![("m1".to_owned(), "remote".to_owned())]
    );
    registry.shutdown().await;
}

#[tokio::test]
async fn a_message_for_another_session_does_not_interrupt() {
    let Fixture {
        registry, backend, ..
    } = fixture().await;
    let (first, _rx) = start_slow(&registry, "m1").await;
    let other = registry
        .send(msg("elsewhere", "hi", "o1", None))
        .await
        .expect("the other session answers");
    assert_eq!(texts(&other), vec!["Hi! How can I help?"]);
    let first = outcome(first, Duration::from_secs(10)).await;
    assert_slow_answer_said(&backend, &first);
    assert_eq!(
        generation_records(&registry, "conv").await,
        vec![("m1".to_owned(), "remote".to_owned())]
    );
    registry.shutdown().await;
}

/// Waits (bounded) until the probe skill is running: the turn is busy before its generation.
async fn probe_running(probe: &Probe) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while probe.running.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the skill call starts");
}

#[tokio::test]
async fn a_newer_message_skips_the_generation_its_turn_had_not_started() {
    let Fixture {
        registry,
        backend,
        probe,
    } = fixture().await;
    let first = spawn_send(&registry, msg("conv", "look up my account", "m1", None));
    probe_running(&probe).await;
    // No generation is in flight yet: the turn waits for its skill.
    let second = spawn_send(&registry, msg("conv", "hi", "m2", None));
    let first = outcome(first, Duration::from_secs(5)).await;
    // The skill's answer came, but the superseded turn did not go on to ask the model (which
    // would have answered at once): its said generation says nothing, not even the fallback.
    assert!(texts(&first).is_empty(), "{first:?}");
    assert!(!first.duplicate && !first.failed);
    let second = outcome(second, Duration::from_secs(5)).await;
    assert_eq!(texts(&second), vec!["Hi! How can I help?"]);
    assert_eq!(backend.asked.load(Ordering::SeqCst), 0);
    assert_eq!(
        generation_records(&registry, "conv").await,
        vec![("m1".to_owned(), INTERRUPTED.to_owned())]
    );
    registry.shutdown().await;
}

#[tokio::test]
async fn an_interruption_ends_with_the_turn_it_interrupted() {
    let Fixture {
        registry,
        backend,
        probe,
    } = fixture().await;
    // The interrupted turn generates nothing; the newer one must still generate.
    let first = spawn_send(&registry, msg("conv", "ping the system", "m1", None));
    probe_running(&probe).await;
    let second = spawn_send(&registry, msg("conv", "how do returns work", "m2", None));
    let first = outcome(first, Duration::from_secs(5)).await;
    assert_eq!(texts(&first), vec!["Checked."]);
    let second = outcome(second, Duration::from_secs(5)).await;
    assert_eq!(
        texts(&second),
        vec!["Let me check that for you.", "Within 7 days."]
    );
    assert_eq!(backend.asked.load(Ordering::SeqCst), 1);
    assert_eq!(
        generation_records(&registry, "conv").await,
        vec![("m2".to_owned(), "remote".to_owned())]
    );
    // And a later turn with nothing in between generates too.
    let third = registry
        .send(msg("conv", "what is your return policy", "m3", None))
        .await
        .expect("answered");
    assert_eq!(texts(&third).len(), 2, "{third:?}");
    registry.shutdown().await;
}

#[tokio::test]
async fn a_retry_of_an_answered_message_does_not_interrupt() {
    let Fixture {
        registry, backend, ..
    } = fixture().await;
    let hi = registry
        .send(msg("conv", "hi", "m1", None))
        .await
        .expect("answered");
    assert_eq!(texts(&hi), vec!["Hi! How can I help?"]);
    let (second, _rx) = start_slow(&registry, "m2").await;
    // The channel resends an older message it already got an answer to (after a reconnect,
    // say): the store answers it as a duplicate, so the generation must run on.
    let retry = spawn_send(&registry, msg("conv", "hi", "m1", None));
    let second = outcome(second, Duration::from_secs(10)).await;
    assert_slow_answer_said(&backend, &second);
    let retry = outcome(retry, Duration::from_secs(5)).await;
    assert!(retry.duplicate);
    assert_eq!(retry.replies, hi.replies);
    assert_eq!(
        generation_records(&registry, "conv").await,
        vec![("m2".to_owned(), "remote".to_owned())]
    );
    registry.shutdown().await;
}
