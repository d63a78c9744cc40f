//! A subscription switches from reading the disk to live delivery without
//! a gap or a duplicate, however the switch races with appends.
//!
//! In each iteration a writer thread appends batches while a subscription
//! is opened at a random moment from a random cursor; it must then deliver
//! every event from its start to the end of the journal exactly once, in
//! LSN order, and only events that are durable. Seed 004's lesson: a
//! consumer that can miss an event at a boundary ends with ghost rows.

use std::time::Duration;

use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, Start};

const ITERATIONS: usize = 40;
const STARTS: usize = 120;

#[test]
fn catch_up_then_live_delivers_each_event_once_in_order() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for iteration in 0..bookend_tests::scale(ITERATIONS, 400) {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let subscribe_after = (seed % STARTS as u64) as usize;
        let from = seed % 40 + 1;
        std::thread::scope(|s| {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let journal = &journal;
            let writer = s.spawn(move || {
                let mut pending = Vec::new();
                for i in 0..STARTS {
                    let start = Start::new(format!("s{i}")).key(format!("k{}", i % 9));
                    pending.push(journal.start(start).unwrap());
                    if i == subscribe_after {
                        ready_tx.send(()).unwrap();
                    }
                }
                for p in pending {
                    p.wait().unwrap();
                }
            });
            ready_rx.recv().unwrap();
            let mut sub = journal.subscribe_from(from).unwrap();
            writer.join().unwrap();
            let last = journal.journal().next_lsn() - 1;
            let mut expected = from;
            while expected <= last {
                let event = sub
                    .next_blocking(Duration::from_secs(10))
                    .unwrap()
                    .unwrap_or_else(|| panic!("iteration {iteration}: stalled at LSN {expected} of {last}"));
                assert_eq!(event.lsn, expected, "iteration {iteration}: gap or duplicate");
                assert!(event.lsn <= journal.journal().durable_lsn(), "a non-durable event was delivered");
                expected += 1;
            }
            assert!(sub.try_next().unwrap().is_none(), "iteration {iteration}: an event past the end");
        });
        journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
    }
}
