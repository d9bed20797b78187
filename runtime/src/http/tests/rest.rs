//! REST routes through `oneshot`: happy paths, every bad input, error mapping, auth.

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use kefu_actors::api::SendError;
use serde_json::json;

use super::{PANIC_TEXT, assert_error, call, get, post_json, test_app};
use crate::http::HttpConfig;

const MESSAGES: &str = "/v1/conversations/alice/messages";
const KEY: &str = "test-key-0123456789";

fn keyed() -> HttpConfig {
    HttpConfig {
        api_keys: vec![KEY.into(), "other-key-0123456789".into()],
        ..HttpConfig::default()
    }
}

#[tokio::test]
async fn message_post_returns_the_turn_and_generates_an_id() {
    let (app, fake) = test_app(HttpConfig::default());
    let answer = call(&app, post_json(MESSAGES, r#"{"text": "hello"}"#)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = &answer.body;
    assert_eq!(body["session"], "alice");
    assert_eq!(body["replies"], json!([{"text": "echo: hello"}]));
    assert_eq!(body["duplicate"], false);
    assert_eq!(body["seq"], 1);
    assert_eq!(body["nlu"]["intent"], "echo");
    assert!(body["active_flow"].is_null());
    let id = body["message_id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);

    let got = fake.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].session, "alice");
    assert_eq!(got[0].user, "alice", "user defaults to the key");
    assert_eq!(got[0].channel, "web");
    assert_eq!(got[0].message_id, id);
}

#[tokio::test]
async fn message_post_passes_ids_and_user_and_reports_duplicates() {
    let (app, fake) = test_app(HttpConfig::default());
    let body = r#"{"text": "hi", "message_id": "m-1", "user": "u-9", "extra": {"ignored": true}}"#;
    let first = call(&app, post_json(MESSAGES, body)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["message_id"], "m-1");
    assert_eq!(first.body["duplicate"], false);
    let again = call(&app, post_json(MESSAGES, body)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["replies"], first.body["replies"]);
    assert_eq!(fake.received().len(), 1);
    assert_eq!(fake.received()[0].user, "u-9");
}

#[tokio::test]
async fn malformed_bodies_get_our_error_shape() {
    let (app, fake) = test_app(HttpConfig::default());
    let cases: &[(&[u8], StatusCode, &str)] = &[
        (b"{", StatusCode::BAD_REQUEST, "invalid_json"),
        (b"", StatusCode::BAD_REQUEST, "invalid_json"),
        (b"not json", StatusCode::BAD_REQUEST, "invalid_json"),
        (
            b"{\"text\": \"\xff\xfe\"}",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (b"\xff\xfe\xfd", StatusCode::BAD_REQUEST, "invalid_json"),
        (
            br#"{"text": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            br#"{"text": "a", "message_id": 7}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            br#"[]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            br#""hello""#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (br#"{}"#, StatusCode::UNPROCESSABLE_ENTITY, "empty_message"),
        (
            br#"{"text": null}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_message",
        ),
        (
            br#"{"text": ""}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_message",
        ),
        (
            br#"{"text": " \n\t"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_message",
        ),
        (
            br#"{"text": "a", "message_id": ""}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message_id",
        ),
        (
            br#"{"text": "a", "user": ""}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let answer = call(&app, post_json(MESSAGES, Bytes::from_static(body))).await;
        assert_error(&answer, *status, code);
    }
    let long_id = json!({"text": "a", "message_id": "x".repeat(129)}).to_string();
    assert_error(
        &call(&app, post_json(MESSAGES, long_id)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_message_id",
    );
    assert!(
        fake.received().is_empty(),
        "nothing bad reached the session layer"
    );
}

#[tokio::test]
async fn text_length_is_counted_in_characters() {
    let config = HttpConfig {
        max_message_chars: 5,
        ..HttpConfig::default()
    };
    let (app, _) = test_app(config);
    let ok = call(&app, post_json(MESSAGES, r#"{"text": "你好你好你"}"#)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let long = call(&app, post_json(MESSAGES, r#"{"text": "你好你好你好"}"#)).await;
    assert_error(&long, StatusCode::UNPROCESSABLE_ENTITY, "message_too_long");
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_and_without_length() {
    let config = HttpConfig {
        max_body_bytes: 1024,
        ..HttpConfig::default()
    };
    let (app, fake) = test_app(config);
    let huge = json!({"text": "x".repeat(1 << 20)}).to_string();
    let answer = call(&app, post_json(MESSAGES, huge.clone())).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    // A chunked body announces no length; the limit must still hold while reading.
    let chunks = huge
        .into_bytes()
        .chunks(512)
        .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
        .collect::<Vec<_>>();
    let streamed = Request::post(MESSAGES)
        .header("content-type", "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    assert_error(
        &call(&app, streamed).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn content_type_must_be_json() {
    let (app, _) = test_app(HttpConfig::default());
    let none = Request::post(MESSAGES)
        .body(Body::from(r#"{"text": "hi"}"#))
        .unwrap();
    assert_error(
        &call(&app, none).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let plain = Request::post(MESSAGES)
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"text": "hi"}"#))
        .unwrap();
    assert_error(
        &call(&app, plain).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let charset = Request::post(MESSAGES)
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(r#"{"text": "hi"}"#))
        .unwrap();
    assert_eq!(call(&app, charset).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json() {
    let (app, _) = test_app(HttpConfig::default());
    assert_error(
        &call(&app, get("/nope")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&app, get("/v1/conversations/a/b/c")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let wrong = call(&app, get(MESSAGES)).await;
    assert_error(&wrong, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(wrong.headers.get("allow").unwrap(), "POST");
    let delete = Request::delete("/healthz").body(Body::empty()).unwrap();
    assert_error(
        &call(&app, delete).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn bad_session_keys_are_refused() {
    let (app, fake) = test_app(HttpConfig::default());
    let long = format!("/v1/conversations/{}/messages", "k".repeat(129));
    for uri in [
        long.as_str(),
        "/v1/conversations/a%2Fb/messages",
        "/v1/conversations/a%0Ab/messages",
        "/v1/conversations/%FF%FE/messages",
    ] {
        let answer = call(&app, post_json(uri, r#"{"text": "hi"}"#)).await;
        assert_error(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_session_key",
        );
    }
    let answer = call(&app, get("/v1/conversations/a%00b")).await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_session_key",
    );
    // 128 characters (384 bytes of Chinese) is fine.
    let ok = format!("/v1/conversations/{}/messages", "%E5%AD%97".repeat(128));
    assert_eq!(
        call(&app, post_json(&ok, r#"{"text": "hi"}"#)).await.status,
        StatusCode::OK
    );
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn send_errors_map_to_status_code_and_retry_after() {
    let (app, fake) = test_app(HttpConfig::default());
    let cases = [
        (
            SendError::SessionBusy {
                retry_after_secs: 2,
            },
            StatusCode::TOO_MANY_REQUESTS,
            "session_busy",
            Some("2"),
        ),
        (
            SendError::Overloaded {
                retry_after_secs: 5,
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            Some("5"),
        ),
        (
            SendError::Parked,
            StatusCode::CONFLICT,
            "conversation_parked",
            None,
        ),
        (
            SendError::Invalid {
                code: "moderated",
                message: "refused".into(),
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "moderated",
            None,
        ),
        (
            SendError::Storage,
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            Some("1"),
        ),
        (
            SendError::ShuttingDown,
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            Some("1"),
        ),
        (
            SendError::Timeout,
            StatusCode::GATEWAY_TIMEOUT,
            "turn_timeout",
            None,
        ),
    ];
    for (err, status, code, retry_after) in cases {
        fake.fail_with(Some(err));
        let answer = call(&app, post_json(MESSAGES, r#"{"text": "hi"}"#)).await;
        assert_error(&answer, status, code);
        assert_eq!(
            answer
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{code}"
        );
    }
}

#[tokio::test]
async fn conversation_get_reads_back_bounded_transcripts() {
    let config = HttpConfig {
        transcript_limit: 2,
        max_transcript_limit: 3,
        ..HttpConfig::default()
    };
    let (app, fake) = test_app(config);
    assert_error(
        &call(&app, get("/v1/conversations/bob")).await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
    for text in ["one", "two", "three", "four"] {
        let body = json!({ "text": text }).to_string();
        call(&app, post_json("/v1/conversations/bob/messages", body)).await;
    }
    let view = call(&app, get("/v1/conversations/bob")).await;
    assert_eq!(view.status, StatusCode::OK);
    assert_eq!(view.body["session"], "bob");
    assert_eq!(view.body["parked"], false);
    assert_eq!(view.body["transcript"].as_array().unwrap().len(), 2);
    assert_eq!(view.body["transcript"][1]["text"], "four");
    assert_eq!(fake.last_limit(), Some(2));

    call(&app, get("/v1/conversations/bob?limit=1000")).await;
    assert_eq!(
        fake.last_limit(),
        Some(3),
        "clamped to max_transcript_limit"
    );
    call(&app, get("/v1/conversations/bob?limit=1")).await;
    assert_eq!(fake.last_limit(), Some(1));

    for bad in ["?limit=abc", "?limit=-1", "?limit=99999999999999999999999"] {
        let answer = call(&app, get(&format!("/v1/conversations/bob{bad}"))).await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    }
    fake.fail_with(Some(SendError::Storage));
    assert_error(
        &call(&app, get("/v1/conversations/bob")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
    );
}

#[tokio::test]
async fn rasa_webhook_speaks_rasa() {
    let (app, fake) = test_app(HttpConfig::default());
    let body = r#"{"sender": "visitor-1", "message": "multi hi", "metadata": {"x": 1}}"#;
    let answer = call(&app, post_json("/webhooks/rest/webhook", body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!([
            {"recipient_id": "visitor-1", "text": "echo: multi hi"},
            {"recipient_id": "visitor-1", "text": "second"},
        ])
    );
    let got = &fake.received()[0];
    assert_eq!(
        (got.session.as_str(), got.user.as_str()),
        ("visitor-1", "visitor-1")
    );
    assert_eq!(got.channel, "rasa");

    let health = call(&app, get("/webhooks/rest/")).await;
    assert_eq!(health.body, json!({"status": "ok"}));

    let cases: &[(&str, StatusCode, &str)] = &[
        (
            r#"{"message": "hi"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_session_key",
        ),
        (
            r#"{"sender": "a/b", "message": "hi"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_session_key",
        ),
        (
            r#"{"sender": "s"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_message",
        ),
        (
            r#"{"sender": 1, "message": "hi"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (r#"{"sender""#, StatusCode::BAD_REQUEST, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let answer = call(&app, post_json("/webhooks/rest/webhook", *body)).await;
        assert_error(&answer, *status, code);
    }
    fake.fail_with(Some(SendError::SessionBusy {
        retry_after_secs: 3,
    }));
    let busy = call(&app, post_json("/webhooks/rest/webhook", body)).await;
    assert_error(&busy, StatusCode::TOO_MANY_REQUESTS, "session_busy");
    assert_eq!(busy.headers.get("retry-after").unwrap(), "3");
}

#[tokio::test]
async fn health_and_readiness() {
    let (app, fake) = test_app(HttpConfig::default());
    let health = call(&app, get("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    assert_eq!(
        health.headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(call(&app, get("/readyz")).await.status, StatusCode::OK);
    fake.set_ready(false);
    let not_ready = call(&app, get("/readyz")).await;
    assert_error(&not_ready, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert!(not_ready.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn api_keys_guard_v1_and_webhook_only() {
    let (app, _) = test_app(keyed());
    let missing = call(&app, post_json(MESSAGES, r#"{"text": "hi"}"#)).await;
    assert_error(&missing, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(missing.headers.get("www-authenticate").unwrap(), "Bearer");

    let with = |name: &str, value: &str| {
        Request::post(MESSAGES)
            .header("content-type", "application/json")
            .header(name, value)
            .body(Body::from(r#"{"text": "hi"}"#))
            .unwrap()
    };
    for (name, value) in [
        ("authorization", "Bearer wrong-key-0123456789"),
        ("authorization", "Bearer test-key-012345678"),
        ("authorization", KEY),
        ("authorization", "Basic dGVzdA=="),
        ("x-api-key", "test-key-01234567890"),
    ] {
        let answer = call(&app, with(name, value)).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    for (name, value) in [
        ("authorization", format!("Bearer {KEY}")),
        ("authorization", format!("bearer {KEY}")),
        ("x-api-key", KEY.to_owned()),
        ("x-api-key", "other-key-0123456789".to_owned()),
    ] {
        let answer = call(&app, with(name, &value)).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {value}");
    }
    // The query form is for WebSockets only.
    let query = post_json(&format!("{MESSAGES}?api_key={KEY}"), r#"{"text": "hi"}"#);
    assert_error(
        &call(&app, query).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &call(&app, get("/v1/conversations/alice")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let rasa = post_json(
        "/webhooks/rest/webhook",
        r#"{"sender": "s", "message": "hi"}"#,
    );
    assert_error(
        &call(&app, rasa).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    for open in ["/healthz", "/readyz", "/openapi.json", "/webhooks/rest/"] {
        assert_eq!(call(&app, get(open)).await.status, StatusCode::OK, "{open}");
    }
    assert_error(
        &call(&app, get("/nope")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_app_keeps_serving() {
    let (app, _) = test_app(HttpConfig::default());
    let body = json!({ "text": PANIC_TEXT }).to_string();
    let answer = call(&app, post_json(MESSAGES, body)).await;
    assert_error(&answer, StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    assert!(
        !answer.body.to_string().contains("told to panic"),
        "no internals sent"
    );
    let next = call(&app, post_json(MESSAGES, r#"{"text": "still here"}"#)).await;
    assert_eq!(next.status, StatusCode::OK);
}

#[tokio::test]
async fn plain_get_on_the_websocket_route_is_a_json_error() {
    let (app, _) = test_app(HttpConfig::default());
    let answer = call(&app, get("/v1/conversations/alice/ws")).await;
    assert!(answer.status.is_client_error(), "{}", answer.status);
    assert_error(&answer, answer.status, "websocket_upgrade_required");
}

#[tokio::test]
async fn message_post_carries_checked_tags_to_the_session_layer() {
    let (app, fake) = test_app(HttpConfig::default());
    let body = r#"{"text": "hi", "user": "u-9", "tags": ["vip", "b2b", "vip"]}"#;
    let answer = call(&app, post_json(MESSAGES, body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        fake.received()[0].tags.as_deref(),
        Some(&["vip".to_owned(), "b2b".to_owned()][..])
    );
    // No tags, or null: the session keeps its tags; an empty list clears them.
    call(&app, post_json(MESSAGES, r#"{"text": "a", "tags": null}"#)).await;
    call(&app, post_json(MESSAGES, r#"{"text": "b"}"#)).await;
    call(&app, post_json(MESSAGES, r#"{"text": "c", "tags": []}"#)).await;
    let received = fake.received();
    assert!(received[1..3].iter().all(|m| m.tags.is_none()));
    assert_eq!(received[3].tags.as_deref(), Some(&[][..]));

    for bad in [r#"["VIP"]"#, r#"["a b"]"#, r#"[""]"#, r#"["会员"]"#] {
        let body = format!(r#"{{"text": "hi", "tags": {bad}}}"#);
        let answer = call(&app, post_json(MESSAGES, body)).await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_tags");
    }
    let answer = call(
        &app,
        post_json(MESSAGES, r#"{"text": "hi", "tags": "vip"}"#),
    )
    .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(
        fake.received().len(),
        4,
        "refused messages never reach the sessions"
    );
}
