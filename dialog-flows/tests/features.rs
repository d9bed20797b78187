//! The newer language features end to end on small bots: skill calls and generation with
//! `resume`, sub-flows, per-channel and A/B reply variants, escalation policies, entities.

use kefu_flows::{
    Bot, DialogState, Effect, External, Lang, LoadOptions, Signals, SkillResult, Step, TurnInput,
    Waiting, resume, step,
};
use serde_json::json;

fn bot(yaml: &str) -> Bot {
    Bot::load_str("t.yaml", yaml).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
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

const ORDERS: &str = r#"
intents:
  order: {examples: {zh: [查订单]}}
  other: {examples: {zh: [运费]}}
slots:
  order_id: {type: order_id}
  order: {type: json}
  answer: {type: text}
flows:
  order:
    trigger: {intent: order}
    steps:
      - ask: order_id
        prompt: 订单号?
      - say: 正在查询 {{ slots.order_id }}
      - call: orders
        args: {order_id: "{{ slots.order_id }}", verbose: true}
        save: order
        on: {not_found: missing, declined: handoff}
      - say: "状态: {{ slots.order.status }}"
      - end
      - id: missing
        say: 没有找到订单 {{ slots.order_id }}
  other:
    trigger: {intent: other}
    steps:
      - generate: "回答: {{ text }}"
        context: ["满99包邮", "{{ slots.answer }}"]
        save: answer
        fallback: 暂时无法回答
      - say: "{{ slots.answer }}"
"#;

fn ask_order(b: &Bot) -> Step {
    let s1 = step(
        b,
        &DialogState::default(),
        &TurnInput::new("查订单", Lang::Zh).with_intent("order", 0.9),
    );
    step(b, &s1.state, &TurnInput::new("A12345678", Lang::Zh))
}

#[test]
fn call_suspends_then_found_resumes() {
    let b = bot(ORDERS);
    let out = ask_order(&b);
    assert_eq!(says(&out.effects), ["正在查询 A12345678"]);
    let Some(Effect::Call { skill, args }) = out.pending() else {
        panic!("not pending: {:?}", out.effects)
    };
    assert_eq!(skill, "orders");
    assert_eq!(args["order_id"], json!("A12345678"));
    assert_eq!(args["verbose"], json!(true));
    assert_eq!(
        out.state.waiting,
        Some(Waiting::Skill {
            skill: "orders".into()
        })
    );
    let input = TurnInput::new("A12345678", Lang::Zh);
    let done = resume(
        &b,
        &out.state,
        &input,
        External::Skill(SkillResult::found(json!({"status": "已发货"}))),
    );
    assert_eq!(says(&done.effects), ["状态: 已发货"]);
    assert!(done.pending().is_none());
    assert!(done.state.is_idle() && !done.state.is_waiting());
    assert_eq!(done.state.slots["order"], json!({"status": "已发货"}));
    // A duplicate result changes nothing.
    let again = resume(
        &b,
        &done.state,
        &input,
        External::Skill(SkillResult::found(json!({}))),
    );
    assert!(again.effects.is_empty());
    assert_eq!(again.state, done.state);
}

#[test]
fn outcomes_route_and_default() {
    let b = bot(ORDERS);
    let input = TurnInput::new("x", Lang::Zh);
    let out = ask_order(&b);
    let nf = resume(
        &b,
        &out.state,
        &input,
        External::Skill(SkillResult::other("not_found", "no such order")),
    );
    assert_eq!(says(&nf.effects), ["没有找到订单 A12345678"]);
    assert!(!nf.state.slots.contains_key("order"));
    let dec = resume(
        &b,
        &out.state,
        &input,
        External::Skill(SkillResult::other("declined", "blocked")),
    );
    assert!(
        matches!(dec.effects.last(), Some(Effect::Handoff { reason, .. }) if reason == "skill `orders`: blocked")
    );
    let nh = resume(
        &b,
        &out.state,
        &input,
        External::Skill(SkillResult::other("needs_human", "")),
    );
    assert!(
        matches!(nh.effects.last(), Some(Effect::Handoff { reason, .. }) if reason.contains("needs_human"))
    );
    // Default for `error` (and for an unknown outcome): the fallback reply, flow ended.
    for outcome in ["error", "weird"] {
        let e = resume(
            &b,
            &out.state,
            &input,
            External::Skill(SkillResult::other(outcome, "down")),
        );
        assert_eq!(e.effects.len(), 1, "{:?}", e.effects);
        assert!(e.state.is_idle());
    }
    // Generated text given to a skill call is an error too.
    let g = resume(&b, &out.state, &input, External::Generated(Ok("hi".into())));
    assert!(g.state.is_idle() && !g.state.is_waiting());
}

#[test]
fn a_stale_wait_is_an_error_then_the_message_is_handled() {
    let b = bot(ORDERS);
    let out = ask_order(&b);
    // The result never came (crash); the user writes again.
    let next = step(
        &b,
        &out.state,
        &TurnInput::new("运费多少", Lang::Zh).with_intent("other", 0.9),
    );
    assert!(!says(&next.effects).is_empty(), "error route replied");
    assert!(
        matches!(next.pending(), Some(Effect::Generate { .. })),
        "{:?}",
        next.effects
    );
}

#[test]
fn generate_saves_or_falls_back() {
    let b = bot(ORDERS);
    let input = TurnInput::new("运费多少", Lang::Zh).with_intent("other", 0.9);
    let out = step(&b, &DialogState::default(), &input);
    assert!(says(&out.effects).is_empty());
    let Some(Effect::Generate {
        prompt,
        context,
        save,
        ..
    }) = out.pending()
    else {
        panic!("{:?}", out.effects)
    };
    assert_eq!(prompt, "回答: 运费多少");
    assert_eq!(
        context,
        &vec!["满99包邮".to_string()],
        "empty passages are left out"
    );
    assert_eq!(save.as_deref(), Some("answer"));
    let ok = resume(
        &b,
        &out.state,
        &input,
        External::Generated(Ok(" 满99元包邮 ".into())),
    );
    assert_eq!(says(&ok.effects), ["满99元包邮"]);
    let failed = resume(
        &b,
        &out.state,
        &input,
        External::Generated(Err("timeout".into())),
    );
    assert_eq!(says(&failed.effects), ["暂时无法回答"]);
    let empty = resume(&b, &out.state, &input, External::Generated(Ok("  ".into())));
    assert_eq!(says(&empty.effects), ["暂时无法回答"]);
}

#[test]
fn skill_names_are_checked_when_known() {
    let files = [("t.yaml".into(), ORDERS.to_string())];
    let opts = LoadOptions::with_known_skills(["kb", "order"]);
    let errs = Bot::load_files_with("t", &files, &opts).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].message, "unknown skill `orders`");
    assert_eq!(errs[0].hint.as_deref(), Some("did you mean `order`?"));
    let ok = LoadOptions::with_known_skills(["orders"]);
    let b = Bot::load_files_with("t", &files, &ok).unwrap();
    assert_eq!(b.skills(), ["orders"]);
}

