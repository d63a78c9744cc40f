//! A journal that lost acknowledged events at its end refuses to open, and
//! when the loss is accepted, no LSN is ever reused.
//!
//! Every piece of evidence that an LSN was durable is tried on its own:
//! the manifest (the newest segment it recorded, the floor a clean close
//! wrote), the durable hint, the projection store's checkpoint, and a
//! consumer's cursor. Deleting the last segment, cutting a cleanly closed
//! one, or deleting every segment makes open refuse with `DataLoss` naming
//! the LSN the journal ends at and the LSN that was durable, and nothing
//! is appended. With `accept_data_loss` the journal records the loss as a
//! `journal:data_loss` event and continues after the highest durable LSN,
//! so a consumer whose cursor was ahead of the cut sees every new event.
//! Before, open warned and reused LSNs, and such a consumer silently
//! skipped everything the new epoch appended.

use std::path::Path;

use bookend_journal::{Error as JournalError, JournalOptions};
use bookend_projector::{CloseReason, Error, EventBody, SessionJournal, SessionJournalOptions, Sessions};
use bookend_tests::sessions::{events, start};

fn options(accept: bool) -> SessionJournalOptions {
    let journal = JournalOptions {
        segment_size_max_bytes: 4096,
        accept_data_loss: accept,
        ..JournalOptions::default()
    };
    SessionJournalOptions { journal, ..SessionJournalOptions::default() }
}

/// A journal of several segments, closed cleanly, with a consumer that
/// read (and acknowledged) everything.
fn build(dir: &Path) -> u64 {
    let journal = SessionJournal::open(dir, options(false)).unwrap();
    for i in 0..400 {
        journal.start(start(&format!("s{i}"), &format!("k{i}"))).unwrap().wait().unwrap();
    }
    let mut mirror = journal.subscribe("mirror").unwrap();
    while let Some(event) = mirror.try_next().unwrap() {
        mirror.ack(event.lsn).unwrap();
    }
    drop(mirror);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    bookend_journal::last_lsn(std::sync::Arc::new(bookend_journal::fs::StdFs), dir).unwrap()
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    out.sort();
    out
}

fn expect_data_loss(dir: &Path, what: &str) -> (u64, u64) {
    match SessionJournal::open(dir, options(false)) {
        Err(Error::Journal(JournalError::DataLoss { found_lsn, expected_lsn, evidence, .. })) => {
            assert!(found_lsn < expected_lsn, "{what}: {found_lsn} {expected_lsn} {evidence}");
            (found_lsn, expected_lsn)
        }
        Err(Error::Journal(JournalError::Corruption { reason, .. })) if reason.contains("acknowledged") => {
            (0, 0)
        }
        other => panic!("{what}: expected a refusal for lost data, got {other:?}"),
    }
}

/// Accepts the loss and checks that the new epoch's LSNs start after every
/// LSN the evidence knew of (`last`), and that the mirror consumer reads
/// them all.
fn accept(dir: &Path, last: u64) {
    let journal = SessionJournal::open(dir, options(true)).unwrap();
    let first_new = journal.journal().recovery_report().next_lsn;
    assert!(first_new > last, "an LSN was reused: the new epoch starts at {first_new}, {last} existed");
    let ack = journal.start(start("after", "k-after")).unwrap().wait().unwrap();
    let mut mirror = journal.subscribe("mirror").unwrap();
    let mut seen = Vec::new();
    while let Some(event) = mirror.try_next().unwrap() {
        seen.push(event.body.type_name());
    }
    assert_eq!(seen.first(), Some(&"journal:data_loss"), "the consumer skipped the new epoch: {seen:?}");
    assert!(seen.contains(&"session:start") && ack.lsn > Some(last));
    drop(mirror);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    let losses: Vec<_> =
        events(dir).into_iter().filter(|e| matches!(e.body, EventBody::JournalDataLoss { .. })).collect();
    assert_eq!(losses.len(), 1);
}

#[test]
fn a_deleted_last_segment_is_refused_then_accepted_without_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let last = build(dir.path());
    let all = segments(dir.path());
    assert!(all.len() >= 3);
    std::fs::remove_file(all.last().unwrap()).unwrap();
    expect_data_loss(dir.path(), "deleted last segment");
    accept(dir.path(), last);
}

#[test]
fn a_cut_clean_journal_is_refused_at_a_frame_boundary_and_inside_a_frame() {
    for cut_bytes in [1u64, 0] {
        let dir = tempfile::tempdir().unwrap();
        let last = build(dir.path());
        let tail = segments(dir.path()).pop().unwrap();
        // The close's frame is the last one; cutting it off exactly, or one
        // byte before its end, both lose durable events.
        let (start, end) = bookend_tests::last_frame(&tail);
        let file = std::fs::OpenOptions::new().write(true).open(&tail).unwrap();
        file.set_len(if cut_bytes == 0 { start } else { end - cut_bytes }).unwrap();
        expect_data_loss(dir.path(), &format!("cut by {cut_bytes}"));
        accept(dir.path(), last);
    }
}

#[test]
fn each_kind_of_evidence_alone_refuses_a_lost_tail() {
    // Without the journal's own records, the checkpoint; without it too,
    // the consumer's cursor.
    for keep in ["checkpoint", "cursor"] {
        let dir = tempfile::tempdir().unwrap();
        let last = build(dir.path());
        std::fs::remove_file(segments(dir.path()).pop().unwrap()).unwrap();
        std::fs::remove_file(dir.path().join("bookend.manifest")).unwrap();
        std::fs::remove_file(dir.path().join("bookend.durable")).unwrap();
        if keep == "cursor" {
            std::fs::remove_dir_all(dir.path().join("projection")).unwrap();
        }
        let (found, expected) = expect_data_loss(dir.path(), keep);
        assert!(found < expected && expected <= last, "{keep}");
        accept(dir.path(), expected);
    }
}

#[test]
fn deleting_every_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let last = build(dir.path());
    for segment in segments(dir.path()) {
        std::fs::remove_file(segment).unwrap();
    }
    let (found, expected) = expect_data_loss(dir.path(), "no segments left");
    assert_eq!((found, expected), (0, last));
    accept(dir.path(), last);
}
