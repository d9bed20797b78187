//! Suggested replies for agents (issue #7) over the real `kefu serve`: while a conversation is
//! with an agent, a user message the shipped bot's knowledge base can answer gives the agent's
//! WebSocket a `suggestions` frame (source `kb`), which the context API also returns; the user
//! gets nothing from it; a message the knowledge base cannot answer gives no frame at all.

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use support::{Kefu, replies};
use tokio_tungstenite::tungstenite::Message;

const CONFIG: &str = r#"
[agents]
auto_assign = true

[[agents.agents]]
id = "alice"
name = "Alice"
capacity = 2
secret = "alice-secret-1"
"#;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame of `type` within `wait`, skipping the others; `None` when none came.
async fn next_of(ws: &mut Socket, kind: &str, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        let Ok(Message::Text(text)) = frame else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        if frame["type"] == kind {
            return Some(frame);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_gets_knowledge_base_suggestions_and_the_user_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kefu = Kefu::start(dir.path(), CONFIG, &[]);
    let token = kefu.agent_token("alice", "alice-secret-1").await;
    let url = format!("ws://{}/v1/agents/ws?token={token}", kefu.addr);
    let (mut agent, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    // The user asks for a person; Alice gets the conversation at once.
    let said = kefu.say("sug-1", "u-sug", "转人工").await;
    assert!(said.contains("人工"), "{said}");
    let assigned = next_of(&mut agent, "assigned", Duration::from_secs(10)).await;
    assert_eq!(assigned.expect("assigned frame")["agent"], "alice");

    // A question the knowledge base answers: the user hears nothing from the bot...
    let (status, turn) = kefu
        .post_message(
            "sug-1",
            &json!({"text": "运费怎么算？满多少包邮", "user": "u-sug"}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{turn}");
    assert_eq!(replies(&turn), "", "the bot stays silent in human mode");

    // ...while Alice gets suggested replies from the knowledge base.
    let frame = next_of(&mut agent, "suggestions", Duration::from_secs(10))
        .await
        .expect("a suggestions frame");
    assert_eq!(frame["agent"], "alice");
    assert_eq!(frame["session"], "sug-1");
    let items = frame["items"].as_array().expect("items");
    assert!(!items.is_empty() && items.len() <= 3, "{frame}");
    assert_eq!(items[0]["source"], "kb", "{frame}");
    let best = items[0]["text"].as_str().unwrap();
    assert!(best.contains("99 元包邮"), "{best}");

    // A console reload sees the latest suggestions in the context.
    let (status, context) = kefu
        .get("/v1/agents/conversations/sug-1", Some(&token))
        .await;
    assert_eq!(status, 200, "{context}");
    assert_eq!(
        context["suggestions"]["items"][0]["text"], best,
        "{context}"
    );
    assert_eq!(context["summary_source"], "extractive", "{context}");

    // Nothing of it reached the user's transcript.
    let (_, view) = kefu.get("/v1/conversations/sug-1", None).await;
    let transcript = view["transcript"].to_string();
    assert!(!transcript.contains(best), "{transcript}");

    // A message the knowledge base cannot answer: the agent sees it, and no suggestions.
    kefu.post_message(
        "sug-1",
        &json!({"text": "zqxv blorp wibble", "user": "u-sug"}),
        None,
    )
    .await;
    let message = next_of(&mut agent, "user_message", Duration::from_secs(10)).await;
    assert_eq!(message.expect("user message")["text"], "zqxv blorp wibble");
    assert!(
        next_of(&mut agent, "suggestions", Duration::from_millis(1500))
            .await
            .is_none(),
        "no frame without a knowledge-base answer"
    );
}