const SUBFLOWS: &str = r#"
settings: {max_call_depth: 2}
intents:
  a: {examples: {zh: [a]}}
  deep: {examples: {zh: [deep]}}
slots:
  phone: {type: mobile}
flows:
  a:
    trigger: {intent: a}
    steps:
      - say: start
      - call_flow: verify
      - say: "verified {{ slots.phone }}"
  verify:
    steps:
      - ask: phone
        prompt: 手机号?
      - say: ok
  deep:
    trigger: {intent: deep}
    steps:
      - call_flow: l1
      - say: back in deep
  l1:
    steps:
      - call_flow: l2
      - say: back in l1
  l2:
    steps:
      - call_flow: l3
  l3:
    steps:
      - say: too deep
"#;

#[test]
fn call_flow_returns_to_the_next_step() {
    let b = bot(SUBFLOWS);
    let s1 = step(
        &b,
        &DialogState::default(),
        &TurnInput::new("a", Lang::Zh).with_intent("a", 0.9),
    );
    assert_eq!(says(&s1.effects), ["start", "手机号?"]);
    let frame = s1.state.active.clone().unwrap();
    assert_eq!((frame.flow.as_str(), frame.returns.len()), ("verify", 1));
    // The NLU's entity value wins over text extraction.
    let input = TurnInput::new("我的号码", Lang::Zh).with_entity("mobile", json!("13912345678"));
    let s2 = step(&b, &s1.state, &input);
    assert_eq!(says(&s2.effects), ["ok", "verified 13912345678"]);
    assert!(s2.state.is_idle());
}

