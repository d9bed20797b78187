//! The order skill's configuration, as a bot or the runtime writes it, and its validation.
//!
//! [`OrdersConfig`] is plain serde data (`deny_unknown_fields`, every field documented, defaults
//! where a sensible one exists). [`OrdersConfig::validate`] checks everything that can be
//! checked before the first call — the URL template, the order-id pattern, the JSON pointers,
//! the auth header and the environment variable it may come from — so a bad configuration
//! fails at load (and in `kefu check`), not in the middle of a conversation.
//!
//! Invariant: a validated configuration's URL template contains `{order_id}` and, with any
//! order id substituted, is an `http://` URL; the id pattern is matched against the whole id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The placeholder the URL template must contain; replaced by the percent-encoded order id.
pub const ORDER_ID_PLACEHOLDER: &str = "{order_id}";
/// The placeholder a JSON pointer may contain; replaced by the caller's locale (then the
/// configured default locale if the caller's is missing).
pub const LOCALE_PLACEHOLDER: &str = "{locale}";

/// Configuration of one order back-end (one [`crate::OrdersSkill`]).
///
/// ```yaml
/// url: http://orders.internal:8080/api/orders/{order_id}
/// auth: { name: Authorization, value_env: ORDERS_API_TOKEN }
/// send_user: { header: X-Customer-Id }
/// fields: { id: /order_no, owner: /customer_id, status: /state }
/// timeout_ms: 2000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersConfig {
    /// The skill name flows call (`call: orders`).
    #[serde(default = "default_name")]
    pub name: String,
    /// URL template of one order, with `{order_id}` where the id goes (path or query). Only
    /// `http://` is supported by this build: reach TLS back-ends through a local proxy.
    pub url: String,
    /// A header that authenticates the runtime to the back-end (API key, bearer token).
    #[serde(default)]
    pub auth: Option<AuthHeaderConfig>,
    /// How the caller's user id is passed to the back-end, so a back-end that scopes by user can
    /// do so too. The skill checks ownership itself either way.
    #[serde(default = "default_send_user")]
    pub send_user: SendUser,
    /// Where each of our fields is in the back-end's JSON (JSON pointers, RFC 6901).
    #[serde(default)]
    pub fields: FieldMap,
    /// Total time allowed for one back-end request (connect, headers and body), in ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Regular expression an order id must match in full before any request is made.
    #[serde(default = "default_order_id_pattern")]
    pub order_id_pattern: String,
    /// Locale tried when a `{locale}` pointer has no value for the caller's locale.
    #[serde(default = "default_locale")]
    pub default_locale: String,
    /// Largest response body accepted, in bytes (a back-end answering more is treated as failing).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

/// A header carrying the back-end credentials. Exactly one of `value` and `value_env` is set.
/// `Debug` shows the header name and the variable's name, never the value (configurations end
/// up in logs and panic messages).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthHeaderConfig {
    /// The header name (`Authorization`, `X-Api-Key`).
    pub name: String,
    /// The header value, literally (fine for demos; prefer `value_env` for real secrets).
    #[serde(default)]
    pub value: Option<String>,
    /// The environment variable holding the header value, read when the skill is built.
    #[serde(default)]
    pub value_env: Option<String>,
}

impl std::fmt::Debug for AuthHeaderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHeaderConfig")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("value_env", &self.value_env)
            .finish()
    }
}

/// How the caller's user id travels to the back-end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SendUser {
    /// In a request header of this name.
    Header(String),
    /// In a query parameter of this name.
    Query(String),
    /// Not at all (the back-end does not scope by user; the skill's own check still applies).
    None,
}

/// JSON pointers from the back-end's order to our fields. `{locale}` in a pointer is replaced
/// by the caller's locale, so localised labels (`/state_label/{locale}`) can be picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMap {
    /// The order id (required in the answer).
    pub id: String,
    /// The order's status code (required in the answer).
    pub status: String,
    /// A human label for the status, if the back-end has one.
    pub status_label: Option<String>,
    /// The carrier's name.
    pub carrier: Option<String>,
    /// The parcel's tracking number.
    pub tracking_no: Option<String>,
    /// The estimated delivery date.
    pub eta: Option<String>,
    /// The order lines, passed to the flow as the back-end has them.
    pub items: Option<String>,
    /// The amount, passed to the flow as the back-end has it (number, string or object).
    pub amount: Option<String>,
    /// The user the order belongs to (required in the answer: compared to the caller).
    pub owner: String,
    /// More fields to pass to the flow: our name → pointer.
    pub extra: BTreeMap<String, String>,
}

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap {
            id: "/id".to_owned(),
            status: "/status".to_owned(),
            status_label: None,
            carrier: Some("/carrier".to_owned()),
            tracking_no: Some("/tracking_no".to_owned()),
            eta: Some("/eta".to_owned()),
            items: Some("/items".to_owned()),
            amount: Some("/amount".to_owned()),
            owner: "/owner".to_owned(),
            extra: BTreeMap::new(),
        }
    }
}

