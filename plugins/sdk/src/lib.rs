//! The kefu plugin SDK: what a plugin author implements to add a skill to a bot.
//!
//! A skill is one async [`Skill::call`] that takes a [`SkillRequest`] and answers a
//! [`SkillOutcome`]. The SDK is deliberately tiny and knows nothing of actors, stores or HTTP:
//! the runtime hosts each skill in a pool of supervised actors with a timeout, a circuit breaker
//! and panic isolation, so a plugin author writes plain async Rust.
//!
//! Two rules the types make hard to break:
//! - **Identity comes from the runtime.** [`Caller`] (tenant, user, session, channel, locale) is
//!   filled in by the runtime from the authenticated conversation. It is never parsed from user
//!   text or model output, so a skill that scopes data by `caller.user` cannot be talked into
//!   showing another user's records.
//! - **Outcomes are values, failures are errors.** "No such order" is a
//!   [`SkillOutcome::NotFound`] the flow can answer politely; a back-end that is down is a
//!   [`SkillError`] that counts against the circuit breaker and makes the flow fall back.
//!
//! ```
//! use kefu_plugin::{Skill, SkillError, SkillOutcome, SkillRequest, async_trait};
//!
//! struct Echo;
//!
//! #[async_trait]
//! impl Skill for Echo {
//!     fn name(&self) -> &str {
//!         "echo"
//!     }
//!
//!     async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
//!         let text = req.arg_str("text")?;
//!         Ok(SkillOutcome::found(serde_json::json!({ "text": text, "user": req.caller.user })))
//!     }
//! }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use async_trait::async_trait;

/// Who is asking, as established by the runtime (never by the user's words).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The tenant (one runtime may serve several brands); `default` when not configured.
    pub tenant: String,
    /// The authenticated end user the conversation belongs to.
    pub user: String,
    /// The conversation's session key.
    pub session: String,
    /// The channel the conversation runs on (`web`, `wechat`, `api`, ...).
    pub channel: String,
    /// The conversation's language (`zh`, `en`).
    pub locale: String,
}

/// One call of a skill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkillRequest {
    /// The skill's name as the flow called it (one plugin may serve several names).
    pub skill: String,
    /// Who is asking.
    pub caller: Caller,
    /// The arguments the flow passed, rendered from its templates.
    #[serde(default)]
    pub args: Map<String, Value>,
}

impl SkillRequest {
    /// A request for `skill` on behalf of `caller` with no arguments.
    pub fn new(skill: impl Into<String>, caller: Caller) -> Self {
        Self {
            skill: skill.into(),
            caller,
            args: Map::new(),
        }
    }

    /// The same request with one more argument.
    pub fn with_arg(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.args.insert(key.into(), value.into());
        self
    }

    /// An argument, if present and not null.
    pub fn arg(&self, key: &str) -> Option<&Value> {
        self.args.get(key).filter(|v| !v.is_null())
    }

    /// A required string argument (numbers are accepted and rendered, since templates often
    /// turn an order number into a JSON number).
    pub fn arg_str(&self, key: &str) -> Result<String, SkillError> {
        match self.arg(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(SkillError::BadArgument {
                name: key.to_owned(),
                reason: format!("expected a non-empty string, got {}", type_name(other)),
            }),
            None => Err(SkillError::BadArgument {
                name: key.to_owned(),
                reason: "missing".to_owned(),
            }),
        }
    }

