//! [`OrdersSkill`]: looks one order up in an HTTP back-end on behalf of the caller.
//!
//! Authorisation invariant: an order is only ever returned to the user who owns it. Two layers
//! enforce it: the caller's user id (from [`kefu_plugin::Caller`], set by the runtime, never from
//! user text) is sent to the back-end so it can scope the lookup, and the skill compares the
//! order's mapped `owner` with `caller.user` before answering. An order that belongs to someone
//! else is answered exactly like an unknown one (`NotFound` with the same reason), so a user
//! cannot even learn that the id exists; the mismatch is logged for the operator.
//!
//! Injection invariant: the order id must match the configured pattern in full and is
//! percent-encoded before it is put into the URL, so it cannot add path segments or query
//! parameters.
//!
//! Failures of the back-end (down, 5xx, timeout, nonsense answers) are [`SkillError::Backend`]
//! and count against the host's circuit breaker; "no such order" (404, and 403 from back-ends
//! that scope by user) is an outcome, so users probing foreign ids cannot open the breaker.

use std::time::Duration;

use kefu_plugin::{Skill, SkillError, SkillInfo, SkillOutcome, SkillRequest, async_trait};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::config::{
    ConfigError, LOCALE_PLACEHOLDER, ORDER_ID_PLACEHOLDER, OrdersConfig, SendUser,
};

/// Characters left as they are in a path segment or query value (RFC 3986 unreserved);
/// everything else is encoded, in particular `/`, `?`, `#` and `%`. Dot-only ids (`..`), which
/// URL parsers resolve as path steps even when encoded, are refused before encoding.
const ID_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The reason given for both "no such order" and "not this user's order", identical on purpose.
const NOT_FOUND_REASON: &str = "no order with this number for this customer";

/// The order-query skill. Cheap to share: one HTTP client (with its connection pool) per skill.
#[derive(Debug)]
pub struct OrdersSkill {
    config: OrdersConfig,
    client: reqwest::Client,
    id_pattern: regex::Regex,
    /// The auth header, resolved (environment read) when the skill is built.
    auth: Option<(HeaderName, HeaderValue)>,
    user_header: Option<HeaderName>,
}

impl OrdersSkill {
    /// Builds the skill: validates `config`, reads the auth value's environment variable and
    /// creates the HTTP client.
    pub fn new(config: OrdersConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let id_pattern = config.id_regex()?;
        let auth = match &config.auth {
            None => None,
            Some(auth) => {
                let value = match (&auth.value, &auth.value_env) {
                    (Some(v), _) => v.clone(),
                    (None, Some(var)) => std::env::var(var)
                        .map_err(|_| ConfigError::MissingEnv { name: var.clone() })?,
                    (None, None) => String::new(),
                };
                Some((header_name(&auth.name)?, header_value(&auth.name, &value)?))
            }
        };
        let user_header = match &config.send_user {
            SendUser::Header(name) => Some(header_name(name)?),
            SendUser::Query(_) | SendUser::None => None,
        };
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // An order lookup is one GET; a redirect would be a misconfiguration and could leak
            // the auth header to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ConfigError::Client)?;
        Ok(OrdersSkill {
            config,
            client,
            id_pattern,
            auth,
            user_header,
        })
    }

    /// The configuration the skill was built from.
    pub fn config(&self) -> &OrdersConfig {
        &self.config
    }

    /// The URL for `order_id` (already checked against the pattern).
    fn url_for(&self, order_id: &str) -> String {
        let encoded = utf8_percent_encode(order_id, ID_ENCODE).to_string();
        self.config.url.replace(ORDER_ID_PLACEHOLDER, &encoded)
    }

