//! User tags over the real HTTP API (issue #7): `"tags": ["vip"]` on
//! `POST /v1/conversations/{key}/messages` reaches the flow policies (`user.vip`) and the human
//! desk (a hand-off carries the VIP tier, so the conversation is queued ahead of earlier,
//! untagged ones); bad tags are refused with a stable code; tags need the operator's API key.

mod support;

use serde_json::{Value, json};
use support::{Kefu, replies};

const KEY: &str = "operator-key-0123456789";

/// API keys on, one agent, and conversations wait in the queue (no auto-assignment) so its
/// order can be read.
fn config() -> String {
    format!(
        r#"
[http]
api_keys = ["{KEY}"]

[agents]
auto_assign = false

[[agents.agents]]
id = "alice"
name = "Alice"
skills = ["care"]
tier = 2
capacity = 2
secret = "alice-secret-1"
"#
    )
}

async fn ask_for_a_human(kefu: &Kefu, key: &str, user: &str, tags: Option<&[&str]>) -> String {
    let mut body = json!({"text": "转人工", "user": user});
    if let Some(tags) = tags {
        body["tags"] = json!(tags);
    }
    let (status, turn) = kefu.post_message(key, &body, Some(KEY)).await;
    assert_eq!(status, 200, "{turn}");
    replies(&turn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vip_tagged_user_gets_the_vip_policy_and_is_queued_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let kefu = Kefu::start(dir.path(), &config(), &[]);

    // An ordinary customer asks first; another one sends a tag that is not VIP.
    let plain = ask_for_a_human(&kefu, "plain-1", "u-plain", None).await;
    assert!(plain.contains("人工"), "{plain}");
    assert!(!plain.contains("尊敬的会员"), "{plain}");
    let b2b = ask_for_a_human(&kefu, "b2b-1", "u-b2b", Some(&["b2b"])).await;
    assert!(!b2b.contains("尊敬的会员"), "{b2b}");

    // The VIP asks last: the policy keyed on `user.vip` answers...
    let vip = ask_for_a_human(&kefu, "gold-1", "u-gold", Some(&["vip", "gold"])).await;
    assert!(
        vip.contains("尊敬的会员，正在为您优先转接专属客服"),
        "{vip}"
    );

    // ...and the desk queues them first, with the VIP tier.
    let token = kefu.agent_token("alice", "alice-secret-1").await;
    let queue = kefu.agent_queue(&token).await;
    let order: Vec<&str> = queue
        .iter()
        .map(|q| q["session"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["gold-1", "plain-1", "b2b-1"], "{queue:?}");
    assert_eq!(queue[0]["tier"], 2);
    assert_eq!(queue[0]["user"], "u-gold");
    assert_eq!(queue[1]["tier"], 0);
    assert_eq!(queue[2]["tier"], 0);

    // Tags hold for the message they come with: the same user without them is not a VIP.
    let (_, turn) = kefu
        .post_message(
            "gold-2",
            &json!({"text": "转人工", "user": "u-gold"}),
            Some(KEY),
        )
        .await;
    assert!(!replies(&turn).contains("尊敬的会员"), "{turn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tags_are_refused_with_a_stable_code_and_tags_need_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let kefu = Kefu::start(dir.path(), &config(), &[]);
    let too_many: Vec<String> = (0..17).map(|i| format!("t{i}")).collect();
    for tags in [
        json!(["VIP"]),
        json!(["vip plus"]),
        json!([""]),
        json!(["会员"]),
        json!(["x".repeat(33)]),
        json!(too_many),
    ] {
        let (status, body) = kefu
            .post_message(
                "bad-1",
                &json!({"text": "转人工", "user": "u-x", "tags": tags}),
                Some(KEY),
            )
            .await;
        assert_eq!(status, 422, "{tags}: {body}");
        assert_eq!(body["error"]["code"], "invalid_tags", "{tags}: {body}");
    }
    // The wrong shape is the generic shape error.
    let (status, body) = kefu
        .post_message(
            "bad-1",
            &json!({"text": "转人工", "tags": "vip"}),
            Some(KEY),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    // Nothing was handled for the refused messages.
    let (status, _) = kefu.get("/v1/conversations/bad-1", Some(KEY)).await;
    assert_eq!(status, 404);

    // Without the operator's key nobody can claim a tag (or send anything at all).
    let (status, body) = kefu
        .post_message(
            "sneaky-1",
            &json!({"text": "转人工", "user": "u-x", "tags": ["vip"]}),
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
}

/// The queue as an agent sees it.
async fn queue(kefu: &Kefu) -> Vec<Value> {
    let token = kefu.agent_token("alice", "alice-secret-1").await;
    kefu.agent_queue(&token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_kept_on_the_session_for_later_websocket_turns_until_cleared() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let kefu = Kefu::start(dir.path(), &config(), &[]);

    // The operator's back-end tags the user once, with an ordinary message.
    let (status, turn) = kefu
        .post_message(
            "kept-1",
            &json!({"text": "你好", "user": "u-kept", "tags": ["vip"]}),
            Some(KEY),
        )
        .await;
    assert_eq!(status, 200, "{turn}");

    // Later the user asks for a person over the WebSocket, which cannot send tags.
    let url = format!(
        "ws://{}/v1/conversations/kept-1/ws?api_key={KEY}",
        kefu.addr
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        json!({"text": "转人工", "user": "u-kept"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let turn = loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket stays open")
            .unwrap();
        if let Message::Text(text) = frame {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["type"] == "turn" {
                break frame;
            }
        }
    };
    let said = replies(&turn);
    assert!(
        said.contains("尊敬的会员"),
        "the VIP policy saw the kept tag: {said}"
    );

    // A conversation whose tags were cleared (`"tags": []`) escalates as an ordinary one.
    for (text, tags) in [
        ("你好", Some(json!(["vip"]))),
        ("你好", Some(json!([]))),
        ("转人工", None),
    ] {
        let mut body = json!({"text": text, "user": "u-cleared"});
        if let Some(tags) = tags {
            body["tags"] = tags;
        }
        let (status, turn) = kefu.post_message("cleared-1", &body, Some(KEY)).await;
        assert_eq!(status, 200, "{turn}");
        assert!(!replies(&turn).contains("尊敬的会员"), "{turn}");
    }

    let queue = queue(&kefu).await;
    let tier = |session: &str| {
        queue
            .iter()
            .find(|q| q["session"] == session)
            .map(|q| q["tier"].clone())
            .unwrap_or_else(|| panic!("{session} not queued: {queue:?}"))
    };
    assert_eq!(tier("kept-1"), 2, "the hand-off kept the VIP tier");
    assert_eq!(tier("cleared-1"), 0);
    assert_eq!(queue[0]["session"], "kept-1", "the VIP is first: {queue:?}");
}
