//! Deliberately broken bots: every diagnostic names the exact `line:col` and says what is
//! wrong, so `kefu check` output leads the designer straight to the mistake.

use kefu_flows::{Bot, Diagnostic, Severity};

/// A tiny valid preamble that broken snippets build on (lines 1–9).
const BASE: &str = "\
intents:
  greet:
    examples:
      zh: [你好]
      en: [hi]
slots:
  order_id:
    type: order_id
flows:
";

fn errors(yaml: &str) -> Vec<Diagnostic> {
    match Bot::load_str("bot.yaml", yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(d) => d
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    }
}

/// Asserts the only error is `line:col: error: message` (and the hint, when given).
fn assert_one(yaml: &str, line: u32, col: u32, message: &str, hint: Option<&str>) {
    let errs = errors(yaml);
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        errs.len(),
        1,
        "expected one error, got:\n{}",
        shown.join("\n")
    );
    let e = &errs[0];
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (line, col, message),
        "got: {}",
        shown[0]
    );
    if let Some(h) = hint {
        assert_eq!(e.hint.as_deref(), Some(h), "got: {}", shown[0]);
    }
}

fn with_flow(steps: &str) -> String {
    format!("{BASE}  hello:\n    trigger: {{intent: greet}}\n    steps:\n{steps}")
}

#[test]
fn yaml_syntax_error() {
    assert_one(
        "flows:\n  a:\n    steps:\n      - say: \"unterminated\n",
        4,
        14,
        "YAML syntax error: while scanning a quoted scalar, found unexpected end of stream",
        None,
    );
}

#[test]
fn bad_indentation_is_a_syntax_error() {
    let errs = errors("intents:\n  greet:\n    examples: [a]\n   bad: 1\n");
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].line, errs[0].col), (4, 4), "{}", errs[0]);
    assert!(
        errs[0].message.starts_with("YAML syntax error: "),
        "{}",
        errs[0]
    );
}

#[test]
fn duplicate_yaml_key() {
    let errs = errors(
        "intents:\n  greet:\n    examples: {zh: [你好]}\n  greet:\n    examples: {zh: [hi]}\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].line, 4, "{}", errs[0]);
    assert!(
        errs[0].message.starts_with("YAML syntax error: "),
        "{}",
        errs[0]
    );
}

#[test]
fn unknown_top_level_key() {
    assert_one(
        &format!("{BASE}  hello:\n    steps: [end]\nflow:\n  x: 1\n"),
        12,
        1,
        "unknown key `flow` in a bot file",
        Some("did you mean `flows`?"),
    );
}

#[test]
fn unknown_step_kind() {
    assert_one(
        &with_flow("      - sya: 你好\n"),
        13,
        9,
        "unknown step kind `sya`",
        Some("did you mean `say`?"),
    );
}

#[test]
fn unknown_key_in_ask_step() {
    let steps = "      - ask: order_id\n        promt: 订单号？\n";
    assert_one(
        &with_flow(steps),
        14,
        9,
        "unknown key `promt` in `ask` step",
        Some("did you mean `prompt`?"),
    );
}

#[test]
fn undefined_slot() {
    let steps = "      - ask: order_no\n        prompt: 订单号？\n";
    assert_one(
        &with_flow(steps),
        13,
        14,
        "undefined slot `order_no`",
        Some("did you mean `order_id`?"),
    );
}

#[test]
fn undefined_intent_in_trigger() {
    assert_one(
        &format!("{BASE}  hello:\n    trigger: {{intent: greeting}}\n    steps: [end]\n"),
        11,
        23,
        "undefined intent `greeting`",
        Some("did you mean `greet`?"),
    );
}

#[test]
fn undefined_flow() {
    assert_one(
        &with_flow("      - flow: goodbye\n"),
        13,
        15,
        "undefined flow `goodbye`",
        None,
    );
}

#[test]
fn undefined_step_id() {
    let steps = "      - id: start\n        say: hi\n      - goto: strat\n";
    assert_one(
        &with_flow(steps),
        15,
        15,
        "undefined step id `strat` in flow `hello`",
        Some("did you mean `start`?"),
    );
}

#[test]
fn duplicate_step_id() {
    let steps = "      - id: a\n        say: one\n      - id: a\n        say: two\n";
    assert_one(
        &with_flow(steps),
        15,
        13,
        "duplicate step id `a` in flow `hello`",
        Some("step ids are unique within a flow"),
    );
}

#[test]
fn bad_template_syntax() {
    let errs = errors(&with_flow("      - say: \"订单 {{ slots.order_id \"\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].col), (13, 14), "{}", errs[0]);
    assert!(
        errs[0]
            .message
            .starts_with("invalid template: syntax error"),
        "{}",
        errs[0]
    );
}

#[test]
fn template_names_undefined_slot() {
    assert_one(
        &with_flow("      - say: \"订单 {{ slots.order }}\"\n"),
        13,
        14,
        "template uses undefined slot `order`",
        None,
    );
}

#[test]
fn bad_condition_syntax() {
    let steps = "      - id: a\n        branch: {if: \"slots.order_id ==\", then: a}\n";
    let errs = errors(&with_flow(steps));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].col), (14, 22), "{}", errs[0]);
    assert!(
        errs[0]
            .message
            .starts_with("invalid condition: syntax error"),
        "{}",
        errs[0]
    );
}

