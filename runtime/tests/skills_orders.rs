//! `[skills.orders]` end to end: `kefu serve` configured with an operator's order back-end (its
//! own JSON shape, an auth header whose value comes from an environment variable) answers an
//! order question with the mapped fields; a wrong token takes the flow's error route; a user
//! naming someone else's order learns nothing about it; the token never reaches the logs.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::{Kefu, shop};

const TOKEN: &str = "orders-s3cr3t-token-42";
const AUTH_HEADER: &str = "X-Shop-Key";
const USER_HEADER: &str = "X-Customer";

/// What the back-end saw: (order id, user header) per request that passed auth.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A small order back-end with a shape of its own: `{"order": {"number", "customer": {"id"},
/// "fulfilment": {...}}}`. It does not scope by user, so the skill's own owner check is what
/// keeps other customers' orders hidden.
async fn order_backend() -> (SocketAddr, Seen) {
    let orders: HashMap<&'static str, Value> = HashMap::from([
        (
            "B98765432",
            json!({"order": {
                "number": "B98765432",
                "customer": {"id": "u-zoe"},
                "fulfilment": {
                    "state": "IN_TRANSIT",
                    "state_text": {"zh": "运输中", "en": "In transit"},
                    "courier": "顺丰速运",
                    "waybill": "SF1234567890",
                    "expected": "2025-07-03"
                }
            }}),
        ),
        (
            "B11112222",
            json!({"order": {
                "number": "B11112222",
                "customer": {"id": "u-yan"},
                "fulfilment": {
                    "state": "DELIVERED",
                    "state_text": {"zh": "已签收", "en": "Delivered"},
                    "courier": "京东物流",
                    "waybill": "JD5550001111",
                    "expected": "2025-06-20"
                }
            }}),
        ),
    ]);
    let seen: Seen = Arc::default();
    let state = (Arc::new(orders), seen.clone());
    async fn one(
        State((orders, seen)): State<(Arc<HashMap<&'static str, Value>>, Seen)>,
        UrlPath(id): UrlPath<String>,
        headers: HeaderMap,
    ) -> Response {
        let key = headers.get(AUTH_HEADER).and_then(|v| v.to_str().ok());
        if key != Some(TOKEN) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "bad key"})),
            )
                .into_response();
        }
        let user = headers
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        seen.lock().unwrap().push((id.clone(), user));
        match orders.get(id.as_str()) {
            Some(order) => Json(order.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new()
        .route("/api/v2/orders/{id}", axum::routing::get(one))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, seen)
}

/// The `[skills.orders]` section for the back-end at `addr`; `auth` is the inline auth table.
fn orders_toml(addr: SocketAddr, auth: &str) -> String {
    format!(
        r#"
log = "debug"

[skills.orders]
url = "http://{addr}/api/v2/orders/{{order_id}}"
auth = {auth}
send_user = {{ header = "{USER_HEADER}" }}
timeout_ms = 2000

[skills.orders.fields]
id = "/order/number"
owner = "/order/customer/id"
status = "/order/fulfilment/state"
status_label = "/order/fulfilment/state_text/{{locale}}"
carrier = "/order/fulfilment/courier"
tracking_no = "/order/fulfilment/waybill"
eta = "/order/fulfilment/expected"

[skills.orders.hosting]
pool = 2
breaker = {{ failures = 50 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_order_backend_answers_with_mapped_fields_and_only_to_the_owner() {
    let (addr, seen) = order_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let kefu = Kefu::start(
        dir.path(),
        &orders_toml(
            addr,
            &format!(r#"{{ name = "{AUTH_HEADER}", value_env = "KEFU_TEST_ORDERS_TOKEN" }}"#),
        ),
        &[("KEFU_TEST_ORDERS_TOKEN", TOKEN)],
    );

    // The owner asks: the status label, carrier, waybill and date come from the back-end's
    // own field names through the mapping.
    let asked = kefu.say("zoe-1", "u-zoe", "我的订单到哪了").await;
    assert!(asked.contains("订单号"), "{asked}");
    let answer = kefu.say("zoe-1", "u-zoe", "B98765432").await;
    for part in ["运输中", "顺丰速运", "SF1234567890", "2025-07-03"] {
        assert!(answer.contains(part), "{part} missing from {answer}");
    }

    // The same user names someone else's order, first in a sentence (the number fills the
    // slot at once), then on its own after the question: the answer is "not found", and
    // nothing of that order shows.
    let in_sentence = kefu
        .say("zoe-2", "u-zoe", "帮我查一下订单 B11112222 到哪了")
        .await;
    kefu.say("zoe-3", "u-zoe", "查订单").await;
    let on_its_own = kefu.say("zoe-3", "u-zoe", "B11112222").await;
    for answer in [in_sentence, on_its_own] {
        assert!(answer.contains("没有查到订单"), "{answer}");
        for leak in ["已签收", "京东物流", "JD5550001111", "u-yan"] {
            assert!(!answer.contains(leak), "{leak} leaked: {answer}");
        }
    }
    // The real owner does see it.
    kefu.say("yan-1", "u-yan", "查订单").await;
    let answer = kefu.say("yan-1", "u-yan", "B11112222").await;
    assert!(answer.contains("已签收"), "{answer}");

    // The caller's verified user id went to the back-end with every request.
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&("B98765432".to_owned(), "u-zoe".to_owned())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("B11112222".to_owned(), "u-zoe".to_owned())),
        "{seen:?}"
    );
    // Debug logging is on, and still the token is nowhere in the log.
    let log = kefu.log();
    assert!(log.contains("Order back-end configured"), "{log}");
    assert!(!log.contains(TOKEN), "the auth token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_takes_the_flows_error_route() {
    let (addr, seen) = order_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let kefu = Kefu::start(
        dir.path(),
        &orders_toml(
            addr,
            &format!(r#"{{ name = "{AUTH_HEADER}", value = "not-the-token" }}"#),
        ),
        &[],
    );
    kefu.say("zoe-1", "u-zoe", "我的订单到哪了").await;
    let answer = kefu.say("zoe-1", "u-zoe", "B98765432").await;
    // `on: {error: order_unavailable}` in the shipped flow.
    assert!(answer.contains("订单系统暂时有点忙"), "{answer}");
    assert!(!answer.contains("运输中"), "{answer}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "the back-end let a bad key in"
    );
}

#[test]
fn a_missing_token_variable_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kefu.toml");
    std::fs::write(
        &config,
        orders_toml(
            "127.0.0.1:9".parse().unwrap(),
            &format!(r#"{{ name = "{AUTH_HEADER}", value_env = "KEFU_TEST_UNSET_TOKEN_VAR" }}"#),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--flows")
        .arg(shop())
        .arg("--no-reload")
        .env_remove("KEFU_TEST_UNSET_TOKEN_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KEFU_TEST_UNSET_TOKEN_VAR"), "{err}");
}

#[test]
fn an_unknown_key_in_skills_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kefu.toml");
    std::fs::write(
        &config,
        "[skills.orders]\nurl = \"http://127.0.0.1:9/o/{order_id}\"\ntimeout = 5\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `timeout`"), "{err}");
}
