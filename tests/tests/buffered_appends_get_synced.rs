//! Buffered appends do not stay volatile: the interval timer, the next
//! durable append and closing the journal each make them durable.
//!
//! Each case appends buffered events on the simulated file system, lets one
//! of the three mechanisms run, then cuts the power: the events must be
//! there. A control case shows that without any of them a power cut does
//! lose buffered events, so the other cases prove something.

use std::time::Duration;

use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_journal::{Durability, Journal, JournalOptions};
use bookend_tests::{batch_at, read_all, sim_dir, sim_fs};

fn options(interval: Duration) -> JournalOptions {
    JournalOptions { buffered_sync_interval: interval, ..JournalOptions::default() }
}

fn survivors_after_power_cut(sim: &SimFs) -> usize {
    let crashed = sim.snapshot();
    crashed.crash(CrashPolicy::DropUnsynced);
    read_all(sim_fs(&crashed), &sim_dir()).unwrap().len()
}

#[test]
fn without_a_sync_buffered_events_are_volatile() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), options(Duration::from_secs(3600))).unwrap();
    journal.append_blocking(batch_at(1, 3), Durability::Buffered).unwrap();
    assert_eq!(survivors_after_power_cut(&sim), 0);
    assert_eq!(journal.durable_lsn(), 0);
}

#[test]
fn the_interval_timer_syncs_buffered_events() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), options(Duration::from_millis(20))).unwrap();
    journal.append_blocking(batch_at(1, 3), Durability::Buffered).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while journal.durable_lsn() < 3 {
        assert!(std::time::Instant::now() < deadline, "the timer never synced");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(survivors_after_power_cut(&sim), 3);
}

#[test]
fn a_durable_append_syncs_earlier_buffered_events() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), options(Duration::from_secs(3600))).unwrap();
    journal.append_blocking(batch_at(1, 3), Durability::Buffered).unwrap();
    journal.append_blocking(batch_at(4, 1), Durability::Durable).unwrap();
    assert_eq!(survivors_after_power_cut(&sim), 4);
}

#[test]
fn closing_syncs_buffered_events() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), options(Duration::from_secs(3600))).unwrap();
    journal.append_blocking(batch_at(1, 3), Durability::Buffered).unwrap();
    journal.close().unwrap();
    assert!(journal.append_blocking(batch_at(4, 1), Durability::Durable).is_err());
    drop(journal);
    assert_eq!(survivors_after_power_cut(&sim), 3);

    let dropped = SimFs::new();
    let journal =
        Journal::open_with_fs(sim_fs(&dropped), sim_dir(), options(Duration::from_secs(3600))).unwrap();
    journal.append_blocking(batch_at(1, 2), Durability::Buffered).unwrap();
    drop(journal);
    assert_eq!(survivors_after_power_cut(&dropped), 2, "dropping the journal must sync too");
}
