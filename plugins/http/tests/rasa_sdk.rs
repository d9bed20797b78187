//! Interoperability with a real `rasa-sdk` action server (from PyPI): the sample actions in
//! `tests/fixtures/rasa_actions` run unchanged and answer through the http skill.
//!
//! Ignored by default because it needs Python and `rasa-sdk`; CI installs both and runs it with
//! `cargo test -p kefu-skill-http -- --ignored`. When run, a missing `rasa-sdk` is a failure,
//! never a skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kefu_plugin::{Caller, Skill, SkillOutcome, SkillRequest};
use kefu_skill_http::{HttpSkill, HttpSkillConfig};
use serde_json::json;
use std::os::unix::process::CommandExt;

/// The action server, killed when the test ends however it ends.
struct ActionServer {
    child: Child,
    url: String,
}

impl Drop for ActionServer {
    fn drop(&mut self) {
        // rasa-sdk (Sanic) forks worker processes: kill the whole process group, or the
        // workers outlive the test holding the test runner's output open.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn start_action_server() -> ActionServer {
    let check = Command::new(python())
        .args(["-c", "import rasa_sdk, sys; print(rasa_sdk.__version__)"])
        .output()
        .expect("python3 must be installed for the rasa-sdk interoperability test");
    assert!(
        check.status.success(),
        "rasa-sdk is not installed (python3 -m pip install rasa-sdk): {}",
        String::from_utf8_lossy(&check.stderr)
    );
    eprintln!("rasa-sdk {}", String::from_utf8_lossy(&check.stdout).trim());
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("address").port()
    };
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rasa_actions");
    let child = Command::new(python())
        .args([
            "-m",
            "rasa_sdk",
            "--actions",
            "kefu_demo_actions",
            "--port",
            &port.to_string(),
        ])
        .current_dir(&fixtures)
        .env("PYTHONPATH", &fixtures)
        // rasa-sdk listens on all interfaces unless told otherwise.
        .env("SANIC_HOST", "127.0.0.1")
        .stdout(Stdio::null())
        // Not inherited: its forked workers would keep the runner's stderr open after the test.
        .stderr(Stdio::null())
        // Its own process group, so Drop can stop the workers with it.
        .process_group(0)
        .spawn()
        .expect("the action server starts");
    ActionServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_healthy(server: &mut ActionServer) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = server.child.try_wait().expect("child status") {
            panic!("the action server exited early: {status}");
        }
        let health = client
            .get(format!("{}/health", server.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if matches!(&health, Ok(r) if r.status().is_success()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the action server did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs python3 with rasa-sdk; CI runs it with --ignored"]
async fn a_real_rasa_sdk_action_sets_a_slot_and_sends_a_message() {
    let mut server = start_action_server();
    wait_healthy(&mut server).await;

    let caller = Caller {
        tenant: "default".into(),
        user: "u42".into(),
        session: "sess-9".into(),
        channel: "web".into(),
        locale: "en".into(),
    };
    let skill = HttpSkill::new(
        HttpSkillConfig::rasa("order_status", &server.url, "action_check_order")
            .with_timeout_ms(10_000),
    )
    .unwrap();
    let out = skill
        .call(
            SkillRequest::new("order_status", caller.clone())
                .with_arg("order_id", "A1001")
                .with_arg("text", "where is my order A1001?"),
        )
        .await
        .unwrap();
    let SkillOutcome::Found { data, messages } = out else {
        panic!("found expected, got {out:?}")
    };
    assert_eq!(messages, vec!["Order A1001 has shipped."]);
    assert_eq!(
        data["slots"],
        json!({"order_status": "shipped", "checked_for": "u42", "asked": "where is my order A1001?"})
    );

    let refuse = HttpSkill::new(
        HttpSkillConfig::rasa("refuse", &server.url, "action_refuse").with_timeout_ms(10_000),
    )
    .unwrap();
    let out = refuse
        .call(SkillRequest::new("refuse", caller.clone()))
        .await
        .unwrap();
    assert_eq!(out.kind(), "declined", "{out:?}");

    let missing = HttpSkill::new(
        HttpSkillConfig::rasa("missing", &server.url, "action_nope").with_timeout_ms(10_000),
    )
    .unwrap();
    let err = missing
        .call(SkillRequest::new("missing", caller))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kefu_plugin::SkillError::Config(m) if m.contains("action_nope")),
        "{err:?}"
    );
}
