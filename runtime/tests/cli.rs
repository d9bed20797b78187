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

/// Runs a command that is expected to exit by itself; a server that starts instead is killed and
/// the test fails rather than hanging.
fn run_with_deadline(cmd: &mut Command) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("kefu serve kept running where it should have refused to start");
        }
    }
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
    while !data.join("LOCK").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let second = run_with_deadline(
        kefu()
            .args(["serve", "--listen", "127.0.0.1:0", "--flows"])
            .arg(shop())
            .arg("--data-dir")
            .arg(&data),
    );
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("locked"), "{err}");

    // Damage: a real data directory whose sled file is overwritten with garbage.
    let damaged = dir.path().join("damaged");
    drop(kefu_store::SledStore::open(&damaged).unwrap());
    let db = damaged.join("sled").join("db");
    assert!(db.is_file(), "the store keeps its data in sled/db");
    let len = std::fs::metadata(&db).unwrap().len().max(4096) as usize;
    std::fs::write(&db, vec![0xAB; len]).unwrap();
    let out = run_with_deadline(
        kefu()
            .args(["serve", "--listen", "127.0.0.1:0", "--flows"])
            .arg(shop())
            .arg("--data-dir")
            .arg(&damaged),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("damaged") || err.contains("cannot be opened"),
        "{err}"
    );
}
