//! Hot reload: an edit shows up, a broken edit leaves the previous index serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_kb::{KnowledgeBase, SearchOptions};

fn faq(answer: &str) -> String {
    format!("entries:\n  - id: ship\n    question: How soon do you ship?\n    answer: {answer}\n")
}

fn answer(kb: &KnowledgeBase) -> String {
    kb.search("how soon do you ship", &SearchOptions::default())[0]
        .entry
        .answer
        .clone()
}

/// Writes so that the modification time or the length surely changes, even on file systems
/// with coarse timestamps.
fn rewrite(path: &Path, text: &str) {
    let before = std::fs::metadata(path).ok().and_then(|m| m.modified().ok());
    std::fs::write(path, text).unwrap();
    let after = std::fs::metadata(path).ok().and_then(|m| m.modified().ok());
    if before == after {
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::write(path, text).unwrap();
    }
}

fn periodic_check(cond: impl Fn() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn reload_swaps_in_edits_and_keeps_the_old_index_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faq.yaml");
    std::fs::write(&file, faq("Within 48 hours.")).unwrap();
    let kb = KnowledgeBase::open(dir.path()).unwrap();
    assert_eq!(answer(&kb), "Within 48 hours.");

    rewrite(&file, &faq("Same day before 4pm."));
    assert_eq!(kb.reload().unwrap(), 1);
    assert_eq!(answer(&kb), "Same day before 4pm.");
    assert_eq!(kb.generation(), 2);

    rewrite(&file, "entries:\n  - id: ship\n    question: [broken\n");
    let err = kb.reload().unwrap_err();
    assert!(err.to_string().contains("faq.yaml:"), "{err}");
    assert_eq!(
        answer(&kb),
        "Same day before 4pm.",
        "the old index keeps serving"
    );
    assert_eq!(kb.generation(), 2);
}

#[test]
fn the_watcher_picks_up_changes_and_survives_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faq.yaml");
    std::fs::write(&file, faq("Within 48 hours.")).unwrap();
    let kb = Arc::new(KnowledgeBase::open(dir.path()).unwrap());
    let watcher = kb.watch(Duration::from_millis(25)).unwrap();

    rewrite(&file, &faq("Next day."));
    assert!(periodic_check(
        || answer(&kb) == "Next day.",
        Duration::from_secs(10)
    ));

    rewrite(&file, "entries: [");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(answer(&kb), "Next day.");

    // A new file appears: picked up too.
    std::fs::write(&file, faq("Fixed again.")).unwrap();
    std::fs::write(
        dir.path().join("extra.yaml"),
        "- id: pay\n  question: How can I pay?\n  answer: Alipay.\n",
    )
    .unwrap();
    assert!(periodic_check(|| kb.len() == 2, Duration::from_secs(10)));
    assert_eq!(answer(&kb), "Fixed again.");

    drop(watcher);
    let generation = kb.generation();
    std::fs::remove_file(dir.path().join("extra.yaml")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        kb.generation(),
        generation,
        "a dropped watcher stops reloading"
    );
}
