//! Embedding kefu with your own skill: register `store_hours` with the runtime builder, hand the
//! finished skill host to the turn handler, and serve.
//!
//! The handler here is a deliberately tiny one that calls the skill on every message, to show
//! a turn awaiting a skill; a real bot uses the flow engine, whose flows call skills by name.
//!
//! Run: `cargo run -p kefu-skill-example --example embed` — it boots, answers one message
//! through the session layer, prints the skill's stats and stops. Pass `--serve` to keep the
//! HTTP API up on 127.0.0.1:8080 until Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use kefu_actors::skills::{BreakerConfig, Caller, SkillConfig, SkillHost, SkillRequest};
use kefu_actors::{
    Conversations, HandledTurn, HandlerError, Inbound, Reply, TurnContext, TurnHandler,
};
use kefu_runtime::{Config, RuntimeBuilder};
use kefu_skill_example::StoreHours;
use kefu_store::MemoryStore;
use serde::{Deserialize, Serialize};

/// Reads "<store> <day>" and asks the `store_hours` skill.
struct HoursDesk {
    skills: Arc<SkillHost>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Nothing {}

impl TurnHandler for HoursDesk {
    type State = Nothing;

    async fn handle(
        &self,
        _state: &mut Nothing,
        turn: &TurnContext<'_>,
    ) -> Result<HandledTurn, HandlerError> {
        let mut words = turn.text.split_whitespace();
        // Identity comes from the turn, never from the text.
        let caller = Caller {
            tenant: turn.tenant.to_owned(),
            user: turn.user.to_owned(),
            session: turn.session.to_owned(),
            channel: turn.channel.to_owned(),
            locale: "en".to_owned(),
        };
        let mut req = SkillRequest::new("store_hours", caller)
            .with_arg("store", words.next().unwrap_or_default());
        if let Some(day) = words.next() {
            req = req.with_arg("day", day);
        }
        let text = match self.skills.call(req).await {
            Ok(kefu_actors::skills::SkillOutcome::Found { messages, data }) => messages
                .first()
                .cloned()
                .unwrap_or_else(|| data.to_string()),
            Ok(other) => format!("Sorry, I don't know that store ({}).", other.kind()),
            // The fallback reply when the skill fails, times out or its circuit is open.
            Err(_) => "Sorry, I can't look opening hours up right now.".to_owned(),
        };
        Ok(HandledTurn {
            replies: vec![Reply { text }],
            ..HandledTurn::default()
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::default();
    let runtime = RuntimeBuilder::new(&config, Arc::new(MemoryStore::new()))
        .skill(
            Arc::new(StoreHours::demo()),
            SkillConfig {
                pool: 2,
                timeout: Duration::from_millis(500),
                breaker: BreakerConfig::default(),
                ..SkillConfig::default()
            },
        )?
        .start(|skills| Arc::new(HoursDesk { skills }))
        .await?;

    let out = runtime
        .registry()
        .send(Inbound {
            session: "demo".into(),
            user: "visitor".into(),
            channel: "api".into(),
            text: "downtown saturday".into(),
            message_id: "m1".into(),
            tags: None,
            stream: None,
        })
        .await?;
    println!("bot: {}", out.replies[0].text);
    println!(
        "{}",
        serde_json::to_string_pretty(&runtime.skills().stats())?
    );

    if std::env::args().any(|a| a == "--serve") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
        println!("serving on http://127.0.0.1:8080 until Ctrl-C");
        runtime
            .serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
    } else {
        runtime.registry().shutdown().await;
        runtime.skills().shutdown().await;
    }
    Ok(())
}
