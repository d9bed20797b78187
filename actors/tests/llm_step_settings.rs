//! A `generate:` step's own `max_tokens:` and `temperature:` reach the model back-end's
//! request; a step without them gets the service's defaults, as before.

mod common;

use common::llm::{FnBackend, service_over, text_stream};
use kefu_actors::engine::{CompiledBot, EngineState, FlowEngine, TurnMeta};
use kefu_actors::llm::LlmServiceConfig;
use kefu_flows::Bot;

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

#[tokio::test]
async fn the_step_settings_reach_the_back_end_and_defaults_stay_as_before() {
    // Answers at once and records every request it gets.
    let backend = FnBackend::new("recording", |_| Ok(text_stream("Sure.", 0)));
    let config = LlmServiceConfig {
        max_tokens: 300,
        ..LlmServiceConfig::default()
    };
    let service = service_over(backend.clone(), config);
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
