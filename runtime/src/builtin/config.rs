//! The operator's `[skills]` section: which built-in skills run, against what, and how they
//! are hosted.
//!
//! ```toml
//! [skills.kb]
//! dir = "kb"                 # relative to the bot directory
//! confidence_floor = 0.5
//!
//! [skills.orders]            # absent: the shipped demo back-end (when the bot has its data)
//! url = "http://orders.internal:9000/orders/{order_id}"
//! auth = { name = "Authorization", value_env = "ORDERS_TOKEN" }
//! fields = { id = "/order_no", owner = "/customer", status = "/state" }
//! timeout_ms = 2000
//!
//! [skills.orders.hosting]    # any skill: pool size, call timeout, circuit breaker
//! pool = 8
//! breaker = { failures = 5, window_secs = 30, cool_down_secs = 10 }
//!
//! [skills.tickets]
//! enabled = true
//! ```
//!
//! Invariants: unknown keys are errors that name the key (every struct is
//! `deny_unknown_fields`; `[skills.orders]` forwards its back-end keys to
//! [`OrdersConfig`], which is strict as well); [`SkillsConfig::validate`] checks everything
//! that can be checked without the network or the environment, so `kefu serve` refuses a bad
//! file before it binds a port. The orders auth value is never logged: [`OrdersConfig`]'s
//! `Debug` redacts it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kefu_actors::SkillConfig;
use kefu_actors::skills::{BreakerConfig, Isolation};
use kefu_skill_orders::OrdersConfig;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The built-in skills' settings (`[skills]`). The default runs every built-in skill the bot
/// directory has data for, with the demo order back-end.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SkillsConfig {
    /// The knowledge base (`[skills.kb]`).
    pub kb: KbSkillConfig,
    /// The order look-up (`[skills.orders]`).
    pub orders: OrdersSkillConfig,
    /// `tickets.create` and `tickets.status` (`[skills.tickets]`).
    pub tickets: TicketsSkillConfig,
}

/// `[skills.kb]`: the knowledge-base skill `kb`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KbSkillConfig {
    /// Serve the skill at all (when its folder exists).
    pub enabled: bool,
    /// The knowledge base's folder; a relative path is relative to the bot directory. When not
    /// set, `<bot>/kb` is used if it exists; a folder named here must exist.
    pub dir: Option<PathBuf>,
    /// Answers scoring below this (0..=1) are "no answer": a wrong answer costs more than
    /// "I don't know".
    pub confidence_floor: f32,
    /// How the skill is hosted.
    pub hosting: HostingConfig,
}

impl Default for KbSkillConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            confidence_floor: super::KB_CONFIDENCE_FLOOR,
            hosting: HostingConfig::default(),
        }
    }
}

impl KbSkillConfig {
    /// The folder to load for the bot in `bot_dir`, and whether the operator named it (a named
    /// folder must exist; the default one is optional).
    pub fn resolve_dir(&self, bot_dir: &Path) -> (PathBuf, bool) {
        match &self.dir {
            Some(dir) if dir.is_absolute() => (dir.clone(), true),
            Some(dir) => (bot_dir.join(dir), true),
            None => (bot_dir.join(super::KB_DIR), false),
        }
    }
}

/// `[skills.orders]`: the order look-up skill. Besides `enabled` and `hosting`, every key is an
/// [`OrdersConfig`] key (`url`, `auth`, `send_user`, `fields`, `timeout_ms`,
/// `order_id_pattern`, `default_locale`, `max_response_bytes`, `name`); with none of them, the
/// shipped demo back-end is used when the bot has its data file.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersSkillConfig {
    /// Serve the skill at all.
    pub enabled: bool,
    /// The operator's order back-end; `None` for the demo back-end.
    pub backend: Option<OrdersConfig>,
    /// How the skill is hosted.
    pub hosting: HostingConfig,
}

impl Default for OrdersSkillConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: None,
            hosting: HostingConfig::default(),
        }
    }
}

impl<'de> Deserialize<'de> for OrdersSkillConfig {
    /// `enabled` and `hosting` are ours; the rest is handed to [`OrdersConfig`] as one table, so
    /// its own `deny_unknown_fields` names any misspelt key.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut table = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        let enabled = match table.remove("enabled") {
            None => true,
            Some(v) => bool::deserialize(v)
                .map_err(|e| D::Error::custom(format!("skills.orders.enabled: {e}")))?,
        };
        let hosting = match table.remove("hosting") {
            None => HostingConfig::default(),
            Some(v) => HostingConfig::deserialize(v)
                .map_err(|e| D::Error::custom(format!("skills.orders.hosting: {e}")))?,
        };
        let backend = if table.is_empty() {
            None
        } else {
            Some(
                OrdersConfig::deserialize(Value::Object(table))
                    .map_err(|e| D::Error::custom(format!("skills.orders: {e}")))?,
            )
        };
        Ok(Self {
            enabled,
            backend,
            hosting,
        })
    }
}

