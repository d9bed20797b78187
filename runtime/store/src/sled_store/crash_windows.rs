//! Tests of the crash windows of the write path (see `write.rs`): the on-disk state a crash
//! can leave between an append's record inserts and its meta record, or in the middle of a
//! deletion, is produced directly (the first half of an append, or the first removal of a
//! deletion), the store is reopened, and every reader and the next writes must behave as if
//! the interrupted operation had never started (append) or had completed (deletion).

use std::path::Path;

use super::codec;
use super::{SledStore, SledStoreConfig};
use crate::{AppendOutcome, AppendRequest, Store, StoredEvent};

const SESSION: &str = "s\0with-nul";

fn open(dir: &Path) -> SledStore {
    // fsync off: these tests are about ordering and visibility, not power loss.
    let config = SledStoreConfig {
        fsync: false,
        ..SledStoreConfig::default()
    };
    SledStore::open_with(dir, config).unwrap()
}

fn req(expected_seq: u64, key: &str, user: &str, events: &[&str]) -> AppendRequest {
    AppendRequest {
        expected_seq,
        idempotency_key: Some(key.to_owned()),
        user: user.to_owned(),
        events: events.iter().map(|e| e.as_bytes().to_vec()).collect(),
        snapshot: Some(format!("snap-{key}").into_bytes()),
    }
}

/// Writes everything an append writes except its meta record: the state after a crash just
/// before the commit point.
fn crash_before_commit(store: &SledStore, session: &str, req: &AppendRequest) {
    let meta = store.inner.meta(session).unwrap();
    store
        .inner
        .write_records(session, meta.as_ref(), req)
        .unwrap();
}

/// Number of raw records under `prefix`.
fn raw_count(store: &SledStore, prefix: &[u8]) -> usize {
    store.inner.tree.scan_prefix(prefix).count()
}

fn payloads(events: &[StoredEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| (e.seq, String::from_utf8_lossy(&e.payload).into_owned()))
        .collect()
}

#[tokio::test]
async fn orphans_of_an_uncommitted_append_are_ignored_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append(SESSION, req(0, "m0", "u", &["a1", "a2"]))
        .await
        .unwrap();
    store
        .append(SESSION, req(2, "m1", "u", &["b3"]))
        .await
        .unwrap();
    // Append "m2" crashes after writing its three events, before its meta record.
    crash_before_commit(&store, SESSION, &req(3, "m2", "u", &["c4", "c5", "c6"]));
    store.flush().await.unwrap();
    drop(store);

    let store = open(dir.path());
    let prefix = codec::event_prefix(SESSION);
    assert_eq!(
        raw_count(&store, &prefix),
        3,
        "two committed event records and the orphan are on disk"
    );
    let loaded = store.load(SESSION).await.unwrap().unwrap();
    assert_eq!((loaded.seq, loaded.snapshot_seq), (3, 3));
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"snap-m1"[..]));
    assert_eq!(
        payloads(&store.events(SESSION, 0, usize::MAX).await.unwrap()),
        [(1, "a1".into()), (2, "a2".into()), (3, "b3".into())]
    );
    assert!(store.events(SESSION, 4, 10).await.unwrap().is_empty());

    // Committed keys are still recognised, from the meta record's recent keys.
    assert_eq!(
        store
            .append(SESSION, req(0, "m1", "u", &["x"]))
            .await
            .unwrap(),
        AppendOutcome::Duplicate {
            first_seq: 3,
            last_seq: 3
        }
    );
    assert_eq!(
        store
            .append(SESSION, req(0, "m0", "u", &["x"]))
            .await
            .unwrap(),
        AppendOutcome::Duplicate {
            first_seq: 1,
            last_seq: 2
        }
    );
    // The crashed append's key was never committed: a different append takes seq 4 and
    // overwrites the orphan there; the retry of "m2" is then a fresh write, not a duplicate.
    assert_eq!(
        store
            .append(SESSION, req(3, "m3", "u", &["d4"]))
            .await
            .unwrap(),
        AppendOutcome::Appended {
            first_seq: 4,
            last_seq: 4
        }
    );
    assert_eq!(
        payloads(&store.events(SESSION, 3, 10).await.unwrap()),
        [(3, "b3".into()), (4, "d4".into())],
        "orphans 5 and 6 stay invisible"
    );
    assert_eq!(
        store
            .append(SESSION, req(4, "m2", "u", &["e5"]))
            .await
            .unwrap(),
        AppendOutcome::Appended {
            first_seq: 5,
            last_seq: 5
        }
    );
    assert_eq!(
        payloads(&store.events(SESSION, 4, 10).await.unwrap()),
        [(4, "d4".into()), (5, "e5".into())]
    );
}

