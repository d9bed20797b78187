//! `kefu nlu eval` and `kefu emotion eval` as a designer runs them, on the small zh/en
//! fixtures of `models/tests/data/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tests/data")
        .join(name)
}

fn kefu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The command succeeded; otherwise fail with its stderr.
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON object on the last line of stdout.
fn last_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {stdout}"))
}

/// `kefu nlu eval --json` on the Chinese train/test fixtures, with `extra` arguments.
fn nlu_eval_zh(extra: &[&str]) -> Output {
    let (train, test) = (
        data("intents_zh_train.jsonl"),
        data("intents_zh_test.jsonl"),
    );
    let mut args = vec![
        "nlu",
        "eval",
        "--train",
        path(&train),
        "--test",
        path(&test),
        "--lang",
        "zh",
        "--json",
    ];
    args.extend_from_slice(extra);
    kefu(&args)
}

#[test]
fn nlu_eval_on_chinese_jsonl_prints_every_figure() {
    let out = nlu_eval_zh(&[]);
    assert_ok(&out);
    let json = last_json(&out);
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "accuracy",
        "macro_f1",
        "inscope_accuracy",
        "oos_recall",
        "oos_precision",
        "train_seconds",
        "p50_us",
        "p99_us",
    ];
    want.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, want);
    assert!(json["accuracy"].as_f64().unwrap() >= 0.75, "{json}");
    assert!(json["inscope_accuracy"].as_f64().unwrap() >= 0.75, "{json}");
    assert!(json["oos_recall"].as_f64().unwrap() >= 0.5, "{json}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rejection: learned threshold"), "{text}");
    assert!(text.contains("p99_us"), "{text}");
}

#[test]
fn nlu_eval_reads_banking77_style_csv_and_maps_labels() {
    let (train, test) = (data("intents_en_train.csv"), data("intents_en_test.csv"));
    let out = kefu(&[
        "nlu",
        "eval",
        "--train",
        path(&train),
        "--test",
        path(&test),
        "--lang",
        "en",
        "--map",
        "out_of_scope=oos",
        "--json",
    ]);
    assert_ok(&out);
    let json = last_json(&out);
    assert!(json["accuracy"].as_f64().unwrap() >= 0.7, "{json}");
    assert!(json["oos_recall"].is_number(), "{json}");

    // Without the map, `out_of_scope` is just another intent: no rejection, no OOS recall.
    let out = kefu(&[
        "nlu",
        "eval",
        "--train",
        path(&train),
        "--test",
        path(&test),
        "--json",
    ]);
    assert!(out.status.success());
    assert!(last_json(&out)["oos_recall"].is_null());
}

#[test]
fn emotion_eval_default_and_trained() {
    let (train, test) = (data("emotion_train.jsonl"), data("emotion_test.jsonl"));
    let map = "angry=anger,fear=anxiety,sad=sadness,happy=joy,none=neutral";
    let out = kefu(&[
        "emotion",
        "eval",
        "--test",
        path(&test),
        "--map",
        map,
        "--json",
    ]);
    assert_ok(&out);
    let default = last_json(&out);
    assert!(default["accuracy"].as_f64().unwrap() >= 0.6, "{default}");
    for label in ["anger", "anxiety", "sadness", "joy", "neutral"] {
        assert!(default["f1"][label].is_number(), "{label}: {default}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shipped lexicons"), "{text}");

    let out = kefu(&[
        "emotion",
        "eval",
        "--train",
        path(&train),
        "--test",
        path(&test),
        "--map",
        map,
        "--json",
    ]);
    assert_ok(&out);
    let trained = last_json(&out);
    assert!(trained["accuracy"].as_f64().unwrap() >= 0.6, "{trained}");
    assert!(trained["train_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_data_and_unknown_labels_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\": \"hi\", \"intent\": \"greet\"}\nnot json\n",
    )
    .unwrap();
    let test = data("intents_zh_test.jsonl");
    let out = kefu(&["nlu", "eval", "--train", path(&bad), "--test", path(&test)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:2"), "{err}");

    let odd = dir.path().join("odd.jsonl");
    std::fs::write(&odd, "{\"text\": \"wow\", \"label\": \"surprise\"}\n").unwrap();
    let out = kefu(&["emotion", "eval", "--test", path(&odd)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("surprise") && err.contains("--map"), "{err}");

    let out = kefu(&[
        "nlu",
        "eval",
        "--train",
        path(&test),
        "--test",
        path(&test),
        "--map",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = kefu(&[
        "nlu",
        "eval",
        "--train",
        path(&test),
        "--test",
        path(&test),
        "--config",
        r#"{"epochs": 0}"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("epochs"));
}

#[test]
fn nlu_eval_accepts_a_classifier_config() {
    let (train, test) = (
        data("intents_zh_train.jsonl"),
        data("intents_zh_test.jsonl"),
    );
    let out = kefu(&[
        "nlu",
        "eval",
        "--train",
        path(&train),
        "--test",
        path(&test),
        "--config",
        r#"{"epochs": 20, "cjk_words": false}"#,
        "--json",
    ]);
    assert_ok(&out);
    assert!(last_json(&out)["accuracy"].as_f64().unwrap() > 0.5);
}

#[test]
fn nlu_eval_splits_one_file() {
    let all = data("intents_en_train.csv");
    let out = kefu(&[
        "nlu",
        "eval",
        "--train",
        path(&all),
        "--split",
        "0.2",
        "--seed",
        "7",
        "--json",
    ]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("split: "), "{text}");
    assert!(last_json(&out)["accuracy"].is_number());
    // Neither --test nor --split: clap refuses.
    let out = kefu(&["nlu", "eval", "--train", path(&all)]);
    assert!(!out.status.success());
    let out = kefu(&["nlu", "eval", "--train", path(&all), "--split", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn nlu_eval_writes_the_misclassified_examples() {
    let test = data("intents_zh_test.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.jsonl");
    let out = nlu_eval_zh(&["--errors", path(&errors)]);
    assert_ok(&out);
    let json = last_json(&out);
    let test_rows = std::fs::read_to_string(&test).unwrap();
    let n_test = test_rows.lines().filter(|l| !l.is_empty()).count();
    let misses: Vec<Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One line per wrong answer: the count agrees with the reported accuracy.
    let wrong = ((1.0 - json["accuracy"].as_f64().unwrap()) * n_test as f64).round() as usize;
    assert_eq!(misses.len(), wrong, "{json}");
    assert!(
        !misses.is_empty(),
        "the fixture is meant to have a few misses"
    );
    for m in &misses {
        let (text, expected) = (m["text"].as_str().unwrap(), m["expected"].as_str().unwrap());
        assert_ne!(expected, m["predicted"].as_str().unwrap(), "{m}");
        assert!(test_rows.contains(text), "{m}");
        let c = m["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c), "{m}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("most confused (expected -> predicted):"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} misclassified examples written", misses.len())),
        "{text}"
    );

    // A file that cannot be created: exit 2, naming the option.
    let missing = dir.path().join("missing-dir/errors.jsonl");
    let out = nlu_eval_zh(&["--errors", path(&missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--errors"));
}
