//! Opening a data directory: the directory lock, the format marker, and a guarded sled open.
//!
//! Directory layout:
//! - `LOCK` — an advisory exclusive lock (`flock`) held for the store's lifetime. A second
//!   store on the same directory, in this process or another, fails with
//!   [`StoreError::Locked`] before sled is touched.
//! - `FORMAT` — one line, `kefu-store-sled <version>`, written (atomically, then fsynced) when
//!   the store is created. A different version fails with [`StoreError::Corrupted`] naming both
//!   versions, so a future incompatible layout refuses to start instead of misreading data.
//! - `sled/` — sled's own files (`conf`, `db`, `snap.*`, `blobs/`).
//! - `wal` — the write-ahead log (layout 4; see `wal.rs`), empty after a clean shutdown.
//!
//! The same version is also stored inside sled (key `F`). If `FORMAT` says a store exists but
//! sled comes up without that key, sled's files were lost or replaced: refuse as corrupted.
//! A crash during the very first open (sled created, `FORMAT` not yet written) is recognised:
//! a sled tree holding nothing but the marker is simply initialised again.
//!
//! sled 0.34 can panic on some damaged inputs; the open runs under `catch_unwind` so that a
//! damaged directory is an error value, not a crash of the whole runtime.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use fs2::FileExt;

use super::SledStoreConfig;
use super::codec::FORMAT_KEY;
use crate::{Result, StoreError};

/// The on-disk layout version this build reads and writes. Version 2: meta record carries the
/// last idempotency key, and appends are single-key inserts with the meta record as commit
/// point (version-1 data relied on batches and must not be read with version-2 rules).
/// Version 3: one event record per append, varint meta record holding a bounded list of
/// recent idempotency keys, no per-key `I` records. Version 4: the write-ahead log (`wal`,
/// see `wal.rs`) is the durability point; sled is flushed at checkpoints. Its records are
/// those of version 3, so a version-3 directory is upgraded in place on open (it has no log).
/// A version-3 build must not open a version-4 directory: it would ignore appends that only
/// the log holds.
pub(crate) const FORMAT_VERSION: u32 = 4;
/// The one older version this build opens, and upgrades.
const UPGRADABLE_VERSION: u32 = 3;
const FORMAT_FILE: &str = "FORMAT";
const FORMAT_PREFIX: &str = "kefu-store-sled ";
const LOCK_FILE: &str = "LOCK";
const SLED_DIR: &str = "sled";

/// A data directory opened and verified.
pub(crate) struct Opened {
    pub(crate) db: sled::Db,
    /// sled's data file, opened read-only for `fdatasync` after each flush.
    pub(crate) data_file: File,
    /// Holds the directory lock until dropped.
    pub(crate) lock: File,
}

fn io(op: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::Io {
        op,
        detail: e.to_string(),
    }
}

fn corrupted(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupted {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Opens (creating if needed) the store in `dir`.
pub(crate) fn open_dir(dir: &Path, config: &SledStoreConfig) -> Result<Opened> {
    fs::create_dir_all(dir).map_err(io("create data directory"))?;
    let lock = lock_dir(dir)?;
    let format = read_format(dir)?;
    let sled_dir = dir.join(SLED_DIR);
    if format.is_none() && sled_dir.exists() {
        tracing::warn!(path = %dir.display(), "Store has sled files but no FORMAT marker; checking whether an earlier first open was interrupted");
    }
    let db = open_sled(dir, &sled_dir, config)?;
    let marker = db
        .get(FORMAT_KEY)
        .map_err(|e| corrupted(dir, format!("reading the format marker failed: {e}")))?;
    match (format, marker) {
        (Some(version), Some(marker)) => {
            let agree = marker.as_ref() == version.to_be_bytes();
            // An upgrade writes the marker first, then the file: a crash in between leaves
            // exactly this pair, and the upgrade is finished below.
            let interrupted_upgrade =
                version == UPGRADABLE_VERSION && marker.as_ref() == FORMAT_VERSION.to_be_bytes();
            if !agree && !interrupted_upgrade {
                return Err(corrupted(
                    dir,
                    "FORMAT file and the marker inside sled disagree",
                ));
            }
            if version == UPGRADABLE_VERSION {
                upgrade(dir, &db)?;
            }
        }
        (Some(_), None) => {
            return Err(corrupted(
                dir,
                "FORMAT says a store exists here but sled's files hold no kefu data \
                 (sled files lost or replaced); restore from backup",
            ));
        }
        (None, marker) => {
            // New store, or an interrupted first open: sled may hold only the marker.
            let holds_only_marker = db
                .iter()
                .keys()
                .all(|k| matches!(k, Ok(k) if k == FORMAT_KEY));
            if marker.is_some() && !holds_only_marker || marker.is_none() && !db.is_empty() {
                return Err(corrupted(
                    dir,
                    "sled holds data but the FORMAT marker is missing; refusing to guess its layout",
                ));
            }
            db.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())
                .map_err(|e| StoreError::Io {
                    op: "initialise store",
                    detail: e.to_string(),
                })?;
            db.flush().map_err(|e| StoreError::Io {
                op: "initialise store",
                detail: e.to_string(),
            })?;
            write_format(dir)?;
        }
    }
    let data_file = File::open(sled_dir.join("db")).map_err(io("open sled data file"))?;
    Ok(Opened {
        db,
        data_file,
        lock,
    })
}

fn lock_dir(dir: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io("open lock file"))?;
    match file.try_lock_exclusive() {
        Ok(()) => Ok(file),
        Err(e)
            if e.kind() == ErrorKind::WouldBlock
                || e.raw_os_error() == fs2::lock_contended_error().raw_os_error() =>
        {
            Err(StoreError::Locked {
                path: dir.display().to_string(),
                detail: e.to_string(),
            })
        }
        Err(e) => Err(StoreError::Io {
            op: "lock data directory",
            detail: e.to_string(),
        }),
    }
}

