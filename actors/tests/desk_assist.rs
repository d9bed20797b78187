//! Help for agents (issue #7), at the desk level with a scripted model.
//!
//! The hand-off summary: with an LLM service attached to the desk, an escalation gets a model
//! summary, stored with the ticket (so it is still there after the desk reopens its store) and
//! shown to the agent with its source; personal data in the transcript is masked in what the
//! model saw; a failing or hanging model leaves the extractive summary with the ladder's
//! reason; without a service nothing changes.
//!
//! Suggested replies: a user message to the agent gives knowledge-base suggestions, then the
//! same with the model's draft; the user gets nothing; no knowledge-base answer, no frame.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::llm::{FnBackend, hung_stream, service_over, text_stream, unavailable};
use common::periodic_check;
use kefu_actors::agents::{
    AgentAccount, AgentPush, Desk, DeskConfig, DeskConversations, Presence, Router, Suggestion,
    SuggestionSource, SummarySource, SystemClock,
};
use kefu_actors::engine::{CompiledBot, FlowEngine};
use kefu_actors::llm::{LlmService, LlmServiceConfig};
use kefu_actors::skills::{SkillConfig, SkillHost};
use kefu_actors::{Conversations, Inbound, SessionConfig, SessionRegistry};
use kefu_flows::Bot;
use kefu_plugin::{Skill, SkillError, SkillInfo, SkillOutcome, SkillRequest};
use kefu_store::{MemoryStore, Store};
use serde_json::json;

const BOT: &str = r#"
settings:
  default_language: en
  languages: [en]
slots:
  order_id: {type: text}
intents:
  human:
    examples:
      en: [human please, I want a person, talk to an agent, real person please,
           let me speak to a human, get me a human, connect me to an agent]
  order:
    examples:
      en: [my order is late, where is my order, order has not arrived, my parcel is late,
           the order never came, my delivery is late]
flows:
  late_order:
    trigger: {intent: order}
    steps:
      - set: {order_id: "A-1001"}
      - say: Sorry about that. Anything else?
  human_agent:
    trigger: {intent: human}
    steps:
      - say: Transferring you to a person.
      - handoff: customer asked for a human
"#;

const SUMMARY: &str = "Order A-1001 is late; the customer wants a person.\nNo refund asked yet.";
const DRAFT: &str = "You can return it within 7 days; I'll start that for you.";

#[derive(Clone, Copy)]
enum Script {
    Answer,
    Fail,
    Hang,
}

/// A back-end that follows its script (the summary, or the draft when asked to draft) and
/// records what it was sent.
fn scripted(script: Script) -> Arc<FnBackend> {
    FnBackend::new("scripted", move |req| {
        let drafting = req
            .messages
            .first()
            .is_some_and(|m| m.content.contains("You draft a reply"));
        let text = if drafting { DRAFT } else { SUMMARY };
        match script {
            Script::Answer => Ok(text_stream(text, 0)),
            Script::Fail => Err(unavailable()),
            Script::Hang => Ok(hung_stream()),
        }
    })
}

fn service(backend: Arc<FnBackend>) -> LlmService {
    service_over(
        backend,
        LlmServiceConfig {
            rung_timeout_ms: 300,
            ladder_deadline_ms: 500,
            ..LlmServiceConfig::default()
        },
    )
}

fn desk_config() -> DeskConfig {
    DeskConfig {
        agents: vec![AgentAccount {
            id: "alice".into(),
            name: "Alice".into(),
            skills: Vec::new(),
            tier: 3,
            languages: Vec::new(),
            capacity: 2,
            secret: "alice-secret".into(),
        }],
        ..DeskConfig::default()
    }
}

struct Setup {
    db: sled::Db,
    store: Arc<dyn Store>,
    registry: SessionRegistry<FlowEngine>,
    desk: Arc<Desk>,
    channel: DeskConversations,
}

fn engine() -> FlowEngine {
    let files = vec![(std::path::PathBuf::from("bot.yaml"), BOT.to_owned())];
    let bot = Bot::load_files("desk", &files).expect("the test bot loads");
    FlowEngine::from_compiled(CompiledBot::compile(bot).expect("the test bot compiles"))
}