#[test]
fn flow_with_no_steps() {
    assert_one(
        &format!("{BASE}  hello:\n    trigger: {{intent: greet}}\n    steps: []\n"),
        12,
        12,
        "flow `hello` has no steps (found an empty list)",
        None,
    );
    assert_one(
        &format!("{BASE}  hello:\n    trigger: {{intent: greet}}\n"),
        10,
        3,
        "flow `hello` has no steps",
        Some("add `steps:` with at least one step"),
    );
}

#[test]
fn unknown_slot_type() {
    assert_one(
        "slots:\n  size:\n    type: enumm\n    values: [s, m]\nflows:\n  f:\n    steps: [end]\n",
        3,
        11,
        "unknown slot type `enumm`",
        Some("did you mean `enum`?"),
    );
}

#[test]
fn bad_regex() {
    assert_one(
        "slots:\n  sn:\n    type: regex\n    pattern: 'SN(\\d+'\nflows:\n  f:\n    steps: [end]\n",
        4,
        14,
        "invalid regex: unclosed group",
        None,
    );
}

#[test]
fn set_value_of_the_wrong_type() {
    let yaml = format!(
        "{BASE}  hello:\n    trigger: {{intent: greet}}\n    steps:\n      - set: {{order_id: 42}}\n"
    );
    assert_one(
        &yaml,
        13,
        25,
        "42 is not a valid value for slot `order_id` (type `order_id`)",
        None,
    );
}

#[test]
fn two_kinds_in_one_step() {
    assert_one(
        &with_flow("      - say: hi\n        goto: x\n"),
        14,
        9,
        "a step does one thing; this one has both `say` and `goto`",
        Some("split it into two steps"),
    );
}

#[test]
fn ask_without_prompt() {
    assert_one(
        &with_flow("      - ask: order_id\n"),
        13,
        9,
        "an `ask` step needs a `prompt`",
        None,
    );
}

#[test]
fn duplicate_definitions_across_files() {
    let a = ("a.yaml".into(), "intents:\n  greet:\n    examples: {zh: [你好]}\nflows:\n  f:\n    trigger: {intent: greet}\n    steps: [end]\n".to_string());
    let b = (
        "b.yaml".into(),
        "intents:\n  # again\n  greet:\n    examples: {en: [hi]}\n".to_string(),
    );
    let errs = Bot::load_files("bot", &[a, b]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].to_string(),
        "b.yaml:3:3: error: intent `greet` is defined twice\n  hint: first defined at a.yaml:2:3"
    );
}

#[test]
fn all_errors_are_collected_in_order() {
    let steps = "      - sya: hi\n      - ask: nope\n        prompt: x\n      - goto: nowhere\n";
    let errs = errors(&with_flow(steps));
    let at: Vec<(u32, u32)> = errs.iter().map(|e| (e.line, e.col)).collect();
    assert_eq!(at, vec![(13, 9), (14, 14), (16, 15)], "{errs:?}");
}

#[test]
fn display_format_is_file_line_col() {
    let errs = errors(&with_flow("      - sya: 你好\n"));
    assert_eq!(
        errs[0].to_string(),
        "bot.yaml:13:9: error: unknown step kind `sya`\n  hint: did you mean `say`?"
    );
}
