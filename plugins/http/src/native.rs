//! kefu's native JSON contract: POST the [`SkillRequest`], get a [`SkillOutcome`] back.
//!
//! - `2xx` with a body like `{"outcome": "found", "data": {...}, "messages": [...]}` (any
//!   [`SkillOutcome`] in its JSON form) is the answer.
//! - `401`/`403` means our credentials were refused: a configuration error.
//! - Any other status is a failure; the body may say which kind:
//!   `{"error": "bad_argument", "name": "order_id", "reason": "..."}`,
//!   `{"error": "config", "message": "..."}` or `{"error": "backend", "message": "..."}`.
//!   Anything else (or no body) is a back-end failure carrying the status.

use kefu_plugin::{SkillError, SkillOutcome, SkillRequest};
use serde::Deserialize;

use crate::client::{Client, excerpt};

/// The error body a native server may send.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

pub(crate) async fn call(client: &Client, req: &SkillRequest) -> Result<SkillOutcome, SkillError> {
    let answer = client.post(req).await?;
    let status = answer.status;
    if status.is_success() {
        return serde_json::from_slice::<SkillOutcome>(&answer.body).map_err(|e| {
            SkillError::Backend(format!(
                "{} answered something that is not a skill outcome ({e}): {}",
                client.url(),
                excerpt(&answer.body)
            ))
        });
    }
    if matches!(status.as_u16(), 401 | 403) {
        return Err(client.refused(status));
    }
    let said = serde_json::from_slice::<ErrorBody>(&answer.body).ok();
    let detail = |body: &ErrorBody| {
        body.message
            .clone()
            .or_else(|| body.reason.clone())
            .unwrap_or_default()
    };
    Err(match said {
        Some(body) if body.error == "bad_argument" => SkillError::BadArgument {
            name: body.name.clone().unwrap_or_else(|| "?".to_owned()),
            reason: detail(&body),
        },
        Some(body) if body.error == "config" => SkillError::Config(format!(
            "{} (HTTP {}): {}",
            client.url(),
            status.as_u16(),
            detail(&body)
        )),
        Some(body) => SkillError::Backend(format!(
            "{} (HTTP {}): {}",
            client.url(),
            status.as_u16(),
            detail(&body)
        )),
        None => SkillError::Backend(format!(
            "{} answered HTTP {}: {}",
            client.url(),
            status.as_u16(),
            excerpt(&answer.body)
        )),
    })
}
