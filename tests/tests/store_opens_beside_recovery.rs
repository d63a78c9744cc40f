//! The projection store opens on a thread of its own while the journal
//! recovers, and recovery still acts on no evidence before the store's is
//! in.
//!
//! The store's checkpoint is evidence that events were durable: a torn
//! tail may only be cut where no evidence vouches for it. With the store
//! opening beside recovery, recovery must wait for it before it cuts. This
//! test leaves a torn frame at the end of the journal and points the open
//! at a store that cannot be opened: the open must fail with the store's
//! own error and leave the segment exactly as it was, with no `.torn` file.
//! Opened again with its store, the journal cuts the torn frame as usual.

use std::path::Path;

use bookend_projector::{CloseReason, Error, SessionJournal, SessionJournalOptions, Sessions, StoreLocation};
use bookend_tests::sessions::start;
use bookend_tests::{last_frame, segment_files};

fn write_history(dir: &Path) {
    let journal = SessionJournal::open(dir, SessionJournalOptions::default()).unwrap();
    for i in 0..20 {
        journal.start(start(&format!("s{i}"), &format!("k{i}"))).unwrap().wait().unwrap();
    }
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
}

fn files_ending_in(dir: &Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(suffix))
        .collect()
}

#[test]
fn a_torn_tail_is_not_cut_before_the_store_has_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    write_history(&dir);
    let segment = segment_files(&bookend_journal::fs::StdFs, &dir).pop().unwrap();
    let (_, end) = last_frame(&segment);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[end as usize..end as usize + 40].copy_from_slice(&[0xAB; 40]);
    std::fs::write(&segment, &bytes).unwrap();

    // A store that cannot be opened: its directory would sit under a file.
    let blocker = tmp.path().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let options =
        SessionJournalOptions { store: StoreLocation::At(blocker.join("store")), ..Default::default() };
    match SessionJournal::open(&dir, options) {
        Err(Error::Store { path, .. }) => assert!(path.starts_with(&blocker), "{}", path.display()),
        other => panic!("expected the store's own error, got {:?}", other.map(|_| ())),
    }
    assert!(std::fs::read(&segment).unwrap() == bytes, "the segment changed before the store answered");
    assert!(files_ending_in(&dir, ".torn").is_empty(), "a torn tail was cut before the store answered");

    let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).unwrap();
    let torn = journal.journal().recovery_report().torn_tail.clone().expect("the torn frame is cut");
    assert_eq!(torn.offset, end);
    assert_eq!(journal.active().len(), 20);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    assert_eq!(files_ending_in(&dir, ".torn").len(), 1);
}