fn read_format(dir: &Path) -> Result<Option<u32>> {
    let text = match fs::read_to_string(dir.join(FORMAT_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == ErrorKind::InvalidData => {
            return Err(corrupted(dir, "FORMAT file is not text"));
        }
        Err(e) => {
            return Err(StoreError::Io {
                op: "read FORMAT file",
                detail: e.to_string(),
            });
        }
    };
    let version = text
        .trim_end()
        .strip_prefix(FORMAT_PREFIX)
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| corrupted(dir, format!("FORMAT file is unreadable: {:?}", text.trim())))?;
    if version != FORMAT_VERSION && version != UPGRADABLE_VERSION {
        return Err(corrupted(
            dir,
            format!(
                "layout version {version} on disk, this build reads version {FORMAT_VERSION}; \
                 use a kefu release that matches the data, or migrate it"
            ),
        ));
    }
    Ok(Some(version))
}

/// Moves a version-3 directory to version 4: the records stay as they are, only the markers
/// change (sled's first, then the file; see the caller for the crash in between).
fn upgrade(dir: &Path, db: &sled::Db) -> Result<()> {
    let failed = |e: sled::Error| StoreError::Io {
        op: "upgrade store layout",
        detail: e.to_string(),
    };
    db.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())
        .map_err(failed)?;
    db.flush().map_err(failed)?;
    write_format(dir)?;
    tracing::info!(path = %dir.display(), from = UPGRADABLE_VERSION, to = FORMAT_VERSION, "Store layout upgraded");
    Ok(())
}

/// Writes `FORMAT` via a temporary file, fsync, rename and a directory fsync, so the marker is
/// either absent or complete after a crash.
fn write_format(dir: &Path) -> Result<()> {
    let tmp = dir.join("FORMAT.tmp");
    let mut file = File::create(&tmp).map_err(io("write FORMAT file"))?;
    file.write_all(format!("{FORMAT_PREFIX}{FORMAT_VERSION}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write FORMAT file"))?;
    fs::rename(&tmp, dir.join(FORMAT_FILE)).map_err(io("write FORMAT file"))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync data directory"))?;
    Ok(())
}

/// How long to wait for sled's lock on its data file to be released by this process.
const SLED_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens sled, waiting briefly while sled's *own* file lock is still held.
///
/// We already hold the directory's `LOCK`, so no other store can be using these files; a
/// conflict on sled's lock can only be a handle of a store of this process that was just
/// dropped. sled's I/O threadpool releases the job (and its clone of the file handle) only
/// after it has woken the flush that waited for it, so a reopen right after a drop can race
/// with that release.
fn open_sled_retrying(sled_config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + SLED_LOCK_WAIT;
    loop {
        match sled_config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn open_sled(dir: &Path, sled_dir: &Path, config: &SledStoreConfig) -> Result<sled::Db> {
    let sled_config = sled::Config::new()
        .path(sled_dir)
        .cache_capacity(config.cache_capacity_bytes)
        // sled's timer flush is no durability point for us (group commit is), so it only adds
        // I/O; it stays available as a tunable for operators who want sled's own GC cadence.
        .flush_every_ms(config.background_flush_ms);
    match catch_unwind(AssertUnwindSafe(|| open_sled_retrying(&sled_config))) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(e))) => {
            // sled reports bad lengths/offsets in its files as I/O errors (e.g. reading past
            // the end of a truncated file); those are damage, not a failing disk.
            if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData) {
                Err(corrupted(
                    dir,
                    format!("sled could not read its files: {e}"),
                ))
            } else {
                Err(StoreError::Io {
                    op: "open sled",
                    detail: e.to_string(),
                })
            }
        }
        Ok(Err(e)) => Err(corrupted(dir, format!("sled refused to open: {e}"))),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(corrupted(
                dir,
                format!("sled panicked while recovering its files: {detail}"),
            ))
        }
    }
}
