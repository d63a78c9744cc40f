//! One writer per directory, any number of readers while it writes.
//!
//! A second `Journal::open` on a locked directory gets `Error::Locked`
//! naming the holder's pid, and the lock is released when the first writer
//! goes away. While one thread appends (rotating segments), an in-process
//! follower and a follower that reads the files as another process would
//! both see every event, in order, with no gap and no duplicate, and never
//! report a frame being written as corruption.

use std::time::Duration;

use bookend_journal::{Durability, Error, Follower, Journal, JournalOptions, codec};
use bookend_tests::{TestEvent, batch_at};

const BATCHES: u64 = 2000;

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let first = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    match Journal::open(dir.path(), JournalOptions::default()) {
        Err(Error::Locked { pid, dir: locked }) => {
            assert_eq!(pid, Some(std::process::id()));
            assert_eq!(locked, dir.path());
            let message = Error::Locked { pid, dir: locked }.to_string();
            assert!(message.contains(&std::process::id().to_string()), "{message}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    Journal::open(dir.path(), JournalOptions::default()).expect("lock released on drop");
}

fn drain(mut follower: Follower, last_lsn: u64) -> u64 {
    let mut next = 1;
    while next <= last_lsn {
        let frame = follower
            .next_blocking(Duration::from_secs(20))
            .unwrap()
            .unwrap_or_else(|| panic!("follower stalled at LSN {next}"));
        for (lsn, bytes) in frame.events() {
            assert_eq!(lsn, next, "gap or duplicate");
            assert_eq!(codec::decode::<TestEvent>(bytes).unwrap(), TestEvent::at(lsn));
            next += 1;
        }
    }
    next - 1
}

#[test]
fn followers_see_every_event_while_the_writer_appends() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = JournalOptions { segment_size_max_bytes: 16 * 1024, ..JournalOptions::default() };
    let journal = Journal::open(dir.path(), options).unwrap();
    // Each batch has 2 events.
    let last_lsn = BATCHES * 2;
    let in_process = journal.follow(1).unwrap();
    let other_process = Follower::open(dir.path(), 1).unwrap().with_poll_interval(Duration::from_millis(1));
    std::thread::scope(|s| {
        let a = s.spawn(|| drain(in_process, last_lsn));
        let b = s.spawn(|| drain(other_process, last_lsn));
        for i in 0..BATCHES {
            let durability = if i % 2 == 0 { Durability::Durable } else { Durability::Buffered };
            journal.append_blocking(batch_at(i * 2 + 1, 2), durability).unwrap();
        }
        journal.sync_blocking().unwrap();
        assert_eq!(a.join().unwrap(), last_lsn);
        assert_eq!(b.join().unwrap(), last_lsn);
    });
    assert!(journal.stats().segments_created > 2, "the test must cross segment boundaries");
}