#[test]
fn call_depth_is_bounded() {
    let b = bot(SUBFLOWS);
    let out = step(
        &b,
        &DialogState::default(),
        &TurnInput::new("deep", Lang::Zh).with_intent("deep", 0.9),
    );
    assert!(
        matches!(out.effects.last(), Some(Effect::Handoff { reason, .. }) if reason.contains("deeper than 2")),
        "{:?}",
        out.effects
    );
}

const VARIANTS: &str = r#"
experiments:
  tone:
    variants: {formal: 1, casual: 1}
intents:
  hi: {examples: {zh: [你好]}}
  fee: {examples: {zh: [运费]}}
flows:
  hi:
    trigger: {intent: hi}
    steps:
      - say:
          experiment: tone
          variants:
            formal: {zh: 您好, en: Good day}
            casual: {zh: 嗨, en: Hi}
  fee:
    trigger: {intent: fee}
    steps:
      - say:
          zh: 全场满99元包邮，不满99元收取8元运费，偏远地区另计。
          en: Free shipping over 99 yuan.
          channels:
            sms: {zh: 满99包邮}
"#;

#[test]
fn channel_variant_is_used_on_its_channel() {
    let b = bot(VARIANTS);
    let input = |ch| {
        TurnInput::new("运费", Lang::Zh)
            .with_intent("fee", 0.9)
            .on_channel(ch)
    };
    let sms = step(&b, &DialogState::default(), &input("sms"));
    assert_eq!(says(&sms.effects), ["满99包邮"]);
    let web = step(&b, &DialogState::default(), &input("web"));
    assert_eq!(
        says(&web.effects),
        ["全场满99元包邮，不满99元收取8元运费，偏远地区另计。"]
    );
    // No English SMS version: the main English text beats the Chinese SMS one.
    let en = TurnInput::new("fee", Lang::En)
        .with_intent("fee", 0.9)
        .on_channel("sms");
    assert_eq!(
        says(&step(&b, &DialogState::default(), &en).effects),
        ["Free shipping over 99 yuan."]
    );
}

#[test]
fn ab_variant_is_stable_per_user_and_reported() {
    let b = bot(VARIANTS);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let user = format!("user-{i}");
        let input = TurnInput::new("你好", Lang::Zh)
            .with_intent("hi", 0.9)
            .from_user(&user);
        let first = step(&b, &DialogState::default(), &input);
        let again = step(&b, &DialogState::default(), &input);
        assert_eq!(first.effects, again.effects, "stable for {user}");
        let Some(Effect::Experiment { name, variant }) = first.effects.first() else {
            panic!("{:?}", first.effects)
        };
        assert_eq!(name, "tone");
        assert_eq!(Some(variant.as_str()), b.variant_for("tone", &user));
        let expected = if variant == "formal" { "您好" } else { "嗨" };
        assert_eq!(says(&first.effects), [expected]);
        seen.insert(variant.clone());
    }
    assert_eq!(seen.len(), 2, "both variants are used across 40 users");
}

const POLICIES: &str = r#"
intents:
  fee: {examples: {zh: [运费]}}
  human: {examples: {zh: [人工]}}
slots:
  order_id: {type: order_id}
