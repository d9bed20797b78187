//! Real HTTP on loopback both ways, with the tiny llama.cpp model (the `llama` feature):
//!
//! - kefu A serves the tiny model (`[llm.local]`) on `/v1/chat/completions`;
//! - kefu B has only `[llm.remote]` pointing at A, so B's OpenAI-compatible back-end talks to
//!   A over HTTP, and B serves that on its own endpoint;
//! - a client calls B, streaming and not; the official `openai` Python client calls A.
//!
//! The model file is made at test time by `models/scripts/make_tiny_gguf.py` (needs Python with
//! `gguf`, `tokenizers`, `numpy`, and `openai` for the client test; `.ci/run` installs them).
//! Missing tools fail these tests: they only run with `--features llama`, which CI enables
//! after installing them.
#![cfg(feature = "llama")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn make_model(dir: &Path) -> PathBuf {
    let out = dir.join("tiny.gguf");
    let status = Command::new("python3")
        .arg(repo_root().join("models/scripts/make_tiny_gguf.py"))
        .arg(&out)
        .status()
        .expect("python3 runs (install Python 3 with: pip install gguf tokenizers numpy)");
    assert!(status.success(), "make_tiny_gguf.py failed");
    out
}

/// A `kefu serve` child, killed on drop.
struct Kefu {
    child: Child,
    base: String,
}

impl Drop for Kefu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_kefu(dir: &Path, name: &str, llm_toml: &str) -> Kefu {
    let data = dir.join(format!("data-{name}"));
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, llm_toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data)
        .arg("--flows")
        .arg(repo_root().join("dialog-flows/bots/shop"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("kefu listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Kefu {
        child,
        base: format!("{addr}/v1"),
    }
}

fn serving_tiny_model(dir: &Path) -> Kefu {
    let model = make_model(dir);
    start_kefu(
        dir,
        "a",
        &format!(
            "[llm.local]\nmodel_path = {:?}\nmodel_name = \"kefu-tiny\"\nparallel = 4\ncontext_tokens = 1024\n",
            model.display().to_string()
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_kefu_uses_the_first_over_its_openai_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let a = serving_tiny_model(dir.path());
    let b = start_kefu(
        dir.path(),
        "b",
        &format!(
            "[llm.remote]\nbase_url = {:?}\nmodel = \"kefu-tiny\"\ntimeout_ms = 20000\n",
            a.base
        ),
    );
    let client = reqwest::Client::new();
    let body = json!({"model": "kefu-tiny", "max_tokens": 12, "temperature": 0,
        "messages": [{"role": "system", "content": "你是客服。"}, {"role": "user", "content": "我的订单什么时候发货？"}]});

    // Not streamed: B → (HTTP) → A → llama.cpp.
    let answer: Value = client
        .post(format!("{}/chat/completions", b.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["object"], "chat.completion", "{answer}");
    assert_eq!(answer["model"], "kefu-tiny");
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.is_empty());
    assert_eq!(answer["usage"]["completion_tokens"], 12, "{answer}");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    // Greedy decoding is deterministic: A answers B exactly what it answers directly.
    let direct: Value = client
        .post(format!("{}/chat/completions", a.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(direct["choices"][0]["message"]["content"], text);

    // Streamed through both hops.
    let mut streamed_body = body.clone();
    streamed_body["stream"] = json!(true);
    let sse = client
        .post(format!("{}/chat/completions", b.base))
        .json(&streamed_body)
        .send()
        .await
        .unwrap();
    assert!(
        sse.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let sse = sse.text().await.unwrap();
    let data: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{sse}");
    let streamed: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(streamed, text);

    // B reports A's failure in OpenAI's shape when A is gone.
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let failed = client
        .post(format!("{}/chat/completions", b.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    let failed: Value = failed.json().await.unwrap();
    assert_eq!(failed["error"]["code"], "backend_unavailable");
}

const PYTHON_CLIENT: &str = r#"
import sys
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused")
messages = [{"role": "user", "content": "Where is my order? 我的订单在哪里？"}]
done = client.chat.completions.create(model="kefu-tiny", messages=messages, max_tokens=10, temperature=0)
text = done.choices[0].message.content
assert done.object == "chat.completion", done
assert done.usage.completion_tokens == 10, done.usage
assert text, done
pieces = []
finish = None
for chunk in client.chat.completions.create(model="kefu-tiny", messages=messages, max_tokens=10, temperature=0, stream=True):
    if chunk.choices:
        pieces.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
assert "".join(pieces) == text, (pieces, text)
assert finish == "length", finish
try:
    client.chat.completions.create(model="kefu-tiny", messages=[], max_tokens=10)
    raise SystemExit("an empty conversation was accepted")
except Exception as e:  # openai.BadRequestError
    assert getattr(e, "status_code", None) == 400, e
print("python openai client ok")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_official_openai_python_client_works_streaming_and_not() {
    let dir = tempfile::tempdir().unwrap();
    let a = serving_tiny_model(dir.path());
    let script = dir.path().join("client.py");
    std::fs::write(&script, PYTHON_CLIENT).unwrap();
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&a.base)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the openai client failed (pip install openai):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
