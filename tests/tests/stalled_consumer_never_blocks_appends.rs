//! A consumer that stops reading never slows or blocks the writer: it holds
//! no buffer in the append path, it just lags, and later catches up from
//! disk with nothing lost.
//!
//! Seed 004's gateway lost events to slow plugins and stalled its pool on
//! them. Here a named subscription and an in-process follower are opened
//! and never read while 20 000 events are appended across several segments;
//! every append must complete, then both readers must deliver all of it in
//! order. (The throughput ratio with and without a stalled consumer is
//! measured by `benches/src/bin/cli_figures.rs`, see
//! docs/performance-log/2026-11-21.md.)

use std::time::Duration;

use bookend_journal::JournalOptions;
use bookend_projector::{SessionJournal, SessionJournalOptions, Start};

const SESSIONS: usize = 10_000;

#[test]
fn appends_complete_while_a_consumer_is_stalled_and_it_catches_up_later() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = SessionJournalOptions {
        journal: JournalOptions { segment_size_max_bytes: 64 * 1024, ..JournalOptions::default() },
        ..SessionJournalOptions::default()
    };
    let journal = SessionJournal::open(dir.path(), options).unwrap();
    let mut stalled = journal.subscribe("stalled-dashboard").unwrap();
    let mut anonymous = journal.subscribe_from(1).unwrap();

    let mut pending = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let start = Start::new(format!("s{i}")).key(format!("k{i}"));
        pending.push(journal.start(start).unwrap());
    }
    for p in pending {
        p.wait().unwrap();
    }
    let stats = journal.journal().stats();
    assert!(stats.segments_created >= 3, "the stalled consumer's position must fall segments behind");
    let last = journal.journal().durable_lsn();

    for sub in [&mut stalled, &mut anonymous] {
        let mut expected = 1;
        while expected <= last {
            let event = sub.next_blocking(Duration::from_secs(10)).unwrap().expect("caught up");
            assert_eq!(event.lsn, expected);
            expected += 1;
        }
    }
    stalled.ack(last).unwrap();
    assert_eq!(stalled.acked(), Some(last));
}
