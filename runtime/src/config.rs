//! The operator's configuration: a TOML file, overridden by command-line flags.
//!
//! Every field has a default that runs the shipped bot on loopback with embedded storage, so
//! `kefu serve` needs no file at all. Unknown keys are errors: a typo must not silently fall back
//! to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kefu_actors::SessionConfig;
use kefu_actors::agents::DeskConfig;
use serde::{Deserialize, Serialize};

use crate::builtin::SkillsConfig;
use crate::http::HttpConfig;
use crate::llm::LlmSection;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the embedded store (created if missing).
    pub data_dir: PathBuf,
    /// Directory of the bot's flow files.
    pub flows: PathBuf,
    /// The session layer: timeouts and limits.
    pub sessions: SessionConfig,
    /// The HTTP API: keys and size limits.
    pub http: HttpConfig,
    /// The human desk: agents, routing and SLA (`[agents]`, `[[agents.agents]]`); off when no
    /// agents are listed. See docs/agents.md.
    pub agents: DeskConfig,
    /// The built-in skills: `[skills.kb]`, `[skills.orders]` (the order back-end, field mapping,
    /// auth), `[skills.tickets]`, each with its `hosting` table. See docs/operations.md.
    pub skills: SkillsConfig,
    /// Language models: `[llm.remote]` (OpenAI-compatible), `[llm.local]` (llama.cpp), and how
    /// conversations use them (`[llm.service]`, `system_prompt`, `[llm.moderation]`); see
    /// docs/llm.md.
    pub llm: LlmSection,
    /// The embedded store (`[store]`): how often group-commit flushes may start.
    pub store: StoreSection,
    /// Log filter in `tracing`'s env-filter syntax (`info`, `kefu=debug,warn`, ...); `RUST_LOG`
    /// wins when set.
    pub log: String,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
}

/// `[store]`: the embedded sled store's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Group-commit flushes start at least this many milliseconds apart (0..=100). Under load
    /// more acknowledgements share a flush, which saves CPU; an acknowledgement may wait up to
    /// this much longer. The first flush after an idle spell starts at once. Default 2 (see
    /// `kefu_store::SledStoreConfig::min_flush_interval`); 0 flushes back to back.
    pub min_flush_interval_ms: f64,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            min_flush_interval_ms: kefu_store::SledStoreConfig::default()
                .min_flush_interval
                .as_secs_f64()
                * 1000.0,
        }
    }
}

impl StoreSection {
    /// The store's configuration with these values.
    pub fn sled_config(&self) -> kefu_store::SledStoreConfig {
        kefu_store::SledStoreConfig {
            min_flush_interval: std::time::Duration::from_secs_f64(
                self.min_flush_interval_ms / 1000.0,
            ),
            ..kefu_store::SledStoreConfig::default()
        }
    }

