//! Tests of the bounded idempotency window: retries inside the window are answered
//! `Duplicate`, keys beyond it are forgotten, and the records kept per session do not grow with
//! the number of keyed appends.

use super::codec;
use super::{SledStore, SledStoreConfig};
use crate::{AppendOutcome, AppendRequest, Store};

const SESSION: &str = "s";

fn open(dir: &std::path::Path, window: usize) -> SledStore {
    let config = SledStoreConfig {
        fsync: false,
        idempotency_window: window,
        ..SledStoreConfig::default()
    };
    SledStore::open_with(dir, config).unwrap()
}

fn turn(expected_seq: u64, key: String, events: usize) -> AppendRequest {
    AppendRequest {
        expected_seq,
        idempotency_key: Some(key),
        user: "u".into(),
        events: (0..events).map(|i| vec![b'e'; i + 1]).collect(),
        snapshot: Some(b"state".to_vec()),
    }
}

#[tokio::test]
async fn retries_inside_the_window_are_duplicates_and_older_keys_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 4);
    let mut head = 0;
    for i in 0..10u64 {
        let outcome = store
            .append(SESSION, turn(head, format!("m{i}"), 2))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            AppendOutcome::Appended {
                first_seq: head + 1,
                last_seq: head + 2
            }
        );
        head += 2;
    }
    // Also across a restart: the window lives in the committed meta record.
    drop(store);
    let store = open(dir.path(), 4);
    for i in 6..10u64 {
        // A retry carries its first try's (stale) expected seq.
        let retry = store
            .append(SESSION, turn(2 * i, format!("m{i}"), 2))
            .await
            .unwrap();
        assert_eq!(
            retry,
            AppendOutcome::Duplicate {
                first_seq: 2 * i + 1,
                last_seq: 2 * i + 2
            },
            "m{i} is among the last 4 keys"
        );
    }
    // m5 fell out of the window: its retry is a new message with a stale head.
    assert_eq!(
        store
            .append(SESSION, turn(10, "m5".into(), 2))
            .await
            .unwrap(),
        AppendOutcome::Conflict { actual_seq: head }
    );
    // Answering duplicates did not push anything out of the window.
    assert!(matches!(
        store
            .append(SESSION, turn(0, "m6".into(), 2))
            .await
            .unwrap(),
        AppendOutcome::Duplicate { .. }
    ));
}

#[tokio::test]
async fn records_per_session_do_not_grow_with_keyed_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), crate::DEFAULT_IDEMPOTENCY_WINDOW);
    let meta_len = |store: &SledStore| {
        store
            .inner
            .tree
            .get(codec::meta_key(SESSION))
            .unwrap()
            .unwrap()
            .len()
    };
    // Appends that change only the snapshot: everything they keep is per-key bookkeeping.
    let mut sizes = Vec::new();
    for i in 0..2_000u64 {
        let outcome = store
            .append(SESSION, turn(0, format!("msg-{:06}", i), 0))
            .await
            .unwrap();
        assert!(matches!(outcome, AppendOutcome::Appended { .. }));
        if i % 500 == 499 {
            sizes.push((store.inner.tree.len(), meta_len(&store)));
        }
    }
    // Format marker, user index entry, meta record; the meta record at a constant size.
    assert!(
        sizes.iter().all(|&s| s == (3, sizes[0].1)),
        "records and meta size must stay flat: {sizes:?}"
    );
    assert!(sizes[0].1 < 1024, "meta record is {} bytes", sizes[0].1);
    // The latest key is still recognised, one beyond the window is not.
    assert!(matches!(
        store
            .append(SESSION, turn(0, "msg-001999".into(), 0))
            .await
            .unwrap(),
        AppendOutcome::Duplicate { .. }
    ));
    let forgotten = format!("msg-{:06}", 1_999 - crate::DEFAULT_IDEMPOTENCY_WINDOW);
    assert!(matches!(
        store.append(SESSION, turn(0, forgotten, 0)).await.unwrap(),
        AppendOutcome::Appended { .. }
    ));
}

#[tokio::test]
async fn a_zero_window_turns_deduplication_off() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 0);
    store.append(SESSION, turn(0, "k".into(), 1)).await.unwrap();
    assert_eq!(
        store.append(SESSION, turn(1, "k".into(), 1)).await.unwrap(),
        AppendOutcome::Appended {
            first_seq: 2,
            last_seq: 2
        }
    );
}