    /// An optional string argument (`None` when absent, null or empty).
    pub fn opt_str(&self, key: &str) -> Option<String> {
        match self.arg(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "an empty string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a skill found out. Every variant is a normal answer the flow can act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SkillOutcome {
    /// The skill has an answer; `data` is kept in the flow's result slot.
    Found {
        /// The answer (an order, a knowledge-base passage with its source, a ticket, ...).
        data: Value,
        /// Texts to say to the user, if the skill wants to speak directly (most leave the
        /// wording to the flow).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        messages: Vec<String>,
    },
    /// Nothing matches (no such order, no knowledge-base entry above the confidence floor).
    NotFound {
        /// Why, for logs and for the flow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The skill will not do this for this caller (not their order, not allowed).
    Declined {
        /// Why, for logs and for the flow; never shown verbatim if it names other users.
        reason: String,
    },
    /// A person has to handle this; the flow hands off.
    NeedsHuman {
        /// Why, for the agent.
        reason: String,
    },
}

impl SkillOutcome {
    /// `Found` with `data` and no messages.
    pub fn found(data: Value) -> Self {
        SkillOutcome::Found {
            data,
            messages: Vec::new(),
        }
    }

    /// `NotFound` with a reason.
    pub fn not_found(reason: impl Into<String>) -> Self {
        SkillOutcome::NotFound {
            reason: Some(reason.into()),
        }
    }

    /// `Declined` with a reason.
    pub fn declined(reason: impl Into<String>) -> Self {
        SkillOutcome::Declined {
            reason: reason.into(),
        }
    }

    /// `NeedsHuman` with a reason.
    pub fn needs_human(reason: impl Into<String>) -> Self {
        SkillOutcome::NeedsHuman {
            reason: reason.into(),
        }
    }

    /// The outcome's name as flows see it: `found`, `not_found`, `declined`, `needs_human`.
    pub fn kind(&self) -> &'static str {
        match self {
            SkillOutcome::Found { .. } => "found",
            SkillOutcome::NotFound { .. } => "not_found",
            SkillOutcome::Declined { .. } => "declined",
            SkillOutcome::NeedsHuman { .. } => "needs_human",
        }
    }
}

/// A skill could not answer. Counts against the skill's circuit breaker; the flow falls back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
// Adjacently tagged: internal tagging cannot carry the newtype string variants.
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum SkillError {
    /// An argument the flow passed is missing or has the wrong shape (a bot design error).
    #[error("argument `{name}`: {reason}")]
    BadArgument {
        /// The argument's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A back-end the skill depends on failed or answered nonsense.
    #[error("back-end failure: {0}")]
    Backend(String),
    /// The skill is misconfigured (missing URL, bad template).
    #[error("configuration: {0}")]
    Config(String),
    /// The runtime gave up waiting (set by the host, not by skills).
    #[error("timed out after {ms} ms")]
    Timeout {
        /// The timeout that expired.
        ms: u64,
    },
    /// The skill panicked (set by the host: the panic is contained).
    #[error("the skill panicked: {0}")]
    Panicked(String),
    /// The circuit breaker is open: recent calls failed, so this one was not attempted.
    #[error("circuit open: {0}")]
    CircuitOpen(String),
    /// No skill by that name is registered (set by the host).
    #[error("no skill named `{0}`")]
    Unknown(String),
}

/// Static facts about a skill, for `kefu check` and the docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillInfo {
    /// What it does, for designers.
    pub description: String,
    /// Argument names it requires.
    pub required_args: Vec<String>,
    /// Argument names it accepts besides the required ones.
    pub optional_args: Vec<String>,
}

/// A skill: something a flow can call by name.
///
/// Implementations must be cheap to share (`Send + Sync`); the runtime calls `call`
/// concurrently from its actor pool, up to the configured pool size.
#[async_trait]
pub trait Skill: Send + Sync + 'static {
    /// The name flows call it by (`kb`, `orders`, `tickets.create`).
    fn name(&self) -> &str;

    /// What it does and which arguments it takes.
    fn info(&self) -> SkillInfo {
        SkillInfo::default()
    }

    /// Answers one request.
    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_serialise_with_a_tag() {
        let found = SkillOutcome::found(json!({"id": 1}));
        assert_eq!(
            serde_json::to_value(&found).unwrap(),
            json!({"outcome": "found", "data": {"id": 1}})
        );
        let back: SkillOutcome =
            serde_json::from_value(json!({"outcome": "declined", "reason": "not yours"})).unwrap();
        assert_eq!(back, SkillOutcome::declined("not yours"));
        assert_eq!(back.kind(), "declined");
    }

    #[test]
    fn every_error_serialises_and_round_trips() {
        let errors = [
            SkillError::BadArgument {
                name: "order_id".into(),
                reason: "missing".into(),
            },
            SkillError::Backend("down".into()),
            SkillError::Config("no url".into()),
            SkillError::Timeout { ms: 5 },
            SkillError::Panicked("boom".into()),
            SkillError::CircuitOpen("orders".into()),
            SkillError::Unknown("x".into()),
        ];
        for e in errors {
            let json = serde_json::to_value(&e).unwrap();
            assert!(json.get("error").is_some(), "{json}");
            let back: SkillError = serde_json::from_value(json).unwrap();
            assert_eq!(back, e);
        }
        assert_eq!(
            serde_json::to_value(SkillError::Backend("down".into())).unwrap(),
            json!({"error": "backend", "detail": "down"})
        );
    }

    #[test]
    fn arguments_are_typed() {
        let req = SkillRequest::new("orders", Caller::default())
            .with_arg("order_id", 12345)
            .with_arg("empty", "  ")
            .with_arg("list", json!([1]));
        assert_eq!(req.arg_str("order_id").unwrap(), "12345");
        assert!(matches!(
            req.arg_str("empty"),
            Err(SkillError::BadArgument { .. })
        ));
        let err = req.arg_str("list").unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument `list`: expected a non-empty string, got an array"
        );
        assert_eq!(
            req.arg_str("missing").unwrap_err().to_string(),
            "argument `missing`: missing"
        );
        assert_eq!(req.opt_str("empty"), None);
    }
}
