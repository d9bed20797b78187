//! The `[llm]` section of kefu's config: which back-ends exist, and building them.
//!
//! Invariants: the config parses the same with or without the `llama` feature (a binary built
//! without it refuses a `[llm.local]` section at build time with a clear error instead of
//! failing to parse); unknown keys are refused; [`LlmConfig::validate`] runs at load time.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::{HfTokenCounter, LlmBackend, LlmError, OpenAiBackend, OpenAiConfig, TokenCounter};

/// The `[llm]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// A remote OpenAI-compatible server (`[llm.remote]`).
    pub remote: Option<OpenAiConfig>,
    /// An in-process llama.cpp model (`[llm.local]`; needs the `llama` build feature).
    pub local: Option<LlamaConfig>,
}

/// Settings of the in-process llama.cpp back-end.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaConfig {
    /// The GGUF model file.
    pub model_path: PathBuf,
    /// The name the model answers to (`model` in OpenAI responses); default: the file stem.
    #[serde(default)]
    pub model_name: Option<String>,
    /// CPU threads for generation. One is often fastest on a busy machine (measured: two
    /// threads under load from other processes can be far slower than one).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// CPU threads for prompt processing.
    #[serde(default = "default_threads")]
    pub batch_threads: usize,
    /// Sequences decoded together in one batch (concurrent generations).
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Context tokens per sequence (prompt plus answer).
    #[serde(default = "default_context")]
    pub context_tokens: usize,
    /// Requests waiting for a free sequence beyond which new ones are refused as overloaded.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Seed of the sampler (answers at temperature > 0 are reproducible per seed).
    #[serde(default)]
    pub seed: u32,
}

fn default_threads() -> usize {
    1
}
fn default_parallel() -> usize {
    8
}
fn default_context() -> usize {
    2048
}
fn default_max_queue() -> usize {
    64
}

impl LlamaConfig {
    /// A config for `model_path` with the defaults.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            model_name: None,
            threads: default_threads(),
            batch_threads: default_threads(),
            parallel: default_parallel(),
            context_tokens: default_context(),
            max_queue: default_max_queue(),
            seed: 0,
        }
    }

    /// Checks the settings (not the file: it is opened when the back-end is built).
    pub fn validate(&self) -> Result<(), LlmError> {
        let bad = |field, reason: &str| {
            Err(LlmError::Config {
                backend: "llama",
                field,
                reason: reason.to_owned(),
            })
        };
        if self.model_path.as_os_str().is_empty() {
            return bad("model_path", "must not be empty");
        }
        if !(1..=256).contains(&self.threads) || !(1..=256).contains(&self.batch_threads) {
            return bad("threads", "must be 1 to 256");
        }
        if !(1..=256).contains(&self.parallel) {
            return bad("parallel", "must be 1 to 256");
        }
        if !(64..=131_072).contains(&self.context_tokens) {
            return bad("context_tokens", "must be 64 to 131072");
        }
        Ok(())
    }
}

/// The back-ends built from an [`LlmConfig`].
#[derive(Clone, Default)]
pub struct LlmBackends {
    /// The remote back-end, if configured.
    pub remote: Option<Arc<dyn LlmBackend>>,
    /// The local back-end, if configured.
    pub local: Option<Arc<dyn LlmBackend>>,
    /// Exact token counting for the remote model (`[llm.remote] tokenizer`), if configured.
    pub remote_tokens: Option<Arc<dyn TokenCounter>>,
}

impl std::fmt::Debug for LlmBackends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmBackends")
            .field("remote", &self.remote.as_ref().map(|b| b.name().to_owned()))
            .field("local", &self.local.as_ref().map(|b| b.name().to_owned()))
            .field("remote_tokens", &self.remote_tokens.is_some())
            .finish()
    }
}

impl LlmBackends {
    /// The back-end kefu serves on `/v1/chat/completions`: its own model when it has one,
    /// otherwise the remote one (kefu then acts as a masking, budgeted proxy).
    pub fn served(&self) -> Option<Arc<dyn LlmBackend>> {
        self.local.clone().or_else(|| self.remote.clone())
    }
}

impl LlmConfig {
    /// Checks every configured back-end.
    pub fn validate(&self) -> Result<(), LlmError> {
        if let Some(remote) = &self.remote {
            remote.validate()?;
        }
        if let Some(local) = &self.local {
            local.validate()?;
        }
        Ok(())
    }

    /// Builds the configured back-ends (loading the local model, which may take a while: call
    /// it off the async threads for large models).
    pub fn build(&self) -> Result<LlmBackends, LlmError> {
        let remote = match &self.remote {
            Some(c) => Some(Arc::new(OpenAiBackend::new(c.clone())?) as Arc<dyn LlmBackend>),
            None => None,
        };
        let local = match &self.local {
            Some(c) => Some(build_local(c)?),
            None => None,
        };
        let remote_tokens = match self.remote.as_ref().and_then(|r| r.tokenizer.as_deref()) {
            Some(path) => Some(Arc::new(HfTokenCounter::from_file(path)?) as Arc<dyn TokenCounter>),
            None => None,
        };
        Ok(LlmBackends {
            remote,
            local,
            remote_tokens,
        })
    }
}

#[cfg(feature = "llama")]
fn build_local(config: &LlamaConfig) -> Result<Arc<dyn LlmBackend>, LlmError> {
    Ok(Arc::new(super::LlamaBackend::new(config.clone())?))
}

#[cfg(not(feature = "llama"))]
fn build_local(_config: &LlamaConfig) -> Result<Arc<dyn LlmBackend>, LlmError> {
    Err(LlmError::Config {
        backend: "llama",
        field: "local",
        reason: "this kefu was built without the `llama` feature (cargo build --features llama)"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_sections_and_refuses_unknown_keys() {
        let c: LlmConfig = serde_json::from_value(serde_json::json!({
            "remote": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "timeout_ms": 500},
            "local": {"model_path": "tiny.gguf", "threads": 2, "parallel": 4}
        }))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.local.as_ref().unwrap().parallel, 4);
        assert_eq!(c.remote.as_ref().unwrap().timeout_ms, 500);
        let bad = serde_json::from_value::<LlmConfig>(serde_json::json!({"remote": {
            "base_url": "http://x/v1", "model": "m", "api_kee": "k"}}));
        assert!(bad.is_err());
        let mut local = LlamaConfig::new("x.gguf");
        local.threads = 0;
        assert!(local.validate().is_err());
    }

    #[test]
    fn an_empty_section_builds_nothing() {
        let backends = LlmConfig::default().build().unwrap();
        assert!(backends.served().is_none());
    }
}
