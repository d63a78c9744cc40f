//! State copied from another journal is never trusted: every journal has an
//! identity, and the projection store, cursor files and segments carry it.
//!
//! Two journals X and Y each hold their own sessions. X's `projection/` is
//! copied over Y's: Y moves it aside and rebuilds, so it still knows its own
//! sessions and not X's (before, Y accepted an `end` of X's session and
//! refused its own sessions as unknown). X's cursor file copied into Y is
//! an error for that consumer naming both ids, while Y's own consumers work.
//! A segment of X copied into Y's directory makes Y refuse to open.

use std::path::Path;

use bookend_projector::{CloseReason, EndReason, Error, SessionJournal, SessionJournalOptions, Sessions};
use bookend_tests::sessions::start;

fn make(dir: &Path, prefix: &str) -> bookend_journal::JournalId {
    let journal = SessionJournal::open(dir, SessionJournalOptions::default()).unwrap();
    for i in 0..5 {
        journal.start(start(&format!("{prefix}{i}"), &format!("{prefix}-k{i}"))).unwrap().wait().unwrap();
    }
    let mut consumer = journal.subscribe("mirror").unwrap();
    while let Some(e) = consumer.try_next().unwrap() {
        consumer.ack(e.lsn).unwrap();
    }
    let id = journal.journal_id();
    drop(consumer);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    id
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target)
        } else {
            std::fs::copy(&path, &target).map(|_| ()).unwrap()
        }
    }
}

#[test]
fn a_foreign_projection_store_is_moved_aside_and_rebuilt() {
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make(x.path(), "x");
    make(y.path(), "y");
    std::fs::remove_dir_all(y.path().join("projection")).unwrap();
    copy_dir(&x.path().join("projection"), &y.path().join("projection"));
    let journal = SessionJournal::open(y.path(), SessionJournalOptions::default()).unwrap();
    assert!(!journal.open_report().from_checkpoint, "the foreign checkpoint was loaded");
    assert!(y.path().join("projection.foreign-1").exists(), "the foreign store was not kept aside");
    let err = journal.end("x1", EndReason::Completed).unwrap_err();
    assert_eq!(err.kind(), "unknown_session", "X's session is known in Y: {err}");
    let ended = journal.end("y1", EndReason::Completed).unwrap().wait().unwrap();
    assert!(ended.lsn.is_some(), "Y's own session is unknown");
}

#[test]
fn a_foreign_cursor_is_an_error_naming_both_journals() {
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let x_id = make(x.path(), "x");
    let y_id = make(y.path(), "y");
    std::fs::copy(x.path().join("consumers/mirror.cursor"), y.path().join("consumers/stolen.cursor"))
        .unwrap();
    let journal = SessionJournal::open(y.path(), SessionJournalOptions::default()).unwrap();
    let message = journal.subscribe("stolen").unwrap_err().to_string();
    assert!(message.contains(&x_id.to_string()) && message.contains(&y_id.to_string()), "{message}");
    let statuses = journal.consumers().unwrap();
    let stolen = statuses.iter().find(|c| c.name == "stolen").unwrap();
    assert!(stolen.error.as_deref().is_some_and(|e| e.contains(&x_id.to_string())), "{stolen:?}");
    let mirror = statuses.iter().find(|c| c.name == "mirror").unwrap();
    assert_eq!((mirror.error.clone(), mirror.lag.is_some()), (None, true), "Y's own consumer suffered");
    assert!(journal.subscribe("mirror").is_ok());
}

#[test]
fn a_segment_of_another_journal_is_refused() {
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make(x.path(), "x");
    make(y.path(), "y");
    // X's first segment copied over Y's (a restore from the wrong backup).
    let segment = "00000000000000000001.wal";
    std::fs::copy(x.path().join(segment), y.path().join(segment)).unwrap();
    match SessionJournal::open(y.path(), SessionJournalOptions::default()) {
        Err(Error::Journal(e)) => assert!(e.to_string().contains("belongs to journal"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
