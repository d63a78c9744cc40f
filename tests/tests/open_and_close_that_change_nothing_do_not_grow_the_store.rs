//! Opening and closing a journal whose sessions do not change leaves the
//! projection store's size alone, and the next open still loads the saved
//! known-ids filter instead of scanning the store.
//!
//! Guards against the store outgrowing the journal it caches: the filter
//! (a megabyte and more) was rewritten into sled at every clean close, and
//! sled keeps replaced blobs, so a gateway restarted every few minutes grew
//! its store by the filter's size each time (156 KiB a cycle here at the
//! smallest filter, 1.4 MB in larger stores).

use std::path::Path;

use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, Start};

fn size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() { size(&e.path()) } else { e.metadata().unwrap().len() }
        })
        .sum()
}

fn cycle(dir: &Path) -> SessionJournal {
    SessionJournal::open(dir, SessionJournalOptions::default()).unwrap()
}

#[test]
fn twenty_idle_restarts_leave_the_store_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let journal = cycle(&dir);
    for i in 0..100 {
        journal.start(Start::new(format!("s{i}")).key(format!("k{i}"))).unwrap().wait().unwrap();
    }
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);
    let mut sizes = Vec::new();
    for _ in 0..20 {
        let journal = cycle(&dir);
        bookend_tests::sessions::wait_ids_known(&journal);
        assert!(
            journal.projection_store().unwrap().ids_loaded_from_file(),
            "the saved filter was loaded, not rebuilt"
        );
        journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
        drop(journal);
        sizes.push(size(&dir.join("projection")));
    }
    let grown = sizes[19].saturating_sub(sizes[1]);
    assert!(grown < 64 * 1024, "the store grew by {grown} bytes over 18 idle restarts: {sizes:?}");
}