policies:
  vip_human:
    when: user.vip and intent == "human"
    say: 尊贵的会员，正在为您优先转接。
    queue: vip
    reason: VIP asked for a human
  upset:
    when: emotion.negative_streak >= 3
    first:
      say: 非常抱歉给您带来不好的体验。
      then: continue
    reason: customer upset
flows:
  fee:
    trigger: {intent: fee}
    steps:
      - say: 满99包邮
  human:
    trigger: {intent: human}
    steps:
      - handoff: asked
"#;

#[test]
fn upset_customer_is_soothed_then_handed_off() {
    let b = bot(POLICIES);
    let mut state = DialogState::default();
    let mut turns = Vec::new();
    for streak in 1..=4 {
        let signals = Signals {
            emotion: Some("angry".into()),
            negative_streak: streak,
            ..Signals::default()
        };
        let input = TurnInput::new("运费", Lang::Zh)
            .with_intent("fee", 0.9)
            .with_signals(signals);
        let out = step(&b, &state, &input);
        state = out.state;
        turns.push(out.effects);
    }
    assert_eq!(says(&turns[1]), ["满99包邮"]);
    assert_eq!(
        says(&turns[2]),
        ["非常抱歉给您带来不好的体验。", "满99包邮"]
    );
    assert!(
        matches!(turns[3].last(), Some(Effect::Handoff { reason, queue: None }) if reason == "customer upset")
    );
    assert!(
        state.fired.is_empty(),
        "a handoff resets the policies' memory"
    );
}

#[test]
fn vip_gets_a_priority_queue() {
    let b = bot(POLICIES);
    let vip = Signals {
        vip: true,
        ..Signals::default()
    };
    let input = TurnInput::new("人工", Lang::Zh)
        .with_intent("human", 0.9)
        .with_signals(vip);
    let out = step(&b, &DialogState::default(), &input);
    assert_eq!(says(&out.effects), ["尊贵的会员，正在为您优先转接。"]);
    assert_eq!(
        out.effects.last(),
        Some(&Effect::Handoff {
            reason: "VIP asked for a human".into(),
            queue: Some("vip".into())
        })
    );
    let plain = step(
        &b,
        &DialogState::default(),
        &TurnInput::new("人工", Lang::Zh).with_intent("human", 0.9),
    );
    assert_eq!(
        plain.effects.last(),
        Some(&Effect::Handoff {
            reason: "asked".into(),
            queue: None
        })
    );
}

#[test]
fn entities_are_declared_and_type_slots() {
    let b = bot(r#"
entities:
  sku: {regex: 'SKU-(\d{6})', description: Product code}
  city:
    lookup:
      - beijing: [北京, 京]
      - shanghai: [上海, 沪]
intents:
  a: {examples: {zh: [a]}}
slots:
  code: {type: sku}
  where: {type: city}
  paid: {type: amount}
flows:
  a:
    trigger: {intent: a}
    steps:
      - ask: code
        prompt: 商品编号?
      - ask: where
        prompt: 城市?
      - ask: paid
        prompt: 金额?
      - say: "{{ slots.code }} {{ slots.where }} {{ slots.paid }}"
"#);
    let names: Vec<&str> = b.entities().map(|(n, _)| n).collect();
    for n in [
        "sku",
        "city",
        "order_number",
        "mobile",
        "email",
        "date",
        "amount",
        "id_card",
        "bank_card",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let mut s = step(
        &b,
        &DialogState::default(),
        &TurnInput::new("a", Lang::Zh).with_intent("a", 0.9),
    )
    .state;
    for text in ["编号 SKU-123456", "寄到上海", "付了 ¥25.5"] {
        s = step(&b, &s, &TurnInput::new(text, Lang::Zh)).state;
    }
    assert_eq!(s.slots["code"], json!("123456"));
    assert_eq!(s.slots["where"], json!("shanghai"));
    assert_eq!(s.slots["paid"], json!(25.5));
}
