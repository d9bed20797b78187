//! The Rasa action-server protocol, so existing `rasa-sdk` custom actions run unchanged.
//!
//! **Request** (`POST {url}/webhook`):
//! ```json
//! {"next_action": "action_check_order", "sender_id": "<session>", "version": "3.21.1",
//!  "tracker": {"sender_id": "<session>", "slots": {"order_id": "A1"},
//!              "latest_message": {"text": "...", "intent": {"name": "...", "confidence": 1.0},
//!                                 "entities": [], "metadata": {"kefu": {<caller>}}},
//!              "events": [...], "paused": false, "followup_action": null, "active_loop": {},
//!              "latest_action_name": "action_listen", "latest_input_channel": "<channel>"},
//!  "domain": {...}}
//! ```
//! How a [`SkillRequest`] fills it: every argument becomes a tracker slot, except `text` and
//! `intent`, which become the latest message's text and intent name. `sender_id` is the
//! session, and the runtime-supplied [`kefu_plugin::Caller`] travels in
//! `latest_message.metadata.kefu`, so an action can scope data by the authenticated user.
//!
//! **Answer** (`200`): `{"events": [...], "responses": [...]}` (or `null`). It becomes
//! [`SkillOutcome::Found`] with `messages` = the texts of `responses` and `data` =
//! `{"slots": {name: value} from the "slot" events (SlotSet), "events": [every event],
//! "responses": [every response]}`.
//!
//! **Errors**: `400 {"error", "action_name"}` (the action raised `ActionExecutionRejection`)
//! is [`SkillOutcome::Declined`], a normal answer; `404` (no such action) and `449` (the action
//! needs the domain) are configuration errors; `401`/`403` likewise; anything else is a
//! back-end failure.

use kefu_plugin::{SkillError, SkillOutcome, SkillRequest};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::{Client, excerpt};

/// The protocol version kefu announces; `rasa-sdk` only warns when its own differs.
pub const RASA_VERSION: &str = "3.21.1";

/// The webhook URL for an action server's base URL.
pub fn webhook_url(base: &str) -> String {
    let trimmed = base.trim_end_matches('/');
    if trimmed.ends_with("/webhook") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/webhook")
    }
}

/// The action-call payload for `req`.
pub fn payload(action: &str, domain: Option<&Value>, req: &SkillRequest) -> Value {
    let mut slots = Map::new();
    for (k, v) in &req.args {
        if k != "text" && k != "intent" {
            slots.insert(k.clone(), v.clone());
        }
    }
    let text = req.opt_str("text");
    let intent = req.opt_str("intent");
    let intent_json = match &intent {
        Some(name) => json!({ "name": name, "confidence": 1.0 }),
        None => json!({}),
    };
    let caller = serde_json::to_value(&req.caller).unwrap_or(Value::Null);
    let mut events = Vec::new();
    if let Some(text) = &text {
        events.push(json!({
            "event": "user",
            "text": text,
            "parse_data": { "text": text, "intent": intent_json, "entities": [] },
            "input_channel": req.caller.channel,
            "metadata": { "kefu": caller },
        }));
    }
    let domain = domain
        .cloned()
        .unwrap_or_else(|| minimal_domain(action, &slots));
    json!({
        "next_action": action,
        "sender_id": req.caller.session,
        "version": RASA_VERSION,
        "tracker": {
            "sender_id": req.caller.session,
            "slots": slots,
            "latest_message": {
                "text": text,
                "intent": intent_json,
                "entities": [],
                "metadata": { "kefu": caller },
            },
            "events": events,
            "paused": false,
            "followup_action": null,
            "active_loop": {},
            "latest_action_name": "action_listen",
            "latest_input_channel": req.caller.channel,
        },
        "domain": domain,
    })
}

/// A domain that declares the slots being sent and the action being run: enough for plain
/// actions, which is what most custom actions are.
fn minimal_domain(action: &str, slots: &Map<String, Value>) -> Value {
    let declared: Map<String, Value> = slots
        .keys()
        .map(|k| {
            (
                k.clone(),
                json!({ "type": "any", "influence_conversation": false, "mappings": [] }),
            )
        })
        .collect();
    json!({
        "version": "3.1",
        "intents": [],
        "entities": [],
        "slots": declared,
        "responses": {},
        "actions": [action],
        "forms": {},
    })
}

/// An action server's answer.
#[derive(Debug, Default, Deserialize)]
struct RunResult {
    #[serde(default)]
    events: Vec<Value>,
    #[serde(default)]
    responses: Vec<Value>,
}

/// An action server's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
}

