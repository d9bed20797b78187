//! The order skill against real HTTP servers on 127.0.0.1: the demo back-end with the shipped
//! fixture, and small misbehaving back-ends (500, slow, down).
//!
//! The authorisation tests are the point: a user naming another user's order id — a real id —
//! gets exactly the answer an unknown id gets, whether or not the back-end scopes by user.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use kefu_plugin::{Caller, Skill, SkillError, SkillOutcome, SkillRequest};
use kefu_skill_orders::demo::{self, DemoOrders};
use kefu_skill_orders::{OrdersConfig, OrdersSkill, SendUser};
use serde_json::json;

const TOKEN: &str = "demo-secret";

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

fn fixture() -> DemoOrders {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dialog-flows/bots/shop")
        .join(demo::DEMO_FIXTURE);
    DemoOrders::load(&path, TOKEN).unwrap()
}

async fn demo_skill(config: impl FnOnce(&mut OrdersConfig)) -> (OrdersSkill, DemoOrders) {
    let orders = fixture();
    let addr = serve(demo::router(orders.clone())).await;
    let mut cfg = OrdersConfig::for_demo(&format!("http://{addr}"), TOKEN);
    config(&mut cfg);
    (OrdersSkill::new(cfg).unwrap(), orders)
}

fn ask(user: &str, locale: &str, order_id: &str) -> SkillRequest {
    let caller = Caller {
        tenant: "default".into(),
        user: user.into(),
        session: format!("s-{user}"),
        channel: "web".into(),
        locale: locale.into(),
    };
    SkillRequest::new("orders", caller).with_arg("order_id", order_id)
}

#[tokio::test]
async fn a_user_sees_their_own_order_with_mapped_fields() {
    let (skill, orders) = demo_skill(|_| {}).await;
    // A12347900 is u-wang's in-transit order in the fixture.
    assert!(
        orders
            .order_ids_of("u-wang")
            .contains(&"A12347900".to_owned())
    );
    let outcome = skill.call(ask("u-wang", "zh", "A12347900")).await.unwrap();
    let SkillOutcome::Found { data, .. } = outcome else {
        panic!("expected found, got {outcome:?}");
    };
    assert_eq!(data["id"], "A12347900");
    assert_eq!(data["status"], "in_transit");
    assert_eq!(data["status_label"], "运输中");
    assert_eq!(data["carrier"], "京东物流");
    assert!(data["tracking_no"].as_str().unwrap().starts_with("JD"));
    assert_eq!(data["eta"], "2025-06-06");
    assert_eq!(data["amount"]["currency"], "CNY");
    assert!(data["items"].as_array().is_some_and(|i| !i.is_empty()));

    let outcome = skill.call(ask("u-wang", "en", "A12347900")).await.unwrap();
    let SkillOutcome::Found { data, .. } = outcome else {
        panic!("expected found");
    };
    assert_eq!(data["status_label"], "In transit");
    assert_eq!(data["carrier"], "JD Logistics");
}

/// The user names someone else's (existing) order: not found, indistinguishable from an
/// unknown id. Checked with the back-end scoping by user and without (the skill's own check).
#[tokio::test]
async fn another_users_order_is_not_found_even_with_the_right_id() {
    for send_user in [
        SendUser::Header(demo::DEMO_USER_HEADER.to_owned()),
        SendUser::Query("user".to_owned()),
        // The back-end does not scope at all: only the skill's owner check protects.
        SendUser::None,
    ] {
        let (skill, orders) = demo_skill(|c| c.send_user = send_user.clone()).await;
        let alices = orders.order_ids_of("u-alice");
        assert!(!alices.is_empty());
        for id in &alices {
            let theirs = skill.call(ask("u-bob", "en", id)).await.unwrap();
            let unknown = skill.call(ask("u-bob", "en", "Z99999999")).await.unwrap();
            assert!(
                matches!(theirs, SkillOutcome::NotFound { .. }),
                "{send_user:?} {id}: {theirs:?}"
            );
            assert_eq!(
                theirs, unknown,
                "a foreign order must look exactly like an unknown one"
            );
            let own = skill.call(ask("u-alice", "en", id)).await.unwrap();
            assert_eq!(own.kind(), "found", "{send_user:?} {id}");
        }
    }
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let (skill, _) = demo_skill(|_| {}).await;
    let outcome = skill.call(ask("u-alice", "zh", "A00000000")).await.unwrap();
    assert_eq!(outcome.kind(), "not_found");
}

