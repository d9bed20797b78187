//! The shipped bot (`bots/shop`) loads cleanly and fast, and holds real conversations.

use std::path::Path;
use std::time::{Duration, Instant};

use kefu_flows::{
    Bot, DialogState, Effect, External, Lang, Signals, SkillResult, TurnInput, resume, step,
};
use serde_json::json;

fn shop() -> Bot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/shop");
    match Bot::load_dir(&dir) {
        Ok(bot) => bot,
        Err(diags) => {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            panic!("shop bot does not load:\n{}", text.join("\n"));
        }
    }
}

/// A conversation against the shop bot, keeping the state between turns.
struct Convo {
    bot: Bot,
    state: DialogState,
    lang: Lang,
    /// Answers pending skill calls and generations, like the runtime would.
    external: fn(&Effect) -> External,
    /// Every skill call and generation requested, in order.
    calls: Vec<Effect>,
    signals: Signals,
    user_id: String,
}

/// Stand-ins for the skills and the LLM: every order exists, the knowledge base knows
/// materials only, tickets are created, and the LLM is down (so fallbacks are used).
fn stub(effect: &Effect) -> External {
    match effect {
        Effect::Call { skill, args } => External::Skill(match skill.as_str() {
            "orders" => SkillResult::found(json!({
                "id": args["order_id"], "status": "shipped", "status_label": "已发货",
                "carrier": "顺丰速运", "tracking_no": "SF1234567890", "eta": "2024-06-18",
            })),
            "kb" if args["query"].as_str().is_some_and(|q| q.contains("材质")) => {
                SkillResult::found(json!({"answer": "这款是 100% 纯棉面料。", "source": "faq"}))
            }
            "kb" => SkillResult::other("not_found", "no entry above the threshold"),
            "tickets.create" => SkillResult::found(json!({"id": "T-000042", "status": "open"})),
            _ => SkillResult::other("error", "unknown skill"),
        }),
        _ => External::Generated(Err("llm unavailable".into())),
    }
}

impl Convo {
    fn new(lang: Lang) -> Self {
        Convo {
            bot: shop(),
            state: DialogState::default(),
            lang,
            external: stub,
            calls: Vec::new(),
            signals: Signals::default(),
            user_id: "u-1".into(),
        }
    }

    /// The user says `text`, classified as `intent` (confidence 0.95) or out of scope.
    fn user(&mut self, text: &str, intent: Option<&str>) -> Vec<Effect> {
        let mut input = TurnInput::new(text, self.lang)
            .on_channel("web")
            .from_user(&self.user_id)
            .with_signals(self.signals.clone());
        if let Some(i) = intent {
            input = input.with_intent(i, 0.95);
        }
        let mut out = step(&self.bot, &self.state, &input);
        let mut effects = Vec::new();
        // Run skills and generations until the turn is complete, like the session actor.
        while let Some(pending) = out.pending().cloned() {
            let result = (self.external)(&pending);
            self.calls.push(pending);
            effects.extend(out.effects.iter().filter(|e| !e.is_pending()).cloned());
            out = resume(&self.bot, &out.state, &input, result);
        }
        effects.extend(out.effects);
        self.state = out.state;
        effects
    }

    /// All `Say` texts of a turn joined by newlines.
    fn says(&mut self, text: &str, intent: Option<&str>) -> String {
        said(&self.user(text, intent))
    }
}

fn said(effects: &[Effect]) -> String {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Say { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn loads_without_errors_or_warnings_and_fast() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/shop");
    let start = Instant::now();
    let bot = Bot::load_dir(&dir).unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(200), "loading took {took:?}");
    let warnings: Vec<String> = bot.warnings().iter().map(ToString::to_string).collect();
    assert!(warnings.is_empty(), "{}", warnings.join("\n"));
    assert_eq!(bot.name(), "shop");
    assert_eq!(bot.version().len(), 16);
    assert_eq!(
        Bot::load_dir(&dir).unwrap().version(),
        bot.version(),
        "version is a content hash"
    );
}

#[test]
fn every_intent_has_enough_varied_examples_and_a_flow() {
    let bot = shop();
    let names: Vec<&str> = bot.intents().map(|(n, _)| n).collect();
    for expected in [
        "greet",
        "order_status",
        "delivery_time",
        "return_exchange",
        "invoice",
        "shipping_fee",
        "payment_methods",
        "human",
        "goodbye",
        "thanks",
    ] {
        assert!(names.contains(&expected), "missing intent {expected}");
    }
    for (name, def) in bot.intents() {
        for lang in Lang::ALL {
            let n = def.examples.get(lang).len();
            assert!((15..=40).contains(&n), "{name}/{lang}: {n} examples");
        }
        if name != kefu_flows::OOS_INTENT {
            assert!(bot.flow_for_intent(name).is_some(), "{name} starts no flow");
        }
    }
    assert!(
        bot.synonyms()
            .any(|(a, b)| a == "啥时候能到" && b == "什么时候到货")
    );
}

