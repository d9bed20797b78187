//! The `generate:` step's generation settings (`max_tokens:`, `temperature:`) — loaded,
//! carried by the effect, refused with `line:col` and a hint when out of range or of the wrong
//! type — and what an interrupted generation does to the flow.

use kefu_flows::{
    Bot, DialogState, Effect, External, Lang, MAX_GENERATE_TOKENS, Severity, Temperature,
    TurnInput, resume, step,
};

fn bot(yaml: &str) -> Bot {
    Bot::load_str("bot.yaml", yaml).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// A bot whose `ask` flow's generate step carries `extra` (from line 11 of the file).
fn with_generate(extra: &str, save: bool) -> String {
    let save = if save { "        save: answer\n" } else { "" };
    format!(
        "\
intents:
  ask: {{examples: {{en: [question]}}}}
slots:
  answer: {{type: text}}
flows:
  ask:
    trigger: {{intent: ask}}
    steps:
      - generate: \"Answer: {{{{ text }}}}\"
        fallback: Sorry.
{save}{extra}      - say: \"after\"
"
    )
}

fn input() -> TurnInput<'static> {
    TurnInput::new("question", Lang::En).with_intent("ask", 0.9)
}

fn says(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Say { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn pending_settings(b: &Bot) -> (Option<u32>, Option<Temperature>) {
    let out = step(b, &DialogState::default(), &input());
    match out.pending() {
        Some(Effect::Generate {
            max_tokens,
            temperature,
            ..
        }) => (*max_tokens, *temperature),
        other => panic!("expected a pending generation, got {other:?}"),
    }
}

#[test]
fn the_effect_carries_the_step_settings() {
    let b = bot(&with_generate(
        "        max_tokens: 200\n        temperature: 0.3\n",
        false,
    ));
    let (max_tokens, temperature) = pending_settings(&b);
    assert_eq!(max_tokens, Some(200));
    assert_eq!(temperature.map(Temperature::get), Some(0.3));

    // Integers are numbers too, and the bounds are inclusive.
    let b = bot(&with_generate(
        &format!("        max_tokens: {MAX_GENERATE_TOKENS}\n        temperature: 2\n"),
        false,
    ));
    let (max_tokens, temperature) = pending_settings(&b);
    assert_eq!(max_tokens, Some(4096));
    assert_eq!(temperature.map(Temperature::get), Some(2.0));
    let b = bot(&with_generate(
        "        max_tokens: 1\n        temperature: 0\n",
        false,
    ));
    assert_eq!(pending_settings(&b).0, Some(1));
    assert_eq!(pending_settings(&b).1.map(Temperature::get), Some(0.0));
}

#[test]
fn without_settings_the_effect_leaves_them_to_the_runtime() {
    let b = bot(&with_generate("", false));
    assert_eq!(pending_settings(&b), (None, None));
    // Absent settings are not written, so stored effects keep their old shape.
    let out = step(&b, &DialogState::default(), &input());
    let json = serde_json::to_value(out.pending().expect("pending")).expect("serialises");
    assert!(json.get("max_tokens").is_none() && json.get("temperature").is_none());
}

#[test]
fn a_generate_effect_round_trips_through_json() {
    let b = bot(&with_generate(
        "        max_tokens: 64\n        temperature: 1.5\n",
        true,
    ));
    let out = step(&b, &DialogState::default(), &input());
    let effect = out.pending().expect("pending").clone();
    let json = serde_json::to_string(&effect).expect("serialises");
    let back: Effect = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, effect);
    // A temperature outside the range does not deserialise.
    let bad = json.replace("1.5", "2.5");
    assert!(serde_json::from_str::<Effect>(&bad).is_err(), "{bad}");
}

#[test]
fn temperature_rejects_out_of_range_and_nan() {
    assert!(Temperature::new(f32::NAN).is_none());
    assert!(Temperature::new(-0.1).is_none());
    assert!(Temperature::new(2.01).is_none());
    assert!(Temperature::new(f32::INFINITY).is_none());
    assert_eq!(Temperature::new(0.7).map(Temperature::get), Some(0.7));
}

/// Asserts loading fails with exactly one error at `line:col` with `message` and `hint`.
fn assert_one(yaml: &str, line: u32, col: u32, message: &str, hint: &str) {
    let errs: Vec<_> = match Bot::load_str("bot.yaml", yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(d) => d
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    };
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 1, "{}", shown.join("\n"));
    let e = &errs[0];
    assert_eq!(
        (e.line, e.col, e.message.as_str(), e.hint.as_deref()),
        (line, col, message, Some(hint)),
        "got: {}",
        shown[0]
    );
}

