//! A start of a new session id does not read the checkpoint store once the
//! store's ids are known, and a start of an id the store already holds is
//! still recognised.
//!
//! sled's reads wait while a checkpoint batch is applied, so every start used
//! to wait for the background checkpoint. After a reopen, a background scan
//! fills a Bloom filter with the ids the store holds (and every save adds its
//! own); then starts of new ids are answered without sled. The proof: after
//! the scan, 1 000 new starts are all answered by the filter (a false
//! positive would only cost a lookup; at 1% a handful may), while restarting
//! sessions checkpointed before the reopen, with the same key or another, is
//! still a duplicate or a key mismatch, exactly as before, and the stored
//! sessions are found. A rebuilt store knows its ids from the start; a clean
//! close saves the filter and the next open loads it instead of scanning;
//! after an unclean stop the saved filter is behind the store and is caught
//! up from the journal; without a saved filter the store is scanned.

use std::time::{Duration, Instant};

use bookend_projector::{EndReason, Error, LifecycleError};
use bookend_tests::sessions::{T0, open, start};

fn wait_for_scan(journal: &bookend_projector::SessionJournal) {
    let store = journal.projection_store().expect("a checkpoint store");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.ids_known() {
        assert!(Instant::now() < deadline, "the id scan did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// New ids are answered by the filter; stored ids are still recognised.
fn check(journal: &bookend_projector::SessionJournal, round: &str) {
    let store = journal.projection_store().unwrap();
    let skipped_before = store.lookups_skipped();
    for i in 0..1000 {
        let ack =
            journal.start(start(&format!("{round}-{i}"), &format!("{round}{i}"))).unwrap().wait().unwrap();
        assert!(!ack.duplicate);
        journal.end(&format!("{round}-{i}"), EndReason::Completed).unwrap().wait().unwrap();
    }
    let skipped = store.lookups_skipped() - skipped_before;
    assert!(skipped >= 950, "{round}: only {skipped} of 1000 new ids were answered by the filter");

    for i in (0..500).step_by(50) {
        let id = format!("old-{i}");
        let again = journal.start(start(&id, &format!("k{i}"))).unwrap().wait().unwrap();
        assert!(again.duplicate, "{round}: {id} was started again instead of being recognised");
        let moved = journal.start(start(&id, "another-key"));
        assert!(
            matches!(moved, Err(Error::Lifecycle(LifecycleError::KeyMismatch { .. }))),
            "{round}: {id} on another key: {moved:?}"
        );
        let stored = journal.get(&id).unwrap().expect("stored session");
        assert_eq!(stored.end_reason, Some(EndReason::Completed));
    }
}

#[test]
fn new_ids_skip_the_store_and_stored_ids_are_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    {
        let journal = open(dir.path(), &clock);
        // A rebuilt (here: new) store starts empty, so its ids are known.
        assert!(journal.projection_store().unwrap().ids_known());
        for i in 0..500 {
            journal.start(start(&format!("old-{i}"), &format!("k{i}"))).unwrap().wait().unwrap();
            journal.end(&format!("old-{i}"), EndReason::Completed).unwrap().wait().unwrap();
        }
        journal.close(bookend_projector::CloseReason::Shutdown, bookend_projector::Sessions::End).unwrap();
    }

    // Clean close: the saved filter is loaded, nothing to scan.
    {
        let journal = open(dir.path(), &clock);
        assert!(journal.open_report().from_checkpoint);
        wait_for_scan(&journal);
        assert!(
            journal.projection_store().unwrap().ids_loaded_from_file(),
            "the saved filter was not loaded"
        );
        check(&journal, "after-close");
        journal.checkpoint().unwrap();
        // Dropped without close: the saved filter is now behind the store.
    }

    {
        let journal = open(dir.path(), &clock);
        wait_for_scan(&journal);
        let loaded = journal.projection_store().unwrap().ids_loaded_from_file();
        assert!(loaded, "the filter behind the store was not caught up from the journal");
        check(&journal, "after-catch-up");
        // Ids written by the previous run (after its filter was loaded) are
        // in the caught-up filter.
        let again = journal.start(start("after-close-7", "after-close7")).unwrap().wait().unwrap();
        assert!(again.duplicate);
        journal.checkpoint().unwrap();
        // Dropped without close again, and the saved filter is lost.
    }
    std::fs::remove_file(dir.path().join("projection").join("known-ids")).unwrap();

    let journal = open(dir.path(), &clock);
    wait_for_scan(&journal);
    assert!(!journal.projection_store().unwrap().ids_loaded_from_file(), "a lost filter was loaded");
    check(&journal, "after-scan");
    // Ids of every earlier run are found by the scan.
    for (id, key) in [("after-close-7", "after-close7"), ("after-catch-up-7", "after-catch-up7")] {
        let again = journal.start(start(id, key)).unwrap().wait().unwrap();
        assert!(again.duplicate, "{id} was started again instead of being recognised");
    }
}