#[test]
fn order_status_asks_for_the_number_then_answers() {
    let mut c = Convo::new(Lang::Zh);
    let ask = c.says("帮我查下物流", Some("order_status"));
    assert!(ask.contains("订单号"), "{ask}");
    let reply = c.says("我的订单号是 a12345678", None);
    assert!(reply.contains("A12345678"), "{reply}");
    assert!(
        reply.contains("当前状态：已发货，顺丰速运，运单号 SF1234567890，预计 2024-06-18 送达"),
        "{reply}"
    );
    assert!(
        matches!(&c.calls[0], Effect::Call { skill, args } if skill == "orders" && args["order_id"] == "A12345678")
    );
    assert!(c.state.is_idle());
    assert_eq!(
        c.state.slot("order_id"),
        Some(&serde_json::json!("A12345678"))
    );
}

#[test]
fn bad_order_numbers_reprompt_then_hand_off() {
    let mut c = Convo::new(Lang::Zh);
    c.user("查订单", Some("order_status"));
    let first = c.says("不知道", None);
    assert!(first.contains("不是有效的订单号"), "{first}");
    let second = c.says("123", None);
    assert!(second.contains("不是有效的订单号"), "{second}");
    let last = c.user("忘了", None);
    assert!(
        last.iter().any(|e| matches!(e, Effect::Handoff { .. })),
        "{last:?}"
    );
    assert!(c.state.is_idle());
}

#[test]
fn delivery_time_uses_a_known_order_number() {
    let mut c = Convo::new(Lang::Zh);
    let general = c.says("啥时候能到", Some("delivery_time"));
    assert!(general.contains("48 小时内发货"), "{general}");
    c.user("查订单", Some("order_status"));
    c.user("A12345678", None);
    let known = c.says("多久能到", Some("delivery_time"));
    assert!(known.contains("订单 A12345678"), "{known}");
}

#[test]
fn digression_answers_then_resumes_the_question() {
    let mut c = Convo::new(Lang::Zh);
    // 申请售后 names no kind, so the kind is asked (我要退货 would answer it ahead).
    let q = c.says("申请售后", Some("return_exchange"));
    assert!(q.contains("退货退款，还是换货"), "{q}");
    let out = c.says("对了，运费多少", Some("shipping_fee"));
    assert!(out.contains("包邮"), "{out}");
    assert!(out.contains("接着刚才"), "{out}");
    assert!(out.ends_with("退货退款，还是换货呢？"), "re-asks: {out}");
    assert_eq!(
        c.state.active.as_ref().map(|f| f.flow.as_str()),
        Some("return_exchange")
    );
    assert!(c.state.stack.is_empty());
    let next = c.says("换货吧", None);
    assert!(next.contains("订单号"), "{next}");
    c.user("B20240615001", None);
    let done = c.says("尺码太小了", None);
    assert!(
        done.contains("换货") && done.contains("B20240615001"),
        "{done}"
    );
    assert!(c.state.is_idle());
}

#[test]
fn unclear_return_reason_falls_through_to_other() {
    let mut c = Convo::new(Lang::En);
    c.user("I want to return this", Some("return_exchange"));
    c.user("refund please", None);
    c.user("A12345678", None);
    c.user("hmm", None);
    let out = c.says("dunno", None);
    assert!(out.contains("within 7 days"), "{out}");
    assert_eq!(
        c.state.slot("return_reason"),
        Some(&serde_json::json!("other"))
    );
    assert!(c.state.is_idle());
}

#[test]
fn quality_problems_get_free_return_shipping() {
    let mut c = Convo::new(Lang::Zh);
    c.user("东西坏了要退", Some("return_exchange"));
    c.user("退款", None);
    c.user("A12345678", None);
    let out = c.says("质量问题，用两天就坏了", None);
    assert!(out.contains("运费由我们承担"), "{out}");
    assert!(out.contains("退款会在 1–3 个工作日"), "{out}");
}

#[test]
fn company_invoice_collects_name_tax_id_and_email() {
    let mut c = Convo::new(Lang::En);
    let q = c.says("I need an invoice", Some("invoice"));
    assert!(q.contains("order number"), "{q}");
    c.user("A12345678", None);
    let name_q = c.says("for my company", None);
    assert!(
        name_q.contains("company's full registered name"),
        "{name_q}"
    );
    c.user("Acme Trading Co., Ltd.", None);
    let bad = c.says("I don't know it", None);
    assert!(bad.contains("18 digits"), "{bad}");
    c.user("it's 91310000MA1FL8XX4T", None);
    let done = c.says("billing@acme.com", None);
    assert!(
        done.contains("Acme Trading Co., Ltd.") && done.contains("billing@acme.com"),
        "{done}"
    );
    assert!(done.contains("91310000MA1FL8XX4T"), "{done}");
}

