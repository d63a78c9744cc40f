//! Bad commands get a typed error that names what and why, and append
//! nothing; repeats of done work are answered with the original LSN.
//!
//! Unknown sessions, events after an end, a busy key without supersede
//! permission, a retried start with another key, ids over 128 bytes, keys
//! over 1024 bytes and empty ids are refused, and the journal's next LSN does not
//! move. A second end (with any reason) returns the first end's LSN and
//! reason; a retried start, flush marker or finalization returns the
//! original LSN. These are invariants 2, 3, 5 and 6 of design.md §3.

use bookend_projector::{EndReason, LifecycleError, SessionJournal, Start};
use bookend_tests::sessions::{T0, open, start};

fn refused(
    journal: &SessionJournal,
    result: bookend_projector::Result<bookend_projector::Pending<bookend_projector::Ack>>,
) -> LifecycleError {
    let before = journal.journal().next_lsn();
    match result {
        Err(bookend_projector::Error::Lifecycle(e)) => {
            assert_eq!(journal.journal().next_lsn(), before, "a refused command appended");
            assert!(!e.to_string().is_empty());
            e
        }
        other => panic!("expected a lifecycle error, got {other:?}"),
    }
}

#[test]
fn invalid_commands_are_refused_and_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let j = open(dir.path(), &clock);
    j.start(start("s1", "k1")).unwrap().wait().unwrap();
    let next = j.journal().next_lsn();

    assert!(matches!(refused(&j, j.touch("ghost")), LifecycleError::UnknownSession { .. }));
    assert!(matches!(refused(&j, j.end("ghost", EndReason::Deleted)), LifecycleError::UnknownSession { .. }));
    assert!(matches!(refused(&j, j.touch("")), LifecycleError::Empty { field: "session_id" }));
    let long = "x".repeat(129);
    assert!(matches!(
        refused(&j, j.start(start(&long, "k9"))),
        LifecycleError::TooLong { field: "session_id", len: 129, .. }
    ));
    // Keys may be long (real gateway keys are), up to the key limit.
    let long_key = "k".repeat(bookend_projector::KEY_LEN_MAX_BYTES + 1);
    assert!(matches!(
        refused(&j, j.start(start("s9", &long_key))),
        LifecycleError::TooLong { field: "key", .. }
    ));
    assert!(matches!(refused(&j, j.start(start("s1", "other-key"))), LifecycleError::KeyMismatch { .. }));
    let no_supersede = Start { supersede: false, ..start("s2", "k1") };
    match refused(&j, j.start(no_supersede)) {
        LifecycleError::KeyBusy { key, active_id } => {
            assert_eq!((key.as_str(), active_id.as_str()), ("k1", "s1"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(refused(&j, j.reopen("s1", "resume")), LifecycleError::AlreadyActive { .. }));
    assert!(matches!(refused(&j, j.mark_flushed("s1", "")), LifecycleError::Empty { field: "marker" }));
    assert_eq!(j.journal().next_lsn(), next);

    j.end("s1", EndReason::ManualReset).unwrap().wait().unwrap();
    clock.advance(5_000);
    let after_end = refused(&j, j.touch("s1"));
    assert!(
        matches!(&after_end, LifecycleError::SessionEnded { reason: EndReason::ManualReset, .. }),
        "{after_end}"
    );
    assert!(after_end.to_string().contains("only reopen"), "{after_end}");
}

#[test]
fn repeats_return_the_original_lsn_and_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let j = open(dir.path(), &clock);
    let first = j.start(start("s1", "k1")).unwrap().wait().unwrap();
    let retry = j.start(start("s1", "k1")).unwrap().wait().unwrap();
    assert!(retry.duplicate && retry.events.is_empty());
    assert_eq!(retry.lsn, first.lsn);

    let flush = j.mark_flushed("s1", "memory").unwrap().wait().unwrap();
    let end = j.end("s1", EndReason::IdleExpiry).unwrap().wait().unwrap();
    let next = j.journal().next_lsn();
    let second_end = j.end("s1", EndReason::Shutdown).unwrap().wait().unwrap();
    assert!(second_end.duplicate);
    assert_eq!(second_end.lsn, end.lsn, "first writer wins");
    assert_eq!(second_end.reason, Some(EndReason::IdleExpiry));
    assert_eq!(j.mark_flushed("s1", "memory").unwrap().wait().unwrap().lsn, flush.lsn);
    let fin = j.finalized("s1").unwrap().wait().unwrap();
    assert_eq!(j.journal().next_lsn(), next + 1);
    let fin_again = j.finalized("s1").unwrap().wait().unwrap();
    assert_eq!((fin_again.lsn, fin_again.duplicate), (fin.lsn, true));
    assert_eq!(j.journal().next_lsn(), next + 1);
}
