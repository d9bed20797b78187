//! Remote skills over HTTP: a skill whose work is done by a server in any language.
//!
//! Two contracts, chosen per skill with [`Protocol`]:
//! - **Native** ([`Protocol::Native`]): kefu POSTs the [`SkillRequest`] as JSON to the URL and
//!   the server answers a [`kefu_plugin::SkillOutcome`] as JSON (`{"outcome": "found", "data":
//!   ...}`). Failures are a non-2xx status, optionally with `{"error": "backend" | "config" |
//!   "bad_argument", "message": ..., "name": ...}`. See `docs/plugins.md`.
//! - **Rasa** ([`Protocol::Rasa`]): the Rasa action-server protocol, so existing `rasa-sdk`
//!   custom actions run unchanged. kefu POSTs `{url}/webhook` with `next_action`, `sender_id`,
//!   `tracker`, `domain` and `version`; the answer's `slot` events become slot updates and its
//!   text responses become messages (see [`rasa`]).
//!
//! Invariants:
//! - A call never outlives `timeout_ms` (the HTTP client's own timeout; the skill host adds its
//!   own on top) and never reads more than [`MAX_ANSWER_BYTES`] of an answer.
//! - Configured header values (tokens) are sent as sensitive headers and never appear in
//!   `Debug` output, errors or logs; neither do credentials written into the URL.
//! - Every failure is a [`SkillError`] with the status or cause in words; none panics.

mod client;
mod native;
pub mod rasa;

use std::collections::BTreeMap;
use std::fmt;

use kefu_plugin::{Skill, SkillError, SkillInfo, SkillOutcome, SkillRequest, async_trait};
use serde::{Deserialize, Serialize};

use client::Client;
pub use client::MAX_ANSWER_BYTES;

/// Which contract the remote server speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// kefu's own JSON contract: `SkillRequest` in, `SkillOutcome` out.
    #[default]
    Native,
    /// The Rasa action-server protocol (`rasa-sdk`).
    Rasa,
}

fn default_timeout_ms() -> u64 {
    2_000
}

/// How to reach one remote skill.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSkillConfig {
    /// The name flows call the skill by.
    pub name: String,
    /// Native: the endpoint to POST to. Rasa: the action server's base URL (`/webhook` is
    /// appended unless the URL already ends with it).
    pub url: String,
    /// The contract the server speaks.
    #[serde(default)]
    pub protocol: Protocol,
    /// How long one HTTP exchange may take, connecting included.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Headers sent with every call, typically `Authorization`. Values are treated as secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Rasa: the action to run (`next_action`); defaults to the skill's name.
    #[serde(default)]
    pub action: Option<String>,
    /// Rasa: the domain sent with each call; defaults to a minimal domain declaring the slots
    /// passed as arguments. Give the bot's real domain when actions read it (forms).
    #[serde(default)]
    pub domain: Option<serde_json::Value>,
}

impl fmt::Debug for HttpSkillConfig {
    // Header values are credentials: show only their names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSkillConfig")
            .field("name", &self.name)
            .field("url", &client::redact_url(&self.url))
            .field("protocol", &self.protocol)
            .field("timeout_ms", &self.timeout_ms)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("action", &self.action)
            .field("domain", &self.domain.as_ref().map(|_| "<domain>"))
            .finish()
    }
}

impl HttpSkillConfig {
    /// A native-contract skill named `name` at `url`, with the default timeout.
    pub fn native(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            protocol: Protocol::Native,
            timeout_ms: default_timeout_ms(),
            headers: BTreeMap::new(),
            action: None,
            domain: None,
        }
    }

    /// A Rasa action served by the action server at `url`, called by flows as `name`.
    pub fn rasa(
        name: impl Into<String>,
        url: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self {
            protocol: Protocol::Rasa,
            action: Some(action.into()),
            ..Self::native(name, url)
        }
    }

    /// The same configuration with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The same configuration with another timeout.
    pub fn with_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }
}

/// Why a remote skill could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpSkillError {
    /// The configuration is unusable.
    #[error("remote skill `{name}`: {reason}")]
    Config {
        /// The skill.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("remote skill `{name}`: the HTTP client could not be built: {reason}")]
    Client {
        /// The skill.
        name: String,
        /// Why.
        reason: String,
    },
}

