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
fn ask_before_filling_must_be_a_boolean() {
    let steps =
        "      - ask: order_id\n        prompt: 订单号？\n        ask_before_filling: yes please\n";
    assert_one(
        &with_flow(steps),
        15,
        29,
        "`ask_before_filling` must be true or false",
        Some("write `ask_before_filling: true` to always ask"),
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

// ---- skills, generation, sub-flows -------------------------------------------------------

/// `BASE` plus a `json` slot, for `call ... save:`.
fn with_json_slot(steps: &str) -> String {
    with_flow(steps).replace(
        "  order_id:\n    type: order_id\n",
        "  order_id:\n    type: order_id\n  order: {type: json}\n",
    )
}

/// The warnings of a bot that loads.
fn warnings(yaml: &str) -> Vec<Diagnostic> {
    match Bot::load_str("bot.yaml", yaml) {
        Ok(b) => b.warnings().to_vec(),
        Err(d) => panic!(
            "expected a bot, got:\n{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn assert_warning(yaml: &str, line: u32, col: u32, message: &str) {
    let w = warnings(yaml);
    assert!(
        w.iter()
            .any(|d| (d.line, d.col, d.message.as_str()) == (line, col, message)),
        "no warning {line}:{col} {message}; got:\n{}",
        w.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn unknown_skill_when_skills_are_known() {
    let yaml = with_flow("      - call: order\n");
    let opts = kefu_flows::LoadOptions::with_known_skills(["orders", "kb"]);
    let errs =
        Bot::load_files_with("bot", &[("bot.yaml".into(), yaml.clone())], &opts).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].to_string(),
        "bot.yaml:13:15: error: unknown skill `order`\n  hint: did you mean `orders`?"
    );
    // Without a list of skills, any name loads.
    assert!(Bot::load_str("bot.yaml", &yaml).is_ok());
}

#[test]
fn save_slot_of_the_wrong_type() {
    assert_one(
        &with_json_slot("      - call: orders\n        save: order_id\n"),
        15,
        15,
        "slot `order_id` has type `order_id`; skill data needs a slot of type `json`",
        None,
    );
}

#[test]
fn unknown_outcome() {
    assert_one(
        &with_json_slot("      - call: orders\n        on: {not_fund: next}\n"),
        15,
        14,
        "unknown key `not_fund` in `on`",
        Some("did you mean `not_found`?"),
    );
}

#[test]
fn outcome_to_a_missing_step() {
    assert_one(
        &with_json_slot("      - call: orders\n        on: {error: retry}\n"),
        15,
        21,
        "undefined step id `retry` in flow `hello`",
        Some("give the target step an `id:`"),
    );
}

#[test]
fn key_of_another_step_kind() {
    assert_one(
        &with_flow("      - say: hi\n        args: {a: 1}\n"),
        14,
        9,
        "`args` only belongs to a `call` step",
        None,
    );
}

#[test]
fn asking_for_a_json_slot() {
    assert_one(
        &with_json_slot("      - ask: order\n        prompt: 订单?\n"),
        14,
        14,
        "slot `order` has type `json` and cannot be asked for",
        Some("`json` slots are filled by `call: ... save:`"),
    );
}

#[test]
fn generate_without_fallback() {
    assert_one(
        &with_flow("      - generate: 回答 {{ text }}\n"),
        13,
        9,
        "a `generate` step needs a `fallback` text for when generation fails",
        Some("add `fallback:` with what to say instead"),
    );
}

#[test]
fn call_flow_to_itself() {
    assert_one(
        &with_flow("      - call_flow: hello\n"),
        13,
        20,
        "flow `hello` calls itself",
        Some("use `goto` to repeat steps; sub-flows cannot recurse"),
    );
}

#[test]
fn call_flow_recursion_through_another_flow() {
    let yaml = format!(
        "{}  other:\n    steps:\n      - call_flow: hello\n",
        with_flow("      - call_flow: other\n")
    );
    let errs = errors(&yaml);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        (errs[0].line, errs[0].col, errs[0].message.as_str()),
        (
            13,
            20,
            "`call_flow: other` recurses: flow `other` leads back to `hello`"
        )
    );
    assert_eq!(errs[1].line, 16);
}

#[test]
fn loop_without_a_user_turn() {
    assert_one(
        &with_flow("      - id: top\n        say: 请稍等\n      - goto: top\n"),
        13,
        9,
        "these steps loop without waiting for the user: hello step 1 → hello step 2 → hello step 1",
        Some(
            "each round of a loop must `ask` something, or the bot spins until it gives up and hands off",
        ),
    );
}

#[test]
fn loop_through_flow_jumps() {
    let yaml = format!(
        "{}  other:\n    steps:\n      - say: b\n      - flow: hello\n",
        with_flow("      - say: a\n      - flow: other\n")
    );
    let errs = errors(&yaml);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .message
            .starts_with("these steps loop without waiting for the user: hello step 1 → hello step 2 → other step 1"),
        "{}",
        errs[0]
    );
}

#[test]
fn unreachable_step_is_a_warning() {
    assert_warning(
        &with_flow("      - say: hi\n      - end\n      - say: never\n"),
        15,
        9,
        "step 3 of flow `hello` can never run",
    );
}

// ---- variants -----------------------------------------------------------------------------

#[test]
fn sms_variant_over_140_characters() {
    let long = "很".repeat(141);
    assert_warning(
        &with_flow(&format!(
            "      - say:\n          zh: 你好\n          channels:\n            sms: {{zh: {long}}}\n"
        )),
        16,
        23,
        "the `sms` version (zh) has 141 characters besides template values; `sms` replies should have at most 140",
    );
}

#[test]
fn undefined_experiment() {
    assert_one(
        &with_flow("      - say: {experiment: tone, variants: {a: x}}\n"),
        13,
        27,
        "undefined experiment `tone`",
        Some("declare it under `experiments:`"),
    );
}

#[test]
fn variant_missing_or_unknown() {
    let exp = "experiments:\n  tone: {variants: [formal, casual]}\n";
    assert_one(
        &format!(
            "{exp}{}",
            with_flow("      - say: {experiment: tone, variants: {formal: a}}\n")
        ),
        15,
        43,
        "`say` has no text for variant `casual` of experiment `tone`",
        Some("every variant of the experiment needs its own text"),
    );
    assert_one(
        &format!(
            "{exp}{}",
            with_flow("      - say: {experiment: tone, variants: {formal: a, casul: b}}\n")
        ),
        15,
        55,
        "experiment `tone` has no variant `casul`",
        Some("did you mean `casual`?"),
    );
}

#[test]
fn experiment_with_one_variant() {
    assert_one(
        &format!(
            "experiments:\n  tone:\n    variants: [a]\n{}",
            with_flow("      - end\n")
        ),
        3,
        15,
        "experiment `tone` needs at least two variants",
        None,
    );
}

// ---- policies -----------------------------------------------------------------------------

fn with_policy(policy: &str) -> String {
    format!("{}policies:\n{policy}", with_flow("      - end\n"))
}

#[test]
fn policy_with_an_unknown_action() {
    assert_one(
        &with_policy("  upset:\n    when: emotion.negative_streak >= 3\n    then: handof\n"),
        17,
        11,
        "unknown policy action `handof`",
        Some("did you mean `handoff`?"),
    );
}

#[test]
fn policy_without_a_condition() {
    assert_one(
        &with_policy("  upset:\n    say: 抱歉\n"),
        15,
        3,
        "policy `upset` has no `when` condition",
        Some("e.g. `when: emotion.negative_streak >= 3`"),
    );
}

#[test]
fn policy_condition_with_an_unknown_variable() {
    assert_one(
        &with_policy("  upset:\n    when: emotions.negative_streak >= 3\n"),
        16,
        11,
        "template uses unknown variable `emotions`",
        Some("did you mean `emotion`?"),
    );
}

#[test]
fn policy_that_does_nothing() {
    assert_one(
        &with_policy("  upset:\n    when: user.vip\n    then: continue\n"),
        16,
        5,
        "policy `upset` would do nothing: it neither says anything nor hands off",
        Some("add `say:` or use `then: handoff`"),
    );
}

// ---- entities -----------------------------------------------------------------------------

#[test]
fn entity_with_both_regex_and_lookup() {
    assert_one(
        &format!(
            "entities:\n  sku:\n    regex: 'SKU-\\d+'\n    lookup: [a]\n{}",
            with_flow("      - end\n")
        ),
        4,
        5,
        "entity `sku` has both `regex` and `lookup`",
        Some("an entity is one or the other"),
    );
}

#[test]
fn entity_shadowing_a_builtin() {
    assert_one(
        &format!(
            "entities:\n  mobile:\n    regex: '1\\d{{10}}'\n{}",
            with_flow("      - end\n")
        ),
        2,
        3,
        "`mobile` is a built-in type; a custom entity needs another name",
        Some("built-in entities need no declaration: use `type: name` in a slot"),
    );
}

#[test]
fn slot_typed_by_a_misspelt_entity() {
    assert_one(
        "entities:\n  sku: {regex: 'SKU-\\d+'}\nslots:\n  code: {type: skuu}\nflows:\n  f:\n    steps: [end]\n",
        4,
        16,
        "unknown slot type `skuu`",
        Some("did you mean `sku`?"),
    );
}
