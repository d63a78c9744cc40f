//! A named consumer's cursor survives a restart of the consumer and of the
//! writer; delivery is at-least-once: events after the last ack are
//! delivered again, and nothing before it is.
//!
//! A consumer reads ten events but acknowledges only the first five, then
//! "dies" (is dropped without acking the rest). The next subscription with
//! the same name must start exactly at the sixth. The writer is then closed
//! and reopened, and the cursor still holds. Seeds 001/003: work recorded
//! through a durable cursor is not redone after a restart.

use std::time::Duration;

use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, Start};

fn open(dir: &std::path::Path) -> SessionJournal {
    SessionJournal::open(dir, SessionJournalOptions::default()).unwrap()
}

fn start_many(journal: &SessionJournal, from: usize, n: usize) {
    for i in from..from + n {
        let start = Start::new(format!("s{i}"));
        journal.start(start).unwrap().wait().unwrap();
    }
}

#[test]
fn unacknowledged_events_are_delivered_again_and_acknowledged_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    start_many(&journal, 0, 12);

    let mut consumer = journal.subscribe("memory").unwrap();
    let mut read = Vec::new();
    for _ in 0..10 {
        read.push(consumer.next_blocking(Duration::from_secs(5)).unwrap().unwrap().lsn);
    }
    consumer.ack(read[4]).unwrap();
    drop(consumer); // killed before acknowledging the other five

    let mut again = journal.subscribe("memory").unwrap();
    assert_eq!(again.acked(), Some(read[4]));
    let next = again.next_blocking(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(next.lsn, read[5], "re-reads exactly the unacknowledged events");
    again.ack(next.lsn).unwrap();
    drop(again);

    // The writer restarts; the cursor file is where the consumer left it.
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);
    let journal = open(dir.path());
    start_many(&journal, 12, 3);
    let mut after_restart = journal.subscribe("memory").unwrap();
    let first = after_restart.next_blocking(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(first.lsn, read[5] + 1);
    let listed = bookend_projector::list_consumers(
        &bookend_journal::fs::StdFs,
        dir.path(),
        Some(journal.journal_id()),
    );
    assert_eq!(
        listed.unwrap(),
        vec![bookend_projector::CursorInfo { name: "memory".into(), acked: Ok(read[5]) }]
    );

    // Two processes cannot move one cursor: a second holder is refused.
    assert!(journal.subscribe("memory").is_err(), "a cursor held twice");
}
