//! The `kefu` command as a user runs it: exit codes and messages.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kefu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
}

fn shop() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dialog-flows/bots/shop")
}

#[test]
fn check_accepts_the_shipped_bot() {
    let out = kefu().arg("check").arg(shop()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_reports_errors_with_positions_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bot.yaml"),
        "flows:\n  greet:\n    steps:\n      - sya: hello\n",
    )
    .unwrap();
    let out = kefu().arg("check").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bot.yaml:4:"), "{err}");
}

#[test]
fn serve_refuses_a_config_with_unknown_keys_pointing_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kefu.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\n\n[sessions]\nidle_timeout = 5\n",
    )
    .unwrap();
    let out = kefu()
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kefu.toml:4:1"), "{err}");
    assert!(err.contains("idle_timeout"), "{err}");
}

#[test]
fn serve_fails_clearly_when_the_data_directory_is_locked_or_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = kefu()
        .args(["serve", "--listen", "127.0.0.1:0", "--flows"])
        .arg(shop())
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first one holds the directory.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("db").exists() && !data.join("conf").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let second = kefu()
        .args(["serve", "--listen", "127.0.0.1:0", "--flows"])
        .arg(shop())
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("locked"), "{err}");

    // Damage: garbage where sled keeps its files.
    let damaged = dir.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("conf"), b"\x00\xffnot a sled config\x13\x37").unwrap();
    std::fs::write(damaged.join("db"), vec![0xAB; 4096]).unwrap();
    let out = kefu()
        .args(["serve", "--listen", "127.0.0.1:0", "--flows"])
        .arg(shop())
        .arg("--data-dir")
        .arg(&damaged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("damaged") || err.contains("cannot be opened"),
        "{err}"
    );
}