impl FieldMap {
    /// Every pointer with the name of the field it fills, for validation and error messages.
    pub(crate) fn pointers(&self) -> Vec<(&str, &str)> {
        let mut all = vec![
            ("id", self.id.as_str()),
            ("status", self.status.as_str()),
            ("owner", self.owner.as_str()),
        ];
        let optional = [
            ("status_label", &self.status_label),
            ("carrier", &self.carrier),
            ("tracking_no", &self.tracking_no),
            ("eta", &self.eta),
            ("items", &self.items),
            ("amount", &self.amount),
        ];
        all.extend(
            optional
                .into_iter()
                .filter_map(|(name, p)| p.as_deref().map(|p| (name, p))),
        );
        all.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        all
    }
}

fn default_name() -> String {
    "orders".to_owned()
}

fn default_send_user() -> SendUser {
    SendUser::Header("X-Kefu-User".to_owned())
}

fn default_timeout_ms() -> u64 {
    3_000
}

fn default_order_id_pattern() -> String {
    "[A-Za-z0-9][A-Za-z0-9_-]{0,63}".to_owned()
}

fn default_locale() -> String {
    "zh".to_owned()
}

fn default_max_response_bytes() -> usize {
    1024 * 1024
}

/// A configuration that cannot work, found before the first call.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL template is unusable.
    #[error("orders `url` {url:?}: {reason}")]
    Url {
        /// The template as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The order-id pattern is not a valid regular expression.
    #[error("orders `order_id_pattern` {pattern:?}: {source}")]
    Pattern {
        /// The pattern as configured.
        pattern: String,
        /// The regex compiler's complaint.
        source: regex::Error,
    },
    /// A field pointer is not a JSON pointer.
    #[error("orders `fields.{field}` {pointer:?}: a JSON pointer must be empty or start with `/`")]
    Pointer {
        /// Our field name.
        field: String,
        /// The pointer as configured.
        pointer: String,
    },
    /// A header name or value cannot be sent.
    #[error("orders header {name:?}: {reason}")]
    Header {
        /// The header name as configured.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The auth value's environment variable is not set (or not Unicode).
    #[error("orders `auth.value_env`: environment variable {name} is not set")]
    MissingEnv {
        /// The variable's name.
        name: String,
    },
    /// A number is out of range.
    #[error("orders `{field}`: {reason}")]
    Range {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("orders HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl OrdersConfig {
    /// A configuration with `url` and defaults for everything else.
    pub fn new(url: impl Into<String>) -> Self {
        OrdersConfig {
            name: default_name(),
            url: url.into(),
            auth: None,
            send_user: default_send_user(),
            fields: FieldMap::default(),
            timeout_ms: default_timeout_ms(),
            order_id_pattern: default_order_id_pattern(),
            default_locale: default_locale(),
            max_response_bytes: default_max_response_bytes(),
        }
    }

    /// The configuration that talks to the demo back-end ([`crate::demo`]) at `base_url`
    /// (`http://127.0.0.1:8080`), matching the shipped fixture's field names and order ids.
    pub fn for_demo(base_url: &str, token: impl Into<String>) -> Self {
        let mut fields = FieldMap {
            id: "/order_no".to_owned(),
            status: "/state".to_owned(),
            status_label: Some("/state_label/{locale}".to_owned()),
            carrier: Some("/shipment/carrier/name/{locale}".to_owned()),
            tracking_no: Some("/shipment/tracking_no".to_owned()),
            eta: Some("/shipment/eta".to_owned()),
            items: Some("/items".to_owned()),
            amount: Some("/total".to_owned()),
            owner: "/customer_id".to_owned(),
            extra: BTreeMap::new(),
        };
        fields
            .extra
            .insert("placed_at".to_owned(), "/placed_at".to_owned());
        OrdersConfig {
            url: format!(
                "{}/demo/orders/{ORDER_ID_PLACEHOLDER}",
                base_url.trim_end_matches('/')
            ),
            auth: Some(AuthHeaderConfig {
                name: crate::demo::DEMO_AUTH_HEADER.to_owned(),
                value: Some(token.into()),
                value_env: None,
            }),
            send_user: SendUser::Header(crate::demo::DEMO_USER_HEADER.to_owned()),
            fields,
            order_id_pattern: "[A-Za-z0-9]{8,20}".to_owned(),
            ..OrdersConfig::new("")
        }
    }

    /// Checks the configuration without building a client (for `kefu check`); environment
    /// variables are not read here, since the checking machine may not have them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::Range {
                field: "name",
                reason: "must not be empty",
            });
        }
        self.url_template()?;
        self.id_regex()?;
        for (field, pointer) in self.fields.pointers() {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(ConfigError::Pointer {
                    field: field.to_owned(),
                    pointer: pointer.to_owned(),
                });
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > 120_000 {
            return Err(ConfigError::Range {
                field: "timeout_ms",
                reason: "must be between 1 and 120000",
            });
        }
        if self.max_response_bytes == 0 {
            return Err(ConfigError::Range {
                field: "max_response_bytes",
                reason: "must be positive",
            });
        }
        if let Some(auth) = &self.auth {
            match (&auth.value, &auth.value_env) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(ConfigError::Header {
                        name: auth.name.clone(),
                        reason: "set exactly one of `value` and `value_env`".to_owned(),
                    });
                }
            }
            check_header_name(&auth.name)?;
        }
        if let SendUser::Header(name) = &self.send_user {
            check_header_name(name)?;
        }
        if let SendUser::Query(name) = &self.send_user
            && name.trim().is_empty()
        {
            return Err(ConfigError::Range {
                field: "send_user.query",
                reason: "must not be empty",
            });
        }
        Ok(())
    }

    /// The URL template, checked: contains the placeholder and yields an `http://` URL.
    pub(crate) fn url_template(&self) -> Result<String, ConfigError> {
        let bad = |reason: &str| ConfigError::Url {
            url: self.url.clone(),
            reason: reason.to_owned(),
        };
        if !self.url.contains(ORDER_ID_PLACEHOLDER) {
            return Err(bad("must contain {order_id}"));
        }
        let sample = self.url.replace(ORDER_ID_PLACEHOLDER, "A1");
        let parsed = reqwest::Url::parse(&sample).map_err(|e| bad(&e.to_string()))?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(bad("https is not supported by this build (no TLS stack); \
                     reach the back-end over http on a private network or via a local TLS proxy"));
            }
            _ => return Err(bad("must be an http:// URL")),
        }
        if parsed.host_str().is_none() {
            return Err(bad("has no host"));
        }
        Ok(self.url.clone())
    }

    /// The order-id pattern, anchored so that it must match the whole id.
    pub(crate) fn id_regex(&self) -> Result<regex::Regex, ConfigError> {
        regex::Regex::new(&format!("^(?:{})$", self.order_id_pattern)).map_err(|source| {
            ConfigError::Pattern {
                pattern: self.order_id_pattern.clone(),
                source,
            }
        })
    }
}

