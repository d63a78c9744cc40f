//! With several writers on one journal (`JournalOptions::shared_writers`),
//! the durable hint that readers in other processes trust never goes back.
//! A writer that syncs what it wrote earlier, after another writer has
//! published a later durable LSN, leaves the later one in place, and a
//! `durable_only` reader (what `bookend tail` and every follower in another
//! process use) sees every event acknowledged as durable.
//!
//! Guards against a failure the Python several-process kill test found
//! under load: each process overwrote the hint with its own last durable
//! LSN, so a slower process's fsync moved the hint back, and `bookend tail`
//! in another process stopped short of a survivor's `writer_died` close,
//! and of every durable event after the lower LSN, until some process
//! appended again. A consumer in another process waited for events that
//! had already been acknowledged to their writers.

use std::time::Duration;

use bookend_journal::{Batch, Durability, Journal, JournalOptions, Reader};

fn shared(buffered_sync_interval: Duration) -> JournalOptions {
    JournalOptions { shared_writers: true, buffered_sync_interval, ..JournalOptions::default() }
}

/// Events a reader in another process would hand out: only what the
/// durable hint says was fsynced.
fn visible(dir: &std::path::Path) -> u64 {
    let mut reader = Reader::open(dir, 1).unwrap().durable_only();
    let mut last = 0;
    while let Some(frame) = reader.next_frame().unwrap() {
        last = frame.events().map(|(lsn, _)| lsn).max().unwrap_or(last);
    }
    last
}

#[test]
fn a_slower_writers_sync_does_not_move_the_hint_back() {
    let dir = tempfile::tempdir().unwrap();
    let fast = Journal::open(dir.path(), shared(Duration::from_millis(50))).unwrap();
    // This writer never syncs on its own: only when asked, below.
    let slow = Journal::open(dir.path(), shared(Duration::from_secs(3600))).unwrap();

    let written = slow.append_blocking(Batch::of("written, not yet synced").unwrap(), Durability::Buffered);
    assert_eq!(written.unwrap().first_lsn, 1);
    let mut batch = Batch::new();
    for i in 0..5 {
        batch.push(&format!("durable {i}")).unwrap();
    }
    let acked = fast.append_blocking(batch, Durability::Durable).unwrap();
    assert_eq!((acked.first_lsn, acked.last_lsn), (2, 6));
    assert_eq!(visible(dir.path()), 6, "the fast writer's durable events are visible");

    // The slow writer's fsync covers only what it knows of: LSN 1.
    slow.sync_blocking().unwrap();
    assert_eq!(visible(dir.path()), 6, "the hint went back to the slow writer's LSN");

    // A writer opened now finds the hint where it was, and moves it on.
    let late = Journal::open(dir.path(), shared(Duration::from_millis(50))).unwrap();
    assert_eq!(visible(dir.path()), 6);
    let next = late.append_blocking(Batch::of("after the others").unwrap(), Durability::Durable).unwrap();
    assert_eq!(next.first_lsn, 7);
    assert_eq!(visible(dir.path()), 7);
    for journal in [fast, slow, late] {
        journal.close().unwrap();
    }
    assert_eq!(visible(dir.path()), 7);
}
