//! `kefu test`: the shipped bot's conversation tests pass, and failing or malformed tests are
//! reported with positions, diffs and exit code 1.

use std::path::{Path, PathBuf};
use std::process::Command;

use kefu_runtime::flowtest::{self, RunOptions};

fn shop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dialog-flows/bots/shop")
}

fn kefu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
}

/// A temp copy of the shop bot's flow files (not its tests) with `tests` as its only test file.
fn shop_with_tests(tests: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shop()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(dir.path().join("tests/cases.yaml"), tests).unwrap();
    dir
}

#[test]
fn the_shipped_bot_passes_its_conversation_tests() {
    let summary = flowtest::run_dir(&shop(), &RunOptions::default()).unwrap();
    assert_eq!(summary.failed(), 0, "{}", summary.render());
    assert!(summary.passed() >= 80, "only {} tests", summary.passed());
}

#[test]
fn kefu_test_passes_on_the_shipped_bot() {
    let out = kefu().arg("test").arg(shop()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.trim_end().ends_with("passed, 0 failed"), "{stdout}");
}

#[test]
fn the_name_filter_runs_matching_tests_only() {
    let summary = flowtest::run_dir(
        &shop(),
        &RunOptions {
            name_filter: Some("INVOICE EN".into()),
        },
    )
    .unwrap();
    assert_eq!(summary.results.len(), 2, "{}", summary.render());
    assert!(
        summary
            .results
            .iter()
            .all(|r| r.name.starts_with("invoice en"))
    );
    let out = kefu()
        .arg("test")
        .arg(shop())
        .args(["--name", "no such test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matching `no such test`"));
}

const FAILING: &str = "\
tests:
  - name: passes
    turns:
      - user: 运费多少
        intent: shipping_fee
  - name: wrong reply text
    turns:
      - user: 运费多少
        bot: 全场包邮
      - user: 谢谢
        intent: thanks
  - name: wrong slot and flow
    turns:
      - user: 查订单
        flow: order_status
      - user: A12345678
        slots: {order_id: B99999999}
        flow: order_status
        handoff: false
";

#[test]
fn failures_show_position_expected_actual_and_exit_1() {
    let dir = shop_with_tests(FAILING);
    let out = kefu().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let file = dir.path().join("tests/cases.yaml");
    let at = |line: u32, col: u32| format!("{}:{line}:{col}:", file.display());
    // The exact-text failure: position, message, line diff, skipped turns.
    assert!(
        stdout.contains(&format!("{} turn 1: `bot` failed", at(9, 9))),
        "{stdout}"
    );
    assert!(stdout.contains("    user:     运费多少"), "{stdout}");
    assert!(stdout.contains("    - 全场包邮"), "{stdout}");
    assert!(stdout.contains("    + 全场实付满 99 元包邮"), "{stdout}");
    assert!(stdout.contains("(1 later turn(s) not run)"), "{stdout}");
    // Every failed expectation of the failing turn, each at its own key; handoff held.
    assert!(
        stdout.contains(&format!("{} turn 2: `slots` failed", at(17, 17))),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected: slot `order_id` = \"B99999999\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("actual:   slot `order_id` = \"A12345678\""),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{} turn 2: `flow` failed", at(18, 9))),
        "{stdout}"
    );
    assert!(stdout.contains("actual:   active flow null"), "{stdout}");
    assert!(!stdout.contains("`handoff` failed"), "{stdout}");
    assert!(stdout.contains("ok   cases.yaml › passes"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("1 passed, 2 failed"),
        "{stdout}"
    );
}

#[test]
fn malformed_test_files_are_reported_like_kefu_check() {
    let dir = shop_with_tests(
        "tests:\n  - name: a\n    turns:\n      - user: 运费多少\n        bot_contain: 包邮\n        slots: {order_idd: A12345678}\n",
    );
    let out = kefu().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = dir.path().join("tests/cases.yaml").display().to_string();
    assert!(
        stderr.contains(&format!("{file}:5:9: error: unknown key `bot_contain` in a turn\n  hint: did you mean `bot_contains`?")),
        "{stderr}"
    );
    // Names are checked against the bot once the file parses.
    let dir = shop_with_tests(
        "tests:\n  - name: a\n    turns:\n      - user: 运费多少\n        slots: {order_idd: A12345678}\n        flow: order_stats\n",
    );
    let out = kefu().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = dir.path().join("tests/cases.yaml").display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:5:17: error: the bot has no slot `order_idd`\n  hint: did you mean `order_id`?"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:6:9: error: the bot has no flow `order_stats`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s) in test files"), "{stderr}");
}

#[test]
fn a_bot_without_tests_or_with_broken_flows_fails() {
    let dir = shop_with_tests("# none yet\n");
    let out = kefu().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no conversation tests in"));

    std::fs::write(
        dir.path().join("broken.yaml"),
        "flows:\n  x:\n    steps:\n      - sya: hi\n",
    )
    .unwrap();
    let out = kefu().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.yaml:4:"), "{stderr}");
}
