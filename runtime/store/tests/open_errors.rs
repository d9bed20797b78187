//! Opening a locked, damaged or foreign data directory fails with a clear error, never a panic.

use std::path::Path;

use kefu_store::{AppendRequest, SledStore, Store, StoreError};

fn write_some(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = SledStore::open(dir).unwrap();
    rt.block_on(async {
        for i in 0..200u64 {
            let req = AppendRequest {
                expected_seq: i,
                user: "u".into(),
                events: vec![vec![7; 100]],
                snapshot: Some(vec![1; 300]),
                ..Default::default()
            };
            store.append("s", req).await.unwrap();
        }
    });
}

fn assert_refused(dir: &Path, what: &str) {
    match SledStore::open(dir) {
        Err(StoreError::Corrupted { detail, .. }) | Err(StoreError::Io { detail, .. }) => {
            eprintln!("{what}: refused: {detail}");
        }
        Err(other) => panic!("{what}: unexpected error kind {other}"),
        Ok(store) => {
            // sled may legitimately recover from some damage (a torn tail); then every read must
            // still be an answer or an error, not a panic.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = rt.block_on(store.events("s", 0, usize::MAX));
            panic!("{what}: opened a damaged store without complaint");
        }
    }
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStore::open(dir.path()).unwrap();
    let err = SledStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    drop(first);
    SledStore::open(dir.path()).unwrap();
}

#[test]
fn garbage_data_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    let db = dir.path().join("sled/db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    let garbage: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&db, garbage).unwrap();
    assert_refused(dir.path(), "garbage db");
}

#[test]
fn garbage_conf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    std::fs::write(dir.path().join("sled/conf"), b"\xff\xfe not a sled config").unwrap();
    assert_refused(dir.path(), "garbage conf");
}

#[test]
fn emptied_data_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    std::fs::write(dir.path().join("sled/db"), b"").unwrap();
    for entry in std::fs::read_dir(dir.path().join("sled")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snap.")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    assert_refused(dir.path(), "emptied db");
}

#[test]
fn missing_sled_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    std::fs::remove_dir_all(dir.path().join("sled")).unwrap();
    assert_refused(dir.path(), "sled dir removed");
}

#[test]
fn other_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    std::fs::write(dir.path().join("FORMAT"), "kefu-store-sled 99\n").unwrap();
    let err = SledStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupted { detail, .. } if detail.contains("version 99")),
        "{err}"
    );
}

#[test]
fn reopen_after_clean_close_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    let store = SledStore::open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let loaded = rt.block_on(store.load("s")).unwrap().unwrap();
    assert_eq!(loaded.seq, 200);
}
