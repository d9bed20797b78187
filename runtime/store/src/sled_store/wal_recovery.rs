//! Tests of recovery through the write-ahead log (see `wal.rs`): log contents a crash can
//! leave are written directly (appends sled already holds, appends it lost, a torn tail),
//! the store is reopened, and it must hold every logged append exactly once, in order.
//! The SIGKILL test in `tests/crash.rs` covers the same path with real crashes.

use std::path::Path;

use super::open::FORMAT_VERSION;
use super::wal::{self, WAL_FILE};
use super::{SledStore, SledStoreConfig, codec};
use crate::{AppendOutcome, AppendRequest, Store, StoreError};

fn open(dir: &Path) -> crate::Result<SledStore> {
    let config = SledStoreConfig {
        fsync: false,
        ..SledStoreConfig::default()
    };
    SledStore::open_with(dir, config)
}

fn req(expected_seq: u64, key: Option<&str>, events: &[&str]) -> AppendRequest {
    AppendRequest {
        expected_seq,
        idempotency_key: key.map(str::to_owned),
        user: "u".to_owned(),
        events: events.iter().map(|e| e.as_bytes().to_vec()).collect(),
        snapshot: Some(format!("snap-{expected_seq}").into_bytes()),
    }
}

/// Writes `records` to the (closed) store's log as one batch, as its flusher would have, then
/// a batch of `torn` cut short by three bytes, as a crash in the middle of a write leaves it.
fn write_log(dir: &Path, records: &[(&str, AppendRequest)], torn: Option<(&str, AppendRequest)>) {
    let (mut log, _) = wal::Wal::open(dir).unwrap();
    let mut frames = Vec::new();
    for (session, req) in records {
        wal::encode_append(&mut frames, session, req);
    }
    log.write_durably(&frames, true).unwrap();
    if let Some((session, req)) = torn {
        let before = log.len();
        let mut frame = Vec::new();
        wal::encode_append(&mut frame, session, &req);
        log.write_durably(&frame, true).unwrap();
        let end = std::fs::metadata(dir.join(WAL_FILE)).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join(WAL_FILE))
            .unwrap();
        // Only when the torn batch is the last thing in the file (a fresh log).
        if end == log.len() + 16 {
            file.set_len(end - 3).unwrap();
        } else {
            // Otherwise overwrite its last bytes: the same as never having been written.
            use std::os::unix::fs::FileExt;
            file.write_all_at(&[0; 3], 16 + log.len() - 3).unwrap();
        }
        assert!(log.len() > before);
    }
}

/// The appends the (closed) store's log holds.
fn logged(dir: &Path) -> Vec<(String, AppendRequest)> {
    let (_, recovered) = wal::Wal::open(dir).unwrap();
    wal::decode_all(&recovered.frames).records
}

async fn payloads(store: &SledStore, session: &str) -> Vec<String> {
    store
        .events(session, 1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect()
}

#[tokio::test]
async fn replay_applies_what_sled_lacks_skips_what_it_has_and_drops_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let first = req(0, Some("m0"), &["a1", "a2"]);
    {
        let store = open(dir.path()).unwrap();
        store.append("s1", first.clone()).await.unwrap();
    }
    // A clean shutdown checkpoints: sled holds m0 and the log is empty.
    assert!(logged(dir.path()).is_empty());

    // What a crash can leave: the log still holds m0 (crash between a checkpoint's sled flush
    // and its truncation), then appends sled lost (one keyless), then a torn write.
    write_log(
        dir.path(),
        &[
            ("s1", first),
            ("s1", req(2, Some("m1"), &["b3"])),
            ("s2", req(0, None, &["c1"])),
            ("s1", req(3, None, &["d4", "d5"])),
        ],
        Some(("s3", req(0, Some("lost"), &["x"]))),
    );
    let store = open(dir.path()).unwrap();
    assert_eq!(payloads(&store, "s1").await, ["a1", "a2", "b3", "d4", "d5"]);
    assert_eq!(payloads(&store, "s2").await, ["c1"]);
    let s1 = store.load("s1").await.unwrap().unwrap();
    assert_eq!((s1.seq, s1.snapshot_seq), (5, 5));
    assert_eq!(s1.snapshot.as_deref(), Some(b"snap-3".as_slice()));
    assert!(
        store.load("s3").await.unwrap().is_none(),
        "torn append dropped"
    );
    // The replayed appends' keys are remembered: a retry is a duplicate, not a second write.
    let retry = store
        .append("s1", req(2, Some("m1"), &["b3"]))
        .await
        .unwrap();
    assert_eq!(
        retry,
        AppendOutcome::Duplicate {
            first_seq: 3,
            last_seq: 3
        }
    );
    // Replay ends in a checkpoint: the log is empty again.
    drop(store);
    assert!(logged(dir.path()).is_empty());
    let store = open(dir.path()).unwrap();
    assert_eq!(
        store
            .inner
            .tree
            .scan_prefix(codec::meta_all_prefix())
            .count(),
        2
    );
}

#[tokio::test]
async fn appends_reach_the_log_and_a_restart_without_sled_flush_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    for i in 0..3u64 {
        store
            .append(
                "s",
                req(i, Some(&format!("k{i}")), &[&format!("e{}", i + 1)]),
            )
            .await
            .unwrap();
    }
    // Acknowledged means in the log (no checkpoint has run: sled may not have them on disk).
    let records = logged(dir.path());
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].1.expected_seq, 2);
}

#[tokio::test]
async fn a_deletion_empties_the_log_so_replay_cannot_bring_the_session_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    store
        .append("gone", req(0, Some("first"), &["hello"]))
        .await
        .unwrap();
    assert_eq!(logged(dir.path()).len(), 1);
    assert_eq!(store.delete_user("u").await.unwrap(), 1);
    // Without this the first append (expected head 0, which a deleted session has) would be
    // applied again by a replay after a crash.
    assert!(logged(dir.path()).is_empty());
}

#[tokio::test]
async fn a_log_that_skips_ahead_of_sled_is_damage_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    write_log(dir.path(), &[("s", req(7, Some("k"), &["e8"]))], None);
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains("write-ahead log"), "{err}");
}

#[tokio::test]
async fn a_version_3_directory_is_upgraded_in_place_also_after_an_interrupted_upgrade() {
    for interrupted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path()).unwrap();
            store
                .append("s", req(0, Some("k"), &["kept"]))
                .await
                .unwrap();
        }
        // Make it look like version 3 wrote it (sled's marker, unless an upgrade already
        // rewrote it when it was interrupted, and the FORMAT file).
        if !interrupted {
            let db = sled::open(dir.path().join("sled")).unwrap();
            db.insert(codec::FORMAT_KEY, &3u32.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        std::fs::write(dir.path().join("FORMAT"), "kefu-store-sled 3\n").unwrap();
        // Version 3 had no log.
        std::fs::remove_file(dir.path().join(WAL_FILE)).unwrap();

        let store = open(dir.path()).unwrap();
        assert_eq!(payloads(&store, "s").await, ["kept"]);
        drop(store);
        let format = std::fs::read_to_string(dir.path().join("FORMAT")).unwrap();
        assert_eq!(format.trim(), format!("kefu-store-sled {FORMAT_VERSION}"));
        let db = sled::open(dir.path().join("sled")).unwrap();
        let marker = db.get(codec::FORMAT_KEY).unwrap().unwrap();
        assert_eq!(marker.as_ref(), FORMAT_VERSION.to_be_bytes());
    }
}
