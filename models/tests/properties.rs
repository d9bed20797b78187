//! Property tests: normalisation and classification hold their invariants on any input.

use std::sync::OnceLock;

use kefu_models::{ClassifierConfig, IntentClassifier, IntentExample, Synonyms, normalize};
use proptest::prelude::*;

fn classifier() -> &'static IntentClassifier {
    static CLF: OnceLock<IntentClassifier> = OnceLock::new();
    CLF.get_or_init(|| {
        let examples = [
            ("我要退货", "return"),
            ("怎么退货", "return"),
            ("i want to return this", "return"),
            ("where is my order", "track"),
            ("我的快递到哪了", "track"),
            ("track my parcel", "track"),
            ("今天天气怎么样", "oos"),
            ("tell me a joke", "oos"),
        ]
        .map(|(t, i)| IntentExample::new(t, i));
        match IntentClassifier::train(&examples, &ClassifierConfig::default()) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    })
}

proptest! {
    #[test]
    fn normalize_invariants(s in "\\PC*|[\\x00-\\x20\u{200B}\u{FEFF}ＡＺａｚ０９ 　]*") {
        let n = normalize(&s);
        prop_assert_eq!(normalize(&n), n.clone());
        prop_assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "));
        let invisible = |c: char| c.is_control() || c == '\u{200B}' || c == '\u{FEFF}';
        prop_assert!(!n.chars().any(invisible), "invisible char left in {:?}", n);
    }

    #[test]
    fn classify_never_panics_and_stays_a_probability(s in "\\PC{0,200}") {
        let p = classifier().classify(&normalize(&s));
        prop_assert!((0.0..=1.0).contains(&p.confidence));
        prop_assert!(p.ranking.len() <= 3);
        prop_assert!(p.ranking.iter().all(|(i, _)| i != "oos"));
    }

    #[test]
    fn synonyms_never_panic(s in "\\PC{0,100}") {
        let syn = Synonyms::new([("啥", "什么"), ("u", "you"), ("退", "退货")]);
        prop_assert!(syn.is_ok());
        if let Ok(syn) = syn {
            let _ = syn.apply(&normalize(&s));
        }
    }
}
