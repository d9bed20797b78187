//! Flows that generate: the engine's `generate:` steps on the real [`LlmService`] with a
//! scripted back-end. Generated text is said (and streamed) or saved into a slot; a failing
//! back-end falls to the flow's own `fallback:`; the turn records which rung answered; without
//! a service nothing changes. Through the session layer, the per-turn stream sink and the
//! recent history reach the model.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::llm::{FnBackend, hung_stream, service_over, text_stream, unavailable};
use kefu_actors::api::TurnStream;
use kefu_actors::engine::{CompiledBot, EngineState, FlowEngine, TurnMeta, TurnReport};
use kefu_actors::llm::{LlmService, LlmServiceConfig, StreamPiece};
use kefu_actors::{Conversations, Inbound, SessionConfig, SessionRegistry};
use kefu_flows::Bot;
use kefu_models::llm::Role;
use kefu_store::{MemoryStore, Store};
use tokio::sync::mpsc;

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
      - generate: "Answer the customer's question about returns, in {{ lang }}."
        context: ["Items can be returned within 7 days of delivery."]
        fallback: Sorry, I can't answer that right now.
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

fn engine() -> FlowEngine {
    let files = vec![(std::path::PathBuf::from("bot.yaml"), BOT.to_owned())];
    let bot = Bot::load_files("gen", &files).expect("the test bot loads");
    FlowEngine::from_compiled(CompiledBot::compile(bot).expect("the test bot compiles"))
}

/// What the scripted back-end does.
#[derive(Clone, Copy)]
enum Script {
    /// Streams the text in 3-character deltas.
    Answer(&'static str),
    /// Fails as a server error would.
    Fail,
    /// Answers intent choices with `choice`, everything else with `text`.
    Intent {
        choice: &'static str,
        text: &'static str,
    },
    /// Never answers.
    Hang,
}

/// A back-end that follows its script (text in 3-character deltas) and records every request.
fn scripted(script: Script) -> Arc<FnBackend> {
    FnBackend::new("scripted", move |req| {
        let asks_intent = req
            .messages
            .first()
            .is_some_and(|m| m.content.contains("Choose the intent"));
        match script {
            Script::Intent { choice, text } => {
                Ok(text_stream(if asks_intent { choice } else { text }, 3))
            }
            Script::Hang => Ok(hung_stream()),
            Script::Fail => Err(unavailable()),
            Script::Answer(text) => Ok(text_stream(text, 3)),
        }
    })
}

fn service(backend: Arc<FnBackend>) -> LlmService {
    service_with(
        backend,
        LlmServiceConfig {
            rung_timeout_ms: 1000,
            ladder_deadline_ms: 2000,
            ..LlmServiceConfig::default()
        },
    )
}

fn service_with(backend: Arc<FnBackend>, config: LlmServiceConfig) -> LlmService {
    service_over(backend, config)
}

async fn turn(engine: &FlowEngine, state: &mut EngineState, text: &str) -> TurnReport {
    let meta = TurnMeta {
        session: "s1",
        user: "u1",
        channel: "web",
        ..TurnMeta::default()
    };
    engine.step(state, text, &meta).await
}

fn replies(report: &TurnReport) -> Vec<String> {
    report
        .handled
        .replies
        .iter()
        .map(|r| r.text.clone())
        .collect()
}

#[tokio::test]
async fn without_a_service_the_flow_fallback_answers_as_before() {
    let engine = engine();
    let mut state = EngineState::default();
    let report = turn(&engine, &mut state, "what is your return policy").await;
    assert_eq!(
        replies(&report),
        vec![
            "Let me check that for you.",
            "Sorry, I can't answer that right now."
        ]
    );
    assert_eq!(report.intent_choice, None);
    assert_eq!(
        report.generations,
        vec![kefu_actors::llm::NOT_CONFIGURED.to_owned()]
    );
}

#[tokio::test]
async fn generated_text_is_said_with_the_step_prompt_and_context() {
    let backend = scripted(Script::Answer("Within 7 days of delivery."));
    let engine = engine().with_llm(service(backend.clone()));
    let mut state = EngineState::default();
    let report = turn(&engine, &mut state, "what is your return policy").await;
    assert_eq!(
        replies(&report),
        vec!["Let me check that for you.", "Within 7 days of delivery."]
    );
    assert_eq!(report.generations, vec!["remote".to_owned()]);

    let seen = backend.seen.lock();
    assert_eq!(seen.len(), 1);
    let all: String = seen[0]
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("Answer the customer's question about returns, in en."),
        "{all}"
    );
    assert!(
        all.contains("Items can be returned within 7 days of delivery."),
        "{all}"
    );
    let last = seen[0].messages.last().expect("a user message");
    assert_eq!(last.role, Role::User);
    assert_eq!(last.content, "what is your return policy");
}

