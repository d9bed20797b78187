//! Both HTTP contracts against local servers that answer like real ones (an axum app on
//! `127.0.0.1:0`): the request kefu sends, every answer and failure mapping, headers, timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use kefu_plugin::{Caller, Skill, SkillError, SkillOutcome, SkillRequest};
use kefu_skill_http::{HttpSkill, HttpSkillConfig};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// What the server saw last.
#[derive(Default)]
struct Seen {
    body: Option<Value>,
    auth: Option<String>,
}

type Shared = Arc<Mutex<Seen>>;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn record(seen: &Shared, headers: &HeaderMap, body: &Value) {
    let mut s = seen.lock().await;
    s.body = Some(body.clone());
    s.auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
}

fn caller() -> Caller {
    Caller {
        tenant: "default".into(),
        user: "u42".into(),
        session: "sess-1".into(),
        channel: "web".into(),
        locale: "en".into(),
    }
}

/// A native server: answers by the request's `mode` argument.
async fn native_handler(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, String) {
    record(&seen, &headers, &body).await;
    let mode = body["args"]["mode"].as_str().unwrap_or("found").to_owned();
    match mode.as_str() {
        "found" => (
            StatusCode::OK,
            json!({"outcome": "found", "data": {"user": body["caller"]["user"]}, "messages": ["hi"]})
                .to_string(),
        ),
        "declined" => (
            StatusCode::OK,
            json!({"outcome": "declined", "reason": "not yours"}).to_string(),
        ),
        "bad_argument" => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "bad_argument", "name": "order_id", "reason": "too short"}).to_string(),
        ),
        "backend" => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "backend", "message": "database down"}).to_string(),
        ),
        "garbage" => (StatusCode::OK, "<html>oops</html>".to_owned()),
        "bare500" => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, String::new())
        }
        "huge" => (
            StatusCode::OK,
            "x".repeat(kefu_skill_http::MAX_ANSWER_BYTES + 10),
        ),
        _ => (StatusCode::UNAUTHORIZED, String::new()),
    }
}

#[tokio::test]
async fn the_native_contract_maps_every_answer() {
    let seen = Shared::default();
    let url = serve(
        Router::new()
            .route("/skill", post(native_handler))
            .with_state(seen.clone()),
    )
    .await;
    let skill = HttpSkill::new(
        HttpSkillConfig::native("remote", format!("{url}/skill"))
            .with_header("Authorization", "Bearer t0k")
            .with_timeout_ms(300),
    )
    .unwrap();
    let ask = |mode: &str| SkillRequest::new("remote", caller()).with_arg("mode", mode);

    let out = skill.call(ask("found")).await.unwrap();
    assert_eq!(
        out,
        SkillOutcome::Found {
            data: json!({"user": "u42"}),
            messages: vec!["hi".into()]
        }
    );
    {
        let s = seen.lock().await;
        assert_eq!(s.auth.as_deref(), Some("Bearer t0k"));
        let body = s.body.clone().unwrap();
        assert_eq!(body["skill"], "remote");
        assert_eq!(body["caller"]["session"], "sess-1");
    }
    assert_eq!(
        skill.call(ask("declined")).await.unwrap(),
        SkillOutcome::declined("not yours")
    );
    assert_eq!(
        skill.call(ask("bad_argument")).await.unwrap_err(),
        SkillError::BadArgument {
            name: "order_id".into(),
            reason: "too short".into()
        }
    );
    let err = skill.call(ask("backend")).await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("503") && m.contains("database down")),
        "{err:?}"
    );
    let err = skill.call(ask("garbage")).await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("not a skill outcome")),
        "{err:?}"
    );
    let err = skill.call(ask("bare500")).await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("HTTP 500")),
        "{err:?}"
    );
    let err = skill.call(ask("huge")).await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("more than")),
        "{err:?}"
    );
    let err = skill.call(ask("unauthorised")).await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Config(m) if m.contains("credentials")),
        "{err:?}"
    );
    assert!(!format!("{err}").contains("t0k"));

    let started = Instant::now();
    let err = skill.call(ask("slow")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("in time")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_backend_error() {
    // Bind then drop, so the port is closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let skill = HttpSkill::new(HttpSkillConfig::native("r", format!("http://{addr}/"))).unwrap();
    let err = skill
        .call(SkillRequest::new("r", caller()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("unreachable")),
        "{err:?}"
    );
}

/// An action server answering like rasa-sdk's `/webhook`.
async fn rasa_handler(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    record(&seen, &headers, &body).await;
    let action = body["next_action"].as_str().unwrap_or_default().to_owned();
    match action.as_str() {
        "action_check_order" => (
            StatusCode::OK,
            Json(json!({
                "events": [{"event": "slot", "timestamp": null, "name": "order_status", "value": "shipped"}],
                "responses": [{"text": format!("Order {} has shipped.", body["tracker"]["slots"]["order_id"].as_str().unwrap_or("?")),
                               "buttons": [], "elements": [], "custom": {}, "template": null,
                               "response": null, "image": null, "attachment": null}]
            })),
        ),
        "action_refuse" => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "not today", "action_name": action})),
        ),
        "action_crash" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "division by zero", "request_body": body})),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": format!("No registered action found for name '{action}'."), "action_name": action}),
            ),
        ),
    }
}

#[tokio::test]
async fn the_rasa_protocol_sends_a_tracker_and_maps_the_answer() {
    let seen = Shared::default();
    let url = serve(
        Router::new()
            .route("/webhook", post(rasa_handler))
            .with_state(seen.clone()),
    )
    .await;
    let rasa =
        |action: &str| HttpSkill::new(HttpSkillConfig::rasa("order_status", &url, action)).unwrap();
    let req = SkillRequest::new("order_status", caller())
        .with_arg("order_id", "A1")
        .with_arg("text", "where is A1?");

    let out = rasa("action_check_order").call(req.clone()).await.unwrap();
    let SkillOutcome::Found { data, messages } = out else {
        panic!("found expected")
    };
    assert_eq!(messages, vec!["Order A1 has shipped."]);
    assert_eq!(data["slots"], json!({"order_status": "shipped"}));
    let body = seen.lock().await.body.clone().unwrap();
    assert_eq!(body["next_action"], "action_check_order");
    assert_eq!(body["sender_id"], "sess-1");
    assert_eq!(body["tracker"]["slots"], json!({"order_id": "A1"}));
    assert_eq!(body["tracker"]["latest_message"]["text"], "where is A1?");
    assert_eq!(body["tracker"]["latest_input_channel"], "web");
    assert!(body["domain"].is_object());
    assert!(body["version"].is_string());

    assert_eq!(
        rasa("action_refuse").call(req.clone()).await.unwrap(),
        SkillOutcome::declined("action `action_refuse` rejected the call: not today")
    );
    let err = rasa("action_missing").call(req.clone()).await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Config(m) if m.contains("no action `action_missing`")),
        "{err:?}"
    );
    let err = rasa("action_crash").call(req).await.unwrap_err();
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("HTTP 500") && m.contains("division by zero")),
        "{err:?}"
    );
}