    /// Sends the request and reads a bounded body; `Ok(None)` means "no such order".
    async fn fetch(&self, order_id: &str, user: &str) -> Result<Option<Value>, SkillError> {
        let mut request = self.client.get(self.url_for(order_id));
        if let Some((name, value)) = &self.auth {
            request = request.header(name.clone(), value.clone());
        }
        match &self.config.send_user {
            SendUser::Header(_) => {
                if let Some(name) = &self.user_header {
                    let value = HeaderValue::from_str(user).map_err(|_| {
                        SkillError::Backend(
                            "the caller's user id cannot be sent in a header".into(),
                        )
                    })?;
                    request = request.header(name.clone(), value);
                }
            }
            SendUser::Query(param) => request = request.query(&[(param.as_str(), user)]),
            SendUser::None => {}
        }
        let mut response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN {
            tracing::debug!(skill = %self.config.name, order_id, status = status.as_u16(), "Order back-end has no such order for this user");
            return Ok(None);
        }
        if !status.is_success() {
            return Err(SkillError::Backend(format!(
                "order back-end answered HTTP {}",
                status.as_u16()
            )));
        }
        let limit = self.config.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(SkillError::Backend(format!(
                "order back-end answer is larger than {limit} bytes"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(SkillError::Backend(format!(
                    "order back-end answer is larger than {limit} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| SkillError::Backend(format!("order back-end answer is not JSON: {e}")))
    }

    fn transport_error(&self, err: &reqwest::Error) -> SkillError {
        if err.is_timeout() {
            SkillError::Backend(format!(
                "order back-end did not answer within {} ms",
                self.config.timeout_ms
            ))
        } else if err.is_connect() {
            SkillError::Backend("order back-end is unreachable".to_owned())
        } else {
            // reqwest's Display includes the URL, which holds only the validated id: safe to log.
            SkillError::Backend(format!("order back-end request failed: {err}"))
        }
    }

    /// Maps the back-end's order to ours. Required fields missing is a back-end/mapping fault.
    fn map_order(&self, raw: &Value, locale: &str) -> Result<(String, Value), SkillError> {
        let fields = &self.config.fields;
        let lookup = |pointer: &str| -> Option<&Value> {
            localised(raw, pointer, locale, &self.config.default_locale)
        };
        let required = |name: &str, pointer: &str| -> Result<String, SkillError> {
            lookup(pointer).and_then(scalar_string).ok_or_else(|| {
                SkillError::Backend(format!(
                    "order back-end answer has no `{name}` at {pointer:?} (check `fields.{name}`)"
                ))
            })
        };
        let owner = required("owner", &fields.owner)?;
        let mut data = Map::new();
        data.insert("id".into(), Value::String(required("id", &fields.id)?));
        data.insert(
            "status".into(),
            Value::String(required("status", &fields.status)?),
        );
        let strings = [
            ("status_label", &fields.status_label),
            ("carrier", &fields.carrier),
            ("tracking_no", &fields.tracking_no),
            ("eta", &fields.eta),
        ];
        for (name, pointer) in strings {
            let value = pointer
                .as_deref()
                .and_then(lookup)
                .and_then(scalar_string)
                .map_or(Value::Null, Value::String);
            data.insert(name.into(), value);
        }
        let raw_fields = [("items", &fields.items), ("amount", &fields.amount)];
        for (name, pointer) in raw_fields {
            let value = pointer
                .as_deref()
                .and_then(lookup)
                .cloned()
                .unwrap_or(Value::Null);
            data.insert(name.into(), value);
        }
        for (name, pointer) in &fields.extra {
            data.insert(
                name.clone(),
                lookup(pointer).cloned().unwrap_or(Value::Null),
            );
        }
        Ok((owner, Value::Object(data)))
    }
}

/// Resolves `pointer` in `raw`, substituting the caller's locale, then the default one.
fn localised<'a>(raw: &'a Value, pointer: &str, locale: &str, default: &str) -> Option<&'a Value> {
    if !pointer.contains(LOCALE_PLACEHOLDER) {
        return raw.pointer(pointer).filter(|v| !v.is_null());
    }
    [locale, default]
        .into_iter()
        .filter(|l| !l.is_empty())
        .find_map(|l| {
            raw.pointer(&pointer.replace(LOCALE_PLACEHOLDER, l))
                .filter(|v| !v.is_null())
        })
}

/// A string or number as text; anything else is not a usable scalar.
fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn header_name(name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| ConfigError::Header {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, ConfigError> {
    let mut value = HeaderValue::from_str(value).map_err(|e| ConfigError::Header {
        name: name.to_owned(),
        reason: format!("value: {e}"),
    })?;
    // Keeps the credential out of debug output (reqwest and our own `Debug`).
    value.set_sensitive(true);
    Ok(value)
}

#[async_trait]
impl Skill for OrdersSkill {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn info(&self) -> SkillInfo {
        SkillInfo {
            description: "Looks up one of the caller's orders: status, carrier, tracking number, \
                          ETA, items and amount. Orders of other users are reported as not found."
                .to_owned(),
            required_args: vec!["order_id".to_owned()],
            optional_args: Vec::new(),
        }
    }

    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        let order_id = req.arg_str("order_id")?;
        if !self.id_pattern.is_match(&order_id) || order_id.chars().all(|c| c == '.') {
            return Err(SkillError::BadArgument {
                name: "order_id".to_owned(),
                reason: "does not look like an order number".to_owned(),
            });
        }
        let user = req.caller.user.trim();
        if user.is_empty() {
            // Without an authenticated user there is nobody to scope the lookup to.
            return Ok(SkillOutcome::declined(
                "order lookups need an identified customer",
            ));
        }
        let Some(raw) = self.fetch(&order_id, user).await? else {
            return Ok(SkillOutcome::not_found(NOT_FOUND_REASON));
        };
        let (owner, data) = self.map_order(&raw, &req.caller.locale)?;
        if owner != user {
            tracing::warn!(
                skill = %self.config.name,
                order_id,
                user,
                tenant = %req.caller.tenant,
                session = %req.caller.session,
                "Order belongs to another customer; answered not found"
            );
            return Ok(SkillOutcome::not_found(NOT_FOUND_REASON));
        }
        Ok(SkillOutcome::found(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn skill() -> OrdersSkill {
        OrdersSkill::new(OrdersConfig::for_demo("http://127.0.0.1:9", "t")).unwrap()
    }

    #[test]
    fn ids_are_percent_encoded_into_the_url() {
        let s = skill();
        assert_eq!(
            s.url_for("A1/../x?y#z"),
            "http://127.0.0.1:9/demo/orders/A1%2F..%2Fx%3Fy%23z"
        );
    }

    #[test]
    fn mapping_picks_localised_fields_and_falls_back() {
        let s = skill();
        let raw = json!({
            "order_no": "A12345678", "customer_id": "u-a", "state": "shipped",
            "state_label": {"zh": "已发货", "en": "Shipped"},
            "shipment": {"carrier": {"name": {"zh": "顺丰速运"}}, "tracking_no": 123},
            "total": {"amount": "1.00"}
        });
        let (owner, data) = s.map_order(&raw, "en").unwrap();
        assert_eq!(owner, "u-a");
        assert_eq!(data["status_label"], "Shipped");
        assert_eq!(
            data["carrier"], "顺丰速运",
            "falls back to the default locale"
        );
        assert_eq!(data["tracking_no"], "123");
        assert_eq!(data["eta"], Value::Null);
        assert_eq!(data["amount"], json!({"amount": "1.00"}));
        assert!(
            data.get("owner").is_none(),
            "the owner is checked, not returned"
        );
    }

    #[test]
    fn a_missing_owner_is_a_backend_fault_not_a_pass() {
        let s = skill();
        let raw = json!({"order_no": "A12345678", "state": "paid"});
        let err = s.map_order(&raw, "zh").unwrap_err();
        assert!(matches!(err, SkillError::Backend(m) if m.contains("owner")));
    }

    #[test]
    fn a_missing_env_var_fails_the_build() {
        let mut cfg = OrdersConfig::new("http://h/{order_id}");
        cfg.auth = Some(crate::config::AuthHeaderConfig {
            name: "X-Key".into(),
            value: None,
            value_env: Some("KEFU_TEST_SURELY_UNSET_ORDERS_TOKEN".into()),
        });
        assert!(matches!(
            OrdersSkill::new(cfg),
            Err(ConfigError::MissingEnv { .. })
        ));
    }
}
