//! One WebSocket, many messages sent back to back, against `kefu serve` with the shipped bot:
//! the socket starts each message's turn as soon as its frame arrives, yet the session handles
//! them in send order and the socket answers them in send order, each turn frame carrying its
//! own message id. A multi-turn flow (the complaint: report, details, accept the coupon) proves
//! the session saw them in order: out of order, the flow would not reach its ticket.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Kefu, replies};
use tokio_tungstenite::tungstenite::Message;

/// The messages, in send order: a greeting, then the complaint flow's three steps, then more.
const MESSAGES: [&str; 6] = [
    "你好",
    "我要投诉",
    "快递员把包裹直接扔在门口，里面的杯子摔碎了",
    "要",
    "谢谢",
    "你好",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_messages_are_answered_in_send_order() {
    let dir = tempfile::tempdir().unwrap();
    let kefu = Kefu::start(dir.path(), "", &[]);
    let url = format!("ws://{}/v1/conversations/order-1/ws", kefu.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    for (i, text) in MESSAGES.iter().enumerate() {
        let frame = json!({"text": text, "message_id": format!("o-{i}"), "user": "u-order"});
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    let mut turns = Vec::new();
    while turns.len() < MESSAGES.len() {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = frame else { continue };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        match frame["type"].as_str() {
            Some("turn") => turns.push(frame),
            Some("delta" | "retract" | "notice") => {}
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
    }

    let ids: Vec<&str> = turns
        .iter()
        .map(|t| t["message_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["o-0", "o-1", "o-2", "o-3", "o-4", "o-5"], "{turns:?}");
    let seqs: Vec<u64> = turns.iter().map(|t| t["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(turns.iter().all(|t| t["duplicate"] == false), "{turns:?}");
    // The complaint flow ran its steps in order.
    assert!(
        replies(&turns[1]).contains("能具体说说发生了什么"),
        "{}",
        turns[1]
    );
    assert!(
        replies(&turns[2]).contains("20 元无门槛优惠券"),
        "{}",
        turns[2]
    );
    let ticket = replies(&turns[3]);
    assert!(ticket.contains("已为您登记投诉，工单号 T-"), "{ticket}");

    // The transcript has the user's messages in send order.
    let (status, view) = kefu.get("/v1/conversations/order-1", None).await;
    assert_eq!(status, 200, "{view}");
    let said: Vec<&str> = view["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["role"] == "user")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(said, MESSAGES, "{view}");
}
