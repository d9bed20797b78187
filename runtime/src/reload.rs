//! Hot reload of the bot's flow files under `kefu serve`.
//!
//! The reloader polls the bot directory's `*.yaml`/`*.yml` files (the files of the bot, not
//! its `tests/` folder) and hashes their names and contents. When the hash changes and then
//! holds still for the debounce time (an editor saving several files, or writing one in
//! pieces, settles first), the set is loaded, validated and compiled on a blocking thread:
//! - a valid set is swapped in atomically ([`FlowEngine::swap`]); sessions in the middle of a
//!   flow finish it on the version they started with;
//! - an invalid set is refused: its problems are logged with the same `file:line:col: message`
//!   lines as `kefu check`, and the running bot keeps serving. The same broken contents are
//!   not retried on every poll; the next edit is.
//!
//! Why polling and not filesystem events: hashing a bot's few dozen kilobytes twice a second
//! costs nothing, and it sees every kind of change — editors that save by rename, bind mounts
//! in containers and network filesystems where inotify events never arrive, mtimes with
//! one-second granularity — with no platform-specific code.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_actors::engine::{EngineLoadError, FlowEngine, SwapOutcome};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How the reloader watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadConfig {
    /// Time between two looks at the files.
    pub interval: Duration,
    /// How long the files must stay unchanged before a reload.
    pub debounce: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            debounce: Duration::from_millis(300),
        }
    }
}

/// What one reload attempt did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The new set is live.
    Swapped {
        /// The version replaced.
        from: String,
        /// The version now serving new sessions.
        to: String,
    },
    /// The files compile to the version already running.
    Unchanged,
    /// The set has errors (same messages as `kefu check`); the old set keeps serving.
    Rejected(EngineLoadError),
    /// The compile task itself failed (a panic in training); the old set keeps serving.
    Failed(String),
}

/// A hash of the names and contents of the bot's files in `dir` (sub-folders excluded).
pub fn fingerprint(dir: &Path) -> std::io::Result<u64> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut h = DefaultHasher::new();
    for path in paths {
        path.file_name().hash(&mut h);
        // A file removed between listing and reading is a change like any other.
        match std::fs::read(&path) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0u8.hash(&mut h),
            Err(e) => return Err(e),
        }
    }
    Ok(h.finish())
}

/// Loads `dir` on a blocking thread and swaps it into `engine` when valid; logs the outcome.
pub async fn reload_now(engine: &Arc<FlowEngine>, dir: &Path) -> ReloadOutcome {
    let started = Instant::now();
    let task_engine = engine.clone();
    let task_dir = dir.to_path_buf();
    let joined = tokio::task::spawn_blocking(move || task_engine.reload(&task_dir)).await;
    let ms = started.elapsed().as_millis();
    let outcome = match joined {
        Ok(Ok(SwapOutcome::Swapped { from, to })) => ReloadOutcome::Swapped { from, to },
        Ok(Ok(SwapOutcome::Unchanged { .. })) => ReloadOutcome::Unchanged,
        Ok(Err(e)) => ReloadOutcome::Rejected(e),
        Err(e) => ReloadOutcome::Failed(e.to_string()),
    };
    match &outcome {
        ReloadOutcome::Swapped { from, to } => {
            info!(flows = %dir.display(), from = %from, to = %to, ms, summary = %engine.summary(),
                "Flows reloaded; new sessions use the new version, sessions mid-flow finish on theirs");
        }
        ReloadOutcome::Unchanged => {
            info!(flows = %dir.display(), ms, "Flow files changed but compile to the running version");
        }
        ReloadOutcome::Rejected(e) => {
            error!(flows = %dir.display(), "Reload refused; the running flows keep serving:\n{e}");
        }
        ReloadOutcome::Failed(e) => {
            error!(flows = %dir.display(), error = %e, "Reload failed; the running flows keep serving");
        }
    }
    outcome
}

/// Watches `dir` and reloads `engine` on changes until the task is aborted or the runtime
/// stops. The files as they are now count as loaded.
pub fn spawn(engine: Arc<FlowEngine>, dir: PathBuf, config: ReloadConfig) -> JoinHandle<()> {
    let initial = fingerprint(&dir).ok();
    tokio::spawn(async move {
        info!(flows = %dir.display(), interval_ms = config.interval.as_millis(), "Watching the flows for changes");
        // What was last loaded or refused, what is on disk now and since when.
        let mut applied = initial;
        let mut seen = initial;
        let mut seen_since = Instant::now();
        let mut read_error_logged = false;
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let fp = match fingerprint(&dir) {
                Ok(fp) => {
                    read_error_logged = false;
                    fp
                }
                Err(e) => {
                    // E.g. the directory is being replaced; keep serving and look again.
                    if !read_error_logged {
                        warn!(flows = %dir.display(), error = %e, "Cannot read the flow files; keeping the running flows");
                        read_error_logged = true;
                    }
                    continue;
                }
            };
            if seen != Some(fp) {
                seen = Some(fp);
                seen_since = Instant::now();
                continue;
            }
            if applied == Some(fp) || seen_since.elapsed() < config.debounce {
                continue;
            }
            applied = Some(fp);
            reload_now(&engine, &dir).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_sees_content_changes_but_not_the_tests_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "x: 1\n").unwrap();
        let first = fingerprint(dir.path()).unwrap();
        assert_eq!(fingerprint(dir.path()).unwrap(), first);
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        std::fs::write(dir.path().join("tests/t.yaml"), "tests: []\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a flow file").unwrap();
        assert_eq!(fingerprint(dir.path()).unwrap(), first);
        // Same length, same second: only the content differs.
        std::fs::write(dir.path().join("a.yaml"), "x: 2\n").unwrap();
        assert_ne!(fingerprint(dir.path()).unwrap(), first);
    }
}
