//! Search quality and options on the committed paraphrase fixture and small knowledge bases.

use std::path::Path;

use kefu_kb::eval::{evaluate, load_kb, read_queries};
use kefu_kb::{Entry, KnowledgeBase, Lang, SearchOptions, Source, Synonyms, Tuning};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn entry(id: &str, q: &str, phrasings: &[&str], tags: &[&str]) -> Entry {
    Entry {
        id: id.into(),
        question: q.into(),
        phrasings: phrasings.iter().map(|s| s.to_string()).collect(),
        answer: format!("answer of {id}"),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        lang: Lang::detect(q),
        source: Source {
            file: "test".into(),
            line: 1,
        },
    }
}

#[test]
fn paraphrase_fixture_meets_the_quality_bar() {
    let kb = load_kb(&data("paraphrase_kb.jsonl"), None, Tuning::default()).unwrap();
    let queries = read_queries(&data("paraphrase_queries.jsonl")).unwrap();
    let r = evaluate(&kb, &queries, &SearchOptions::default());
    eprintln!("{r:?}");
    assert_eq!(r.queries, 192);
    assert_eq!(r.unknown_expected, 0);
    // Measured with the default tuning: top-1 0.807, MRR@10 0.873 (192 queries).
    assert!(r.top1 >= 0.78, "{r:?}");
    assert!(r.mrr10 >= 0.85, "{r:?}");
}

#[test]
fn each_language_alone_also_meets_it() {
    for lang in [Lang::En, Lang::Zh] {
        let kb = load_kb(&data("paraphrase_kb.jsonl"), None, Tuning::default()).unwrap();
        let queries: Vec<_> = read_queries(&data("paraphrase_queries.jsonl"))
            .unwrap()
            .into_iter()
            .filter(|q| q.expected_id.starts_with(lang.as_str()))
            .collect();
        let opts = SearchOptions {
            lang: Some(lang),
            ..SearchOptions::default()
        };
        let r = evaluate(&kb, &queries, &opts);
        eprintln!("{lang}: {r:?}");
        // Measured: en top-1 0.716 / MRR 0.819, zh 0.922 / 0.959. English paraphrases in the
        // fixture share fewer words with their question, as on StackFAQ.
        let (top1, mrr) = if lang == Lang::En {
            (0.65, 0.75)
        } else {
            (0.88, 0.92)
        };
        assert!(r.top1 >= top1 && r.mrr10 >= mrr, "{lang}: {r:?}");
    }
}

#[test]
fn exact_questions_rank_first_with_full_confidence() {
    let kb = load_kb(&data("paraphrase_kb.jsonl"), None, Tuning::default()).unwrap();
    for e in kb.entries() {
        let hits = kb.search(&e.question, &SearchOptions::default());
        assert_eq!(hits[0].entry.id, e.id, "{}", e.question);
        assert!((hits[0].confidence - 1.0).abs() < 1e-6);
    }
}

#[test]
fn out_of_scope_questions_get_low_confidence() {
    let kb = load_kb(&data("paraphrase_kb.jsonl"), None, Tuning::default()).unwrap();
    for q in [
        "what is the capital of peru",
        "recommend a good pizza recipe",
        "今天天气怎么样",
        "给我讲个笑话吧",
    ] {
        let best = kb.search(q, &SearchOptions::default()).into_iter().next();
        let conf = best.map_or(0.0, |h| h.confidence);
        assert!(conf < 0.35, "{q}: {conf}");
    }
}

#[test]
fn tag_and_language_filters_restrict_results() {
    let kb = KnowledgeBase::from_entries(
        vec![
            entry("a", "how long does shipping take", &[], &["shipping"]),
            entry("b", "how long does a refund take", &[], &["returns"]),
            entry("c", "退款多久到账", &[], &["returns"]),
        ],
        Synonyms::default(),
        Tuning::default(),
    )
    .unwrap();
    let all = kb.search("how long does it take", &SearchOptions::default());
    assert!(all.len() >= 2);
    let only = SearchOptions {
        tags: vec!["Returns".into()],
        ..SearchOptions::default()
    };
    let hits = kb.search("how long does shipping take", &only);
    assert!(
        hits.iter()
            .all(|h| h.entry.tags.contains(&"returns".to_owned())),
        "{hits:?}"
    );
    assert_eq!(hits[0].entry.id, "b");
    let zh = SearchOptions {
        lang: Some(Lang::Zh),
        ..SearchOptions::default()
    };
    let hits = kb.search("退款 refund", &zh);
    assert!(hits.iter().all(|h| h.entry.id == "c"), "{hits:?}");
    let none = SearchOptions {
        tags: vec!["nothing".into()],
        ..SearchOptions::default()
    };
    assert!(kb.search("refund", &none).is_empty());
}

