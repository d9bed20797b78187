//! The example skill registered through the runtime builder and called from a turn: the user
//! gets the skill's answer, and a fallback reply (with the session alive) when a skill panics
//! or sleeps past its timeout.

use std::sync::Arc;
use std::time::Duration;

use kefu_actors::skills::{
    Caller, Skill, SkillConfig, SkillError, SkillHost, SkillOutcome, SkillRequest, async_trait,
};
use kefu_actors::{
    Conversations, HandledTurn, HandlerError, Inbound, Reply, TurnContext, TurnHandler,
};
use kefu_runtime::{Config, Runtime, RuntimeBuilder};
use kefu_skill_example::StoreHours;
use kefu_store::MemoryStore;

/// Calls the skill named by the first word with `store` = the second word.
struct Desk {
    skills: Arc<SkillHost>,
}

impl TurnHandler for Desk {
    type State = ();

    async fn handle(
        &self,
        _state: &mut (),
        turn: &TurnContext<'_>,
    ) -> Result<HandledTurn, HandlerError> {
        let mut words = turn.text.split_whitespace();
        let skill = words.next().unwrap_or_default();
        let caller = Caller {
            tenant: turn.tenant.to_owned(),
            user: turn.user.to_owned(),
            session: turn.session.to_owned(),
            channel: turn.channel.to_owned(),
            locale: "en".to_owned(),
        };
        let req = SkillRequest::new(skill, caller)
            .with_arg("store", words.next().unwrap_or_default())
            .with_arg("day", "monday");
        let text = match self.skills.call(req).await {
            Ok(SkillOutcome::Found { messages, .. }) => messages.join(" "),
            Ok(other) => other.kind().to_owned(),
            Err(e) => format!("fallback ({})", kefu_actors::skills::error_kind(&e)),
        };
        Ok(HandledTurn {
            replies: vec![Reply { text }],
            ..HandledTurn::default()
        })
    }
}

/// Panics on `boom`, sleeps a minute on `slow`.
struct Flaky;

#[async_trait]
impl Skill for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        match req.opt_str("store").as_deref() {
            Some("boom") => panic!("flaky skill bug"),
            Some("slow") => tokio::time::sleep(Duration::from_secs(60)).await,
            _ => {}
        }
        Ok(SkillOutcome::Found {
            data: serde_json::json!({}),
            messages: vec!["ok".to_owned()],
        })
    }
}

async fn runtime() -> Runtime<Desk> {
    RuntimeBuilder::new(&Config::default(), Arc::new(MemoryStore::new()))
        .skill(Arc::new(StoreHours::demo()), SkillConfig::default())
        .unwrap()
        .skill(
            Arc::new(Flaky),
            SkillConfig {
                pool: 1,
                // Room for the panic hook: with RUST_BACKTRACE set, printing the panic's
                // backtrace in a debug build on a loaded machine can take a few hundred ms
                // before the caught panic is answered, and must not read as a timeout.
                timeout: Duration::from_millis(1000),
                ..SkillConfig::default()
            },
        )
        .unwrap()
        .start(|skills| Arc::new(Desk { skills }))
        .await
        .unwrap()
}

fn msg(text: &str, id: &str) -> Inbound {
    Inbound {
        session: "s1".into(),
        user: "u1".into(),
        channel: "api".into(),
        text: text.into(),
        message_id: id.into(),
        tags: None,
        stream: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_skills_answer_turns_and_failures_get_a_fallback() {
    let rt = runtime().await;
    assert_eq!(rt.skills().names(), vec!["flaky", "store_hours"]);
    let reg = rt.registry();

    let out = reg.send(msg("store_hours downtown", "m1")).await.unwrap();
    assert_eq!(
        out.replies[0].text,
        "Downtown is open 09:00-21:00 on monday."
    );

    let out = reg.send(msg("flaky boom", "m2")).await.unwrap();
    assert!(!out.failed, "the session did not fail");
    assert_eq!(out.replies[0].text, "fallback (panicked)");

    let started = std::time::Instant::now();
    let out = reg.send(msg("flaky slow", "m3")).await.unwrap();
    assert_eq!(out.replies[0].text, "fallback (timeout)");
    assert!(started.elapsed() < Duration::from_secs(3));

    let out = reg.send(msg("flaky fine", "m4")).await.unwrap();
    assert_eq!(out.replies[0].text, "ok", "the replaced worker answers");
    let flaky = &rt.skills().stats()[0];
    assert_eq!((flaky.panics, flaky.timeouts), (1, 1));

    // A skill registered twice is refused at build time.
    let twice = RuntimeBuilder::new(&Config::default(), Arc::new(MemoryStore::new()))
        .skill(Arc::new(Flaky), SkillConfig::default())
        .unwrap()
        .skill(Arc::new(Flaky), SkillConfig::default());
    assert!(matches!(
        twice.err(),
        Some(kefu_runtime::RuntimeError::Skills(_))
    ));
}