#[test]
fn personal_invoice_skips_company_questions() {
    let mut c = Convo::new(Lang::Zh);
    c.user("开发票", Some("invoice"));
    c.user("A12345678", None);
    let q = c.says("个人", None);
    assert!(q.contains("邮箱"), "{q}");
    let done = c.says("发到 me@example.cn 谢谢", None);
    assert!(
        done.contains("个人发票") && done.contains("me@example.cn"),
        "{done}"
    );
}

#[test]
fn human_request_hands_off_and_goodbye_ends() {
    let mut c = Convo::new(Lang::Zh);
    let out = c.user("转人工", Some("human"));
    assert!(
        matches!(out.last(), Some(Effect::Handoff { reason, .. }) if reason == "customer asked for a human")
    );
    let bye = c.user("再见", Some("goodbye"));
    assert_eq!(bye.last(), Some(&Effect::End));
}

#[test]
fn repeated_fallbacks_escalate() {
    let mut c = Convo::new(Lang::En);
    let fallback = c.bot.fallback_text(Lang::En);
    assert_eq!(c.says("what's the weather", None), fallback);
    assert_eq!(c.says("tell me a joke", None), fallback);
    let third = c.user("sing a song", None);
    assert!(third.iter().any(|e| matches!(e, Effect::Handoff { .. })));
    assert_eq!(c.state.fallbacks, 0);
}

#[test]
fn small_talk_replies_in_both_languages() {
    for (lang, needle) in [(Lang::Zh, "不客气"), (Lang::En, "You're welcome")] {
        let mut c = Convo::new(lang);
        assert!(c.says("thanks", Some("thanks")).contains(needle));
        assert!(!c.says("hi", Some("greet")).is_empty());
        assert!(!c.says("pay", Some("payment_methods")).is_empty());
    }
}

#[test]
fn one_step_is_fast() {
    let bot = shop();
    let mut state = DialogState::default();
    let turns: [(&str, Option<&str>); 5] = [
        ("我要退货", Some("return_exchange")),
        ("运费多少", Some("shipping_fee")),
        ("换货", None),
        ("A12345678", None),
        ("尺码小了", None),
    ];
    let n = 2_000;
    let start = Instant::now();
    for i in 0..n {
        let (text, intent) = turns[i % turns.len()];
        let mut input = TurnInput::new(text, Lang::Zh);
        if let Some(name) = intent {
            input = input.with_intent(name, 0.95);
        }
        state = step(&bot, &state, &input).state;
    }
    let per_step = start.elapsed() / n as u32;
    // Debug builds are ~10x slower than release; the budget there is 20 µs.
    let limit = if cfg!(debug_assertions) { 400 } else { 20 };
    assert!(
        per_step < Duration::from_micros(limit),
        "{per_step:?} per step"
    );
    println!("one step: {per_step:?}");
}

#[test]
fn unknown_order_is_reported_and_forgotten() {
    let mut c = Convo::new(Lang::En);
    c.external = |e| match e {
        Effect::Call { .. } => External::Skill(SkillResult::other("not_found", "no such order")),
        _ => External::Generated(Err("down".into())),
    };
    c.user("where is my order", Some("order_status"));
    let reply = c.says("B20240615001", None);
    assert!(
        reply.contains("couldn't find order B20240615001"),
        "{reply}"
    );
    assert_eq!(c.state.slot("order_id"), None, "a wrong number is not kept");
    c.external = |_| External::Skill(SkillResult::other("error", "timeout"));
    c.user("track my order", Some("order_status"));
    let reply = c.says("B20240615002", None);
    assert!(reply.contains("order system is busy"), "{reply}");
}

#[test]
fn order_status_has_a_short_sms_version() {
    let bot = shop();
    let mut state = DialogState::default();
    for (text, intent) in [("查订单", Some("order_status")), ("A12345678", None)] {
        let mut input = TurnInput::new(text, Lang::Zh).on_channel("sms");
        if let Some(i) = intent {
            input = input.with_intent(i, 0.9);
        }
        let out = step(&bot, &state, &input);
        let pending = out.pending().cloned();
        state = out.state;
        if let Some(p) = pending {
            let done = resume(&bot, &state, &input, stub(&p));
            assert_eq!(
                said(&done.effects),
                "订单A12345678：已发货，运单号SF1234567890"
            );
            return;
        }
    }
    panic!("no call to the orders skill");
}

#[test]
fn product_questions_come_from_the_knowledge_base() {
    let mut c = Convo::new(Lang::Zh);
    let reply = c.says("这款衣服是什么材质的", Some("product_question"));
    assert_eq!(reply, "这款是 100% 纯棉面料。");
    assert!(
        matches!(&c.calls[0], Effect::Call { skill, args } if skill == "kb" && args["query"] == "这款衣服是什么材质的" && args["lang"] == "zh")
    );
    let unknown = c.says("这个防水吗", Some("product_question"));
    assert!(unknown.contains("没有查到准确的答案"), "{unknown}");
    assert!(c.state.is_idle());
}

