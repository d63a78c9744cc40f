//! An open makes durable what it recovered and counts as durable, and
//! fsyncs nothing when a clean close left nothing to make durable.
//!
//! A process killed with unsynced frames leaves them in the page cache; the
//! next open reads them, counts them durable and builds on them, so it must
//! fsync them first, or a power cut right after the open loses events the
//! journal already reports as durable. After a clean close, though, the
//! durable hint says the last LSN was durable, and the open used to fsync
//! the segment, the hint and the manifest anyway: on a busy disk each of
//! those fsyncs waited behind whatever else was being flushed (12-15 ms
//! behind sled's own flush at 10M events). Here a clean reopen must call no
//! fsync at all, and a reopen after a kill must survive a power cut that
//! follows it at once.

use std::time::Duration;

use bookend_journal::sim::{CrashPolicy, SimFs, SimOp};
use bookend_journal::{Durability, Journal, JournalOptions};
use bookend_tests::{assert_dense, batch_at, read_all, sim_dir, sim_fs};

fn options() -> JournalOptions {
    // Buffered appends stay unsynced for as long as the test runs.
    JournalOptions { buffered_sync_interval: Duration::from_secs(3600), ..JournalOptions::default() }
}

#[test]
fn a_reopen_after_a_kill_makes_what_it_recovered_durable() {
    let sim = SimFs::new();
    let dir = sim_dir();
    let journal = Journal::open_with_fs(sim_fs(&sim), &dir, options()).unwrap();
    journal.append_blocking(batch_at(1, 5), Durability::Durable).unwrap();
    journal.append_blocking(batch_at(6, 5), Durability::Buffered).unwrap();
    // kill -9: the page cache keeps the unsynced frames.
    let killed = sim.killed();
    drop(journal);

    let reopened = Journal::open_with_fs(sim_fs(&killed), &dir, options()).unwrap();
    assert_eq!(reopened.recovery_report().next_lsn, 11, "the unsynced frames are read back");
    // A power cut right after the open returned.
    let cut = killed.snapshot();
    drop(reopened);
    cut.crash(CrashPolicy::DropUnsynced);
    let events = read_all(sim_fs(&cut), &dir).unwrap();
    assert_eq!(assert_dense(&events), 10, "events the open counted durable were lost in a power cut");
}

#[test]
fn a_reopen_after_a_clean_close_calls_no_fsync() {
    let sim = SimFs::new();
    let dir = sim_dir();
    let journal = Journal::open_with_fs(sim_fs(&sim), &dir, options()).unwrap();
    journal.append_blocking(batch_at(1, 5), Durability::Durable).unwrap();
    journal.close().unwrap();
    drop(journal);

    for round in 0..3 {
        let syncs = (sim.calls(SimOp::Sync), sim.calls(SimOp::SyncDir));
        let writes = sim.calls(SimOp::Rename);
        let journal = Journal::open_with_fs(sim_fs(&sim), &dir, options()).unwrap();
        assert_eq!(
            (sim.calls(SimOp::Sync), sim.calls(SimOp::SyncDir)),
            syncs,
            "round {round}: fsync at open"
        );
        assert_eq!(sim.calls(SimOp::Rename), writes, "round {round}: the manifest was replaced at open");
        journal.append_blocking(batch_at(6 + round * 5, 5), Durability::Durable).unwrap();
        journal.close().unwrap();
    }
    let events = read_all(sim_fs(&sim), &dir).unwrap();
    assert_eq!(assert_dense(&events), 20);
}
