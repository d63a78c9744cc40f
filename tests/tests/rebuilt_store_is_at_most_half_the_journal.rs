//! A projection store rebuilt from the journal takes at most half the
//! journal's space, holds every session the journal says it should, and is
//! what the next open loads.
//!
//! Guards against the cache outgrowing what it caches: a rebuild writes
//! every ended session again at each level of merges, and sled, which
//! never shrinks its file, kept two to four times the live bytes: the
//! store of a 751 MB journal was 441 MB after its rebuild, 1.1 GiB before
//! ended sessions were compressed. Now the rebuilt store is rewritten into
//! a fresh file before use.

use std::path::Path;

use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions};
use bookend_tests::sessions::{history_id as id, write_pairs};

fn bytes_of(dir: &Path, keep: &dyn Fn(&str) -> bool) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                bytes_of(&e.path(), &|_| true)
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

#[test]
fn a_rebuilt_store_is_at_most_half_the_journal() {
    let sessions = bookend_tests::scale(60_000, 1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    write_pairs(&dir, sessions);
    std::fs::remove_dir_all(dir.join("projection")).unwrap();

    let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).unwrap();
    assert!(!journal.open_report().from_checkpoint, "the store was rebuilt");
    for n in (0..sessions).step_by(997) {
        let s = journal.get(&id(n)).unwrap().unwrap_or_else(|| panic!("session {n} is in the store"));
        assert!(!s.active, "session {n} ended");
    }
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);

    let journal_bytes = bytes_of(&dir, &|name| name.ends_with(".wal"));
    let store_bytes = bytes_of(&dir.join("projection"), &|_| true);
    assert!(
        store_bytes * 2 <= journal_bytes,
        "the store takes {store_bytes} bytes beside a journal of {journal_bytes}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("projection."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).unwrap();
    assert!(journal.open_report().from_checkpoint, "the rewritten store is loaded, not rebuilt again");
    assert_eq!(journal.get(&id(sessions - 1)).unwrap().map(|s| s.active), Some(false));
}
