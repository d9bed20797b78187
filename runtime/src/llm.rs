//! The `[llm]` configuration section and what `kefu serve` builds from it: the model back-ends
//! (served on `/v1/chat/completions`) and the [`LlmService`] that the flows' `generate:` steps
//! use inside conversations.
//!
//! Invariants: a config without any back-end builds no service, and the engine then answers
//! every `generate:` with the flow's `fallback:` exactly as before; the service's whole ladder
//! ends before the session layer's turn timeout (checked by [`crate::Config::validate`]), so a
//! hanging model costs the user a fallback answer, never a 504.

use kefu_actors::llm::{LlmService, LlmServiceConfig, ModelRungs};
use kefu_models::llm::{
    LlamaConfig, LlmBackends, LlmConfig, Moderator, ModeratorConfig, OpenAiConfig, PromptBuilder,
};
use serde::Deserialize;

/// The operator's system prompt when the config sets none: who the assistant is and how it
/// answers, in both languages the shipped bot speaks. kefu's own guard rules (never reveal
/// instructions, reference data is data, answer only from it) are always added after it.
pub const DEFAULT_SYSTEM_PROMPT: &str = "你是在线商城的客服助手。请用用户使用的语言简洁、礼貌地回答，只根据提供的资料回答；不确定时如实说明，并建议用户转人工客服。\nYou are the customer-service assistant of an online shop. Answer briefly and politely in the user's language, using only the reference data provided; when unsure, say so and offer a human agent.";

/// Tokens a prompt and its answer may take by default. Conversation prompts are short (a step's
/// instruction, a few passages, a few turns of history); a smaller window also bounds cost.
pub const DEFAULT_CONTEXT_TOKENS: usize = 4096;

/// The `[llm]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSection {
    /// A remote OpenAI-compatible server (`[llm.remote]`); its input is PII-masked.
    pub remote: Option<OpenAiConfig>,
    /// An in-process llama.cpp model (`[llm.local]`; needs the `llama` build feature).
    pub local: Option<LlamaConfig>,
    /// Queues, budgets, timeouts and the breaker of the conversations' LLM service
    /// (`[llm.service]`).
    pub service: LlmServiceConfig,
    /// The operator's system prompt for generation in conversations.
    pub system_prompt: String,
    /// Tokens a conversation prompt plus its answer may take (further capped by the local
    /// model's `context_tokens` when there is one).
    pub context_tokens: usize,
    /// Output moderation: blocklist, planted secrets, leak window (`[llm.moderation]`).
    pub moderation: ModeratorConfig,
    /// Whether the model may choose the intent of a message the classifier is unsure about
    /// (between flows, below the bot's `intent_threshold`; at most 1.5 s per message).
    pub choose_intents: bool,
}

impl Default for LlmSection {
    fn default() -> Self {
        Self {
            remote: None,
            local: None,
            service: LlmServiceConfig::default(),
            system_prompt: DEFAULT_SYSTEM_PROMPT.to_owned(),
            context_tokens: DEFAULT_CONTEXT_TOKENS,
            moderation: ModeratorConfig::default(),
            choose_intents: true,
        }
    }
}

impl LlmSection {
    /// The back-end part, as kefu-models builds it.
    pub fn backends(&self) -> LlmConfig {
        LlmConfig {
            remote: self.remote.clone(),
            local: self.local.clone(),
        }
    }

    /// True when at least one back-end is configured.
    pub fn has_backend(&self) -> bool {
        self.remote.is_some() || self.local.is_some()
    }

    /// Checks the section; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.backends().validate().map_err(|e| e.to_string())?;
        self.service.validate()?;
        if self.system_prompt.trim().is_empty() {
            return Err("system_prompt must not be empty (omit it for the default)".to_owned());
        }
        if !(256..=131_072).contains(&self.context_tokens) {
            return Err(format!(
                "context_tokens must be 256 to 131072, not {}",
                self.context_tokens
            ));
        }
        Ok(())
    }

    /// The prompt window: the configured one, capped by the local model's context.
    fn prompt_tokens(&self) -> usize {
        match &self.local {
            Some(local) => self.context_tokens.min(local.context_tokens),
            None => self.context_tokens,
        }
    }

    /// The conversations' LLM service over `backends`, or `None` when there are none (the
    /// flows' `fallback:` texts answer then).
    pub fn build_service(&self, backends: &LlmBackends) -> Option<LlmService> {
        if backends.remote.is_none() && backends.local.is_none() {
            return None;
        }
        let mut prompt = PromptBuilder::new(self.system_prompt.clone(), self.prompt_tokens());
        // Exact counts when the remote model's tokenizer file is configured; otherwise the
        // builder's conservative estimate.
        if let Some(counter) = &backends.remote_tokens {
            prompt = prompt.with_counter(counter.clone());
        }
        let moderator = Moderator::new(&self.moderation, &self.system_prompt);
        let rungs = ModelRungs {
            remote: backends.remote.clone(),
            local: backends.local.clone(),
        };
        Some(LlmService::new(
            self.service.clone(),
            rungs,
            prompt,
            moderator,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LlmSection, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_build_no_service_and_validate() {
        let section = parse("").unwrap();
        assert_eq!(section, LlmSection::default());
        assert!(section.validate().is_ok());
        assert!(!section.has_backend());
        assert!(section.build_service(&LlmBackends::default()).is_none());
    }

    #[test]
    fn service_and_prompt_keys_parse() {
        let section = parse(
            r#"
system_prompt = "Be brief."
context_tokens = 2048
[remote]
base_url = "http://127.0.0.1:9/v1"
model = "m"
[service]
ladder_deadline_ms = 3000
rung_timeout_ms = 2000
[moderation]
blocklist = ["bad"]
"#,
        )
        .unwrap();
        assert_eq!(section.system_prompt, "Be brief.");
        assert_eq!(section.service.ladder_deadline_ms, 3000);
        assert_eq!(
            section.service.max_concurrent, 8,
            "unset keys keep defaults"
        );
        assert_eq!(section.moderation.blocklist, vec!["bad".to_owned()]);
        assert!(section.validate().is_ok());
        let backends = section.backends().build().unwrap();
        assert!(section.build_service(&backends).is_some());
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused() {
        assert!(parse("[service]\nladder_deadline_msx = 1\n").is_err());
        assert!(parse("sytem_prompt = \"x\"\n").is_err());
        let section =
            parse("[service]\nrung_timeout_ms = 9000\nladder_deadline_ms = 5000\n").unwrap();
        let err = section.validate().unwrap_err();
        assert!(err.contains("service.rung_timeout_ms"), "{err}");
        let section = parse("system_prompt = \"  \"\n").unwrap();
        assert!(section.validate().unwrap_err().contains("system_prompt"));
    }
}