/// `[skills.tickets]`: `tickets.create` and `tickets.status` over the runtime's ticket store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsSkillConfig {
    /// Serve the skills at all (the `/v1/tickets` REST API is served either way).
    pub enabled: bool,
    /// How both skills are hosted.
    pub hosting: HostingConfig,
}

impl Default for TicketsSkillConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hosting: HostingConfig::default(),
        }
    }
}

/// How a skill is hosted (`[skills.<name>.hosting]`); unset values keep the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostingConfig {
    /// Calls that may run at once (1..=1024).
    pub pool: Option<usize>,
    /// Most time one call may take, waiting for a worker included, in ms.
    pub timeout_ms: Option<u64>,
    /// The circuit breaker.
    pub breaker: BreakerSettings,
}

/// `breaker = { ... }` of a hosting table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Failures (errors, timeouts, panics) within the window that open the circuit.
    pub failures: Option<u32>,
    /// How far back failures count, in seconds.
    pub window_secs: Option<u64>,
    /// How long the circuit stays open before one trial call, in seconds.
    pub cool_down_secs: Option<u64>,
}

impl HostingConfig {
    /// `base` with the values set here.
    pub fn apply(&self, base: SkillConfig) -> SkillConfig {
        let b = &self.breaker;
        SkillConfig {
            pool: self.pool.unwrap_or(base.pool),
            timeout: self.timeout_ms.map_or(base.timeout, Duration::from_millis),
            breaker: BreakerConfig {
                failures: b.failures.unwrap_or(base.breaker.failures),
                window: b
                    .window_secs
                    .map_or(base.breaker.window, Duration::from_secs),
                cool_down: b
                    .cool_down_secs
                    .map_or(base.breaker.cool_down, Duration::from_secs),
            },
            isolation: base.isolation,
        }
    }
}

/// Call timeouts of the built-in skills when the operator sets none.
pub(crate) mod default_timeout {
    use std::time::Duration;

    /// A search over an in-memory index.
    pub(crate) const KB: Duration = Duration::from_secs(1);
    /// One HTTP round trip to the order back-end.
    pub(crate) const ORDERS: Duration = Duration::from_secs(3);
    /// One durable write or read of the ticket store.
    pub(crate) const TICKETS: Duration = Duration::from_secs(2);
}

/// The host's room beyond the back-end's own HTTP timeout, so that a slow back-end is reported
/// by the orders skill ("did not answer within N ms") rather than cut off by the host.
const ORDERS_HOST_MARGIN: Duration = Duration::from_millis(500);