/// A skill served over HTTP. Cheap to share; one connection pool per skill.
pub struct HttpSkill {
    config: HttpSkillConfig,
    client: Client,
}

impl fmt::Debug for HttpSkill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSkill")
            .field("config", &self.config)
            .finish()
    }
}

impl HttpSkill {
    /// Checks `config` and builds the client.
    pub fn new(config: HttpSkillConfig) -> Result<Self, HttpSkillError> {
        let bad = |reason: String| HttpSkillError::Config {
            name: config.name.clone(),
            reason,
        };
        if config.name.trim().is_empty() {
            return Err(bad("the name is empty".to_owned()));
        }
        if config.timeout_ms == 0 {
            return Err(bad("timeout_ms must be more than zero".to_owned()));
        }
        if config.protocol == Protocol::Native && config.action.is_some() {
            return Err(bad("`action` is only for the rasa protocol".to_owned()));
        }
        let endpoint = match config.protocol {
            Protocol::Native => config.url.clone(),
            Protocol::Rasa => rasa::webhook_url(&config.url),
        };
        let client =
            Client::new(&endpoint, config.timeout_ms, &config.headers).map_err(|e| match e {
                client::BuildError::Config(reason) => bad(reason),
                client::BuildError::Client(reason) => HttpSkillError::Client {
                    name: config.name.clone(),
                    reason,
                },
            })?;
        Ok(Self { config, client })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &HttpSkillConfig {
        &self.config
    }

    fn action(&self) -> &str {
        self.config.action.as_deref().unwrap_or(&self.config.name)
    }
}

#[async_trait]
impl Skill for HttpSkill {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn info(&self) -> SkillInfo {
        let what = match self.config.protocol {
            Protocol::Native => "remote skill (native JSON contract)".to_owned(),
            Protocol::Rasa => format!("Rasa custom action `{}`", self.action()),
        };
        SkillInfo {
            description: format!("{what} at {}", self.client.url()),
            ..SkillInfo::default()
        }
    }

    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        match self.config.protocol {
            Protocol::Native => native::call(&self.client, &req).await,
            Protocol::Rasa => {
                rasa::call(
                    &self.client,
                    self.action(),
                    self.config.domain.as_ref(),
                    &req,
                )
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked_and_secrets_stay_out_of_debug() {
        let cfg = HttpSkillConfig::native("weather", "https://user:pw@example.com/skill")
            .with_header("Authorization", "Bearer s3cret");
        let shown = format!("{:?}", HttpSkill::new(cfg).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(shown.contains("Authorization"));

        for bad in [
            HttpSkillConfig::native("x", "ftp://example.com"),
            HttpSkillConfig::native("x", "not a url"),
            HttpSkillConfig::native("", "http://example.com"),
            HttpSkillConfig::native("x", "http://example.com").with_timeout_ms(0),
            HttpSkillConfig::native("x", "http://example.com").with_header("bad header", "v"),
            HttpSkillConfig::native("x", "http://example.com").with_header("x-k", "line\nbreak"),
        ] {
            assert!(
                matches!(
                    HttpSkill::new(bad.clone()),
                    Err(HttpSkillError::Config { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn configs_parse_from_toml_like_json_with_defaults() {
        let cfg: HttpSkillConfig = serde_json::from_value(serde_json::json!({
            "name": "order_status",
            "url": "http://127.0.0.1:5055",
            "protocol": "rasa",
            "action": "action_check_order",
            "headers": {"Authorization": "Bearer t"}
        }))
        .unwrap();
        assert_eq!(cfg.protocol, Protocol::Rasa);
        assert_eq!(cfg.timeout_ms, 2_000);
        let skill = HttpSkill::new(cfg).unwrap();
        assert_eq!(skill.name(), "order_status");
        assert!(
            skill
                .info()
                .description
                .contains("http://127.0.0.1:5055/webhook")
        );
        let unknown = serde_json::from_value::<HttpSkillConfig>(serde_json::json!({
            "name": "x", "url": "http://h", "tiemout_ms": 5
        }));
        assert!(unknown.is_err(), "typos are refused");
    }
}
