//! Hot reload under a running `kefu serve`: a valid edit reaches new sessions while a session
//! in the middle of a flow finishes it on the version it started with; a broken edit is
//! refused with `kefu check`'s messages in the log, and the server keeps serving.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OLD_ORDER_PROMPT: &str = "请告诉我需要处理的订单号。";
const NEW_ORDER_PROMPT: &str = "【新版】请发一下订单号。";
const OLD_GREETING: &str = "您好，欢迎光临！";
const NEW_GREETING: &str = "【新版】您好！";

struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(flows: &Path, data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["serve", "--listen", "127.0.0.1:0", "--flows"])
        .arg(flows)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("kefu listening on http://") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("kefu did not start:\n{}", log.lock().unwrap()));
    Server {
        child,
        addr: addr.parse().unwrap(),
        log,
    }
}

/// Sends one message and returns the replies joined by newlines.
fn say(addr: SocketAddr, session: &str, text: &str) -> String {
    let body = serde_json::json!({ "text": text }).to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /v1/conversations/{session}/messages HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    let outcome: serde_json::Value = serde_json::from_str(body).unwrap();
    outcome["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn copy_bot(to: &Path) -> PathBuf {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dialog-flows/bots/shop");
    let flows = to.join("bot");
    std::fs::create_dir(&flows).unwrap();
    copy_tree(&shop, &flows);
    flows
}

/// The whole bot: flows, plus its knowledge base and demo order data (its skills need them).
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir(&target).unwrap();
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn edits_go_live_for_new_sessions_live_sessions_finish_on_their_version_and_broken_edits_are_refused()
 {
    let tmp = tempfile::tempdir().unwrap();
    let flows = copy_bot(tmp.path());
    let server = start(&flows, &tmp.path().join("data"));
    let addr = server.addr;

    // A session starts a flow on the first version.
    assert!(say(addr, "live", "申请售后").contains("退货退款，还是换货"));

    // A valid edit of two texts.
    let file = flows.join("flows.yaml");
    let src = std::fs::read_to_string(&file).unwrap();
    assert!(src.contains(OLD_ORDER_PROMPT) && src.contains(OLD_GREETING));
    std::fs::write(
        &file,
        src.replace(OLD_ORDER_PROMPT, NEW_ORDER_PROMPT)
            .replace(OLD_GREETING, NEW_GREETING),
    )
    .unwrap();
    let mut probe = 0;
    wait_for("the new version to serve new sessions", || {
        probe += 1;
        say(addr, &format!("probe-{probe}"), "你好").contains(NEW_GREETING)
    });
    assert!(server.log.lock().unwrap().contains("Flows reloaded"));

    // The live session is mid-flow: it finishes on the version it started with ...
    let reply = say(addr, "live", "退货");
    assert!(reply.contains(OLD_ORDER_PROMPT), "{reply}");
    // ... while a new session runs the edited flow.
    say(addr, "fresh", "申请售后");
    let reply = say(addr, "fresh", "退货");
    assert!(reply.contains(NEW_ORDER_PROMPT), "{reply}");
    say(addr, "live", "A12345678");
    let reply = say(addr, "live", "质量问题");
    assert!(
        reply.contains("非常抱歉"),
        "the live session finished its flow: {reply}"
    );
    // Its flow is over: its next message runs on the new version.
    assert!(say(addr, "live", "你好").contains(NEW_GREETING));

    // A broken edit is refused with check's messages; the running version keeps serving.
    std::fs::write(
        flows.join("broken.yaml"),
        "flows:\n  broken:\n    steps:\n      - sya: hi\n",
    )
    .unwrap();
    wait_for("the refusal in the log", || {
        server.log.lock().unwrap().contains("Reload refused")
    });
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("broken.yaml:4:9: error: unknown step kind `sya`"),
        "{log}"
    );
    assert!(log.contains("did you mean `say`?"), "{log}");
    assert!(say(addr, "after-broken", "你好").contains(NEW_GREETING));
    let reply = say(addr, "fresh", "订单号是 A12345678");
    assert!(
        reply.contains("方便说一下原因吗"),
        "mid-flow sessions go on: {reply}"
    );

    // Fixing the files is picked up again.
    std::fs::remove_file(flows.join("broken.yaml")).unwrap();
    let src = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, src.replace(NEW_GREETING, "【第三版】您好！")).unwrap();
    let mut probe = 0;
    wait_for("the third version", || {
        probe += 1;
        say(addr, &format!("third-{probe}"), "你好").contains("【第三版】您好！")
    });
}
