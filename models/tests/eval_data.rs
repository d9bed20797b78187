//! The eval library on the committed zh/en samples (`tests/data/`): the figures a designer
//! would see from `kefu nlu eval` / `kefu emotion eval`, with floors that catch regressions.

use std::path::{Path, PathBuf};

use kefu_models::eval::{
    LabelMap, NluEvalOptions, emotion_eval_files, load_labelled, nlu_eval, nlu_eval_files,
};
use kefu_models::{ClassifierConfig, Lang};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn map(spec: &str) -> LabelMap {
    LabelMap::parse(spec).unwrap()
}

#[test]
fn chinese_intents_with_out_of_scope() {
    let eval = nlu_eval_files(
        &data("intents_zh_train.jsonl"),
        &data("intents_zh_test.jsonl"),
        &LabelMap::default(),
        &NluEvalOptions {
            lang: Some(Lang::Zh),
            config: None,
        },
    )
    .unwrap();
    eprintln!("{eval:#?}");
    let r = &eval.report;
    assert!(r.inscope_accuracy >= 0.8, "{r:?}");
    assert!(r.oos_recall.unwrap() >= 0.5, "{r:?}");
    // The threshold costs at most a few points of in-scope accuracy.
    assert!(
        r.inscope_accuracy >= eval.details.inscope_top1_accuracy - 0.1,
        "{eval:?}"
    );
    // Rejection only takes away: threshold <= oos class alone <= no rejection.
    let oos_only = eval.details.inscope_no_threshold_accuracy.unwrap();
    assert!(
        r.inscope_accuracy <= oos_only + 1e-9
            && oos_only <= eval.details.inscope_top1_accuracy + 1e-9,
        "{eval:?}"
    );
}

#[test]
fn jieba_words_do_not_hurt_chinese() {
    let train = load_labelled(&data("intents_zh_train.jsonl"), &LabelMap::default()).unwrap();
    let test = load_labelled(&data("intents_zh_test.jsonl"), &LabelMap::default()).unwrap();
    let run = |cjk_words| {
        let options = NluEvalOptions {
            lang: None,
            config: Some(ClassifierConfig {
                cjk_words,
                ..Default::default()
            }),
        };
        nlu_eval(&train, &test, &options)
            .unwrap()
            .details
            .inscope_top1_accuracy
    };
    let (without, with) = (run(false), run(true));
    eprintln!("top-1 in-scope: chars only {without:.3}, chars + words {with:.3}");
    assert!(with + 0.05 >= without, "{with} vs {without}");
}

#[test]
fn english_csv_with_mapped_oos() {
    let eval = nlu_eval_files(
        &data("intents_en_train.csv"),
        &data("intents_en_test.csv"),
        &map("out_of_scope=oos"),
        &NluEvalOptions {
            lang: Some(Lang::En),
            config: None,
        },
    )
    .unwrap();
    eprintln!("{eval:#?}");
    assert!(eval.report.inscope_accuracy >= 0.75, "{eval:?}");
    assert!(eval.report.oos_recall.unwrap() >= 0.5, "{eval:?}");
    assert_eq!(eval.details.intents, 5);
}

#[test]
fn emotion_default_and_trained() {
    let m = map("angry=anger,fear=anxiety,sad=sadness,happy=joy,none=neutral");
    let default = emotion_eval_files(None, &data("emotion_test.jsonl"), &m).unwrap();
    eprintln!("default {default:?}");
    assert!(default.accuracy >= 0.7, "{default:?}");
    assert_eq!(default.f1.len(), 5);
    let trained = emotion_eval_files(
        Some(&data("emotion_train.jsonl")),
        &data("emotion_test.jsonl"),
        &m,
    )
    .unwrap();
    eprintln!("trained {trained:?}");
    assert!(trained.accuracy >= 0.7, "{trained:?}");
}