const TOKENS_MSG: &str = "`max_tokens` must be a whole number from 1 to 4096";
const TOKENS_HINT: &str = "the answer's length in tokens, e.g. `max_tokens: 200`";
const TEMP_MSG: &str = "`temperature` must be a number from 0 to 2";
const TEMP_HINT: &str = "0 answers alike every time; about 0.7 varies the wording";

#[test]
fn max_tokens_out_of_range_or_of_the_wrong_type() {
    // Line 11 is the first line after `fallback:`; the value starts at column 21.
    for value in ["0", "4097", "-5", "1.5", "many", "[1]", "\"200\""] {
        assert_one(
            &with_generate(&format!("        max_tokens: {value}\n"), false),
            11,
            21,
            TOKENS_MSG,
            TOKENS_HINT,
        );
    }
}

#[test]
fn temperature_out_of_range_or_of_the_wrong_type() {
    for value in ["-0.1", "2.5", "3", "hot", ".nan", "{t: 1}"] {
        assert_one(
            &with_generate(&format!("        temperature: {value}\n"), false),
            11,
            22,
            TEMP_MSG,
            TEMP_HINT,
        );
    }
}

#[test]
fn the_settings_belong_to_generate_steps_only() {
    let yaml = "\
intents:
  ask: {examples: {en: [question]}}
flows:
  ask:
    trigger: {intent: ask}
    steps:
      - say: hello
        temperature: 0.5
";
    let errs = Bot::load_str("bot.yaml", yaml).expect_err("refused");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].col), (8, 9));
    assert_eq!(
        errs[0].message,
        "`temperature` only belongs to a `generate` step"
    );
}

#[test]
fn an_interrupted_said_generation_says_nothing_and_owes_no_reply() {
    let b = bot(&with_generate("", false));
    let out = step(&b, &DialogState::default(), &input());
    assert!(out.pending().is_some());
    let next = resume(&b, &out.state, &input(), External::Interrupted);
    // The flow goes on past the step without saying the text or the fallback.
    assert_eq!(says(&next.effects), ["after"]);
    assert!(next.state.waiting.is_none());

    // When nothing follows, the interrupted turn ends silently: no "anything else?" filler.
    let b = bot("\
intents:
  ask: {examples: {en: [question]}}
flows:
  ask:
    trigger: {intent: ask}
    steps:
      - generate: \"Answer: {{ text }}\"
        fallback: Sorry.
");
    let out = step(&b, &DialogState::default(), &input());
    let next = resume(&b, &out.state, &input(), External::Interrupted);
    assert!(
        next.effects.iter().all(|e| !e.is_visible()),
        "{:?}",
        next.effects
    );
    assert!(next.pending().is_none());
    assert!(next.state.active.is_none(), "the flow ended");
}

#[test]
fn an_interrupted_saved_generation_takes_the_fallback() {
    let mut yaml = with_generate("", true);
    yaml = yaml.replace("say: \"after\"", "say: \"saved: {{ slots.answer }}\"");
    let b = bot(&yaml);
    let out = step(&b, &DialogState::default(), &input());
    let next = resume(&b, &out.state, &input(), External::Interrupted);
    assert_eq!(says(&next.effects), ["saved: Sorry."]);
    assert_eq!(
        next.state.slots.get("answer"),
        Some(&serde_json::json!("Sorry."))
    );
}