#[test]
fn complaint_soothes_offers_compensation_and_opens_a_ticket() {
    let mut c = Convo::new(Lang::Zh);
    let first = c.says("你们的服务太差劲了", Some("complaint"));
    assert!(
        first.starts_with("非常抱歉给您带来了不愉快的体验"),
        "{first}"
    );
    assert!(first.contains("具体说说发生了什么"), "{first}");
    let offer = c.says("包裹破了，杯子摔碎了，订单 A12345678", None);
    assert!(offer.contains("20 元无门槛优惠券"), "{offer}");
    let done = c.says("好的，要", None);
    assert!(done.contains("工单号 T-000042"), "{done}");
    assert!(done.contains("优惠券审核通过后"), "{done}");
    let Some(Effect::Call { skill, args }) =
        c.calls.iter().find(|e| matches!(e, Effect::Call { .. }))
    else {
        panic!("{:?}", c.calls)
    };
    assert_eq!(skill, "tickets.create");
    assert_eq!(
        args["title"], "客户投诉",
        "the LLM is down: the fallback title is used"
    );
    assert_eq!(args["priority"], "high");
    assert!(
        args["description"]
            .as_str()
            .unwrap()
            .contains("accepted the ¥20 coupon")
    );
    assert!(c.state.is_idle());
}

#[test]
fn complaint_that_cannot_be_registered_goes_to_a_person() {
    let mut c = Convo::new(Lang::En);
    c.external = |e| match e {
        Effect::Call { .. } => External::Skill(SkillResult::other("error", "store down")),
        _ => External::Generated(Ok("Broken cup on delivery".into())),
    };
    c.user("I want to make a complaint", Some("complaint"));
    c.user("the cup arrived broken", None);
    let out = c.user("no thanks", None);
    assert!(
        said(&out).contains("couldn't register the complaint"),
        "{}",
        said(&out)
    );
    assert_eq!(
        out.last(),
        Some(&Effect::Handoff {
            reason: "complaint could not be registered".into(),
            queue: Some("complaints".into())
        })
    );
}

#[test]
fn compensation_wording_is_an_ab_test_stable_per_user() {
    let mut wordings = std::collections::BTreeSet::new();
    for i in 0..20 {
        let mut c = Convo::new(Lang::Zh);
        c.user_id = format!("customer-{i}");
        c.user("我要投诉", Some("complaint"));
        let out = c.user("快递员态度很差", None);
        let variant = out.iter().find_map(|e| match e {
            Effect::Experiment { name, variant } if name == "compensation_wording" => {
                Some(variant.clone())
            }
            _ => None,
        });
        let variant = variant.expect("the offer reports its variant");
        assert_eq!(
            Some(variant.as_str()),
            c.bot.variant_for("compensation_wording", &c.user_id)
        );
        wordings.insert(said(&out));
    }
    assert_eq!(wordings.len(), 2, "both wordings are shown across users");
}

#[test]
fn three_upset_messages_soothe_then_a_fourth_hands_off() {
    let mut c = Convo::new(Lang::Zh);
    let mut replies = Vec::new();
    for streak in 1..=4 {
        c.signals = Signals {
            emotion: Some("angry".into()),
            negative_streak: streak,
            intensity: 0.8,
            ..Signals::default()
        };
        replies.push(c.user("运费怎么这么贵", Some("shipping_fee")));
    }
    assert!(!said(&replies[1]).contains("非常抱歉让您不愉快了"));
    let third = said(&replies[2]);
    assert!(third.starts_with("非常抱歉让您不愉快了"), "{third}");
    assert!(
        third.contains("满 99 元包邮"),
        "the question is still answered: {third}"
    );
    assert!(
        matches!(replies[3].last(), Some(Effect::Handoff { reason, .. }) if reason.contains("upset"))
    );
}

#[test]
fn vip_asking_for_a_person_gets_the_vip_queue() {
    let mut c = Convo::new(Lang::En);
    c.signals = Signals {
        vip: true,
        tags: vec!["gold".into()],
        ..Signals::default()
    };
    let out = c.user("human please", Some("human"));
    assert!(said(&out).contains("priority agent"), "{}", said(&out));
    assert!(matches!(out.last(), Some(Effect::Handoff { queue: Some(q), .. }) if q == "vip"));
    let mut plain = Convo::new(Lang::En);
    let out = plain.user("human please", Some("human"));
    assert!(
        matches!(out.last(), Some(Effect::Handoff { queue: None, reason }) if reason == "customer asked for a human")
    );
}