/// Sessions in memory, the desk's router in `dir`, the engine connected to the desk, and
/// `llm` attached to the desk when given.
async fn setup(dir: &std::path::Path, llm: Option<LlmService>) -> Setup {
    let engine = Arc::new(engine());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let registry = SessionRegistry::start(store.clone(), engine.clone(), SessionConfig::default())
        .await
        .expect("registry starts");
    let db = sled::open(dir).expect("the desk's database opens");
    let router =
        Router::open(desk_config(), db.clone(), Arc::new(SystemClock)).expect("desk opens");
    let desk = Desk::new(Arc::new(router), store.clone(), Arc::new(registry.clone()));
    if let Some(llm) = llm {
        assert!(desk.attach_llm(llm));
    }
    engine.attach_desk(desk.clone());
    let channel = DeskConversations::new(desk.clone());
    Setup {
        db,
        store,
        registry,
        desk,
        channel,
    }
}

fn msg(text: &str, id: &str) -> Inbound {
    Inbound {
        session: "conv".into(),
        user: "u1".into(),
        channel: "web".into(),
        text: text.into(),
        message_id: id.into(),
        tags: None,
        stream: None,
    }
}

/// A late order (with a phone number), then a request for a person.
async fn escalate(s: &Setup) {
    s.channel
        .send(msg("my order is late, call me on 13812345678", "m1"))
        .await
        .unwrap();
    s.channel.send(msg("human please", "m2")).await.unwrap();
    assert!(s.desk.router().is_human("conv"));
}

