//! The WebSocket route and `serve`, over a real socket on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kefu_actors::api::SendError;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{FakeConversations, PANIC_TEXT, test_state};
use crate::http::{HttpConfig, serve};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running server; dropping the sender stops it.
struct Server {
    addr: SocketAddr,
    fake: Arc<FakeConversations>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(config: HttpConfig) -> Self {
        let (state, fake) = test_state(config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            fake,
            stop: Some(stop),
            task,
        }
    }

    async fn connect(&self, key_and_query: &str) -> Client {
        let url = format!("ws://{}/v1/conversations/{key_and_query}", self.addr);
        let (client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        client
    }

    async fn stop(mut self) {
        drop(self.stop.take());
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve stops after the shutdown signal");
        result.unwrap().unwrap();
    }
}

/// The next text frame as JSON, skipping pongs.
async fn next_json(client: &mut Client) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .unwrap();
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn send_text(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.unwrap();
}

#[tokio::test]
async fn multi_turn_chat_in_order() {
    let server = Server::start(HttpConfig::default()).await;
    let mut client = server.connect("carol/ws").await;

    send_text(&mut client, r#"{"text": "hello", "message_id": "m-1"}"#).await;
    let turn = next_json(&mut client).await;
    assert_eq!(turn["type"], "turn");
    assert_eq!(turn["session"], "carol");
    assert_eq!(turn["message_id"], "m-1");
    assert_eq!(turn["replies"], json!([{"text": "echo: hello"}]));
    assert_eq!(turn["duplicate"], false);
    assert_eq!(turn["seq"], 1);

    // A bare text frame is the text itself.
    send_text(&mut client, "just words").await;
    let turn = next_json(&mut client).await;
    assert_eq!(turn["replies"][0]["text"], "echo: just words");
    assert_eq!(turn["seq"], 2);

    // Pipelined frames, the first slow: answers still come back in sending order.
    for text in ["slow one", "two", "three"] {
        send_text(&mut client, text).await;
    }
    for text in ["slow one", "two", "three"] {
        let turn = next_json(&mut client).await;
        assert_eq!(turn["replies"][0]["text"], format!("echo: {text}"));
    }
    let received: Vec<String> = server.fake.received().into_iter().map(|m| m.text).collect();
    assert_eq!(
        received,
        ["hello", "just words", "slow one", "two", "three"]
    );
    assert!(server.fake.received().iter().all(|m| m.channel == "ws"));

    client
        .send(Message::Ping(b"hb".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"hb".to_vec().into()));

    client.close(None).await.unwrap();
    // The server answers the close; the stream then ends.
    while let Some(frame) = client.next().await {
        if frame.is_err() {
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    let server = Server::start(HttpConfig {
        max_message_chars: 10,
        ..HttpConfig::default()
    })
    .await;
    let mut client = server.connect("dave/ws").await;
    let cases: &[(Message, &str)] = &[
        (Message::text("{not json"), "invalid_json"),
        (Message::text(r#"{"text": 5}"#), "invalid_request"),
        (Message::text(r#"{"text": ""}"#), "empty_message"),
        (Message::text("   "), "empty_message"),
        (Message::text("this is longer than ten"), "message_too_long"),
        (
            Message::text(r#"{"text": "a", "message_id": ""}"#),
            "invalid_message_id",
        ),
        (Message::binary(b"bytes".to_vec()), "unsupported_frame"),
    ];
    for (frame, code) in cases {
        client.send(frame.clone()).await.unwrap();
        let error = next_json(&mut client).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], *code, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    send_text(&mut client, PANIC_TEXT).await;
    let panicked = next_json(&mut client).await;
    assert_eq!(panicked["code"], "internal_error");
    assert_eq!(panicked["message"], "internal error", "no internals sent");

    server.fake.fail_with(Some(SendError::SessionBusy {
        retry_after_secs: 4,
    }));
    send_text(&mut client, "hi").await;
    let busy = next_json(&mut client).await;
    assert_eq!(busy["code"], "session_busy");
    assert_eq!(busy["retry_after_secs"], 4);
    server.fake.fail_with(None);

    send_text(&mut client, "fine").await;
    assert_eq!(next_json(&mut client).await["type"], "turn");
    assert_eq!(server.fake.received().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn oversized_frames_get_an_error_and_close_1009() {
    let server = Server::start(HttpConfig {
        max_ws_frame_bytes: 1024,
        ..HttpConfig::default()
    })
    .await;
    let mut client = server.connect("erin/ws").await;
    send_text(&mut client, "small").await;
    assert_eq!(next_json(&mut client).await["type"], "turn");

    send_text(&mut client, &"x".repeat(4096)).await;
    let error = next_json(&mut client).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "frame_too_large");
    let close = tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .unwrap();
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    assert_eq!(server.fake.received().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn websocket_auth_by_header_or_query() {
    const KEY: &str = "ws-key-0123456789ab";
    let server = Server::start(HttpConfig {
        api_keys: vec![KEY.into()],
        ..HttpConfig::default()
    })
    .await;
    let url = format!("ws://{}/v1/conversations/frank/ws", server.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let wrong = format!("{url}?api_key=nope");
    assert!(tokio_tungstenite::connect_async(wrong).await.is_err());

    let mut by_query = server.connect(&format!("frank/ws?api_key={KEY}")).await;
    send_text(&mut by_query, "hi").await;
    assert_eq!(next_json(&mut by_query).await["type"], "turn");

    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    let (mut by_header, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    send_text(&mut by_header, "hello").await;
    assert_eq!(next_json(&mut by_header).await["type"], "turn");
    server.stop().await;
}

#[tokio::test]
async fn serve_answers_http_and_stops_on_signal() {
    let server = Server::start(HttpConfig::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
    server.stop().await;
}

/// The next frame, which must be a close frame; returns its code and reason. The client's
/// codec answers it, completing the handshake.
async fn expect_close(client: &mut Client, within: Duration) -> (CloseCode, String) {
    loop {
        let frame = tokio::time::timeout(within, client.next())
            .await
            .expect("a close frame in time")
            .expect("a close frame before the stream ends")
            .unwrap();
        match frame {
            Message::Close(Some(frame)) => return (frame.code, frame.reason.to_string()),
            Message::Pong(_) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_after_their_turn() {
    let server = Server::start(HttpConfig::default()).await;
    let mut idle = server.connect("idle-one/ws").await;
    let mut busy = server.connect("busy-one/ws").await;
    // Make sure both sockets are fully set up on the server.
    send_text(&mut idle, "hi").await;
    next_json(&mut idle).await;
    // A slow turn is in flight when shutdown begins: it is still answered, then closed.
    send_text(&mut busy, "slow one").await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let stopping = tokio::spawn(server.stop());
    let (code, reason) = expect_close(&mut idle, Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (CloseCode::Away, "going away"));
    let turn = next_json(&mut busy).await;
    assert_eq!(turn["replies"][0]["text"], "echo: slow one");
    let (code, _) = expect_close(&mut busy, Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Away);
    // After the handshake the streams end, and serve returns (it waited for both closes).
    for client in [&mut idle, &mut busy] {
        while let Some(frame) = client.next().await {
            assert!(
                !matches!(frame, Ok(Message::Text(_))),
                "no turn after the close: {frame:?}"
            );
        }
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn idle_sockets_are_closed_with_1000_and_active_ones_stay_open() {
    let config = HttpConfig {
        ws_idle_timeout_secs: 1,
        ..HttpConfig::default()
    };
    let server = Server::start(config).await;
    let mut quiet = server.connect("quiet/ws").await;
    let mut chatty = server.connect("chatty/ws").await;
    let started = std::time::Instant::now();
    // The chatty client sends something every 400 ms for 2 s: never idle for a whole second.
    let chat = async {
        for i in 0..5 {
            send_text(&mut chatty, &format!("message {i}")).await;
            assert_eq!(next_json(&mut chatty).await["type"], "turn");
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        // Pings count as activity too.
        chatty
            .send(Message::Ping(b"still here".to_vec().into()))
            .await
            .unwrap();
        send_text(&mut chatty, "last").await;
        assert_eq!(next_json(&mut chatty).await["type"], "turn");
    };
    let quiet_closed = async {
        let closed = expect_close(&mut quiet, Duration::from_secs(5)).await;
        (closed, started.elapsed())
    };
    let ((closed, waited), ()) = tokio::join!(quiet_closed, chat);
    assert_eq!(closed, (CloseCode::Normal, "idle timeout".to_owned()));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
    // Now the chatty one goes quiet and is closed too.
    let (code, _) = expect_close(&mut chatty, Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Normal);
    server.stop().await;
}

/// Waits (bounded) until `cond` holds.
async fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// No frame arrives within `within`.
async fn assert_quiet(client: &mut Client, within: Duration) {
    if let Ok(frame) = tokio::time::timeout(within, client.next()).await {
        panic!("expected no frame yet, got {frame:?}");
    }
}

#[tokio::test]
async fn frames_start_their_turns_at_once_and_are_answered_in_order() {
    let server = Server::start(HttpConfig::default()).await;
    let mut client = server.connect("gina/ws").await;
    send_text(&mut client, r#"{"text": "gate 1", "message_id": "g-1"}"#).await;
    send_text(
        &mut client,
        r#"{"text": "stream a b", "message_id": "g-2"}"#,
    )
    .await;
    client
        .send(Message::binary(b"bytes".to_vec()))
        .await
        .unwrap();
    send_text(&mut client, r#"{"text": "three", "message_id": "g-3"}"#).await;

    // Every message reached the session layer while the first is still running...
    assert!(
        eventually(|| server.fake.received().len() == 3).await,
        "{:?}",
        server.fake.received()
    );
    let received: Vec<String> = server.fake.received().into_iter().map(|m| m.text).collect();
    assert_eq!(received, ["gate 1", "stream a b", "three"]);
    // ...but nothing is answered before the first turn: the later ones, done already, wait.
    assert_quiet(&mut client, Duration::from_millis(200)).await;

    server.fake.set_gate(true);
    let mut frames = Vec::new();
    for _ in 0..6 {
        frames.push(next_json(&mut client).await);
    }
    let shapes: Vec<(String, String)> = frames
        .iter()
        .map(|f| {
            let kind = f["type"].as_str().unwrap_or_default().to_owned();
            let detail = match kind.as_str() {
                "turn" => f["message_id"].as_str(),
                "delta" => f["text"].as_str(),
                _ => f["code"].as_str(),
            };
            (kind, detail.unwrap_or_default().to_owned())
        })
        .collect();
    let expected = [
        ("turn", "g-1"),
        ("delta", "a"),
        ("delta", "b"),
        ("turn", "g-2"),
        ("error", "unsupported_frame"),
        ("turn", "g-3"),
    ]
    .map(|(k, d)| (k.to_owned(), d.to_owned()));
    assert_eq!(shapes, expected, "{frames:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_full_socket_is_not_read_until_a_turn_is_answered() {
    use crate::http::ws::MAX_TURNS_IN_FLIGHT as MAX;
    let server = Server::start(HttpConfig::default()).await;
    let mut client = server.connect("hal/ws").await;
    for i in 0..MAX + 2 {
        send_text(&mut client, &format!("gate {i}")).await;
    }
    assert!(eventually(|| server.fake.received().len() == MAX).await);
    // The frames beyond the bound stay unread while the bound is reached.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.fake.received().len(), MAX);

    server.fake.set_gate(true);
    for i in 0..MAX + 2 {
        let turn = next_json(&mut client).await;
        assert_eq!(
            turn["replies"][0]["text"],
            format!("echo: gate {i}"),
            "{turn}"
        );
    }
    assert_eq!(server.fake.received().len(), MAX + 2);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_answers_every_turn_in_flight_before_1001() {
    let server = Server::start(HttpConfig::default()).await;
    let fake = server.fake.clone();
    let mut client = server.connect("ivy/ws").await;
    send_text(&mut client, "gate 1").await;
    send_text(&mut client, "gate 2").await;
    assert!(eventually(|| fake.received().len() == 2).await);

    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Shutdown began: a frame sent now starts no turn.
    send_text(&mut client, "too late").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.set_gate(true);
    for text in ["gate 1", "gate 2"] {
        let turn = next_json(&mut client).await;
        assert_eq!(turn["replies"][0]["text"], format!("echo: {text}"));
    }
    let (code, _) = expect_close(&mut client, Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Away);
    stopping.await.unwrap();
    assert_eq!(fake.received().len(), 2, "{:?}", fake.received());
}

#[tokio::test]
async fn a_socket_with_a_turn_in_flight_is_not_idle() {
    let config = HttpConfig {
        ws_idle_timeout_secs: 1,
        ..HttpConfig::default()
    };
    let server = Server::start(config).await;
    let mut client = server.connect("jo/ws").await;
    send_text(&mut client, "gate").await;
    // Well past the idle limit with the turn still running: the socket stays open.
    assert_quiet(&mut client, Duration::from_millis(1500)).await;
    server.fake.set_gate(true);
    let answered = std::time::Instant::now();
    assert_eq!(next_json(&mut client).await["type"], "turn");
    // Idle time counts from the answer.
    let (code, _) = expect_close(&mut client, Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Normal);
    let waited = answered.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_after_turns_in_flight_is_refused_after_their_answers() {
    let server = Server::start(HttpConfig {
        max_ws_frame_bytes: 1024,
        ..HttpConfig::default()
    })
    .await;
    let mut client = server.connect("kim/ws").await;
    send_text(&mut client, "gate").await;
    send_text(&mut client, &"x".repeat(4096)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.fake.set_gate(true);
    let turn = next_json(&mut client).await;
    assert_eq!(turn["replies"][0]["text"], "echo: gate");
    let error = next_json(&mut client).await;
    assert_eq!(error["code"], "frame_too_large");
    match tokio::time::timeout(Duration::from_secs(5), client.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_broken_socket_drops_its_pending_answers_but_not_its_turns() {
    let server = Server::start(HttpConfig::default()).await;
    let mut client = server.connect("lee/ws").await;
    send_text(&mut client, "gate one").await;
    send_text(&mut client, "two").await;
    assert!(eventually(|| server.fake.received().len() == 2).await);
    drop(client);
    server.fake.set_gate(true);
    // The session layer took both; another socket of the conversation carries on.
    let mut again = server.connect("lee/ws").await;
    send_text(&mut again, "three").await;
    let turn = next_json(&mut again).await;
    assert_eq!(turn["seq"], 3, "{turn}");
    server.stop().await;
}