#[test]
fn synonyms_bridge_vocabulary() {
    let entries = vec![
        entry("inv", "How do I get an invoice?", &[], &[]),
        entry("ship", "How long does shipping take?", &[], &[]),
    ];
    let plain =
        KnowledgeBase::from_entries(entries.clone(), Synonyms::default(), Tuning::default())
            .unwrap();
    let hits = plain.search("fapiao", &SearchOptions::default());
    assert!(hits.is_empty() || hits[0].entry.id != "inv" || hits[0].confidence < 0.2);
    let syn = Synonyms::from_groups([vec!["fapiao", "invoice", "发票"]]);
    let kb = KnowledgeBase::from_entries(entries, syn, Tuning::default()).unwrap();
    let hits = kb.search("can I get a fapiao", &SearchOptions::default());
    assert_eq!(hits[0].entry.id, "inv", "{hits:?}");
}

#[test]
fn odd_input_never_panics() {
    let kb = load_kb(&data("paraphrase_kb.jsonl"), None, Tuning::default()).unwrap();
    for q in [
        "",
        "   ",
        "???!!!",
        "\"unbalanced",
        "title:foo AND (",
        "🙂🙂",
        "a",
        &"长".repeat(5000),
    ] {
        let _ = kb.search(q, &SearchOptions::default());
    }
    let zero = SearchOptions {
        limit: 0,
        ..SearchOptions::default()
    };
    assert!(kb.search("gmail", &zero).is_empty());
    let empty =
        KnowledgeBase::from_entries(Vec::new(), Synonyms::default(), Tuning::default()).unwrap();
    assert!(
        empty
            .search("anything", &SearchOptions::default())
            .is_empty()
    );
}

/// The sweep the default [`Tuning`] was chosen with: `cargo test -p kefu-kb --release --test
/// search -- --ignored --nocapture tune`.
#[test]
#[ignore]
fn tune() {
    let queries = read_queries(&data("paraphrase_queries.jsonl")).unwrap();
    for (answer_boost, answer_char_weight) in
        [(0.3, 0.0), (0.6, 0.0), (1.0, 0.0), (1.5, 0.0), (1.0, 0.5)]
    {
        for bm25_weight in [0.3, 0.4, 0.5, 0.6] {
            let tuning = Tuning {
                bm25_weight,
                answer_boost,
                answer_char_weight,
                ..Tuning::default()
            };
            let kb = load_kb(&data("paraphrase_kb.jsonl"), None, tuning).unwrap();
            let mut line = format!(
                "answer {answer_boost:.2} char-answer {answer_char_weight:.2} bm25 {bm25_weight:.2}:"
            );
            for lang in ["en", "zh"] {
                let qs: Vec<_> = queries
                    .iter()
                    .filter(|q| q.expected_id.starts_with(lang))
                    .cloned()
                    .collect();
                let r = evaluate(&kb, &qs, &SearchOptions::default());
                line.push_str(&format!("  {lang} top1 {:.3} mrr {:.3}", r.top1, r.mrr10));
            }
            println!("{line}");
        }
    }
}

/// Lists the fixture queries whose expected entry is not ranked first (for tuning by eye).
#[test]
#[ignore]
fn misses() {
    let kb = load_kb(&data("paraphrase_kb.jsonl"), None, Tuning::default()).unwrap();
    for q in read_queries(&data("paraphrase_queries.jsonl")).unwrap() {
        let hits = kb.search(&q.query, &SearchOptions::default());
        if hits.first().map(|h| h.entry.id.as_str()) != Some(q.expected_id.as_str()) {
            let rank = hits.iter().position(|h| h.entry.id == q.expected_id);
            let top: Vec<String> = hits
                .iter()
                .take(3)
                .map(|h| {
                    format!(
                        "{} {:.2}/{:.2}/{:.2}",
                        h.entry.id, h.score, h.bm25, h.char_sim
                    )
                })
                .collect();
            println!(
                "MISS {} -> expected {} at {rank:?}; got {top:?}",
                q.query, q.expected_id
            );
        }
    }
}

#[test]
fn tuning_reads_json_with_defaults_and_checks_ranges() {
    let t: Tuning = serde_json::from_str(r#"{"bm25_weight": 0.7}"#).unwrap();
    assert_eq!(t.bm25_weight, 0.7);
    assert_eq!(t.answer_boost, Tuning::default().answer_boost);
    assert_eq!(t.validate(), Ok(()));
    assert_eq!(Tuning::default().validate(), Ok(()));
    assert!(serde_json::from_str::<Tuning>(r#"{"bm25": 1}"#).is_err());
    let bad: Tuning = serde_json::from_str(r#"{"bm25_weight": 1.5}"#).unwrap();
    assert!(bad.validate().unwrap_err().contains("bm25_weight"));
    let none: Tuning = serde_json::from_str(r#"{"candidates": 0}"#).unwrap();
    assert!(none.validate().unwrap_err().contains("candidates"));
}