#[tokio::test]
async fn a_crashed_first_write_leaves_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    crash_before_commit(&store, SESSION, &req(0, "m0", "u", &["a1"]));
    store.flush().await.unwrap();
    drop(store);

    let store = open(dir.path());
    assert_eq!(
        raw_count(&store, &codec::user_prefix("u")),
        1,
        "orphan index entry"
    );
    assert_eq!(store.load(SESSION).await.unwrap(), None);
    assert!(store.events(SESSION, 0, 10).await.unwrap().is_empty());
    assert!(store.sessions_of_user("u").await.unwrap().is_empty());
    assert_eq!(store.session_count().await.unwrap(), 0);

    // Another user now creates the session under the same key; the stale entry of "u" must
    // neither list it nor let `delete_user("u")` delete it.
    assert_eq!(
        store
            .append(SESSION, req(0, "m0", "v", &["v1"]))
            .await
            .unwrap(),
        AppendOutcome::Appended {
            first_seq: 1,
            last_seq: 1
        }
    );
    assert!(store.sessions_of_user("u").await.unwrap().is_empty());
    assert_eq!(store.delete_user("u").await.unwrap(), 0);
    assert_eq!(
        raw_count(&store, &codec::user_prefix("u")),
        0,
        "stale entry cleaned"
    );
    assert_eq!(
        store.sessions_of_user("v").await.unwrap(),
        [SESSION.to_owned()]
    );
    assert_eq!(
        payloads(&store.events(SESSION, 0, 10).await.unwrap()),
        [(1, "v1".into())]
    );
}

#[tokio::test]
async fn leftovers_of_a_crashed_deletion_are_invisible_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (head, key) in [(0, "m0"), (2, "m1"), (4, "m2")] {
        store
            .append(SESSION, req(head, key, "u", &["x", "y"]))
            .await
            .unwrap();
    }
    // A deletion crashes right after its commit point, the removal of the meta record.
    store.inner.tree.remove(codec::meta_key(SESSION)).unwrap();
    store.flush().await.unwrap();
    drop(store);

    let store = open(dir.path());
    let events = codec::event_prefix(SESSION);
    assert_eq!(raw_count(&store, &events), 3, "leftover event records");
    assert_eq!(store.load(SESSION).await.unwrap(), None);
    assert!(store.events(SESSION, 0, 10).await.unwrap().is_empty());
    assert!(store.sessions_of_user("u").await.unwrap().is_empty());
    assert_eq!(store.session_count().await.unwrap(), 0);

    // Re-creating the session: the old incarnation's keys are not duplicates, and its old
    // events beyond the new head are gone, not waiting to reappear.
    assert_eq!(
        store
            .append(SESSION, req(0, "m0", "u", &["new1"]))
            .await
            .unwrap(),
        AppendOutcome::Appended {
            first_seq: 1,
            last_seq: 1
        }
    );
    assert_eq!(raw_count(&store, &events), 1);
    assert_eq!(
        store
            .append(SESSION, req(1, "m1", "u", &["new2"]))
            .await
            .unwrap(),
        AppendOutcome::Appended {
            first_seq: 2,
            last_seq: 2
        }
    );
    assert_eq!(
        payloads(&store.events(SESSION, 0, 10).await.unwrap()),
        [(1, "new1".into()), (2, "new2".into())]
    );
}

#[tokio::test]
async fn a_retried_deletion_removes_the_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (head, key) in [(0, "m0"), (1, "m1")] {
        store
            .append(SESSION, req(head, key, "u", &["x"]))
            .await
            .unwrap();
    }
    store.inner.tree.remove(codec::meta_key(SESSION)).unwrap();
    store.flush().await.unwrap();
    drop(store);

    let store = open(dir.path());
    // Nothing live is deleted, but every record of the session is gone afterwards.
    assert_eq!(store.delete_user("u").await.unwrap(), 0);
    for prefix in [codec::event_prefix(SESSION), codec::user_prefix("u")] {
        assert_eq!(raw_count(&store, &prefix), 0);
    }
    assert_eq!(raw_count(&store, &codec::meta_key(SESSION)), 0);
}