fn check_header_name(name: &str) -> Result<(), ConfigError> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|e| ConfigError::Header {
            name: name.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_from_a_minimal_config() {
        let cfg: OrdersConfig =
            serde_json::from_str(r#"{"url": "http://h:1/o/{order_id}"}"#).unwrap();
        assert_eq!(cfg, OrdersConfig::new("http://h:1/o/{order_id}"));
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            serde_json::from_str::<OrdersConfig>(r#"{"url": "http://h/{order_id}", "ur": 1}"#)
                .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn bad_configs_fail_validation_with_the_field_named() {
        let mut cfg = OrdersConfig::new("http://h/orders");
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("{order_id}")
        );
        cfg.url = "https://h/{order_id}".to_owned();
        assert!(cfg.validate().unwrap_err().to_string().contains("https"));
        cfg.url = "ftp://h/{order_id}".to_owned();
        assert!(cfg.validate().is_err());
        cfg.url = "http://h/{order_id}".to_owned();
        cfg.order_id_pattern = "[".to_owned();
        assert!(matches!(cfg.validate(), Err(ConfigError::Pattern { .. })));
        cfg.order_id_pattern = default_order_id_pattern();
        cfg.fields.owner = "customer".to_owned();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("fields.owner")
        );
        cfg.fields.owner = "/customer".to_owned();
        cfg.auth = Some(AuthHeaderConfig {
            name: "X-Key".to_owned(),
            value: Some("a".to_owned()),
            value_env: Some("B".to_owned()),
        });
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        cfg.auth = Some(AuthHeaderConfig {
            name: "bad header".to_owned(),
            value: Some("a".to_owned()),
            value_env: None,
        });
        assert!(matches!(cfg.validate(), Err(ConfigError::Header { .. })));
        cfg.auth = None;
        cfg.timeout_ms = 0;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn the_id_pattern_is_anchored() {
        let cfg = OrdersConfig::new("http://h/{order_id}");
        let re = cfg.id_regex().unwrap();
        assert!(re.is_match("A12345678"));
        assert!(!re.is_match("A1/../admin"));
        assert!(!re.is_match("../A1"));
        assert!(!re.is_match(""));
    }

    #[test]
    fn debug_output_hides_the_auth_value() {
        let mut cfg = OrdersConfig::new("http://h/{order_id}");
        cfg.auth = Some(AuthHeaderConfig {
            name: "X-Api-Key".to_owned(),
            value: Some("s3cr3t".to_owned()),
            value_env: None,
        });
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("X-Api-Key") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn the_demo_config_is_valid() {
        OrdersConfig::for_demo("http://127.0.0.1:9/", "t")
            .validate()
            .unwrap();
    }
}