async fn summary_stored(desk: &Desk) -> bool {
    periodic_check(
        || {
            desk.router()
                .ticket("conv")
                .is_some_and(|t| t.summary.is_some())
        },
        Duration::from_secs(5),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_summary_is_stored_shown_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let backend = scripted(Script::Answer);
    let s = setup(dir.path(), Some(service(backend.clone()))).await;
    escalate(&s).await;
    assert!(summary_stored(&s.desk).await, "no summary stored");

    let view = s.desk.context("conv", 50).await.unwrap();
    assert_eq!(view.summary, SUMMARY);
    assert_eq!(view.summary_source, SummarySource::Llm);
    assert_eq!(view.summary_note.as_deref(), Some("remote"));

    // What the model saw: the conversation (the hand-off message included) with the phone
    // number masked, the reason and the slots, under its own generation key.
    let seen = backend.seen.lock().clone();
    assert_eq!(seen.len(), 1, "one summary generation");
    let prompt: String = seen[0]
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(prompt.contains("human please"), "{prompt}");
    assert!(prompt.contains("my order is late"), "{prompt}");
    assert!(prompt.contains("customer asked for a human"), "{prompt}");
    assert!(prompt.contains("order_id=A-1001"), "{prompt}");
    assert!(
        !prompt.contains("13812345678"),
        "PII reached the model: {prompt}"
    );
    assert!(prompt.contains("[PHONE_1]"), "{prompt}");

    // A new desk over the same store (what a restart loads; the session registry still holds
    // the old desk through the engine, so the sled database itself stays open): the summary
    // comes back with the ticket, no model needed.
    let reopened = Router::open(desk_config(), s.db.clone(), Arc::new(SystemClock)).unwrap();
    let desk = Desk::new(
        Arc::new(reopened),
        s.store.clone(),
        Arc::new(s.registry.clone()),
    );
    let view = desk.context("conv", 50).await.unwrap();
    assert_eq!(view.summary, SUMMARY);
    assert_eq!(view.summary_source, SummarySource::Llm);
    assert_eq!(
        backend.seen.lock().len(),
        1,
        "no new generation after the restart"
    );
    s.registry.shutdown().await;
}

async fn falls_back_to_extractive(script: Script, expected_note: &str) {
    let dir = tempfile::tempdir().unwrap();
    let backend = scripted(script);
    let s = setup(dir.path(), Some(service(backend))).await;
    let started = std::time::Instant::now();
    escalate(&s).await;
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the user's turn waited for the summary"
    );
    assert!(summary_stored(&s.desk).await, "no outcome stored");
    let view = s.desk.context("conv", 50).await.unwrap();
    assert_eq!(view.summary_source, SummarySource::Extractive);
    assert!(
        view.summary
            .starts_with("Reason: customer asked for a human"),
        "{}",
        view.summary
    );
    assert!(view.summary.contains("“human please”"), "{}", view.summary);
    let note = view.summary_note.unwrap_or_default();
    assert!(
        note.starts_with("remote: ") && note.contains(expected_note),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_leaves_the_extractive_summary_with_the_reason() {
    falls_back_to_extractive(Script::Fail, "backend_error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_model_leaves_the_extractive_summary_with_the_reason() {
    falls_back_to_extractive(Script::Hang, "remote: timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_service_the_extractive_summary_is_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), None).await;
    escalate(&s).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ticket = s.desk.router().ticket("conv").unwrap();
    assert_eq!(ticket.summary, None, "nothing stored without a model");
    let view = s.desk.context("conv", 50).await.unwrap();
    assert_eq!(view.summary_source, SummarySource::Extractive);
    assert_eq!(view.summary_note, None);
    assert_eq!(
        view.summary,
        "Reason: customer asked for a human\n\
         Customer said: “my order is late, call me on 13812345678” / “human please”\n\
         Known: order_id=A-1001"
    );
    s.registry.shutdown().await;
}

/// A knowledge base that knows about returns only.
struct FakeKb;

#[async_trait]
impl Skill for FakeKb {
    fn name(&self) -> &str {
        "kb"
    }
    fn info(&self) -> SkillInfo {
        SkillInfo::default()
    }
    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        let query = req.arg_str("query")?;
        if !query.contains("return") {
            return Ok(SkillOutcome::not_found("no entry"));
        }
        Ok(SkillOutcome::found(json!({
            "id": "returns",
            "answer": "Items can be returned within 7 days of delivery.",
            "source": "kb/en.yaml#returns",
            "alternatives": [{"id": "refunds", "answer": "Refunds reach you within 3 days."}],
        })))
    }
}

/// The next suggestions frame within `wait`, skipping other frames.
async fn next_suggestions(
    rx: &mut tokio::sync::broadcast::Receiver<AgentPush>,
    wait: Duration,
) -> Option<(String, Vec<Suggestion>)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(AgentPush::Suggestions {
                agent,
                message_id,
                items,
                ..
            })) => {
                assert_eq!(agent, "alice");
                return Some((message_id, items));
            }
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("agent channel: {e}"),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_get_knowledge_base_suggestions_then_a_draft_and_the_user_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend = scripted(Script::Answer);
    let s = setup(dir.path(), Some(service(backend.clone()))).await;
    let mut skills = SkillHost::new();
    skills
        .register(Arc::new(FakeKb), SkillConfig::default())
        .unwrap();
    assert!(s.desk.attach_skills(Arc::new(skills)));
    s.desk
        .router()
        .set_presence("alice", Presence::Online)
        .unwrap();
    let mut pushes = s.desk.subscribe_agents();
    let mut user = s.desk.subscribe_user("conv");
    escalate(&s).await;
    assert_eq!(
        s.desk
            .router()
            .ticket("conv")
            .and_then(|t| t.agent)
            .as_deref(),
        Some("alice")
    );

    let out = s
        .channel
        .send(msg("can I return this?", "m3"))
        .await
        .unwrap();
    assert!(
        out.replies.is_empty(),
        "the bot stays silent: {:?}",
        out.replies
    );
    let (for_message, kb) = next_suggestions(&mut pushes, Duration::from_secs(5))
        .await
        .expect("knowledge-base suggestions");
    assert_eq!(for_message, "m3");
    let texts: Vec<(&str, SuggestionSource)> =
        kb.iter().map(|i| (i.text.as_str(), i.source)).collect();
    assert_eq!(
        texts,
        [
            (
                "Items can be returned within 7 days of delivery.",
                SuggestionSource::Kb
            ),
            ("Refunds reach you within 3 days.", SuggestionSource::Kb),
        ]
    );
    let (_, with_draft) = next_suggestions(&mut pushes, Duration::from_secs(5))
        .await
        .expect("the suggestions with the draft");
    let sources: Vec<SuggestionSource> = with_draft.iter().map(|i| i.source).collect();
    assert_eq!(
        sources,
        [
            SuggestionSource::Kb,
            SuggestionSource::Llm,
            SuggestionSource::Kb
        ]
    );
    assert_eq!(with_draft[1].text, DRAFT);
    // The draft was grounded in the knowledge-base answers, under its own key.
    let drafted = backend
        .seen
        .lock()
        .iter()
        .find(|r| r.messages[0].content.contains("You draft a reply"))
        .map(|r| {
            r.messages
                .iter()
                .map(|m| m.content.clone())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .expect("a draft request");
    assert!(drafted.contains("returned within 7 days"), "{drafted}");

    // The context has the latest; the user got no frame from any of it.
    let view = s.desk.context("conv", 50).await.unwrap();
    assert_eq!(view.suggestions.map(|s| s.items), Some(with_draft));
    while let Ok(frame) = user.try_recv() {
        let shown = format!("{frame:?}");
        assert!(
            !shown.contains("7 days") && !shown.contains(DRAFT),
            "{shown}"
        );
    }

    // No knowledge-base answer: no frame.
    s.channel.send(msg("hello again", "m4")).await.unwrap();
    assert!(
        next_suggestions(&mut pushes, Duration::from_millis(500))
            .await
            .is_none()
    );
    s.registry.shutdown().await;
}
