//! Property tests: random conversations (and random stored states) against a bot that
//! uses every step kind. Whatever happens, the interpreter's invariants hold.

use kefu_flows::{Bot, DialogState, Effect, Frame, Lang, StepKind, TurnInput, step};
use proptest::prelude::*;

const BOT: &str = r#"
settings:
  max_fallbacks: 2
  max_stack_depth: 2
intents:
  order: {examples: {zh: [查订单]}}
  ret: {examples: {zh: [退货]}}
  note: {examples: {zh: [留言]}}
  count: {examples: {zh: [数量]}}
  info: {examples: {zh: [运费]}}
  human: {examples: {zh: [人工]}}
  bye: {examples: {zh: [再见]}}
  loop: {examples: {zh: [循环]}}
slots:
  order_id: {type: order_id}
  kind: {type: enum, values: [{refund: [退款, refund]}, {exchange: [换货, exchange]}]}
  memo: {type: text}
  qty: {type: integer, min: 1, max: 9}
  ok: {type: bool}
  mail: {type: email}
  phone: {type: phone}
  price: {type: number, min: 0}
flows:
  order:
    trigger: {intent: order}
    steps:
      - ask: order_id
        prompt: 订单号?
        max_attempts: 2
        on_fail: fallback
      - say: '订单 {{ slots.order_id }}'
  ret:
    trigger: {intent: ret}
    steps:
      - ask: kind
        prompt: 退还是换?
        on_fail: other
      - ask: order_id
        prompt: 订单号?
      - branch: {if: 'slots.kind == "refund"', then: refund}
      - say: 换货
      - end
      - id: refund
        ask: ok
        prompt: 确认退款?
        on_fail: handoff
      - end: flow
      - id: other
        set: {kind: refund}
      - goto: refund
  note:
    trigger: {intent: note}
    steps:
      - ask: memo
        prompt: 请留言
      - ask: mail
        prompt: 邮箱?
        max_attempts: 1
        on_fail: skip
      - id: skip
        ask: phone
        prompt: 电话?
      - set: {memo: null}
      - say: 已记录
  count:
    trigger: {intent: count}
    steps:
      - ask: qty
        prompt: 几个?
      - ask: price
        prompt: 价格?
      - flow: order
  info:
    trigger: {intent: info}
    steps:
      - say: 满99包邮
  human:
    trigger: {intent: human}
    steps:
      - handoff: asked
  bye:
    trigger: {intent: bye}
    steps:
      - say: 再见
      - end: conversation
  loop:
    trigger: {intent: loop}
    steps:
      - id: top
        set: {ok: true}
      - ask: ok
        prompt: never asked, the slot is always filled
      - goto: top
"#;

fn bot() -> Bot {
    Bot::load_str("prop.yaml", BOT).unwrap_or_else(|d| panic!("{d:?}"))
}

const TEXTS: [&str; 14] = [
    "A12345678",
    "我的订单号是 b20240615001",
    "退款",
    "换货吧",
    "好的",
    "不要",
    "3个",
    "十五",
    "12.5元",
    "me@example.com",
    "138 0013 8000",
    "",
    "   ",
    "随便说点什么",
];
const INTENTS: [&str; 10] = [
    "order", "ret", "note", "count", "info", "human", "bye", "loop", "nope", "",
];

#[derive(Debug, Clone)]
struct Event {
    text: String,
    lang: Lang,
    intent: Option<(String, f32)>,
}

fn event() -> impl Strategy<Value = Event> {
    let text = prop_oneof![
        3 => proptest::sample::select(TEXTS.to_vec()).prop_map(str::to_string),
        1 => ".{0,40}",
    ];
    let lang = prop_oneof![Just(Lang::Zh), Just(Lang::En)];
    let intent = proptest::option::of((
        proptest::sample::select(INTENTS.to_vec()).prop_map(str::to_string),
        0.0f32..=1.0,
    ));
    (text, lang, intent).prop_map(|(text, lang, intent)| Event { text, lang, intent })
}

fn random_state() -> impl Strategy<Value = DialogState> {
    let flow = proptest::sample::select(vec!["order", "ret", "note", "count", "gone", ""])
        .prop_map(str::to_string);
    let frame = (flow, 0u32..12, 0u8..=255).prop_map(|(flow, step, attempts)| Frame {
        flow,
        step,
        attempts,
        returns: Vec::new(),
    });
    let value = prop_oneof![
        Just(serde_json::json!(null)),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
    ];
    let slot = proptest::sample::select(vec!["order_id", "kind", "memo", "qty", "ok", "mail", "x"])
        .prop_map(str::to_string);
    (
        proptest::option::of(frame.clone()),
        proptest::collection::vec(frame, 0..12),
        proptest::collection::btree_map(slot, value, 0..6),
        any::<u8>(),
    )
        .prop_map(|(active, stack, slots, fallbacks)| DialogState {
            active,
            stack,
            slots,
            fallbacks,
            ..DialogState::default()
        })
}

/// Every invariant the interpreter promises about one turn's result.
fn check(bot: &Bot, out: &kefu_flows::Step) -> Result<(), TestCaseError> {
    prop_assert!(
        out.effects.iter().any(Effect::is_visible),
        "stuck: {:?}",
        out.effects
    );
    let s = &out.state;
    prop_assert!(
        s.stack.len() <= usize::from(bot.settings().max_stack_depth),
        "stack {}",
        s.stack.len()
    );
    let slots: std::collections::BTreeMap<&str, &kefu_flows::SlotDef> = bot.slots().collect();
    for (name, value) in &s.slots {
        let def = slots.get(name.as_str());
        prop_assert!(
            def.is_some_and(|d| d.ty.accepts(value)),
            "slot {name} = {value}"
        );
    }
    // Between turns a running flow always waits at an `ask`.
    if let Some(frame) = &s.active {
        let flow = bot.flows().find(|(n, _)| *n == frame.flow).map(|(_, f)| f);
        let at = flow.and_then(|f| f.steps.get(frame.step as usize));
        prop_assert!(
            matches!(at.map(|s| &s.kind), Some(StepKind::Ask(_))),
            "active frame not at an ask: {frame:?}"
        );
    }
    let text = serde_json::to_string(s).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: DialogState =
        serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, s);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_conversations_keep_the_invariants(events in proptest::collection::vec(event(), 1..40)) {
        let bot = bot();
        let mut state = DialogState::default();
        for e in &events {
            let mut input = TurnInput::new(&e.text, e.lang);
            if let Some((name, conf)) = &e.intent {
                input = input.with_intent(name, *conf);
            }
            let out = step(&bot, &state, &input);
            check(&bot, &out)?;
            state = out.state;
        }
    }

    #[test]
    fn any_stored_state_is_repaired(state in random_state(), e in event()) {
        let bot = bot();
        let mut input = TurnInput::new(&e.text, e.lang);
        if let Some((name, conf)) = &e.intent {
            input = input.with_intent(name, *conf);
        }
        let out = step(&bot, &state, &input);
        check(&bot, &out)?;
    }

    #[test]
    fn step_is_deterministic(events in proptest::collection::vec(event(), 1..10)) {
        let bot = bot();
        let mut a = DialogState::default();
        let mut b = DialogState::default();
        for e in &events {
            let mut input = TurnInput::new(&e.text, e.lang);
            if let Some((name, conf)) = &e.intent {
                input = input.with_intent(name, *conf);
            }
            let x = step(&bot, &a, &input);
            let y = step(&bot, &b, &input);
            prop_assert_eq!(&x, &y);
            a = x.state;
            b = y.state;
        }
    }
}
