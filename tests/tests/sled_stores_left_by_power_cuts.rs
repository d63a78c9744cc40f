//! The two projection stores captured after real power cuts
//! (`shared/fixtures/sled-after-power-cut/`) no longer stop the journal:
//! each is moved aside, kept whole for a person to inspect, and the store
//! is rebuilt from the journal; the command is acknowledged.
//!
//! One store made sled 0.34.7 panic on open ("tried to serialize
//! Uninitialized"), on every later open too; the other opened but could
//! not be read, nor cleared, so every open exited 1. This is the fixtures'
//! README, as a test: a journal with one session gets the damaged store as
//! its `projection/`, and a second start must be acknowledged, with both
//! sessions there afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions};
use bookend_tests::sessions::start;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sled-after-power-cut").join(name)
}

fn open(dir: &Path) -> SessionJournal {
    SessionJournal::open(dir, SessionJournalOptions::default())
        .expect("the journal opens whatever its store holds")
}

fn replay_the_readme(archive: &str) {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.start(start("a", "k")).unwrap().wait().unwrap();
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);
    std::fs::remove_dir_all(dir.path().join("projection")).unwrap();
    let untar =
        Command::new("tar").arg("-xzf").arg(fixture(archive)).arg("-C").arg(dir.path()).status().unwrap();
    assert!(untar.success(), "tar could not unpack {archive}");
    let damaged = std::fs::read(dir.path().join("projection/db")).unwrap();

    let journal = open(dir.path());
    let ack = journal.start(start("b", "k2")).unwrap().wait().unwrap();
    assert!(ack.lsn.is_some(), "{archive}: the command was not acknowledged");
    let ids: Vec<String> =
        journal.all_sessions().unwrap().into_iter().map(|s| s.start.session_id.clone()).collect();
    assert_eq!(ids, ["a", "b"], "{archive}");
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);
    let aside = dir.path().join("projection.broken-1");
    assert_eq!(
        std::fs::read(aside.join("db")).unwrap(),
        damaged,
        "{archive}: the damaged store was not kept"
    );
    // The rebuilt store serves the next open from its checkpoint.
    let journal = open(dir.path());
    assert!(journal.open_report().from_checkpoint, "{archive}: the rebuilt store was not used");
}

#[test]
fn a_store_that_makes_sled_panic_is_moved_aside_and_rebuilt() {
    replay_the_readme("projection-sled-panics.tar.gz");
}

#[test]
fn a_store_that_sled_cannot_read_is_moved_aside_and_rebuilt() {
    replay_the_readme("projection-sled-read-corrupt.tar.gz");
}