#[tokio::test]
async fn generated_text_is_saved_into_the_slot_and_never_streamed() {
    let backend = scripted(Script::Answer("Courier was rude"));
    let engine = engine().with_llm(service(backend));
    let (tx, mut rx) = mpsc::channel(16);
    let sink = TurnStream::new(tx);
    let meta = TurnMeta {
        session: "s2",
        user: "u2",
        channel: "ws",
        stream: Some(&sink),
        ..TurnMeta::default()
    };
    let mut state = EngineState::default();
    let report = engine
        .step(
            &mut state,
            "I want to make a complaint about the courier",
            &meta,
        )
        .await;
    assert_eq!(replies(&report), vec!["Registered: Courier was rude"]);
    assert_eq!(report.generations, vec!["remote".to_owned()]);
    assert!(rx.try_recv().is_err(), "saved text must not stream");
}

#[tokio::test]
async fn a_failing_back_end_falls_to_the_flow_fallback_and_says_why() {
    let backend = scripted(Script::Fail);
    let engine = engine().with_llm(service(backend.clone()));
    let mut state = EngineState::default();
    let report = turn(&engine, &mut state, "I have a complaint").await;
    assert_eq!(replies(&report), vec!["Registered: Customer complaint"]);
    assert_eq!(report.generations.len(), 1);
    let record = &report.generations[0];
    assert!(record.starts_with("fallback (remote: "), "{record}");
    assert!(record.contains("local: not_configured"), "{record}");
    assert!(record.contains("knowledge_base: no_passages"), "{record}");
    assert_eq!(backend.seen.lock().len(), 1);
}

#[tokio::test]
async fn a_failing_back_end_with_context_answers_from_the_passage() {
    let engine = engine().with_llm(service(scripted(Script::Fail)));
    let mut state = EngineState::default();
    let report = turn(&engine, &mut state, "how do returns work").await;
    let said = replies(&report);
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[1].contains("Items can be returned within 7 days of delivery."),
        "{said:?}"
    );
    assert!(
        report.generations[0].starts_with("knowledge_base (remote: "),
        "{:?}",
        report.generations
    );
}

fn msg(text: &str, id: &str, stream: Option<TurnStream>) -> Inbound {
    Inbound {
        session: "conv".into(),
        user: "u".into(),
        channel: "ws".into(),
        text: text.into(),
        message_id: id.into(),
        tags: None,
        stream,
    }
}

