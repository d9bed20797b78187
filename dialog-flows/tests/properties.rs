//! Property tests: random conversations (and random stored states) against a bot that
//! uses every step kind, with random skill results, generations and signals interleaved.
//! Whatever happens, the interpreter's invariants hold: never stuck (a visible effect or a
//! pending external), slots typed, stacks bounded (digressions and sub-flow returns),
//! digressions resume where they left off.

use kefu_flows::{
    Bot, DialogState, Effect, External, Frame, Lang, Signals, SkillResult, StepKind, TurnInput,
    resume, step,
};
use proptest::prelude::*;

const BOT: &str = r#"
settings:
  max_fallbacks: 2
  max_stack_depth: 2
  max_call_depth: 2
policies:
  upset:
    when: emotion.negative_streak >= 3
    first: {say: 抱歉, then: continue}
  vip:
    when: user.vip and intent == "human"
    say: VIP 转接
    queue: vip
intents:
  order: {examples: {zh: [查订单]}}
  ret: {examples: {zh: [退货]}}
  note: {examples: {zh: [留言]}}
  count: {examples: {zh: [数量]}}
  info: {examples: {zh: [运费]}}
  human: {examples: {zh: [人工]}}
  bye: {examples: {zh: [再见]}}
  loop: {examples: {zh: [循环]}}
  lookup: {examples: {zh: [查询]}}
  nest: {examples: {zh: [嵌套]}}
slots:
  data: {type: json}
  answer: {type: text}
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
  lookup:
    trigger: {intent: lookup}
    steps:
      - ask: order_id
        prompt: 订单号?
      - call: orders
        args: {order_id: "{{ slots.order_id }}"}
        save: data
        on: {not_found: gen, error: retry}
      - say: '状态 {{ slots.data.status }}'
      - end
      - id: gen
        generate: '回答 {{ text }}'
        context: ['{{ slots.answer }}']
        save: answer
        fallback: 不知道
      - say: '{{ slots.answer }}'
      - end
      - id: retry
        ask: ok
        prompt: 再试一次?
      - call_flow: order
      - call: orders
        save: data
  nest:
    trigger: {intent: nest}
    steps:
      - call_flow: inner
      - say: 回来了
  inner:
    steps:
      - call_flow: note
      - call_flow: lookup
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
const INTENTS: [&str; 12] = [
    "order", "ret", "note", "count", "info", "human", "bye", "loop", "lookup", "nest", "nope", "",
];

#[derive(Debug, Clone)]
struct Event {
    text: String,
    lang: Lang,
    intent: Option<(String, f32)>,
    user: String,
    signals: Signals,
    /// Instead of a user message: the result of a pending call or generation.
    result: Option<External>,
}

fn external() -> impl Strategy<Value = External> {
    let outcome = proptest::sample::select(vec![
        "found",
        "not_found",
        "declined",
        "needs_human",
        "error",
        "bogus",
    ]);
    let data = prop_oneof![
        Just(serde_json::json!(null)),
        Just(serde_json::json!({"status": "shipped"})),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    prop_oneof![
        (outcome, data, proptest::option::of(".{0,10}")).prop_map(|(o, data, message)| {
            External::Skill(SkillResult {
                outcome: o.to_string(),
                data,
                message,
            })
        }),
        prop_oneof![".{0,30}".prop_map(Ok), ".{0,10}".prop_map(Err)].prop_map(External::Generated),
    ]
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
    let signals = (0u32..6, any::<bool>()).prop_map(|(streak, vip)| Signals {
        emotion: (streak > 0).then(|| "angry".to_string()),
        negative_streak: streak,
        vip,
        ..Signals::default()
    });
    let user = proptest::sample::select(vec!["", "u1", "u2"]).prop_map(str::to_string);
    let result = prop_oneof![2 => Just(None), 1 => external().prop_map(Some)];
    (text, lang, intent, user, signals, result).prop_map(
        |(text, lang, intent, user, signals, result)| Event {
            text,
            lang,
            intent,
            user,
            signals,
            result,
        },
    )
}

fn input(e: &Event) -> TurnInput<'_> {
    let mut input = TurnInput::new(&e.text, e.lang)
        .from_user(&e.user)
        .with_signals(e.signals.clone());
    if let Some((name, conf)) = &e.intent {
        input = input.with_intent(name, *conf);
    }
    input
}

/// Applies one event: a result resumes (a no-op when nothing waits), a message steps.
fn apply(bot: &Bot, state: &DialogState, e: &Event) -> Result<kefu_flows::Step, TestCaseError> {
    let input = input(e);
    match &e.result {
        Some(result) => {
            let out = resume(bot, state, &input, result.clone());
            if !state.is_waiting() {
                prop_assert!(
                    out.effects.is_empty(),
                    "resume without a wait: {:?}",
                    out.effects
                );
                prop_assert_eq!(&out.state, state);
            } else {
                check(bot, &out)?;
            }
            Ok(out)
        }
        None => {
            let out = step(bot, state, &input);
            check(bot, &out)?;
            Ok(out)
        }
    }
}

