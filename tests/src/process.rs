//! Starting the real `kefu` binary as a child process and finding its port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `kefu` binary next to the running test or tool (`target/<profile>/kefu`), or `KEFU_BIN`.
pub fn kefu_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("KEFU_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // Test binaries live in target/<profile>/deps, tools in target/<profile>.
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(format!("kefu{}", std::env::consts::EXE_SUFFIX));
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "the kefu binary was not found next to {}; build it first (cargo build -p kefu-runtime) or set KEFU_BIN",
        exe.display()
    )
}

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The shipped bot's flow directory.
pub fn shop_flows() -> PathBuf {
    repo_root().join("dialog-flows/bots/shop")
}

/// A running `kefu serve` child.
pub struct KefuProcess {
    /// The child process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl KefuProcess {
    /// Starts `kefu serve` on `127.0.0.1:0` with `data_dir` and the shipped bot (plus `extra`
    /// arguments), and waits until it prints its address.
    pub fn start(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(kefu_bin()?);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--flows")
            .arg(shop_flows())
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("KEFU_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("kefu listening on http://") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                return Ok(Self {
                    child,
                    addr: addr.parse()?,
                });
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("kefu exited before listening: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                anyhow::bail!("kefu did not start listening within 60 s");
            }
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Peak resident memory of the child so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        rss_field(self.child.id(), "VmHWM:")
    }

    /// Current resident memory of the child, in KiB (Linux `VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_field(self.child.id(), "VmRSS:")
    }
}

impl Drop for KefuProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
