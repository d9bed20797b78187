//! The shipped bot files a ticket for a complaint, over the real HTTP API: a conversation
//! through `POST /v1/conversations/{key}/messages`, then the ticket found through the tickets
//! REST API (`/v1/tickets`) with the conversation's user, priority, tags and description — and
//! the tickets API behind the same API key as the conversation routes.

mod support;

use serde_json::{Value, json};
use support::{Kefu, replies};

const KEY: &str = "operator-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_conversation_files_a_ticket_found_over_the_tickets_api() {
    let dir = tempfile::tempdir().unwrap();
    let kefu = Kefu::start(
        dir.path(),
        &format!("[http]\napi_keys = [\"{KEY}\"]\n"),
        &[],
    );
    let say = |text: &'static str| {
        let kefu = &kefu;
        async move {
            let (status, turn) = kefu
                .post_message(
                    "complaint-1",
                    &json!({"text": text, "user": "u-carol"}),
                    Some(KEY),
                )
                .await;
            assert_eq!(status, 200, "{turn}");
            replies(&turn)
        }
    };
    let first = say("我要投诉").await;
    assert!(first.contains("能具体说说发生了什么"), "{first}");
    let detail = "快递员把包裹直接扔在门口，里面的杯子摔碎了";
    let offer = say(detail).await;
    assert!(offer.contains("20 元无门槛优惠券"), "{offer}");
    let done = say("要").await;
    assert!(done.contains("已为您登记投诉，工单号 T-"), "{done}");
    let ticket_id = done
        .split("工单号 ")
        .nth(1)
        .and_then(|rest| rest.split('。').next())
        .unwrap()
        .to_owned();

    // The tickets API needs the key like every /v1 route.
    let (status, body) = kefu.get("/v1/tickets?user=u-carol", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");

    let (status, page) = kefu.get("/v1/tickets?user=u-carol", Some(KEY)).await;
    assert_eq!(status, 200, "{page}");
    let tickets = page["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 1, "{page}");
    let ticket = &tickets[0];
    assert_eq!(ticket["id"], ticket_id.as_str());
    assert_eq!(ticket["user"], "u-carol");
    assert_eq!(ticket["priority"], "high");
    assert_eq!(ticket["tags"], json!(["complaint"]));
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["session"], "complaint-1");
    assert_eq!(ticket["channel"], "web");
    let description = ticket["description"].as_str().unwrap();
    // The slot holds the normalised text (NFKC: the full-width comma becomes `,`).
    for part in detail.split('，') {
        assert!(
            description.contains(part),
            "{part} missing from {description}"
        );
    }
    assert!(
        description.contains("customer accepted the ¥20 coupon"),
        "{description}"
    );
    // No model is configured: the title is the flow's fallback.
    assert_eq!(ticket["title"], "客户投诉");

    // The same ticket by id, and its history says the bot opened it.
    let (status, one) = kefu
        .get(&format!("/v1/tickets/{ticket_id}"), Some(KEY))
        .await;
    assert_eq!(status, 200);
    assert_eq!(&one, ticket);
    let (status, events) = kefu
        .get(&format!("/v1/tickets/{ticket_id}/events"), Some(KEY))
        .await;
    assert_eq!(status, 200);
    let first_event: &Value = &events["events"][0];
    assert_eq!(first_event["type"], "created");
    assert_eq!(first_event["actor"], "bot");
    assert_eq!(first_event["user"], "u-carol");

    // Another user's view of tickets is empty: the skill files under the caller only.
    let (_, others) = kefu.get("/v1/tickets?user=u-alice", Some(KEY)).await;
    assert_eq!(others["tickets"], json!([]));
}
