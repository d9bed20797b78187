//! `kefu chat` with piped stdin: replies, /debug, /reset, /quit.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn chat(input: &str, args: &[&str]) -> (String, Option<i32>) {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dialog-flows/bots/shop");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("chat")
        .arg(shop)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn a_piped_conversation_gets_replies_and_debug_details() {
    let (out, code) = chat(
        "我的快递到哪了\n/debug\nA12345678\n/debug\n谢谢\n/quit\n你好\n",
        &[],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("kefu chat: bot shop v"), "{out}");
    assert!(
        !out.contains("you>"),
        "no prompt when stdin is not a terminal: {out}"
    );
    assert!(out.contains("bot> 好的，请提供一下您的订单号"), "{out}");
    assert!(out.contains("(debug on)"), "{out}");
    assert!(out.contains("A12345678"), "{out}");
    let debug_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("[intent="))
        .collect();
    assert_eq!(
        debug_lines.len(),
        1,
        "details only while /debug is on: {out}"
    );
    let line = debug_lines[0];
    for part in [
        "confidence=",
        "lang=",
        "emotion=neutral",
        "calls=orders:found",
        "flow=-",
        r#"order_id="A12345678""#,
        "bot=",
    ] {
        assert!(line.contains(part), "{part} missing in {line}");
    }
    assert!(out.contains("bot> 不客气"), "{out}");
    assert!(
        !out.contains("欢迎光临"),
        "nothing after /quit is sent: {out}"
    );
}

#[test]
fn reset_forgets_the_conversation_and_handoffs_are_shown() {
    let (out, code) = chat("查订单\n/reset\n查订单\n转人工\n", &["--debug"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(new conversation)"), "{out}");
    // After /reset the order question is asked afresh, not re-prompted.
    assert_eq!(
        out.matches("bot> 好的，请提供一下您的订单号").count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("(handed off to a human agent: customer asked for a human)"),
        "{out}"
    );
    assert!(out.contains("intent=human"), "{out}");
}

#[test]
fn end_of_input_and_conversation_end_are_clean() {
    let (out, code) = chat("bye", &["--lang", "en"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("happy shopping"), "{out}");
    assert!(out.contains("(conversation ended)"), "{out}");
}
