//! Supervision over the real HTTP API: a session that panics answers politely, restarts from the
//! store, and is parked after repeated failures; other conversations are untouched.

mod common;

use std::sync::Arc;

use common::TestServer;
use kefu_actors::{HandledTurn, HandlerError, Reply, TurnContext, TurnHandler};
use kefu_runtime::Config;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Turns {
    n: u64,
}

/// Counts turns; panics on "boom".
struct Fragile;

impl TurnHandler for Fragile {
    type State = Turns;

    async fn handle(
        &self,
        state: &mut Turns,
        turn: &TurnContext<'_>,
    ) -> Result<HandledTurn, HandlerError> {
        state.n += 1;
        if turn.text.contains("boom") {
            panic!("handler bug triggered by the message");
        }
        Ok(HandledTurn {
            replies: vec![Reply {
                text: format!("turn {}", state.n),
            }],
            ..HandledTurn::default()
        })
    }
}

async fn post(
    client: &reqwest::Client,
    server: &TestServer,
    key: &str,
    text: &str,
) -> (u16, Value) {
    let resp = client
        .post(server.url(&format!("/v1/conversations/{key}/messages")))
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_restart_from_the_store_and_repeated_panics_park() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::with_handler(dir.path(), Config::default(), Arc::new(Fragile)).await;
    let c = reqwest::Client::new();

    assert_eq!(
        post(&c, &server, "s", "one").await.1["replies"][0]["text"],
        "turn 1"
    );
    assert_eq!(
        post(&c, &server, "other", "hi").await.1["replies"][0]["text"],
        "turn 1"
    );

    // The panic gets a polite 200 reply, marked as failed, in the user's language.
    let (status, body) = post(&c, &server, "s", "boom").await;
    assert_eq!(status, 200);
    assert_eq!(body["failed"], true);
    assert!(
        body["replies"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Sorry")
    );
    let (_, body) = post(&c, &server, "s", "系统 boom 了吗").await;
    assert!(
        body["replies"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("抱歉"),
        "{body}"
    );

    // Restarted from its last durable state: the failed turns changed nothing.
    assert_eq!(
        post(&c, &server, "s", "two").await.1["replies"][0]["text"],
        "turn 2"
    );
    assert_eq!(
        post(&c, &server, "other", "hi").await.1["replies"][0]["text"],
        "turn 2"
    );

    // Two more failures make four within ten seconds: parked, with a notice.
    post(&c, &server, "s", "boom").await;
    let (_, body) = post(&c, &server, "s", "boom").await;
    assert!(
        body["replies"][0]["text"]
            .as_str()
            .unwrap()
            .contains("colleague"),
        "{body}"
    );
    let (status, body) = post(&c, &server, "s", "hello?").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "conversation_parked");

    // Parking is durable; the other conversation still works.
    server.stop().await;
    let server = TestServer::with_handler(dir.path(), Config::default(), Arc::new(Fragile)).await;
    assert_eq!(post(&c, &server, "s", "hello?").await.0, 409);
    assert_eq!(
        post(&c, &server, "other", "hi").await.1["replies"][0]["text"],
        "turn 3"
    );
    let conv: Value = c
        .get(server.url("/v1/conversations/s"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conv["parked"], true);
    server.stop().await;
}
