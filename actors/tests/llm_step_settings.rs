//! A `generate:` step's own `max_tokens:` and `temperature:` reach the model back-end's
//! request; a step without them gets the service's defaults, as before.

use std::sync::Arc;

use async_trait::async_trait;
use kefu_actors::engine::{CompiledBot, EngineState, FlowEngine, TurnMeta};
use kefu_actors::llm::{LlmService, LlmServiceConfig, ModelRungs};
use kefu_flows::Bot;
use kefu_models::llm::{
    Completion, FinishReason, LlmBackend, LlmError, LlmRequest, Moderator, ModeratorConfig,
    PromptBuilder, StreamEvent, TokenStream, Usage, collect_stream,
};
use parking_lot::Mutex;

const BOT: &str = r#"
settings:
  default_language: en
  languages: [en]
intents:
  returns:
    examples:
      en: [what is your return policy, can I return an item, how do returns work,
           return policy please, tell me about returns, I want to return something]
  greet:
    examples:
      en: [hi, hello, hey there, good morning, hello anyone there, hi there]
  oos:
    examples:
      en: [what is the weather, tell me a joke, who won the game, what time is it,
           sing me a song, how old are you, what is the capital of France]
flows:
  returns:
    trigger: {intent: returns}
    steps:
      - generate: "Answer briefly."
        fallback: Sorry, I can't answer that right now.
        max_tokens: 77
        temperature: 0.25
      - end
  greeting:
    trigger: {intent: greet}
    steps:
      - generate: "Greet the customer."
        fallback: Hello!
      - end
"#;

/// Answers at once and records every request it gets.
#[derive(Default)]
struct Recording {
    seen: Mutex<Vec<LlmRequest>>,
}

#[async_trait]
impl LlmBackend for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn default_model(&self) -> &str {
        "recording"
    }
    async fn complete(&self, req: LlmRequest) -> Result<Completion, LlmError> {
        let stream = self.stream(req).await?;
        collect_stream(stream, "recording", "recording").await
    }
    async fn stream(&self, req: LlmRequest) -> Result<TokenStream, LlmError> {
        self.seen.lock().push(req);
        Ok(Box::pin(futures::stream::iter([
            Ok(StreamEvent::Delta("Sure.".into())),
            Ok(StreamEvent::Done {
                finish_reason: FinishReason::Stop,
                usage: Usage {
                    prompt_tokens: 10,
                    completion_tokens: 2,
                },
            }),
        ])))
    }
}

#[tokio::test]
async fn the_step_settings_reach_the_back_end_and_defaults_stay_as_before() {
    let backend = Arc::new(Recording::default());
    let config = LlmServiceConfig {
        max_tokens: 300,
        ..LlmServiceConfig::default()
    };
    let service = LlmService::new(
        config,
        ModelRungs {
            remote: Some(backend.clone()),
            local: None,
        },
        PromptBuilder::new("You are the shop's assistant.", 4096),
        Moderator::new(&ModeratorConfig::default(), "You are the shop's assistant."),
    );
    let files = vec![(std::path::PathBuf::from("bot.yaml"), BOT.to_owned())];
    let bot = Bot::load_files("settings", &files).expect("the test bot loads");
    let engine = FlowEngine::from_compiled(CompiledBot::compile(bot).expect("the bot compiles"))
        .with_llm(service);
    let meta = TurnMeta {
        session: "s1",
        user: "u1",
        channel: "web",
        ..TurnMeta::default()
    };

    let mut state = EngineState::default();
    let report = engine
        .step(&mut state, "what is your return policy", &meta)
        .await;
    assert_eq!(report.generations, vec!["remote"]);
    let mut other = EngineState::default();
    let report = engine.step(&mut other, "hello", &meta).await;
    assert_eq!(report.generations, vec!["remote"]);

    let seen = backend.seen.lock();
    let got: Vec<(u32, Option<f32>)> = seen.iter().map(|r| (r.max_tokens, r.temperature)).collect();
    // The step's values as written; without them the service's `max_tokens` and no
    // temperature (the back-end's own).
    assert_eq!(got, vec![(77, Some(0.25)), (300, None)]);
}
