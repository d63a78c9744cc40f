//! The projection store opens on a thread of its own while the journal
//! recovers, and recovery still acts on no evidence before the store's is
//! in; a clean reopen rewrites none of the journal's own files.
//!
//! The store's checkpoint is evidence that events were durable: a torn
//! tail may only be cut where no evidence vouches for it. With the store
//! opening beside recovery, recovery must wait for it before it cuts. This
//! test leaves a torn frame at the end of the journal and points the open
//! at a store that cannot be opened: the open must fail with the store's
//! own error and leave the segment exactly as it was, with no `.torn` file.
//! Opened again with its store, the journal cuts the torn frame as usual.
//!
//! A clean close leaves the manifest and the durable hint saying all there
//! is to say; the next open used to write the manifest again and fsync it
//! and the hint, and each of those fsyncs waited behind sled's flush of
//! what its own open wrote (12–15 ms at 10M events). The manifest must
//! keep its inode across an open after a clean close.

use std::os::unix::fs::MetadataExt;
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

#[test]
fn a_clean_reopen_leaves_the_manifest_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    write_history(&dir);
    let manifest = dir.join(bookend_journal::format::MANIFEST_FILE_NAME);
    for _ in 0..3 {
        // A clean close records its durable floor; the open after it has
        // nothing to add.
        let closed = std::fs::metadata(&manifest).unwrap();
        let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).unwrap();
        assert_eq!(journal.active().len(), 20);
        let opened = std::fs::metadata(&manifest).unwrap();
        assert_eq!(opened.ino(), closed.ino(), "the manifest was replaced by an open that changed nothing");
        assert_eq!(opened.mtime_nsec(), closed.mtime_nsec());
        journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    }
}
