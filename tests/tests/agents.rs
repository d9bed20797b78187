//! The human desk over the real API of the real `kefu` binary: a user escalates, the right
//! agent (skill and tier) gets it with the context, the agent's replies reach the user's
//! WebSocket, user messages reach the agent, the agent hands back and the bot resumes; VIPs
//! go to a tier-2 agent; agent credentials are separate from operator keys.

mod agents_support;

use std::time::Duration;

use agents_support::{AgentClient, UserSocket, eventually, reply_text, start};
use futures::StreamExt;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_reaches_the_right_agent_with_context_and_the_bot_resumes_after_hand_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true);
    let base = format!("http://{}", server.addr);

    let alice = AgentClient::sign_in(&base, "alice", "alice-secret-1").await;
    let bob = AgentClient::sign_in(&base, "bob", "bob-secret-12").await;
    let vera = AgentClient::sign_in(&base, "vera", "vera-secret-1").await;
    // Vera is away at first: the normal customer must go to Alice by skill, not to Bob.
    let (s, _) = vera
        .call(
            "PUT",
            "/v1/agents/me/presence",
            Some(json!({"presence": "away"})),
        )
        .await;
    assert_eq!(s, 200);

    // Alice's live feed.
    let (mut alice_ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/agents/ws?token={}",
        server.addr, alice.token
    ))
    .await
    .expect("agent WebSocket");

    let mut user = UserSocket::connect(server.addr, "norm-1").await;
    let order = user.say("我想查一下我的订单", "normal-user").await;
    assert_eq!(order["nlu"]["intent"], "order_status", "{order}");
    let escalated = user.say("转人工", "normal-user").await;
    assert!(
        reply_text(&escalated).contains("人工"),
        "the bot says it is handing over: {escalated}"
    );

    // Alice (skill `care`) holds it; Bob (billing) does not.
    assert!(
        eventually(WAIT, || async { alice.conversations().await == ["norm-1"] }).await,
        "alice gets the conversation"
    );
    assert!(bob.conversations().await.is_empty());

    // The context: transcript, reason, summary.
    let (s, ctx) = alice
        .call("GET", "/v1/agents/conversations/norm-1", None)
        .await;
    assert_eq!(s, 200, "{ctx}");
    let transcript: Vec<&str> = ctx["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(transcript.contains(&"我想查一下我的订单"), "{ctx}");
    assert!(transcript.contains(&"转人工"), "{ctx}");
    assert_eq!(ctx["ticket"]["escalation"]["skill"], "care");
    assert!(ctx["summary"].as_str().unwrap().contains("转人工"), "{ctx}");
    // Bob cannot read it.
    let (s, err) = bob
        .call("GET", "/v1/agents/conversations/norm-1", None)
        .await;
    assert_eq!(s, 403, "{err}");
    assert_eq!(err["error"]["code"], "conversation_not_assigned");

    // The user is told an agent joined.
    user.pushed_until(WAIT, |f| {
        f["type"] == "notice" && f["text"].as_str().is_some_and(|t| t.contains("Alice"))
    })
    .await;

    // Alice replies: it reaches the user's WebSocket and the transcript.
    let (s, sent) = alice
        .call(
            "POST",
            "/v1/agents/conversations/norm-1/messages",
            Some(json!({"text": "您好，我是 Alice，请问订单号是多少？"})),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    let pushed = user
        .pushed_until(WAIT, |f| f["type"] == "agent_message")
        .await;
    assert_eq!(pushed["text"], "您好，我是 Alice，请问订单号是多少？");
    assert_eq!(pushed["agent"], "Alice");

    // The user answers: the bot stays silent, the message reaches Alice live.
    let silent = user.say("订单号 A20241101123", "normal-user").await;
    assert!(
        silent["replies"].as_array().unwrap().is_empty(),
        "the bot is silent in human mode: {silent}"
    );
    let forwarded = next_matching(&mut alice_ws, |f| f["type"] == "user_message").await;
    assert_eq!(forwarded["session"], "norm-1");
    assert_eq!(forwarded["text"], "订单号 A20241101123");

    // The conversation as the operator sees it has the agent's message with role `agent`.
    let view: Value = reqwest::get(format!("{base}/v1/conversations/norm-1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        view["transcript"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["role"] == "agent"),
        "{view}"
    );

    // Hand back: the user is told, and the bot answers again.
    let (s, _) = alice
        .call("POST", "/v1/agents/conversations/norm-1/hand-back", None)
        .await;
    assert_eq!(s, 200);
    assert!(alice.conversations().await.is_empty());
    let resumed = user.say("我想查一下我的订单", "normal-user").await;
    assert_eq!(resumed["nlu"]["intent"], "order_status", "{resumed}");
    assert!(
        !reply_text(&resumed).is_empty(),
        "the bot is back: {resumed}"
    );

    // A VIP goes to Vera (tier 2, care) once she is online, not to Alice (tier 0) nor Bob.
    let (s, _) = vera
        .call(
            "PUT",
            "/v1/agents/me/presence",
            Some(json!({"presence": "online"})),
        )
        .await;
    assert_eq!(s, 200);
    let resp: Value = reqwest::Client::new()
        .post(format!("{base}/v1/conversations/vip-1/messages"))
        .json(&json!({"text": "human please", "user": "vip-user"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!reply_text(&resp).is_empty(), "{resp}");
    assert!(
        eventually(WAIT, || async { vera.conversations().await == ["vip-1"] }).await,
        "vera gets the VIP"
    );
    assert!(alice.conversations().await.is_empty());
    let (s, ctx) = vera
        .call("GET", "/v1/agents/conversations/vip-1", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(ctx["ticket"]["escalation"]["tier"], 2);

    // Vera closes with the rating question; figures were recorded for the dashboard.
    let mut vip = UserSocket::connect(server.addr, "vip-1").await;
    let (s, _) = vera
        .call("POST", "/v1/agents/conversations/vip-1/close", None)
        .await;
    assert_eq!(s, 200);
    vip.pushed_until(WAIT, |f| {
        f["type"] == "notice" && f["text"].as_str().is_some_and(|t| t.contains("1"))
    })
    .await;
    let (s, events) = vera.call("GET", "/v1/agents/events?limit=100", None).await;
    assert_eq!(s, 200);
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for kind in ["queued", "assigned", "first_reply", "ended"] {
        assert!(kinds.contains(&kind), "{kind} recorded: {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_use_their_own_credentials_and_errors_have_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false);
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();

    let wrong = http
        .post(format!("{base}/v1/agents/sign-in"))
        .json(&json!({"agent": "alice", "secret": "not-her-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "agent_unauthorized");
    let anonymous = http
        .get(format!("{base}/v1/agents/queue"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Pull mode: the conversation waits, the user hears their place in the queue.
    let mut user = UserSocket::connect(server.addr, "wait-1").await;
    let turn = user.say("human please", "someone").await;
    assert!(
        reply_text(&turn).contains("number 1 in the queue"),
        "{turn}"
    );
    let alice = AgentClient::sign_in(&base, "alice", "alice-secret-1").await;
    let (s, queue) = alice.call("GET", "/v1/agents/queue", None).await;
    assert_eq!(s, 200);
    assert_eq!(queue["queue"][0]["session"], "wait-1", "{queue}");
    let (s, err) = alice
        .call("POST", "/v1/agents/conversations/nobody/accept", None)
        .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (404, Some("conversation_not_in_desk"))
    );
    let (s, _) = alice
        .call("POST", "/v1/agents/conversations/wait-1/accept", None)
        .await;
    assert_eq!(s, 200);
    let (s, err) = alice
        .call("POST", "/v1/agents/conversations/wait-1/accept", None)
        .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (409, Some("conversation_not_waiting"))
    );
    let (s, err) = alice
        .call(
            "POST",
            "/v1/agents/conversations/wait-1/messages",
            Some(json!({"text": "  "})),
        )
        .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (422, Some("invalid_text"))
    );
    // Transfer to Bob by name: he has it now.
    let bob = AgentClient::sign_in(&base, "bob", "bob-secret-12").await;
    let (s, _) = alice
        .call(
            "POST",
            "/v1/agents/conversations/wait-1/transfer",
            Some(json!({"agent": "bob"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(bob.conversations().await, ["wait-1"]);
    assert!(alice.conversations().await.is_empty());
    // The console page is served.
    let page = http.get(format!("{base}/console")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("agent console"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_and_assignments_survive_a_restart_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false);
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    for key in ["r-1", "r-2"] {
        let resp = http
            .post(format!("{base}/v1/conversations/{key}/messages"))
            .json(&json!({"text": "转人工"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let alice = AgentClient::sign_in(&base, "alice", "alice-secret-1").await;
    let (s, _) = alice
        .call("POST", "/v1/agents/conversations/r-1/accept", None)
        .await;
    assert_eq!(s, 200);
    server.kill9().unwrap();

    let server = start(dir.path(), false);
    let base = format!("http://{}", server.addr);
    let alice = AgentClient::sign_in(&base, "alice", "alice-secret-1").await;
    assert_eq!(alice.conversations().await, ["r-1"], "assignment kept");
    let (_, queue) = alice.call("GET", "/v1/agents/queue", None).await;
    assert_eq!(queue["queue"][0]["session"], "r-2", "queue kept: {queue}");
    // Still in human mode after the restart: the bot stays silent.
    let silent: Value = http
        .post(format!("{base}/v1/conversations/r-1/messages"))
        .json(&json!({"text": "还在吗"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(silent["replies"].as_array().unwrap().is_empty(), "{silent}");
}

async fn next_matching<S>(ws: &mut S, pred: impl Fn(&Value) -> bool) -> Value
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a matching agent frame in time")
            .expect("socket open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}