#[tokio::test]
async fn the_session_streams_said_text_and_gives_the_model_recent_history() {
    let backend = scripted(Script::Answer("Within 7 days of delivery."));
    let engine = Arc::new(engine().with_llm(service(backend.clone())));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let registry = SessionRegistry::start(store.clone(), engine.clone(), SessionConfig::default())
        .await
        .expect("registry starts");

    // A first turn that generates nothing streamable: the complaint title is saved.
    let first = registry
        .send(msg("I want to complain", "m1", None))
        .await
        .unwrap();
    assert_eq!(
        first.replies[0].text,
        "Registered: Within 7 days of delivery."
    );

    let (tx, mut rx) = mpsc::channel(64);
    let out = registry
        .send(msg(
            "what is your return policy",
            "m2",
            Some(TurnStream::new(tx)),
        ))
        .await
        .unwrap();
    let mut streamed = String::new();
    while let Ok(piece) = rx.try_recv() {
        match piece {
            StreamPiece::Delta(d) => streamed.push_str(&d),
            StreamPiece::Retract => streamed.clear(),
        }
    }
    assert_eq!(streamed, "Within 7 days of delivery.");
    assert_eq!(out.replies[1].text, streamed);

    // The second generation saw the first turn as history.
    let history: Vec<(Role, String)> = backend.seen.lock()[1]
        .messages
        .iter()
        .map(|m| (m.role, m.content.clone()))
        .collect();
    assert!(
        history.contains(&(Role::User, "I want to complain".to_owned())),
        "{history:?}"
    );
    assert!(
        history.contains(&(
            Role::Assistant,
            "Registered: Within 7 days of delivery.".to_owned()
        )),
        "{history:?}"
    );

    // After a restart, the history comes back from the store.
    registry.shutdown().await;
    let registry = SessionRegistry::start(store, engine, SessionConfig::default())
        .await
        .expect("registry restarts");
    registry
        .send(msg("can I return an item", "m3", None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    {
        let seen = backend.seen.lock();
        let third: Vec<&str> = seen[2]
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert!(third.contains(&"what is your return policy"), "{third:?}");
        assert!(third.contains(&"I want to complain"), "{third:?}");
    }

    // How each generation was answered is stored with its turn and shown in the transcript,
    // right after the user message it answered.
    let view = registry.conversation("conv", 100).await.unwrap().unwrap();
    let generations: Vec<(&str, &str)> = view
        .transcript
        .iter()
        .filter(|e| e.role == "generation")
        .map(|e| (e.message_id.as_str(), e.text.as_str()))
        .collect();
    assert_eq!(
        generations,
        vec![("m1", "remote"), ("m2", "remote"), ("m3", "remote")],
        "{:?}",
        view.transcript
    );
    let roles: Vec<&str> = view.transcript.iter().map(|e| e.role.as_str()).collect();
    assert_eq!(&roles[..3], &["user", "generation", "bot"], "{roles:?}");
}

/// A message the classifier is unsure about (confidence about 0.3, below the 0.5 threshold).
const UNCLEAR: &str = "my parcel thing went back";

#[tokio::test]
async fn an_unsure_classifier_lets_the_model_choose_the_intent() {
    let backend = scripted(Script::Intent {
        choice: " `returns`.",
        text: "Within 7 days of delivery.",
    });
    let engine = engine().with_llm(service(backend.clone()));
    let mut state = EngineState::default();
    let report = turn(&engine, &mut state, UNCLEAR).await;
    assert_eq!(report.intent_choice.as_deref(), Some("returns (remote)"));
    assert_eq!(
        replies(&report),
        vec!["Let me check that for you.", "Within 7 days of delivery."]
    );
    let nlu = report.handled.nlu.expect("nlu");
    assert_eq!(nlu.intent.as_deref(), Some("returns"));
    // The model saw every intent (with examples, as they have no description) and the text.
    let wire: String = backend.seen.lock()[0]
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        wire.contains("returns: e.g. what is your return policy"),
        "{wire}"
    );
    assert!(wire.contains("complain: e.g. I want to complain"), "{wire}");
    assert!(wire.contains(UNCLEAR), "{wire}");

    // A confident message is not asked about.
    let mut other = EngineState::default();
    let report = turn(&engine, &mut other, "I want to complain").await;
    assert_eq!(report.intent_choice, None);
}

#[tokio::test]
async fn an_invalid_or_none_choice_changes_nothing() {
    for (choice, record) in [
        ("returns, I think", "invalid answer (remote)"),
        ("refunds", "invalid answer (remote)"),
        ("none", "none (remote)"),
    ] {
        let backend = scripted(Script::Intent {
            choice,
            text: "unused",
        });
        let engine = engine().with_llm(service(backend));
        let mut state = EngineState::default();
        let report = turn(&engine, &mut state, UNCLEAR).await;
        assert_eq!(report.intent_choice.as_deref(), Some(record), "{choice}");
        assert!(report.generations.is_empty(), "no flow ran for {choice}");
        assert_ne!(
            report.handled.nlu.and_then(|n| n.intent).as_deref(),
            Some("returns")
        );
    }
}

#[tokio::test]
async fn the_choice_can_be_turned_off_and_is_time_boxed() {
    let backend = scripted(Script::Intent {
        choice: "returns",
        text: "x",
    });
    let off = engine()
        .with_llm(service(backend.clone()))
        .with_llm_intents(false);
    let mut state = EngineState::default();
    let report = turn(&off, &mut state, UNCLEAR).await;
    assert_eq!(report.intent_choice, None);
    assert!(backend.seen.lock().is_empty());

    // A model that never answers, under a service that would wait 10 s: 1.5 s at most.
    let slow = service_with(
        scripted(Script::Hang),
        LlmServiceConfig {
            rung_timeout_ms: 10_000,
            ladder_deadline_ms: 10_000,
            ..LlmServiceConfig::default()
        },
    );
    let slow_engine = engine().with_llm(slow);
    let started = std::time::Instant::now();
    let report = turn(&slow_engine, &mut EngineState::default(), UNCLEAR).await;
    let took = started.elapsed();
    assert_eq!(report.intent_choice.as_deref(), Some("timeout"));
    assert!(
        took >= kefu_actors::llm::INTENT_CHOICE_TIMEOUT && took < Duration::from_secs(3),
        "{took:?}"
    );
}