    fn validate(&self) -> Result<(), String> {
        if !(0.0..=100.0).contains(&self.min_flush_interval_ms) {
            return Err("store.min_flush_interval_ms must be between 0 and 100".to_owned());
        }
        Ok(())
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("kefu-data"),
            flows: PathBuf::from("dialog-flows/bots/shop"),
            sessions: SessionConfig::default(),
            http: HttpConfig::default(),
            agents: DeskConfig::default(),
            skills: SkillsConfig::default(),
            llm: LlmSection::default(),
            store: StoreSection::default(),
            log: "info".to_owned(),
            log_format: LogFormat::Text,
        }
    }
}

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped keys.
    #[error(
        "{path}:{line}:{col}: {message}\n  hint: see docs/operations.md for every key and its default"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        col: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or `<flags>`).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses TOML text; `path` is used in messages.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|span| line_col(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                col,
                message: e.message().to_owned(),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.sessions
            .validate()
            .map_err(|message| ConfigError::Invalid {
                path: path.to_owned(),
                message,
            })?;
        self.http.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: format!("http: {e}"),
        })?;
        self.agents
            .validate()
            .map_err(|message| ConfigError::Invalid {
                path: path.to_owned(),
                message,
            })?;
        self.llm.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: format!("llm: {e}"),
        })?;
        self.skills.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        self.store
            .validate()
            .map_err(|message| ConfigError::Invalid {
                path: path.to_owned(),
                message,
            })?;
        let turn_ms = self.sessions.turn_timeout_secs * 1000.0;
        if self.llm.has_backend() && self.llm.service.ladder_deadline_ms as f64 >= turn_ms {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: format!(
                    "llm.service.ladder_deadline_ms ({}) must be below sessions.turn_timeout_secs ({} s): \
                     a conversation waits on the whole ladder, and a turn over the timeout is answered 504",
                    self.llm.service.ladder_deadline_ms, self.sessions.turn_timeout_secs
                ),
            });
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_section_sets_the_flush_interval_and_checks_it() {
        let c = Config::from_toml(Path::new("k.toml"), "").unwrap();
        assert_eq!(
            c.store.sled_config().min_flush_interval,
            kefu_store::SledStoreConfig::default().min_flush_interval
        );
        let c = Config::from_toml(
            Path::new("k.toml"),
            "[store]\nmin_flush_interval_ms = 0.5\n",
        )
        .unwrap();
        assert_eq!(
            c.store.sled_config().min_flush_interval,
            std::time::Duration::from_micros(500)
        );
        let err = Config::from_toml(Path::new("k.toml"), "[store]\nmin_flush_interval_ms = -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.min_flush_interval_ms"), "{err}");
        let err = Config::from_toml(Path::new("k.toml"), "[store]\nflush_ms = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("k.toml:2:"), "{err}");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml(Path::new("k.toml"), "").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("kefu-data"));
    }

    #[test]
    fn unknown_keys_point_at_the_line() {
        let err = Config::from_toml(
            Path::new("k.toml"),
            "listen = \"127.0.0.1:9000\"\ndata_dri = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("k.toml:2:1: unknown field `data_dri`"),
            "{err}"
        );
    }

    #[test]
    fn skills_sections_parse_and_errors_name_the_key() {
        let c = Config::from_toml(
            Path::new("k.toml"),
            "[skills.orders]\nurl = \"http://127.0.0.1:9000/orders/{order_id}\"\n\
             auth = { name = \"X-Api-Key\", value_env = \"ORDERS_TOKEN\" }\n\
             [skills.kb]\nconfidence_floor = 0.6\n[skills.tickets]\nenabled = false\n",
        )
        .unwrap();
        assert!(c.skills.orders.backend.is_some());
        assert!(!c.skills.tickets.enabled);
        assert!((c.skills.kb.confidence_floor - 0.6).abs() < f32::EPSILON);

        let err = Config::from_toml(
            Path::new("k.toml"),
            "listen = \"127.0.0.1:9000\"\n[skills.orders]\nurl = \"http://h/{order_id}\"\nfeilds = {}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("k.toml:"), "{err}");
        assert!(err.contains("unknown field `feilds`"), "{err}");

        let err = Config::from_toml(
            Path::new("k.toml"),
            "[skills.orders]\nurl = \"https://h/{order_id}\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("skills.orders") && err.contains("https"),
            "{err}"
        );
    }

    /// The TOML examples in the operator docs are real configurations: they parse and validate
    /// (a renamed key shows up here, not in an operator's start-up error).
    #[test]
    fn the_documented_examples_are_valid_configs() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        for file in ["operations.md", "agents.md", "plugins.md", "llm.md"] {
            let path = docs.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let mut blocks = 0;
            for block in text.split("```toml\n").skip(1) {
                let toml = block.split("```").next().unwrap();
                blocks += 1;
                if let Err(e) = Config::from_toml(&path, toml) {
                    panic!("a TOML example in {file} does not load: {e}\n{toml}");
                }
            }
            assert!(blocks > 0, "{file} has no TOML example");
        }
    }

    #[test]
    fn the_llm_ladder_must_end_before_the_turn_timeout() {
        let remote = "[llm.remote]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
        let ok = Config::from_toml(Path::new("k.toml"), remote).unwrap();
        assert!(ok.llm.has_backend());
        let slow =
            format!("{remote}[llm.service]\nladder_deadline_ms = 12000\nrung_timeout_ms = 5000\n");
        let err = Config::from_toml(Path::new("k.toml"), &slow)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ladder_deadline_ms"), "{err}");
        // Without a back-end the service is never built, so its timing does not matter.
        let idle = "[llm.service]\nladder_deadline_ms = 12000\nrung_timeout_ms = 5000\n";
        assert!(Config::from_toml(Path::new("k.toml"), idle).is_ok());
    }

    #[test]
    fn nested_sections_parse_and_validate() {
        let c = Config::from_toml(
            Path::new("k.toml"),
            "[sessions]\nidle_timeout_secs = 30\nmax_inflight_per_session = 4\n",
        )
        .unwrap();
        assert_eq!(c.sessions.max_inflight_per_session, 4);
        let err = Config::from_toml(Path::new("k.toml"), "[sessions]\nidle_timeout_secs = -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("idle_timeout_secs"), "{err}");
    }
}