/// Why the `[skills]` section cannot be used; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkillsConfigError {
    /// A value is out of range or inconsistent.
    #[error("skills.{key}: {reason}")]
    Invalid {
        /// The key, below `skills.`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl SkillsConfig {
    /// Checks every value that can be checked before start-up (no network, no environment).
    pub fn validate(&self) -> Result<(), SkillsConfigError> {
        let invalid = |key: &str, reason: String| SkillsConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        let floor = self.kb.confidence_floor;
        if !(0.0..=1.0).contains(&floor) {
            return Err(invalid(
                "kb.confidence_floor",
                format!("must be between 0 and 1, not {floor}"),
            ));
        }
        if self
            .kb
            .dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(invalid("kb.dir", "must not be empty".to_owned()));
        }
        self.kb_hosting()
            .validate()
            .map_err(|e| invalid("kb.hosting", e))?;
        self.tickets_hosting()
            .validate()
            .map_err(|e| invalid("tickets.hosting", e))?;
        let orders = &self.orders;
        if let Some(backend) = &orders.backend {
            backend
                .validate()
                .map_err(|e| invalid("orders", e.to_string()))?;
        }
        let hosting = self.orders_hosting();
        hosting
            .validate()
            .map_err(|e| invalid("orders.hosting", e))?;
        if let (Some(backend), Some(_)) = (&orders.backend, orders.hosting.timeout_ms) {
            let http = Duration::from_millis(backend.timeout_ms);
            if hosting.timeout < http {
                return Err(invalid(
                    "orders.hosting.timeout_ms",
                    format!(
                        "{} ms is shorter than skills.orders.timeout_ms ({} ms): the back-end's \
                         own timeout could never fire",
                        hosting.timeout.as_millis(),
                        backend.timeout_ms
                    ),
                ));
            }
        }
        Ok(())
    }

    /// How `kb` is hosted.
    pub fn kb_hosting(&self) -> SkillConfig {
        self.kb.hosting.apply(SkillConfig {
            timeout: default_timeout::KB,
            // An in-memory index lookup that never blocks: called on the session's task,
            // without the pool's two actor hops (same timeout, breaker and panic isolation).
            isolation: Isolation::Inline,
            ..SkillConfig::default()
        })
    }

    /// How `orders` is hosted: by default a little longer than the back-end's HTTP timeout.
    pub fn orders_hosting(&self) -> SkillConfig {
        let timeout = self
            .orders
            .backend
            .as_ref()
            .map_or(default_timeout::ORDERS, |b| {
                default_timeout::ORDERS
                    .max(Duration::from_millis(b.timeout_ms) + ORDERS_HOST_MARGIN)
            });
        self.orders.hosting.apply(SkillConfig {
            timeout,
            // Async HTTP only: inline, like `kb`.
            isolation: Isolation::Inline,
            // The default 4 calls in flight: raising it moved the load test's tail from waiting
            // for a slot into every turn's CPU (BENCHMARKS.md, "orders slots"); operators size it
            // to their back-end with `[skills.orders.hosting] pool`.
            ..SkillConfig::default()
        })
    }

    /// How `tickets.create` and `tickets.status` are hosted.
    pub fn tickets_hosting(&self) -> SkillConfig {
        self.tickets.hosting.apply(SkillConfig {
            timeout: default_timeout::TICKETS,
            // Ticket writes run sled transactions, which may block on its locks: the pool.
            isolation: Isolation::Pool,
            ..SkillConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SkillsConfig, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Root {
            skills: SkillsConfig,
        }
        toml::from_str::<Root>(text)
            .map(|r| r.skills)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_section_keeps_every_default() {
        let c = parse("[skills]\n").unwrap();
        assert_eq!(c, SkillsConfig::default());
        c.validate().unwrap();
        assert!(c.orders.enabled && c.orders.backend.is_none());
        assert_eq!(c.orders_hosting().timeout, default_timeout::ORDERS);
        assert_eq!(c.kb_hosting().timeout, default_timeout::KB);
    }

    #[test]
    fn an_order_backend_with_mapping_auth_and_hosting_parses() {
        let c = parse(
            r#"
[skills.orders]
url = "http://127.0.0.1:9000/orders/{order_id}"
auth = { name = "X-Api-Key", value_env = "ORDERS_TOKEN" }
fields = { id = "/no", owner = "/cust", status = "/st", status_label = "/label" }
timeout_ms = 4000

[skills.orders.hosting]
pool = 8
breaker = { failures = 3, cool_down_secs = 5 }
"#,
        )
        .unwrap();
        c.validate().unwrap();
        let backend = c.orders.backend.as_ref().unwrap();
        assert_eq!(backend.fields.owner, "/cust");
        assert_eq!(backend.fields.status_label.as_deref(), Some("/label"));
        let hosting = c.orders_hosting();
        assert_eq!(hosting.pool, 8);
        assert_eq!(hosting.breaker.failures, 3);
        assert_eq!(hosting.breaker.cool_down, Duration::from_secs(5));
        assert_eq!(hosting.breaker.window, BreakerConfig::default().window);
        // Room beyond the back-end's own 4 s timeout.
        assert_eq!(hosting.timeout, Duration::from_millis(4500));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("[skills.orders]\nurl = \"http://h/{order_id}\"\nur1 = 2\n").unwrap_err();
        assert!(err.contains("unknown field `ur1`"), "{err}");
        let err =
            parse("[skills.orders]\nurl = \"http://h/{order_id}\"\nfields = { stauts = \"/s\" }\n")
                .unwrap_err();
        assert!(err.contains("stauts"), "{err}");
        let err = parse("[skills.orders.hosting]\npoool = 2\n").unwrap_err();
        assert!(err.contains("poool") && err.contains("hosting"), "{err}");
        let err = parse("[skills.kb]\nconfidence = 0.3\n").unwrap_err();
        assert!(err.contains("unknown field `confidence`"), "{err}");
        let err = parse("[skills.tickets]\nenable = false\n").unwrap_err();
        assert!(err.contains("unknown field `enable`"), "{err}");
        let err = parse("[skills.crm]\n").unwrap_err();
        assert!(err.contains("unknown field `crm`"), "{err}");
        let err = parse("[skills.orders]\nenabled = \"no\"\n").unwrap_err();
        assert!(err.contains("skills.orders.enabled"), "{err}");
    }

    #[test]
    fn bad_values_fail_validation_with_the_key_named() {
        let c = parse("[skills.kb]\nconfidence_floor = 1.5\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("kb.confidence_floor")
        );
        let c = parse("[skills.tickets.hosting]\npool = 0\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("tickets.hosting")
        );
        let c = parse("[skills.orders]\nurl = \"http://h/orders\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("skills.orders") && err.contains("{order_id}"),
            "{err}"
        );
        let c = parse(
            "[skills.orders]\nurl = \"http://h/{order_id}\"\ntimeout_ms = 5000\n\
             [skills.orders.hosting]\ntimeout_ms = 1000\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("orders.hosting.timeout_ms"), "{err}");
    }

    #[test]
    fn kb_dirs_resolve_against_the_bot() {
        let bot = Path::new("bots/shop");
        let c = SkillsConfig::default();
        assert_eq!(c.kb.resolve_dir(bot), (bot.join("kb"), false));
        let c = parse("[skills.kb]\ndir = \"faq\"\n").unwrap();
        assert_eq!(c.kb.resolve_dir(bot), (bot.join("faq"), true));
    }

    #[test]
    fn the_auth_value_is_not_in_debug_output() {
        let c = parse(
            "[skills.orders]\nurl = \"http://h/{order_id}\"\n\
             auth = { name = \"Authorization\", value = \"Bearer s3cr3t-t0ken\" }\n",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("Authorization"), "{shown}");
    }
}
