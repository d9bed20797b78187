//! Parsing and reporting of conversation test files (the shipped bot's own tests run in
//! `runtime/tests/flowtest.rs`).

use std::path::Path;

use super::*;

fn parse(src: &str) -> Result<TestFile, Vec<Diagnostic>> {
    parse_file(Path::new("t.yaml"), src)
}

fn first_error(src: &str) -> String {
    parse(src).unwrap_err()[0].to_string()
}

#[test]
fn a_full_test_parses_with_positions() {
    let f = parse(
        "tests:\n  - name: one\n    lang: en\n    turns:\n      - user: hi\n        bot_contains: [Hi, K]\n        slots: {order_id: null, n: 3}\n        flow: null\n        intent: greet\n        handoff: false\n",
    )
    .unwrap();
    let case = &f.cases[0];
    assert_eq!(case.name, "one");
    assert_eq!(case.lang, Some(Lang::En));
    assert_eq!(case.channel, DEFAULT_CHANNEL);
    let turn = &case.turns[0];
    assert_eq!(turn.text, "hi");
    assert_eq!(turn.expects.len(), 7);
    assert_eq!(turn.expects[0].pos, Pos { line: 6, col: 9 });
    assert!(
        matches!(&turn.expects[3].check, Check::Slot { name, value } if name == "n" && *value == serde_json::json!(3))
    );
    assert!(matches!(turn.expects[4].check, Check::Flow(None)));
}

#[test]
fn unknown_keys_point_at_the_key_with_a_hint() {
    let e = first_error(
        "tests:\n  - name: one\n    turns:\n      - user: hi\n        bot_contain: x\n",
    );
    assert_eq!(
        e,
        "t.yaml:5:9: error: unknown key `bot_contain` in a turn\n  hint: did you mean `bot_contains`?"
    );
    let e = first_error("tests:\n  - name: one\n    chanel: web\n    turns:\n      - user: hi\n");
    assert!(
        e.starts_with("t.yaml:3:5: error: unknown key `chanel` in a test"),
        "{e}"
    );
    assert!(e.contains("did you mean `channel`?"), "{e}");
    let e = first_error("test:\n  - name: x\n");
    assert!(
        e.starts_with("t.yaml:1:1: error: unknown key `test`"),
        "{e}"
    );
}

#[test]
fn structural_mistakes_are_reported_with_positions() {
    let e = first_error("tests:\n  - name: a\n    turns:\n      - bot: hi\n");
    assert!(
        e.starts_with("t.yaml:4:9: error: a turn needs `user:`"),
        "{e}"
    );
    let e = first_error("tests:\n  - turns:\n      - user: hi\n");
    assert!(
        e.starts_with("t.yaml:2:5: error: a test needs a `name`"),
        "{e}"
    );
    let e =
        first_error("tests:\n  - name: a\n    turns:\n      - user: hi\n        handoff: maybe\n");
    assert!(
        e.starts_with("t.yaml:5:18: error: `handoff` must be `true` or `false`"),
        "{e}"
    );
    let e = first_error(
        "tests:\n  - name: a\n    turns:\n      - user: hi\n        bot_matches: '(['\n",
    );
    assert!(e.starts_with("t.yaml:5:22: error: invalid regex"), "{e}");
    let e = first_error("tests:\n  - name: a\n    lang: fr\n    turns:\n      - user: hi\n");
    assert!(e.contains("unknown language `fr`"), "{e}");
    let e = first_error(
        "tests:\n  - name: a\n    turns:\n      - user: hi\n  - name: a\n    turns:\n      - user: ho\n",
    );
    assert!(
        e.starts_with("t.yaml:5:5: error: test `a` is defined twice"),
        "{e}"
    );
    assert!(e.contains("first defined at t.yaml:2:5"), "{e}");
    let e = first_error("tests:\n  - name: a\n    turns:\n      - user: [hi\n");
    assert!(e.starts_with("t.yaml:"), "{e}");
    assert!(e.contains("YAML syntax error"), "{e}");
}

#[test]
fn every_problem_in_a_file_is_reported() {
    let errors = parse(
        "tests:\n  - name: a\n    turns:\n      - user: hi\n        botx: 1\n        flowz: 2\n",
    )
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn an_empty_file_has_no_tests() {
    assert!(parse("# nothing yet\n").unwrap().cases.is_empty());
}

#[test]
fn tags_parse_and_bad_tags_are_errors_with_positions() {
    let f = parse("tests:\n  - name: one\n    tags: [vip, b2b]\n    turns:\n      - user: hi\n")
        .unwrap();
    assert_eq!(f.cases[0].tags, vec!["vip".to_owned(), "b2b".to_owned()]);
    let f = parse("tests:\n  - name: one\n    turns:\n      - user: hi\n").unwrap();
    assert!(f.cases[0].tags.is_empty());
    let e = first_error("tests:\n  - name: one\n    tags: [VIP]\n    turns:\n      - user: hi\n");
    assert!(
        e.starts_with("t.yaml:3:12: error: a tag is 1 to 32 characters of a-z"),
        "{e}"
    );
    let e = first_error("tests:\n  - name: one\n    tags: vip\n    turns:\n      - user: hi\n");
    assert!(
        e.starts_with("t.yaml:3:11: error: `tags` must be a list"),
        "{e}"
    );
}
