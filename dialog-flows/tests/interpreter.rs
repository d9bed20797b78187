//! The interpreter, one step kind at a time, on small purpose-built bots.

use kefu_flows::{Bot, DialogState, Effect, Frame, Lang, MAX_STEPS_PER_TURN, TurnInput, step};
use serde_json::json;

fn bot(yaml: &str) -> Bot {
    match Bot::load_str("test.yaml", yaml) {
        Ok(b) => b,
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Runs turns `(text, intent)` in `lang`, returning the final state and each turn's effects.
fn run(bot: &Bot, lang: Lang, turns: &[(&str, Option<&str>)]) -> (DialogState, Vec<Vec<Effect>>) {
    let mut state = DialogState::default();
    let mut all = Vec::new();
    for (text, intent) in turns {
        let mut input = TurnInput::new(text, lang).on_channel("web");
        if let Some(i) = intent {
            input = input.with_intent(i, 0.9);
        }
        let out = step(bot, &state, &input);
        state = out.state;
        all.push(out.effects);
    }
    (state, all)
}

fn say(text: &str) -> Effect {
    Effect::Say {
        text: text.to_string(),
    }
}

const INTENTS: &str = "
intents:
  a: {examples: {zh: [a]}}
  b: {examples: {zh: [b]}}
  c: {examples: {zh: [c]}}
";

#[test]
fn say_picks_language_and_falls_back_to_default() {
    let b = bot(&format!(
        "{INTENTS}flows:\n  f:\n    trigger: {{intent: a}}\n    steps:\n      - say: {{zh: 你好, en: Hello}}\n      - say: {{zh: 只有中文}}\n      - say: '{{{{ lang }}}}/{{{{ channel }}}}'\n"
    ));
    assert_eq!(
        b.warnings().len(),
        3,
        "one missing `en` text, unused intents b and c"
    );
    let (_, out) = run(&b, Lang::En, &[("a", Some("a"))]);
    assert_eq!(out[0], vec![say("Hello"), say("只有中文"), say("en/web")]);
    let (_, out) = run(&b, Lang::Zh, &[("a", Some("a"))]);
    assert_eq!(out[0], vec![say("你好"), say("只有中文"), say("zh/web")]);
}

const ASK_BOT: &str = "
slots:
  n: {type: integer, min: 1, max: 5}
  done: {type: bool}
flows:
  f:
    trigger: {intent: a}
    steps:
      - ask: n
        prompt: how many?
        reprompt: 1 to 5 please
        max_attempts: 2
        on_fail: rescue
      - say: 'got {{ slots.n }}'
      - end
      - id: rescue
        set: {n: 1}
      - say: 'assuming {{ slots.n }}'
  g:
    trigger: {intent: b}
    steps:
      - ask: n
        prompt: how many?
        max_attempts: 1
        on_fail: fallback
  h:
    trigger: {intent: c}
    steps:
      - ask: n
        prompt: how many?
        max_attempts: 1
";

#[test]
fn ask_fills_a_typed_slot_from_the_text() {
    let b = bot(&format!("{INTENTS}{ASK_BOT}"));
    let (state, out) = run(
        &b,
        Lang::En,
        &[("start", Some("a")), ("I want 3 of them", None)],
    );
    assert_eq!(out[0], vec![say("how many?")]);
    assert_eq!(out[1], vec![say("got 3")]);
    assert_eq!(state.slots.get("n"), Some(&json!(3)));
    assert!(state.is_idle());
}

#[test]
fn ask_is_skipped_when_the_slot_is_filled() {
    let b = bot(&format!("{INTENTS}{ASK_BOT}"));
    let (_, out) = run(
        &b,
        Lang::En,
        &[("start", Some("a")), ("2", None), ("again", Some("a"))],
    );
    assert_eq!(out[2], vec![say("got 2")]);
}

#[test]
fn reprompt_then_on_fail_step() {
    let b = bot(&format!("{INTENTS}{ASK_BOT}"));
    let (state, out) = run(
        &b,
        Lang::En,
        &[("start", Some("a")), ("nine", None), ("99", None)],
    );
    assert_eq!(out[1], vec![say("1 to 5 please")]);
    assert_eq!(out[2], vec![say("assuming 1")]);
    assert!(state.is_idle());
}

#[test]
fn on_fail_fallback_and_default_handoff() {
    let b = bot(&format!("{INTENTS}{ASK_BOT}"));
    let (state, out) = run(&b, Lang::En, &[("start", Some("b")), ("none", None)]);
    assert_eq!(out[1], vec![say(&b.fallback_text(Lang::En))]);
    assert!(state.is_idle());
    let (state, out) = run(&b, Lang::En, &[("start", Some("c")), ("none", None)]);
    assert!(
        matches!(out[1].last(), Some(Effect::Handoff { reason, .. }) if reason.contains("slot `n`")),
        "{:?}",
        out[1]
    );
    assert!(state.is_idle());
}

#[test]
fn set_branch_goto_and_clear() {
    let b = bot(&format!(
        "{INTENTS}
slots:
  vip: {{type: bool}}
  level: {{type: enum, values: [gold, silver]}}
flows:
  f:
    trigger: {{intent: a}}
    steps:
      - set: {{vip: true, level: gold}}
      - branch: {{if: slots.vip and slots.level == 'gold', then: gold, else: other}}
      - id: gold
        say: gold
      - set: {{level: null}}
      - branch: {{if: slots.level, then: other}}
      - say: cleared
      - goto: out
      - id: other
        say: other
      - id: out
        say: '{{{{ slots | length }}}} left'
"
    ));
    let (state, out) = run(&b, Lang::Zh, &[("x", Some("a"))]);
    assert_eq!(out[0], vec![say("gold"), say("cleared"), say("1 left")]);
    assert_eq!(state.slots.get("level"), None);
    assert_eq!(state.slots.get("vip"), Some(&json!(true)));
}

#[test]
fn every_text_of_a_turn_sees_the_slots_as_they_are_then() {
    // The interpreter reuses one template context across a turn's texts while the slots do
    // not change; each `set` must still show in the next text.
    let b = bot(&format!(
        "{INTENTS}
slots:
  level: {{type: enum, values: [gold, silver]}}
flows:
  f:
    trigger: {{intent: a}}
    steps:
      - say: 'level={{{{ slots.level or \"none\" }}}}'
      - say: 'again={{{{ slots.level or \"none\" }}}}'
      - set: {{level: gold}}
      - say: 'level={{{{ slots.level }}}}'
      - set: {{level: silver}}
      - say: 'level={{{{ slots.level }}}}'
      - set: {{level: null}}
      - say: 'level={{{{ slots.level or \"none\" }}}}'
"
    ));
    let (_, out) = run(&b, Lang::Zh, &[("x", Some("a"))]);
    assert_eq!(
        out[0],
        vec![
            say("level=none"),
            say("again=none"),
            say("level=gold"),
            say("level=silver"),
            say("level=none"),
        ]
    );
}

#[test]
fn goto_loop_is_cut_off_with_a_handoff() {
    let b = bot(&format!(
        "{INTENTS}slots:\n  n: {{type: integer}}\nflows:\n  f:\n    trigger: {{intent: a}}\n    steps:\n      - set: {{n: 1}}\n      - id: top\n        say: again\n      - ask: n\n        prompt: never asked, the slot is filled\n      - goto: top\n"
    ));
    let (state, out) = run(&b, Lang::Zh, &[("x", Some("a"))]);
    let says = out[0]
        .iter()
        .filter(|e| matches!(e, Effect::Say { .. }))
        .count();
    assert!(says <= MAX_STEPS_PER_TURN, "{says}");
    assert!(
        matches!(out[0].last(), Some(Effect::Handoff { reason, .. }) if reason.contains("without waiting"))
    );
    assert!(state.is_idle());
}

#[test]
fn flow_jump_handoff_and_end_conversation() {
    let b = bot(&format!(
        "{INTENTS}flows:
  f:
    trigger: {{intent: a}}
    steps:
      - say: first
      - flow: g
      - say: never
  g:
    steps:
      - say: in g
      - end: conversation
  h:
    trigger: {{intent: b}}
    steps:
      - handoff: needs a person
      - say: never
"
    ));
    let (_, out) = run(&b, Lang::Zh, &[("x", Some("a")), ("y", Some("b"))]);
    assert_eq!(out[0], vec![say("first"), say("in g"), Effect::End]);
    assert_eq!(
        out[1],
        vec![Effect::Handoff {
            reason: "needs a person".into(),
            queue: None,
        }]
    );
}

#[test]
fn a_flow_with_nothing_to_say_still_replies() {
    let b = bot(&format!(
        "{INTENTS}slots:\n  s: {{type: text}}\nflows:\n  f:\n    trigger: {{intent: a}}\n    steps:\n      - set: {{s: hi}}\n"
    ));
    let (_, out) = run(&b, Lang::En, &[("x", Some("a"))]);
    assert_eq!(
        out[0],
        vec![say("Is there anything else I can help you with?")]
    );
}

const DIGRESS_BOT: &str = "
slots:
  order_id: {type: order_id}
  note: {type: text}
flows:
  f:
    trigger: {intent: a}
    steps:
      - ask: order_id
        prompt: order?
      - say: 'order {{ slots.order_id }}'
  g:
    trigger: {intent: b}
    steps:
      - say: side answer
  n:
    trigger: {intent: c}
    steps:
      - ask: note
        prompt: note?
      - say: noted
";

#[test]
fn digression_pushes_and_resumes() {
    let b = bot(&format!("{INTENTS}{DIGRESS_BOT}"));
    let (state, out) = run(
        &b,
        Lang::En,
        &[
            ("x", Some("a")),
            ("other topic", Some("b")),
            ("A12345678", None),
        ],
    );
    assert_eq!(
        out[1],
        vec![
            say("side answer"),
            say("Let's get back to where we were."),
            say("order?")
        ]
    );
    assert_eq!(out[2], vec![say("order A12345678")]);
    assert!(state.is_idle() && state.stack.is_empty());
}

#[test]
fn a_valid_answer_beats_a_strong_intent_for_typed_slots() {
    let b = bot(&format!("{INTENTS}{DIGRESS_BOT}"));
    let (_, out) = run(
        &b,
        Lang::En,
        &[("x", Some("a")), ("b A12345678", Some("b"))],
    );
    assert_eq!(out[1], vec![say("order A12345678")]);
}

#[test]
fn text_slots_yield_to_a_strong_intent_but_not_a_weak_one() {
    let b = bot(&format!("{INTENTS}{DIGRESS_BOT}"));
    let (state, out) = run(&b, Lang::En, &[("x", Some("c")), ("side", Some("b"))]);
    assert_eq!(out[1][0], say("side answer"));
    assert_eq!(state.active, Some(Frame::start("n")));
    let mut s = DialogState::default();
    s = step(&b, &s, &TurnInput::new("x", Lang::En).with_intent("c", 0.9)).state;
    let out = step(
        &b,
        &s,
        &TurnInput::new("side", Lang::En).with_intent("b", 0.6),
    );
    assert_eq!(
        out.effects,
        vec![say("noted")],
        "0.6 < digression threshold: an answer"
    );
}

#[test]
fn stack_is_bounded_and_drops_the_oldest() {
    let b = bot(&format!(
        "{INTENTS}settings:\n  max_stack_depth: 1\n{DIGRESS_BOT}"
    ));
    // f waits, then n interrupts it, then b interrupts n: only n is remembered.
    let (state, out) = run(
        &b,
        Lang::En,
        &[("x", Some("a")), ("y", Some("c")), ("z", Some("b"))],
    );
    assert_eq!(state.stack.len(), 0);
    assert_eq!(state.active, Some(Frame::start("n")));
    assert_eq!(out[2].last(), Some(&say("note?")));
}

#[test]
fn no_stack_means_no_resume() {
    let b = bot(&format!(
        "{INTENTS}settings:\n  max_stack_depth: 0\n{DIGRESS_BOT}"
    ));
    let (state, out) = run(&b, Lang::En, &[("x", Some("a")), ("y", Some("b"))]);
    assert_eq!(out[1], vec![say("side answer")]);
    assert!(state.is_idle());
}

#[test]
fn weak_or_unknown_intents_fall_back() {
    let b = bot(&format!("{INTENTS}{DIGRESS_BOT}"));
    let weak = step(
        &b,
        &DialogState::default(),
        &TurnInput::new("x", Lang::En).with_intent("a", 0.3),
    );
    assert_eq!(weak.effects, vec![say(&b.fallback_text(Lang::En))]);
    assert_eq!(weak.state.fallbacks, 1);
    let unknown = step(
        &b,
        &DialogState::default(),
        &TurnInput::new("x", Lang::En).with_intent("zzz", 1.0),
    );
    assert_eq!(unknown.effects, vec![say(&b.fallback_text(Lang::En))]);
    let nan = step(
        &b,
        &DialogState::default(),
        &TurnInput::new("x", Lang::En).with_intent("a", f32::NAN),
    );
    assert_eq!(nan.state.fallbacks, 1);
}

#[test]
fn stale_state_is_repaired() {
    let b = bot(&format!("{INTENTS}{DIGRESS_BOT}"));
    let mut s = DialogState {
        active: Some(Frame {
            flow: "gone".into(),
            step: 3,
            attempts: 9,
            returns: Vec::new(),
        }),
        ..Default::default()
    };
    s.stack = (0..20)
        .map(|i| Frame {
            flow: "f".into(),
            step: i,
            attempts: 0,
            returns: Vec::new(),
        })
        .collect();
    s.slots.insert("order_id".into(), json!(12));
    s.slots.insert("removed".into(), json!("x"));
    s.slots.insert("note".into(), json!("kept"));
    let out = step(
        &b,
        &s,
        &TurnInput::new("hello", Lang::En).with_intent("b", 0.9),
    );
    assert!(out.state.stack.len() <= usize::from(b.settings().max_stack_depth));
    assert_eq!(out.state.slots.len(), 1, "{:?}", out.state.slots);
    assert!(out.effects.iter().any(|e| matches!(e, Effect::Say { .. })));
}

#[test]
fn custom_responses_are_used() {
    let b = bot(&format!(
        "{INTENTS}{DIGRESS_BOT}settings:\n  max_fallbacks: 2\nresponses:\n  fallback: {{zh: 没懂, en: Huh?}}\n  handoff: Human coming\n"
    ));
    let (_, out) = run(&b, Lang::En, &[("?", None), ("??", None)]);
    assert_eq!(out[0], vec![say("Huh?")]);
    assert_eq!(out[1][0], say("Human coming"));
    assert!(matches!(out[1][1], Effect::Handoff { .. }));
}

const PREFILL_BOT: &str = "
slots:
  order: {type: order_id}
  kind: {type: enum, values: [{return: [退货, refund]}, {exchange: [换货]}]}
  qty: {type: integer, min: 1, max: 9}
  ok: {type: bool}
  note: {type: text}
  from: {type: order_id}
flows:
  f:
    trigger: {intent: a}
    steps:
      - ask: order
        prompt: which order?
      - ask: kind
        prompt: return or exchange?
      - ask: qty
        prompt: how many?
      - ask: ok
        prompt: sure?
      - ask: note
        prompt: anything else?
      - say: 'done {{ slots.order }} {{ slots.kind }} {{ slots.qty }} {{ slots.ok }} {{ slots.note }}'
  g:
    trigger: {intent: b}
    steps:
      - ask: order
        prompt: which order?
      - ask: from
        prompt: exchanged from which order?
      - say: 'g {{ slots.order }} {{ slots.from }}'
  h:
    trigger: {intent: c}
    steps:
      - ask: order
        prompt: which order?
        ask_before_filling: true
      - say: 'h {{ slots.order }}'
";

#[test]
fn the_starting_message_fills_self_identifying_slots_ahead() {
    let b = bot(&format!("{INTENTS}{PREFILL_BOT}"));
    // Order number and enum synonym in the first message: both questions skipped; the
    // integer 2 and the 要 in it are not guessed for `qty` and `ok`.
    let (state, out) = run(&b, Lang::Zh, &[("我要换货 2 件要快 A12345678", Some("a"))]);
    assert_eq!(state.slots.get("order"), Some(&json!("A12345678")));
    assert_eq!(state.slots.get("kind"), Some(&json!("exchange")));
    assert_eq!(state.slots.get("qty"), None);
    assert_eq!(state.slots.get("ok"), None);
    assert_eq!(out[0], vec![say("how many?")]);
}

#[test]
fn an_answer_also_fills_later_questions_and_one_value_fills_one_slot() {
    let b = bot(&format!("{INTENTS}{PREFILL_BOT}"));
    // The answer to "which order?" also holds the kind: answered ahead.
    let (state, out) = run(
        &b,
        Lang::Zh,
        &[("查一下", Some("a")), ("B20240615001 退货", None)],
    );
    assert_eq!(out[0], vec![say("which order?")]);
    assert_eq!(state.slots.get("order"), Some(&json!("B20240615001")));
    assert_eq!(state.slots.get("kind"), Some(&json!("return")));
    assert_eq!(out[1], vec![say("how many?")]);
    // Two order-number slots: the one number fills only the first.
    let (state, out) = run(&b, Lang::Zh, &[("A12345678", Some("b"))]);
    assert_eq!(state.slots.get("order"), Some(&json!("A12345678")));
    assert_eq!(state.slots.get("from"), None);
    assert_eq!(out[0], vec![say("exchanged from which order?")]);
}

#[test]
fn ask_before_filling_always_asks() {
    let b = bot(&format!("{INTENTS}{PREFILL_BOT}"));
    let (state, out) = run(
        &b,
        Lang::Zh,
        &[("A12345678", Some("c")), ("C99887766", None)],
    );
    assert_eq!(out[0], vec![say("which order?")]);
    assert_eq!(out[1], vec![say("h C99887766")]);
    assert_eq!(state.slots.get("order"), Some(&json!("C99887766")));
}
