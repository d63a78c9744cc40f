//! A crash after sessions were started since the last checkpoint leaves a
//! store that is behind the journal, not a damaged one: the next open
//! replays the tail and keeps the store.
//!
//! The store's own count check (the ids it holds against what its
//! checkpoint counted) once compared the ids stored with the count *after*
//! the tail replay, so every such crash looked like sled losing records:
//! the store was moved aside and rebuilt from LSN 1 (`bookend demo` showed
//! it on every run, after its kill -9 step). This proves it no longer is.

use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, Start};

fn moved_aside(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("projection.") && n != "projection")
        .collect()
}

#[test]
fn a_crash_after_new_starts_keeps_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
    for i in 0..5 {
        journal.start(Start::new(format!("kept-{i}"))).unwrap().wait().unwrap();
    }
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);

    // The next process starts two more sessions and dies without a close
    // (dropping the journal writes nothing more: no close, no checkpoint).
    let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
    for i in 0..2 {
        journal.start(Start::new(format!("new-{i}"))).unwrap().wait().unwrap();
    }
    drop(journal);

    let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
    assert!(journal.open_report().unclean);
    assert!(journal.open_report().from_checkpoint, "{:?}", journal.open_report());
    // The id scan runs in the background; its verdict is acted on by the
    // next commands. Give it time, then run some.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        journal.start(Start::new(format!("later-{n}"))).unwrap().wait().unwrap();
        journal.checkpoint().unwrap();
        n += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(moved_aside(dir.path()).is_empty(), "the store was set aside: {:?}", moved_aside(dir.path()));
    assert_eq!(journal.all_sessions().unwrap().len(), 7 + n);
}
