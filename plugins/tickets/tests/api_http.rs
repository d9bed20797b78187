//! The tickets REST API over real HTTP on 127.0.0.1, backed by the sled store in a temporary
//! directory: the whole lifecycle, persistence across reopening the database, and bad input.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use kefu_tickets::{SledTicketStore, TicketStore, api};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running API server that can be stopped (releasing its store).
struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start(store: Arc<dyn TicketStore>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, api::router(store))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server {
            base: format!("http://{addr}"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

fn open_store(dir: &Path) -> Arc<dyn TicketStore> {
    Arc::new(SledTicketStore::open(dir).unwrap())
}

/// Opens the store again after the server that held it stopped. sled's background threads let
/// go of the database (and its file lock) a moment after the last handle is dropped.
async fn reopen_store(dir: &Path) -> Arc<dyn TicketStore> {
    for _ in 0..200 {
        match SledTicketStore::open(dir) {
            Ok(store) => return Arc::new(store),
            Err(e) if e.to_string().contains("lock") => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(other) => panic!("reopen failed: {other}"),
        }
    }
    panic!("the database stayed locked after its store was dropped");
}

async fn json_of(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = res.json().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    (status, body)
}

async fn post(client: &Client, url: String, body: Value) -> (StatusCode, Value) {
    json_of(client.post(url).json(&body).send().await.unwrap()).await
}

fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn the_whole_lifecycle_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let mut feed = store.subscribe();
    let server = Server::start(store).await;
    let client = Client::new();

    // Create.
    let res = client
        .post(server.url("/v1/tickets"))
        .json(
            &json!({"user": "u-alice", "title": "Parcel arrived damaged",
                      "description": "The box was crushed.", "priority": "high",
                      "tags": ["complaint"], "session": "s-1", "channel": "web", "actor": "bot"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["location"], "/v1/tickets/T-000001");
    let (_, ticket) = json_of(res).await;
    assert_eq!(ticket["id"], "T-000001");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["priority"], "high");
    assert_eq!(ticket["tenant"], "default");
    let id = ticket["id"].as_str().unwrap().to_owned();
    let one = |p: &str| server.url(&format!("/v1/tickets/{id}{p}"));

    // Get.
    let (status, got) = json_of(client.get(one("")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, ticket);

    // Comment.
    let (status, event) = post(
        &client,
        one("/comments"),
        json!({"body": "Photos attached.", "author": "u-alice"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(event["type"], "commented");
    assert_eq!(event["seq"], 2);

    // Assign.
    let (status, assigned) = post(
        &client,
        one("/assign"),
        json!({"assignee": "agent-7", "actor": "lead"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(assigned["assignee"], "agent-7");

    // Update.
    let res = client
        .patch(one(""))
        .json(&json!({"status": "in_progress", "priority": "urgent", "actor": "agent-7"}))
        .send()
        .await
        .unwrap();
    let (status, updated) = json_of(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["status"], "in_progress");
    assert_eq!(updated["priority"], "urgent");
    assert_eq!(updated["version"], 4);

    // Close.
    let (status, closed) = post(
        &client,
        one("/close"),
        json!({"resolution": "Replacement sent.", "actor": "agent-7"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at_ms"].is_u64());

    // A closed ticket takes no comments, updates or assignments.
    let (status, body) = post(&client, one("/comments"), json!({"body": "Hello?"})).await;
    assert_error(status, &body, 409, "ticket_closed");
    let res = client
        .patch(one(""))
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_error(status, &body, 409, "ticket_closed");
    let (status, body) = post(&client, one("/assign"), json!({"assignee": "b"})).await;
    assert_error(status, &body, 409, "ticket_closed");

    // Events: exactly what happened, in order.
    let (status, events) = json_of(client.get(one("/events")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let events = events["events"].as_array().unwrap().clone();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["created", "commented", "assigned", "updated", "closed"]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let actors: Vec<&str> = events
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["bot", "u-alice", "lead", "agent-7", "agent-7"]);
    assert_eq!(events[2]["from"], Value::Null);
    assert_eq!(events[2]["to"], "agent-7");
    let changed: Vec<&str> = events[3]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["status", "priority"]);
    assert_eq!(events[4]["resolution"], "Replacement sent.");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["at_ms"].as_u64() <= w[1]["at_ms"].as_u64())
    );
    let (_, page) = json_of(
        client
            .get(one("/events?after=3&limit=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["events"][0]["seq"], 4);

    // The subscription saw the same events.
    let mut seen = Vec::new();
    while let Ok(event) = feed.try_recv() {
        seen.push(serde_json::to_value(event).unwrap());
    }
    assert_eq!(seen, events);

    // Reopen, then comments are accepted again.
    let (status, reopened) = post(&client, one("/reopen"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reopened["status"], "open");
    let (status, _) = post(&client, one("/comments"), json!({"body": "Thanks!"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = post(&client, one("/reopen"), json!({})).await;
    assert_error(status, &body, 409, "ticket_not_closed");
    server.stop().await;
}

#[tokio::test]
async fn tickets_survive_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new();
    let server = Server::start(open_store(dir.path())).await;
    for (user, title) in [("u-a", "First"), ("u-b", "Second"), ("u-a", "Third")] {
        let (status, _) = post(
            &client,
            server.url("/v1/tickets"),
            json!({"user": user, "title": title}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = post(
        &client,
        server.url("/v1/tickets/T-000002/assign"),
        json!({"assignee": "agent-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(&client, server.url("/v1/tickets/T-000003/close"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await; // drops the store and with it the database

    let server = Server::start(reopen_store(dir.path()).await).await;
    let (_, t2) = json_of(
        client
            .get(server.url("/v1/tickets/T-000002"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(t2["title"], "Second");
    assert_eq!(t2["assignee"], "agent-1");
    let (_, events) = json_of(
        client
            .get(server.url("/v1/tickets/T-000003/events"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    // Indexes survived too.
    let (_, mine) = json_of(
        client
            .get(server.url("/v1/tickets?user=u-a"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ids: Vec<&str> = mine["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["T-000003", "T-000001"]);
    let (_, closed) = json_of(
        client
            .get(server.url("/v1/tickets?status=closed"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(closed["tickets"].as_array().unwrap().len(), 1);
    // The counter continues where it was: no id is handed out twice.
    let (_, t4) = post(
        &client,
        server.url("/v1/tickets"),
        json!({"user": "u-c", "title": "Fourth"}),
    )
    .await;
    assert_eq!(t4["id"], "T-000004");
    server.stop().await;
}

#[tokio::test]
async fn listing_filters_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(open_store(dir.path())).await;
    let client = Client::new();
    for i in 1..=7 {
        let user = if i % 2 == 0 { "u-even" } else { "u-odd" };
        post(
            &client,
            server.url("/v1/tickets"),
            json!({"user": user, "title": format!("t{i}")}),
        )
        .await;
    }
    post(
        &client,
        server.url("/v1/tickets/T-000005/assign"),
        json!({"assignee": "ann"}),
    )
    .await;
    post(
        &client,
        server.url("/v1/tickets/T-000003/assign"),
        json!({"assignee": "ann"}),
    )
    .await;
    let patch = client
        .patch(server.url("/v1/tickets/T-000003"))
        .json(&json!({"status": "pending"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::OK);

    let list = |q: &str| {
        let url = server.url(&format!("/v1/tickets{q}"));
        let client = client.clone();
        async move {
            let (status, body) = json_of(client.get(url).send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let ids: Vec<String> = body["tickets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect();
            (ids, body["next_cursor"].as_str().map(str::to_owned))
        }
    };
    let (ids, cursor) = list("?user=u-odd&limit=2").await;
    assert_eq!(ids, ["T-000007", "T-000005"]);
    let (ids, cursor) = list(&format!("?user=u-odd&limit=2&cursor={}", cursor.unwrap())).await;
    assert_eq!(ids, ["T-000003", "T-000001"]);
    assert_eq!(cursor, None, "the last page has no cursor");
    assert_eq!(list("?assignee=ann").await.0, ["T-000005", "T-000003"]);
    assert_eq!(list("?assignee=ann&status=open").await.0, ["T-000005"]);
    assert_eq!(list("?status=pending").await.0, ["T-000003"]);
    assert_eq!(
        list("?user=u-even&status=pending").await.0,
        Vec::<String>::new()
    );
    let (all, cursor) = list("").await;
    assert_eq!((all.len(), cursor), (7, None));
    let (ids, cursor) = list("?limit=3").await;
    assert_eq!(ids, ["T-000007", "T-000006", "T-000005"]);
    assert_eq!(cursor.as_deref(), Some("T-000005"));
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(open_store(dir.path())).await;
    let client = Client::new();
    let tickets = server.url("/v1/tickets");
    post(
        &client,
        tickets.clone(),
        json!({"user": "u", "title": "ok"}),
    )
    .await;

    let raw = |body: &'static str, content_type: &'static str| {
        let client = client.clone();
        let url = tickets.clone();
        async move {
            json_of(
                client
                    .post(url)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (s, b) = raw("{\"user\": \"u\", \"title\": ", "application/json").await;
    assert_error(s, &b, 400, "invalid_json");
    let (s, b) = raw(r#"{"user": 5, "title": "x"}"#, "application/json").await;
    assert_error(s, &b, 422, "invalid_request");
    let (s, b) = raw(
        r#"{"user": "u", "title": "x", "colour": "red"}"#,
        "application/json",
    )
    .await;
    assert_error(s, &b, 422, "invalid_request");
    let (s, b) = raw(r#"{"title": "x"}"#, "application/json").await;
    assert_error(s, &b, 422, "invalid_request");
    let (s, b) = raw(r#"{"user": "u", "title": "x"}"#, "text/plain").await;
    assert_error(s, &b, 415, "unsupported_media_type");
    let (s, b) = raw(r#"{"user": "u", "title": "   "}"#, "application/json").await;
    assert_error(s, &b, 422, "empty_title");
    let (s, b) = raw(
        r#"{"user": "u", "title": "x", "priority": "asap"}"#,
        "application/json",
    )
    .await;
    assert_error(s, &b, 422, "unknown_priority");
    let big = format!(
        r#"{{"user": "u", "title": "x", "description": "{}"}}"#,
        "a".repeat(100_000)
    );
    let res = client
        .post(tickets.clone())
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (s, b) = json_of(res).await;
    assert_error(s, &b, 413, "body_too_large");

    // Unknown and malformed ids: 404.
    for path in [
        "/v1/tickets/T-999999",
        "/v1/tickets/nonsense",
        "/v1/tickets/T-0",
        "/v1/tickets/T-999999/events",
    ] {
        let (s, b) = json_of(client.get(server.url(path)).send().await.unwrap()).await;
        assert_error(s, &b, 404, "ticket_not_found");
    }
    let (s, b) = post(
        &client,
        server.url("/v1/tickets/T-999999/comments"),
        json!({"body": "x"}),
    )
    .await;
    assert_error(s, &b, 404, "ticket_not_found");

    // Bad updates and queries.
    let one = server.url("/v1/tickets/T-000001");
    let patch = |body: Value| {
        let client = client.clone();
        let url = one.clone();
        async move { json_of(client.patch(url).json(&body).send().await.unwrap()).await }
    };
    let (s, b) = patch(json!({"status": "done"})).await;
    assert_error(s, &b, 422, "unknown_status");
    let (s, b) = patch(json!({"status": "closed"})).await;
    assert_error(s, &b, 409, "illegal_transition");
    let (s, b) = patch(json!({})).await;
    assert_error(s, &b, 422, "empty_patch");
    let (s, b) = patch(json!({"tags": "not-a-list"})).await;
    assert_error(s, &b, 422, "invalid_request");
    let (s, b) = post(&client, format!("{one}/comments"), json!({"body": "  "})).await;
    assert_error(s, &b, 422, "invalid_field");
    let (s, b) = post(&client, format!("{one}/assign"), json!({})).await;
    assert_error(s, &b, 422, "invalid_request");
    for q in ["?status=weird", "?limit=-1", "?cursor=abc", "?colour=red"] {
        let (s, b) = json_of(client.get(format!("{tickets}{q}")).send().await.unwrap()).await;
        let code = match q {
            "?status=weird" => "unknown_status",
            "?cursor=abc" => "invalid_cursor",
            _ => "invalid_query",
        };
        assert_error(s, &b, 422, code);
    }
    // Closing without a body is fine (all its fields are optional).
    let res = client.post(format!("{one}/close")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.stop().await;
}

/// `api::ROUTES` (which the runtime's OpenAPI document is checked against) lists exactly what
/// the router serves: each entry is routed, and the methods it does not list are 405 there.
#[tokio::test]
async fn the_route_table_matches_the_router() {
    let server = Server::start(Arc::new(kefu_tickets::MemoryTicketStore::new())).await;
    let client = Client::new();
    let paths: std::collections::BTreeSet<&str> = api::ROUTES.iter().map(|(_, p)| *p).collect();
    for path in paths {
        let url = server.url(&path.replace("{id}", "T-000001"));
        for method in ["GET", "POST", "PATCH", "PUT", "DELETE"] {
            let listed = api::ROUTES.contains(&(method, path));
            let resp = client
                .request(method.parse().unwrap(), &url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if listed {
                // A routed request either works or fails in the handler with our error shape
                // (e.g. `ticket_not_found` for the probe id); an unrouted path has no body.
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                if status == StatusCode::NOT_FOUND {
                    assert_eq!(body["error"]["code"], "ticket_not_found", "{method} {path}");
                }
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            }
        }
    }
    server.stop().await;
}
