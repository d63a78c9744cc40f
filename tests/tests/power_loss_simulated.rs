//! A power cut at any moment loses nothing that was acknowledged as durable,
//! and recovery is repeatable.
//!
//! A small workload of durable and buffered appends, with segment rotation,
//! runs on the simulated file system. The machine is copied just before each
//! of its file-system calls in turn (a write, an fsync, a segment creation,
//! a rename, a directory fsync) and each copy is "crashed" every way the
//! medium allows: all unsynced bytes lost, every length of torn unsynced tail
//! kept, or everything kept. Each crashed copy must open; every event
//! acknowledged as durable before that point (and every event before it)
//! must be there byte for byte; what is there must be a dense prefix of what
//! was submitted; and recovering a second time must give the same journal.
//! This is the bug class behind seed 002 (sessions leaking after hard exits):
//! an acknowledgement the disk did not keep.

use std::time::Duration;

use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_journal::{Durability, Journal, JournalOptions};
use bookend_tests::{assert_dense, batch_at, read_all, segment_files, sim_dir, sim_fs};

const STEPS: u64 = 40;

fn options() -> JournalOptions {
    JournalOptions {
        segment_size_max_bytes: 4096,
        // No timer syncs: the workload decides every fsync, so each crash
        // point is deterministic.
        buffered_sync_interval: Duration::from_secs(3600),
        ..JournalOptions::default()
    }
}

/// Runs the workload; returns, per completed append, the simulator's call
/// count when it returned, its last LSN and whether it was durable.
fn workload(sim: &SimFs) -> Vec<(u64, u64, bool)> {
    let journal = Journal::open_with_fs(sim_fs(sim), sim_dir(), options()).unwrap();
    let mut acks = Vec::new();
    let mut next = 1;
    for step in 0..STEPS {
        let durable = step % 3 != 0;
        let durability = if durable { Durability::Durable } else { Durability::Buffered };
        let ack = journal.append_blocking(batch_at(next, step % 3 + 1), durability).unwrap();
        next = ack.last_lsn + 1;
        acks.push((sim.total_calls(), ack.last_lsn, durable));
    }
    acks
}

/// Opens the crashed copy twice and returns how many events it holds.
fn recover_twice(crashed: &SimFs, context: &str) -> u64 {
    let first = {
        let journal = Journal::open_with_fs(sim_fs(crashed), sim_dir(), options())
            .unwrap_or_else(|e| panic!("{context}: open after crash failed: {e}"));
        journal.next_lsn()
    };
    let events = read_all(sim_fs(crashed), &sim_dir()).unwrap();
    let journal = Journal::open_with_fs(sim_fs(crashed), sim_dir(), options()).unwrap();
    assert_eq!(journal.next_lsn(), first, "{context}: second recovery differs");
    assert!(journal.recovery_report().torn_tail.is_none(), "{context}: second recovery found a torn tail");
    drop(journal);
    assert_eq!(read_all(sim_fs(crashed), &sim_dir()).unwrap(), events, "{context}: events changed");
    assert_dense(&events)
}

#[test]
fn every_crash_point_and_torn_length_keeps_every_durable_ack() {
    let total_calls = {
        let sim = SimFs::new();
        workload(&sim);
        sim.total_calls()
    };
    let submitted = workload(&SimFs::new()).last().unwrap().1;
    let mut crashes = 0;
    for call in 1..=total_calls {
        let sim = SimFs::new();
        sim.snapshot_before_call(call);
        let acks = workload(&sim);
        let before_crash = sim.take_snapshot().expect("snapshot taken");
        // Acks returned before the crash point; the durable watermark covers
        // every earlier event too.
        let durable_acked = acks
            .iter()
            .filter(|(calls, _, durable)| *calls < call && *durable)
            .map(|(_, lsn, _)| *lsn)
            .max()
            .unwrap_or(0);
        let unsynced = segment_files(&*sim_fs(&before_crash), &sim_dir())
            .iter()
            .map(|p| before_crash.unsynced_len(p))
            .max()
            .unwrap_or(0);
        let mut policies = vec![CrashPolicy::DropUnsynced, CrashPolicy::KeepAllData];
        policies.extend((1..unsynced).map(CrashPolicy::KeepUnsyncedPrefix));
        for policy in policies {
            let crashed = before_crash.snapshot();
            crashed.crash(policy.clone());
            let context = format!("crash before call {call}, {policy:?}");
            let kept = recover_twice(&crashed, &context);
            assert!(kept >= durable_acked, "{context}: lost durable events ({kept} < {durable_acked})");
            assert!(kept <= submitted, "{context}: more events than were submitted");
            crashes += 1;
        }
    }
    assert!(crashes > 200, "only {crashes} crash variants ran");
    eprintln!("{total_calls} crash points, {crashes} crashed machines recovered");
}