fn random_state() -> impl Strategy<Value = DialogState> {
    let flow = proptest::sample::select(vec![
        "order", "ret", "note", "count", "lookup", "inner", "gone", "",
    ])
    .prop_map(str::to_string);
    let ret = (
        proptest::sample::select(vec!["order", "lookup", "gone"]),
        0u32..12,
    )
        .prop_map(|(flow, step)| kefu_flows::Return {
            flow: flow.to_string(),
            step,
        });
    let frame = (
        flow,
        0u32..12,
        0u8..=255,
        proptest::collection::vec(ret, 0..12),
    )
        .prop_map(|(flow, step, attempts, returns)| Frame {
            flow,
            step,
            attempts,
            returns,
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
        proptest::option::of(prop_oneof![
            Just(kefu_flows::Waiting::Generation),
            Just(kefu_flows::Waiting::Skill {
                skill: "orders".into()
            }),
            Just(kefu_flows::Waiting::Skill {
                skill: "gone".into()
            }),
        ]),
    )
        .prop_map(|(active, stack, slots, fallbacks, waiting)| DialogState {
            active,
            stack,
            slots,
            fallbacks,
            waiting,
            ..DialogState::default()
        })
}

/// Every invariant the interpreter promises about one turn's result.
fn check(bot: &Bot, out: &kefu_flows::Step) -> Result<(), TestCaseError> {
    let s = &out.state;
    // Never stuck: something the user sees, or exactly one pending external, last.
    let pending = out.effects.iter().filter(|e| e.is_pending()).count();
    prop_assert!(pending <= 1, "{pending} pending effects: {:?}", out.effects);
    prop_assert_eq!(
        out.pending().is_some(),
        pending == 1,
        "pending not last: {:?}",
        out.effects
    );
    prop_assert_eq!(
        s.is_waiting(),
        pending == 1,
        "waiting {:?} vs {:?}",
        s.waiting,
        out.effects
    );
    prop_assert!(
        pending == 1 || out.effects.iter().any(Effect::is_visible),
        "stuck: {:?}",
        out.effects
    );
    prop_assert!(
        s.stack.len() <= usize::from(bot.settings().max_stack_depth),
        "stack {}",
        s.stack.len()
    );
    for frame in s.active.iter().chain(s.stack.iter()) {
        prop_assert!(
            frame.returns.len() <= usize::from(bot.settings().max_call_depth),
            "sub-flow depth {}",
            frame.returns.len()
        );
    }
    let slots: std::collections::BTreeMap<&str, &kefu_flows::SlotDef> = bot.slots().collect();
    for (name, value) in &s.slots {
        let def = slots.get(name.as_str());
        prop_assert!(
            def.is_some_and(|d| d.ty.accepts(value)),
            "slot {name} = {value}"
        );
    }
    // Between turns a running flow waits at an `ask`, or at the call/generate it suspended on.
    if let Some(frame) = &s.active {
        let flow = bot.flows().find(|(n, _)| *n == frame.flow).map(|(_, f)| f);
        let at = flow
            .and_then(|f| f.steps.get(frame.step as usize))
            .map(|s| &s.kind);
        let ok = if s.is_waiting() {
            matches!(at, Some(StepKind::Call(_) | StepKind::Generate(_)))
        } else {
            matches!(at, Some(StepKind::Ask(_)))
        };
        prop_assert!(
            ok,
            "active frame not at an ask/external: {frame:?} waiting {:?}",
            s.waiting
        );
    } else {
        prop_assert!(!s.is_waiting());
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
            state = apply(&bot, &state, e)?.state;
        }
    }

    #[test]
    fn any_stored_state_is_repaired(state in random_state(), e in event()) {
        let bot = bot();
        let out = step(&bot, &state, &input(&e));
        check(&bot, &out)?;
        if let Some(result) = e.result.clone() {
            let resumed = resume(&bot, &state, &input(&e), result);
            if resumed.state.is_waiting() || !resumed.effects.is_empty() {
                check(&bot, &resumed)?;
            }
        }
    }

    #[test]
    fn step_is_deterministic(events in proptest::collection::vec(event(), 1..10)) {
        let bot = bot();
        let mut a = DialogState::default();
        let mut b = DialogState::default();
        for e in &events {
            let x = apply(&bot, &a, e)?;
            let y = apply(&bot, &b, e)?;
            prop_assert_eq!(&x, &y);
            a = x.state;
            b = y.state;
        }
    }

    /// After any conversation, a flow waiting at a question that is interrupted by a flow
    /// that only talks resumes at the same question with the same attempts.
    #[test]
    fn digressions_resume_where_they_left_off(events in proptest::collection::vec(event(), 0..20)) {
        let bot = bot();
        let mut state = DialogState::default();
        for e in &events {
            state = apply(&bot, &state, e)?.state;
        }
        let Some(before) = state.active.clone() else { return Ok(()) };
        if state.is_waiting() || bot.settings().max_stack_depth == 0 {
            return Ok(());
        }
        let out = step(&bot, &state, &TurnInput::new("运费", Lang::Zh).with_intent("info", 0.99));
        check(&bot, &out)?;
        prop_assert_eq!(out.state.active.as_ref(), Some(&before), "{:?}", out.effects);
        if state.stack.len() < usize::from(bot.settings().max_stack_depth) {
            prop_assert_eq!(&out.state.stack, &state.stack);
        } else {
            // A full stack made room for the interrupted flow by dropping its oldest entry
            // (documented): the newer ones are kept, in order.
            prop_assert_eq!(&out.state.stack[..], &state.stack[1..]);
        }
    }
}
