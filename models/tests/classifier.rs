//! Behaviour of the intent classifier on a hand-made bilingual e-commerce dataset
//! (`tests/fixtures/`): 10 intents × 10 Chinese + 10 English training phrasings, and
//! 3 + 3 different phrasings per intent held out for testing; plus out-of-scope sentences.

use kefu_models::{
    ClassifierConfig, IntentClassifier, IntentExample, ModelError, OOS_INTENT, RANKING_LEN,
    Synonyms, normalize,
};

fn load(jsonl: &str) -> Vec<IntentExample> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l) {
            Ok(ex) => ex,
            Err(e) => panic!("bad fixture line {l:?}: {e}"),
        })
        .collect()
}

fn train_set() -> Vec<IntentExample> {
    load(include_str!("fixtures/intents_train.jsonl"))
}
fn test_set() -> Vec<IntentExample> {
    load(include_str!("fixtures/intents_test.jsonl"))
}
fn oos_train() -> Vec<IntentExample> {
    load(include_str!("fixtures/oos_train.jsonl"))
}
fn oos_test() -> Vec<IntentExample> {
    load(include_str!("fixtures/oos_test.jsonl"))
}

fn train(examples: &[IntentExample]) -> IntentClassifier {
    match IntentClassifier::train(examples, &ClassifierConfig::default()) {
        Ok(c) => c,
        Err(e) => panic!("training failed: {e}"),
    }
}

/// Share of `set` whose top-ranked intent is right (ignoring rejection) and share that is
/// right and accepted.
fn accuracy(clf: &IntentClassifier, set: &[IntentExample]) -> (f32, f32) {
    let mut top = 0;
    let mut accepted = 0;
    for ex in set {
        let p = clf.classify(&normalize(&ex.text));
        if p.ranking.first().map(|(i, _)| i.as_str()) == Some(ex.intent.as_str()) {
            top += 1;
        } else {
            eprintln!(
                "miss: {:?} -> {:?} (want {})",
                ex.text, p.ranking, ex.intent
            );
        }
        if p.intent.as_deref() == Some(ex.intent.as_str()) {
            accepted += 1;
        }
    }
    (
        top as f32 / set.len() as f32,
        accepted as f32 / set.len() as f32,
    )
}

fn rejection_rate(clf: &IntentClassifier, set: &[IntentExample]) -> f32 {
    let rejected = set
        .iter()
        .filter(|ex| {
            let p = clf.classify(&normalize(&ex.text));
            if p.intent.is_some() {
                eprintln!("accepted oos: {:?} -> {:?}", ex.text, p.ranking.first());
            }
            p.intent.is_none()
        })
        .count();
    rejected as f32 / set.len() as f32
}

#[test]
fn held_out_phrasings_are_recognised_in_both_languages() {
    let clf = train(&train_set());
    assert_eq!(clf.intents().len(), 10);
    let test = test_set();
    let (top, accepted) = accuracy(&clf, &test);
    eprintln!(
        "top-1 {top:.3}, accepted {accepted:.3}, {:?}",
        clf.calibration()
    );
    assert!(top >= 0.9, "top-1 accuracy {top}");
    let (zh, en): (Vec<_>, Vec<_>) = test
        .into_iter()
        .partition(|ex| kefu_models::detect_lang(&ex.text) == kefu_models::Lang::Zh);
    assert!(accuracy(&clf, &zh).0 >= 0.85, "zh");
    assert!(accuracy(&clf, &en).0 >= 0.85, "en");
}

#[test]
fn training_is_deterministic() {
    let a = train(&train_set());
    let b = train(&train_set());
    assert_eq!(a.calibration(), b.calibration());
    for ex in test_set().iter().chain(&oos_test()) {
        let text = normalize(&ex.text);
        assert_eq!(a.classify(&text), b.classify(&text), "{text}");
    }
}

#[test]
fn ranking_is_sorted_and_confidence_is_its_head() {
    let clf = train(&train_set());
    for ex in test_set() {
        let p = clf.classify(&normalize(&ex.text));
        assert_eq!(p.ranking.len(), RANKING_LEN);
        assert!(p.ranking.windows(2).all(|w| w[0].1 >= w[1].1));
        assert_eq!(p.confidence, p.ranking[0].1);
        assert!(p.confidence > 0.0 && p.confidence <= 1.0);
        if let Some(intent) = &p.intent {
            assert_eq!(intent, &p.ranking[0].0);
        }
    }
}

#[test]
fn oos_examples_teach_a_threshold() {
    let mut examples = train_set();
    examples.extend(oos_train());
    let clf = train(&examples);
    assert!(clf.has_oos_class());
    assert!(!clf.intents().iter().any(|i| i == OOS_INTENT));
    let cal = clf.calibration();
    assert!(cal.threshold_learned, "{cal:?}");
    let rejected = rejection_rate(&clf, &oos_test());
    let (_, accepted) = accuracy(&clf, &test_set());
    eprintln!("oos rejected {rejected:.3}, in-scope accepted {accepted:.3}, {cal:?}");
    assert!(rejected >= 0.75, "oos rejection {rejected}");
    assert!(accepted >= 0.8, "in-scope accepted {accepted}");
}

