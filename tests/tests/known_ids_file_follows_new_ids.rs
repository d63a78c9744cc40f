//! The saved known-ids filter is rewritten at a clean close exactly when
//! ids were added to it, and a filter loaded at open is never saved again
//! for a later checkpoint without the ids added since.
//!
//! A clean close used to encode the whole filter (12 MB at 5M sessions) and
//! compare it with the file, to rewrite it only when its bits changed. Now
//! the store remembers that the loaded (or last saved) file still matches
//! the filter until an insert sets a bit. The failure this guards against
//! is a stale file saved for a newer checkpoint: the next open would load a
//! filter that lacks the sessions started in between and answer "not
//! stored" for them, so a start of one of those ids again would not be
//! recognised as a duplicate. Proof: ids added after a load are in the file
//! the next open loads (each start again is a duplicate, without a scan);
//! an open and close that add nothing leave the very same file (same inode,
//! same bytes).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bookend_projector::{CloseReason, EndReason, Sessions};
use bookend_tests::sessions::{T0, open, start, wait_ids_known};

fn start_and_end(journal: &bookend_projector::SessionJournal, prefix: &str, n: usize) {
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let ack = journal.start(start(&id, &format!("{prefix}{i}"))).unwrap().wait().unwrap();
        assert!(!ack.duplicate, "{id} is new");
        journal.end(&id, EndReason::Completed).unwrap().wait().unwrap();
    }
}

fn filter_file(dir: &Path) -> (u64, Vec<u8>) {
    let path = dir.join("projection").join("known-ids");
    (std::fs::metadata(&path).unwrap().ino(), std::fs::read(&path).unwrap())
}

fn close(journal: bookend_projector::SessionJournal) {
    journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
}

#[test]
fn ids_added_after_a_load_are_saved_and_nothing_else_rewrites_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    start_and_end(&journal, "first", 300);
    close(journal);
    let first = filter_file(dir.path());

    // Loaded, then ids added: the close must write them.
    let journal = open(dir.path(), &clock);
    wait_ids_known(&journal);
    assert!(journal.projection_store().unwrap().ids_loaded_from_file(), "the saved filter was loaded");
    start_and_end(&journal, "second", 300);
    close(journal);
    let second = filter_file(dir.path());
    assert!(first.1 != second.1, "the filter file was not rewritten with the ids added after the load");

    let journal = open(dir.path(), &clock);
    wait_ids_known(&journal);
    let loaded = journal.projection_store().unwrap().ids_loaded_from_file();
    assert!(loaded, "the filter saved at the last close was loaded, not scanned for");
    for i in 0..300 {
        let id = format!("second-{i}");
        let again = journal.start(start(&id, &format!("second{i}"))).unwrap().wait().unwrap();
        assert!(again.duplicate, "{id}, started after the previous load, is recognised");
    }
    close(journal);
    let third = filter_file(dir.path());

    // Nothing added: the same file stays.
    for round in 0..3 {
        let journal = open(dir.path(), &clock);
        wait_ids_known(&journal);
        assert!(journal.projection_store().unwrap().ids_loaded_from_file());
        close(journal);
        let after = filter_file(dir.path());
        assert!(after == third, "round {round}: an idle open and close rewrote the filter");
    }
}