/// Turns a successful answer's body into an outcome.
pub fn outcome_from_answer(body: &[u8]) -> Result<SkillOutcome, serde_json::Error> {
    // `null` is what the server sends when it ran nothing; treat it as an empty answer.
    let result: Option<RunResult> = serde_json::from_slice(body)?;
    let result = result.unwrap_or_default();
    let mut slots = Map::new();
    for ev in &result.events {
        if ev.get("event").and_then(Value::as_str) == Some("slot")
            && let Some(name) = ev.get("name").and_then(Value::as_str)
        {
            // Later SlotSets win, as they would in Rasa's tracker.
            slots.insert(
                name.to_owned(),
                ev.get("value").cloned().unwrap_or(Value::Null),
            );
        }
    }
    let messages = result
        .responses
        .iter()
        .filter_map(|r| r.get("text").and_then(Value::as_str))
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned)
        .collect();
    Ok(SkillOutcome::Found {
        data: json!({
            "slots": slots,
            "events": result.events,
            "responses": result.responses,
        }),
        messages,
    })
}

pub(crate) async fn call(
    client: &Client,
    action: &str,
    domain: Option<&Value>,
    req: &SkillRequest,
) -> Result<SkillOutcome, SkillError> {
    let answer = client.post(&payload(action, domain, req)).await?;
    let status = answer.status;
    if status.is_success() {
        return outcome_from_answer(&answer.body).map_err(|e| {
            SkillError::Backend(format!(
                "the action server at {} answered something that is not an action result \
                 ({e}): {}",
                client.url(),
                excerpt(&answer.body)
            ))
        });
    }
    let said = serde_json::from_slice::<ErrorBody>(&answer.body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_else(|| excerpt(&answer.body));
    match status.as_u16() {
        400 => Ok(SkillOutcome::declined(format!(
            "action `{action}` rejected the call: {said}"
        ))),
        401 | 403 => Err(client.refused(status)),
        404 => Err(SkillError::Config(format!(
            "the action server at {} has no action `{action}`: {said}",
            client.url()
        ))),
        449 => Err(SkillError::Config(format!(
            "action `{action}` needs the bot's domain; set `domain` in the skill's configuration: {said}"
        ))),
        code => Err(SkillError::Backend(format!(
            "action `{action}` failed on the action server at {} (HTTP {code}): {said}",
            client.url()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_plugin::Caller;

    fn req() -> SkillRequest {
        SkillRequest::new(
            "order_status",
            Caller {
                tenant: "default".into(),
                user: "u1".into(),
                session: "s1".into(),
                channel: "web".into(),
                locale: "en".into(),
            },
        )
        .with_arg("order_id", "A1")
        .with_arg("text", "where is my order")
        .with_arg("intent", "order_status")
    }

    #[test]
    fn the_payload_carries_slots_message_and_caller() {
        let p = payload("action_check_order", None, &req());
        assert_eq!(p["next_action"], "action_check_order");
        assert_eq!(p["sender_id"], "s1");
        let t = &p["tracker"];
        assert_eq!(t["slots"], json!({ "order_id": "A1" }));
        assert_eq!(t["latest_message"]["text"], "where is my order");
        assert_eq!(t["latest_message"]["intent"]["name"], "order_status");
        assert_eq!(t["latest_message"]["metadata"]["kefu"]["user"], "u1");
        assert_eq!(t["events"][0]["event"], "user");
        assert_eq!(p["domain"]["slots"]["order_id"]["type"], "any");
        assert_eq!(p["domain"]["actions"], json!(["action_check_order"]));
        let given = json!({"responses": {}});
        assert_eq!(payload("a", Some(&given), &req())["domain"], given);
    }

    #[test]
    fn answers_become_slots_and_messages() {
        let body = json!({
            "events": [
                {"event": "slot", "timestamp": null, "name": "order_status", "value": "packed"},
                {"event": "slot", "name": "order_status", "value": "shipped"},
                {"event": "followup", "name": "action_listen"}
            ],
            "responses": [
                {"text": "Your order has shipped.", "buttons": [], "template": null},
                {"response": "utter_goodbye", "text": null},
                {"image": "https://example.com/map.png"}
            ]
        });
        let out = outcome_from_answer(body.to_string().as_bytes()).unwrap();
        let SkillOutcome::Found { data, messages } = out else {
            panic!("found expected")
        };
        assert_eq!(messages, vec!["Your order has shipped."]);
        assert_eq!(data["slots"], json!({ "order_status": "shipped" }));
        assert_eq!(data["events"].as_array().unwrap().len(), 3);
        assert_eq!(data["responses"].as_array().unwrap().len(), 3);
        assert_eq!(
            outcome_from_answer(b"null").unwrap(),
            SkillOutcome::Found {
                data: json!({"slots": {}, "events": [], "responses": []}),
                messages: vec![]
            }
        );
        assert!(outcome_from_answer(b"[1,2]").is_err());
    }

    #[test]
    fn webhook_urls_are_built_once() {
        assert_eq!(webhook_url("http://h:5055"), "http://h:5055/webhook");
        assert_eq!(webhook_url("http://h:5055/"), "http://h:5055/webhook");
        assert_eq!(webhook_url("http://h/webhook"), "http://h/webhook");
    }
}
