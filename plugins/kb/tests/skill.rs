//! The `kb` skill as flows call it.

use std::sync::Arc;

use kefu_kb::{KbSkill, KnowledgeBase};
use kefu_plugin::{Caller, Skill, SkillError, SkillOutcome, SkillRequest};
use serde_json::json;

fn kb() -> Arc<KnowledgeBase> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("faq.yaml"),
        "entries:\n  - id: ship\n    question: 什么时候发货？\n    phrasings: [啥时候发货]\n    answer: 48 小时内发货。\n    tags: [shipping]\n  - id: en-ship\n    question: When do you ship?\n    answer: Within 48 hours.\n    tags: [shipping]\n  - id: pay\n    question: 支持哪些支付方式？\n    answer: 微信和支付宝。\n    tags: [payment]\n",
    )
    .unwrap();
    Arc::new(KnowledgeBase::open(dir.path()).unwrap())
}

fn req(args: serde_json::Value) -> SkillRequest {
    SkillRequest {
        skill: "kb".into(),
        caller: Caller::default(),
        args: args.as_object().unwrap().clone(),
    }
}

#[tokio::test]
async fn found_carries_the_answer_and_its_source() {
    let skill = KbSkill::new(kb());
    assert_eq!(skill.name(), "kb");
    assert_eq!(skill.info().required_args, vec!["query"]);
    let out = skill
        .call(req(json!({"query": "啥时候发货"})))
        .await
        .unwrap();
    let SkillOutcome::Found { data, .. } = out else {
        panic!("expected found, got {out:?}");
    };
    assert_eq!(data["id"], "ship");
    assert_eq!(data["answer"], "48 小时内发货。");
    assert_eq!(data["source"], "faq.yaml#ship");
    assert!(data["confidence"].as_f64().unwrap() >= 0.35);
    assert!(data["score"].as_f64().is_some());
    assert_eq!(data["question"], "什么时候发货？");
}

#[tokio::test]
async fn filters_and_thresholds() {
    let skill = KbSkill::new(kb());
    let out = skill
        .call(req(
            json!({"query": "when do you ship", "lang": "en", "tags": "shipping, payment"}),
        ))
        .await
        .unwrap();
    let SkillOutcome::Found { data, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(data["id"], "en-ship");

    let out = skill
        .call(req(json!({"query": "啥时候发货", "tags": ["payment"]})))
        .await
        .unwrap();
    assert_eq!(out.kind(), "not_found", "{out:?}");

    let out = skill
        .call(req(json!({"query": "今天天气怎么样"})))
        .await
        .unwrap();
    assert_eq!(out.kind(), "not_found", "{out:?}");

    let strict = KbSkill::new(kb()).with_threshold(1.0).with_name("faq");
    assert_eq!(strict.name(), "faq");
    let out = strict
        .call(req(json!({"query": "啥时候 发货呀"})))
        .await
        .unwrap();
    assert_eq!(out.kind(), "not_found", "{out:?}");
}

#[tokio::test]
async fn bad_arguments_are_errors() {
    let skill = KbSkill::new(kb());
    let err = skill.call(req(json!({}))).await.unwrap_err();
    assert!(
        matches!(err, SkillError::BadArgument { ref name, .. } if name == "query"),
        "{err}"
    );
    let err = skill
        .call(req(json!({"query": "x", "lang": "fr"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SkillError::BadArgument { ref name, .. } if name == "lang"),
        "{err}"
    );
    let err = skill
        .call(req(json!({"query": "x", "tags": 3})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SkillError::BadArgument { ref name, .. } if name == "tags"),
        "{err}"
    );
}
