//! A cursor file that does not hold an LSN of this journal is an error for
//! that consumer alone, never a silent replay or skip, and never hides the
//! other consumers.
//!
//! Beside a good consumer, a cursor file holds garbage, another holds
//! 18446744073709551615 (past the journal's end), another the old format
//! (an LSN, no journal id). Listing the consumers names the bad ones with
//! their error and still gives the good one its lag; subscribing as a bad
//! one fails with a typed error instead of replaying from LSN 1; the old
//! format still works and is rewritten with the journal's id on the next
//! ack. A cursor ahead of the journal when a writer opens it means the
//! journal lost what the consumer saw: open refuses, naming the consumer.
//! Before, a garbage cursor made `stats` fail and `/v1/consumers` answer
//! 500, and a huge one replayed the journal from LSN 1.

use bookend_projector::{CloseReason, Error, SessionJournal, SessionJournalOptions, Sessions};
use bookend_tests::sessions::start;

#[test]
fn bad_cursors_are_errors_for_their_consumer_alone() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
    for i in 0..5 {
        journal.start(start(&format!("s{i}"), &format!("k{i}"))).unwrap().wait().unwrap();
    }
    let mut good = journal.subscribe("good").unwrap();
    let first = good.try_next().unwrap().unwrap();
    good.ack(first.lsn).unwrap();
    drop(good);
    let consumers = dir.path().join("consumers");
    std::fs::write(consumers.join("garbage.cursor"), "12abc\n").unwrap();
    std::fs::write(consumers.join("huge.cursor"), format!("{} {}\n", u64::MAX, journal.journal_id()))
        .unwrap();
    std::fs::write(consumers.join("legacy.cursor"), "3\n").unwrap();

    let statuses = journal.consumers().unwrap();
    let by_name = |name: &str| statuses.iter().find(|c| c.name == name).unwrap().clone();
    assert_eq!((by_name("good").lag.is_some(), by_name("good").error), (true, None));
    assert!(by_name("garbage").error.unwrap().contains("garbage.cursor"));
    assert!(by_name("huge").error.unwrap().contains("past") || by_name("huge").lag.is_none());
    assert_eq!(by_name("legacy").acked, Some(3));

    assert!(matches!(journal.subscribe("garbage"), Err(Error::InvalidCursor { .. })));
    assert!(matches!(journal.subscribe("huge"), Err(Error::CursorAhead { .. })));
    let mut legacy = journal.subscribe("legacy").unwrap();
    let next = legacy.try_next().unwrap().unwrap();
    assert_eq!(next.lsn, 4, "the old-format cursor did not resume after LSN 3");
    legacy.ack(next.lsn).unwrap();
    let text = std::fs::read_to_string(consumers.join("legacy.cursor")).unwrap();
    assert_eq!(text, format!("4 {}\n", journal.journal_id()));
    drop(legacy);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);

    match SessionJournal::open(dir.path(), SessionJournalOptions::default()) {
        Err(Error::Journal(bookend_journal::Error::DataLoss { evidence, .. })) => {
            assert!(evidence.contains("huge"), "{evidence}");
        }
        other => panic!("a cursor past the end must refuse the open, got {other:?}"),
    }
    std::fs::remove_file(consumers.join("huge.cursor")).unwrap();
    assert!(SessionJournal::open(dir.path(), SessionJournalOptions::default()).is_ok());
}
