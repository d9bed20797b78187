//! [`KnowledgeBase`]: the loaded, searchable knowledge base with atomic hot reload.
//!
//! The current [`Snapshot`] sits behind an `ArcSwap`: a query loads it without locking and
//! keeps it alive for its duration, a reload builds a whole new snapshot off to the side and
//! swaps it in. A reload that fails (a file with a syntax error, a duplicate id) changes
//! nothing: the old snapshot keeps serving and the error is returned (and logged by the
//! watcher), so a half-saved file never takes answers away from users.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::index::{Hit, SearchOptions, Snapshot, Tuning};
use crate::load::{self, Fingerprint};
use crate::{Entry, KbError, Problem, Result, Synonyms};

/// A knowledge base: entries, their search indexes, and where they were loaded from.
pub struct KnowledgeBase {
    /// The directory (or single file) it was loaded from; `None` when built from entries.
    root: Option<PathBuf>,
    tuning: Tuning,
    current: ArcSwap<Snapshot>,
    /// Serialises reloads (the watcher's and explicit ones) and holds the fingerprint of the
    /// files as last attempted, so the watcher reacts to a change once, not on every poll.
    reload_state: Mutex<Option<Fingerprint>>,
    /// Number of successful loads, for tests and metrics.
    generation: AtomicU64,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("root", &self.root)
            .field("entries", &self.len())
            .field("generation", &self.generation())
            .finish()
    }
}

impl KnowledgeBase {
    /// Loads the knowledge base in `root`: a directory of YAML/CSV/Markdown/JSONL files (and
    /// optional `synonyms.txt`), or a single such file.
    pub fn open(root: impl AsRef<Path>) -> Result<KnowledgeBase> {
        KnowledgeBase::open_with(root, Tuning::default())
    }

    /// [`KnowledgeBase::open`] with non-default ranking weights.
    pub fn open_with(root: impl AsRef<Path>, tuning: Tuning) -> Result<KnowledgeBase> {
        let root = root.as_ref().to_path_buf();
        let fp = load::fingerprint(&root)?;
        let loaded = load::load(&root)?;
        let snap = Snapshot::build(loaded.entries, loaded.synonyms, tuning)?;
        Ok(KnowledgeBase {
            root: Some(root),
            tuning,
            current: ArcSwap::from_pointee(snap),
            reload_state: Mutex::new(Some(fp)),
            generation: AtomicU64::new(1),
        })
    }

    /// A knowledge base over entries built in code (ids must be unique). It has no files, so
    /// [`KnowledgeBase::reload`] is a no-op.
    pub fn from_entries(
        entries: Vec<Entry>,
        synonyms: Synonyms,
        tuning: Tuning,
    ) -> Result<KnowledgeBase> {
        let problems: Vec<Problem> = load::duplicate_ids(&entries);
        if !problems.is_empty() {
            return Err(KbError::Invalid { problems });
        }
        Ok(KnowledgeBase {
            root: None,
            tuning,
            current: ArcSwap::from_pointee(Snapshot::build(entries, synonyms, tuning)?),
            reload_state: Mutex::new(None),
            generation: AtomicU64::new(1),
        })
    }

    /// Searches the current snapshot; best hit first. An index failure (not expected from an
    /// in-memory index) is logged and yields no hits; [`KnowledgeBase::try_search`] returns it.
    pub fn search(&self, query: &str, opts: &SearchOptions) -> Vec<Hit> {
        self.try_search(query, opts).unwrap_or_else(|e| {
            tracing::error!(error = %e, "Knowledge-base search failed");
            Vec::new()
        })
    }

    /// Searches the current snapshot, returning index failures.
    pub fn try_search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Hit>> {
        self.current.load().search(query, opts)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.current.load().entries.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.current
            .load()
            .entries
            .iter()
            .find(|e| e.id == id)
            .cloned()
    }

    /// All entries, in load order.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.current.load().entries.clone()
    }

    /// Where it was loaded from.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// How many times it was loaded successfully (1 after opening).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Reloads from the files and swaps the new index in; on any error the current one stays.
    /// Returns the number of entries now served.
    pub fn reload(&self) -> Result<usize> {
        let Some(root) = &self.root else {
            return Ok(self.len());
        };
        let mut state = self.reload_state.lock().unwrap_or_else(|p| p.into_inner());
        // Record what we attempt before trying, so a broken file is not retried every poll.
        *state = load::fingerprint(root).ok();
        self.rebuild(root)
    }

    fn rebuild(&self, root: &Path) -> Result<usize> {
        let loaded = load::load(root)?;
        let snap = Snapshot::build(loaded.entries, loaded.synonyms, self.tuning)?;
        let n = snap.entries.len();
        self.current.store(Arc::new(snap));
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// Reloads if the files changed since the last attempt. `Ok(None)` when unchanged.
    pub fn reload_if_changed(&self) -> Result<Option<usize>> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        let mut state = self.reload_state.lock().unwrap_or_else(|p| p.into_inner());
        let now = load::fingerprint(root)?;
        if state.as_ref() == Some(&now) {
            return Ok(None);
        }
        *state = Some(now);
        self.rebuild(root).map(Some)
    }

    /// Polls the files every `every` on a background thread and reloads on change, logging
    /// failures (the old index keeps serving). Polling, rather than file-system events, works
    /// the same on every platform and with editors that save by rename. Stops when the
    /// returned [`Watcher`] is dropped or the knowledge base is.
    pub fn watch(self: &Arc<Self>, every: Duration) -> Result<Watcher> {
        let kb: Weak<KnowledgeBase> = Arc::downgrade(self);
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("kefu-kb-watch".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let Some(kb) = kb.upgrade() else { return };
                    match kb.reload_if_changed() {
                        Ok(Some(n)) => tracing::info!(entries = n, root = ?kb.root, "Knowledge base reloaded"),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, root = ?kb.root, "Knowledge base reload failed; the previous version keeps serving"),
                    }
                }
            })
            .map_err(|source| KbError::Io {
                path: self.root.clone().unwrap_or_default(),
                source,
            })?;
        Ok(Watcher { _stop: stop })
    }
}

/// Keeps a [`KnowledgeBase::watch`] thread running; dropping it stops the thread.
#[derive(Debug)]
pub struct Watcher {
    /// Dropping the sender wakes the thread, which sees the disconnect and exits.
    _stop: mpsc::Sender<()>,
}