#[test]
fn min_confidence_rejects_unrelated_text_without_oos_examples() {
    let clf = train(&train_set());
    assert!(!clf.calibration().threshold_learned);
    let rejected = rejection_rate(&clf, &oos_test());
    let (_, accepted) = accuracy(&clf, &test_set());
    eprintln!("oos rejected {rejected:.3}, in-scope accepted {accepted:.3}");
    assert!(rejected >= 0.6, "oos rejection {rejected}");
    assert!(accepted >= 0.75, "in-scope accepted {accepted}");
}

#[test]
fn synonyms_bridge_colloquial_phrasing() {
    let clf = train(&train_set());
    let syn = match Synonyms::new([("啥时候能到", "什么时候到货"), ("咋", "怎么")]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let text = normalize("我的快递啥时候能到？？");
    let p = clf.classify(&syn.apply(&text));
    assert_eq!(p.intent.as_deref(), Some("order_status"), "{p:?}");
}

#[test]
fn odd_input_never_panics() {
    let clf = train(&train_set());
    for text in [
        "",
        " ",
        "😀😡🙏",
        "\u{0}\u{1}\u{7f}\u{200B}",
        "!!!???",
        "12345678901234567890",
    ] {
        let p = clf.classify(&normalize(text));
        assert!(p.confidence >= 0.0 && p.confidence <= 1.0, "{text:?}");
    }
    assert_eq!(clf.classify("").intent, None);
    assert!(clf.classify("😀😡🙏").ranking.is_empty());
    let long: String = "我要退货 refund please "
        .chars()
        .cycle()
        .take(10_000)
        .collect();
    let p = clf.classify(&normalize(&long));
    assert!(p.confidence.is_finite());
    // Unnormalised text is accepted too (it is just matched less well).
    let _ = clf.classify("ＷＨＥＲＥ is MY\u{200B} order\t\t");
}

#[test]
fn bad_training_input_is_reported() {
    let cfg = ClassifierConfig::default();
    assert_eq!(
        IntentClassifier::train(&[], &cfg).err(),
        Some(ModelError::NoExamples)
    );
    let one = [
        IntentExample::new("hi", "greet"),
        IntentExample::new("hello", "greet"),
    ];
    assert_eq!(
        IntentClassifier::train(&one, &cfg).err(),
        Some(ModelError::TooFewIntents { found: 1 })
    );
    let empty_text = [
        IntentExample::new("hi", "greet"),
        IntentExample::new("😀", "bye"),
    ];
    assert!(matches!(
        IntentClassifier::train(&empty_text, &cfg),
        Err(ModelError::EmptyExample { index: 1, .. })
    ));
    let empty_intent = [IntentExample::new("hi", " ")];
    assert_eq!(
        IntentClassifier::train(&empty_intent, &cfg).err(),
        Some(ModelError::EmptyIntent { index: 0 })
    );
    let bad_cfg = ClassifierConfig {
        hash_bits: 4,
        ..Default::default()
    };
    assert!(matches!(
        IntentClassifier::train(&train_set(), &bad_cfg),
        Err(ModelError::InvalidConfig {
            field: "hash_bits",
            ..
        })
    ));
}

#[test]
fn tiny_sets_train_without_holdout() {
    let examples = [
        IntentExample::new("hi", "greet"),
        IntentExample::new("bye", "leave"),
    ];
    let clf = train(&examples);
    assert_eq!(clf.calibration().holdout_examples, 0);
    assert_eq!(clf.classify("hi").ranking[0].0, "greet");
}

#[test]
fn classifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<IntentClassifier>();
}

#[test]
fn nlu_pipeline_applies_synonyms_then_rules_then_model() {
    use kefu_models::{IntentRule, IntentRules, IntentSource, Lang, Nlu};
    let synonyms = match Synonyms::new([("啥时候能到", "什么时候到货")]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let rules = match IntentRules::new(&[IntentRule::new("^转人工$", "human_agent")]) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let nlu = Nlu::new(train(&train_set()), synonyms, rules);
    let u = nlu.understand("转人工", Lang::En);
    assert_eq!((u.source, u.lang), (IntentSource::Rule, Lang::Zh));
    assert_eq!(u.prediction.intent.as_deref(), Some("human_agent"));
    let u = nlu.understand("我的快递 啥时候能到？", Lang::En);
    assert_eq!(u.text, "我的快递 什么时候到货?");
    assert_eq!(u.source, IntentSource::Model);
    assert_eq!(u.prediction.intent.as_deref(), Some("order_status"));
    let u = nlu.understand("😀", Lang::En);
    assert_eq!((u.lang, u.prediction.intent), (Lang::En, None));
}