#[tokio::test]
async fn invalid_ids_are_bad_arguments_and_never_reach_the_backend() {
    // The back-end is down: a request would be a Backend error, so BadArgument proves that
    // validation happened first.
    let skill = OrdersSkill::new(OrdersConfig::for_demo("http://127.0.0.1:9", TOKEN)).unwrap();
    for id in [
        "A1/../../admin",
        "A12345678?x=1",
        "../A12345678",
        "A1",
        "订单12345678",
        "..",
    ] {
        let err = skill.call(ask("u-alice", "zh", id)).await.unwrap_err();
        assert!(
            matches!(&err, SkillError::BadArgument { name, .. } if name == "order_id"),
            "{id}: {err:?}"
        );
    }
    let missing = SkillRequest::new(
        "orders",
        Caller {
            user: "u".into(),
            ..Caller::default()
        },
    );
    assert!(matches!(
        skill.call(missing).await,
        Err(SkillError::BadArgument { .. })
    ));
}

#[tokio::test]
async fn a_call_without_a_user_is_declined() {
    let (skill, _) = demo_skill(|_| {}).await;
    let outcome = skill.call(ask("  ", "zh", "A12345678")).await.unwrap();
    assert_eq!(outcome.kind(), "declined");
}

#[tokio::test]
async fn wrong_credentials_are_a_backend_error() {
    let (skill, _) = demo_skill(|c| {
        if let Some(auth) = &mut c.auth {
            auth.value = Some("wrong".into());
        }
    })
    .await;
    let err = skill
        .call(ask("u-alice", "zh", "A12345678"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SkillError::Backend("order back-end answered HTTP 401".into())
    );
}

#[tokio::test]
async fn a_backend_that_is_down_is_a_backend_error() {
    // Bind then drop a listener: the port is (almost certainly) closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let skill = OrdersSkill::new(OrdersConfig::for_demo(&format!("http://{addr}"), TOKEN)).unwrap();
    let err = skill
        .call(ask("u-alice", "zh", "A12345678"))
        .await
        .unwrap_err();
    assert!(matches!(err, SkillError::Backend(_)), "{err:?}");
}

#[tokio::test]
async fn a_500_is_a_backend_error() {
    let router = Router::new().route(
        "/demo/orders/{id}",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    );
    let addr = serve(router).await;
    let skill = OrdersSkill::new(OrdersConfig::for_demo(&format!("http://{addr}"), TOKEN)).unwrap();
    let err = skill
        .call(ask("u-alice", "zh", "A12345678"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SkillError::Backend("order back-end answered HTTP 500".into())
    );
}

#[tokio::test]
async fn non_json_and_oversized_answers_are_backend_errors() {
    let router = Router::new()
        .route("/a/{id}", get(|| async { "<html>not json</html>" }))
        .route("/b/{id}", get(|| async { "x".repeat(5_000) }));
    let addr = serve(router).await;
    let mut cfg = OrdersConfig::for_demo(&format!("http://{addr}"), TOKEN);
    cfg.url = format!("http://{addr}/a/{{order_id}}");
    let skill = OrdersSkill::new(cfg.clone()).unwrap();
    let err = skill
        .call(ask("u-alice", "zh", "A12345678"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("not JSON")),
        "{err:?}"
    );
    cfg.url = format!("http://{addr}/b/{{order_id}}");
    cfg.max_response_bytes = 1_000;
    let skill = OrdersSkill::new(cfg).unwrap();
    let err = skill
        .call(ask("u-alice", "zh", "A12345678"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SkillError::Backend(m) if m.contains("larger")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_timeout_is_respected() {
    let router = Router::new().route(
        "/demo/orders/{id}",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            axum::Json(json!({}))
        }),
    );
    let addr = serve(router).await;
    let mut cfg = OrdersConfig::for_demo(&format!("http://{addr}"), TOKEN);
    cfg.timeout_ms = 300;
    let skill = OrdersSkill::new(cfg).unwrap();
    let started = Instant::now();
    let err = skill
        .call(ask("u-alice", "zh", "A12345678"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err,
        SkillError::Backend("order back-end did not answer within 300 ms".into())
    );
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn the_demo_backend_requires_its_token() {
    let addr = serve(demo::router(fixture())).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/demo/orders/A12345678");
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let res = client
        .get(&url)
        .header(demo::DEMO_AUTH_HEADER, TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(&url)
        .header(demo::DEMO_AUTH_HEADER, TOKEN)
        .header(demo::DEMO_USER_HEADER, "u-bob")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
