//! A failed write, fsync, segment creation, rename or directory fsync
//! poisons the journal: the failing append and every later one get a typed
//! error, nothing acknowledged is lost, and reopening recovers.
//!
//! For each kind of call and each call index the workload makes, a fresh
//! simulated machine fails exactly that call. After the first failure every
//! append must fail (the fsyncgate lesson: after a failed fsync the page
//! cache can no longer be trusted, so retrying on the same handle is wrong).
//! The journal is then reopened, both as the same machine and after a power
//! cut, and must hold every acknowledged event.

use std::time::Duration;

use bookend_journal::sim::{CrashPolicy, SimFs, SimOp};
use bookend_journal::{Durability, Error, Journal, JournalOptions};
use bookend_tests::{assert_dense, batch_at, read_all, sim_dir, sim_fs};

const STEPS: u64 = 30;
const OPS: [SimOp; 5] = [SimOp::Write, SimOp::Sync, SimOp::Create, SimOp::Rename, SimOp::SyncDir];

fn options() -> JournalOptions {
    JournalOptions {
        segment_size_max_bytes: 4096,
        buffered_sync_interval: Duration::from_secs(3600),
        ..JournalOptions::default()
    }
}

/// Runs the workload until it ends or fails; returns the highest durable
/// acknowledged LSN, the highest acknowledged LSN and whether a failure was seen.
fn workload(sim: &SimFs) -> (u64, u64, bool) {
    let journal = match Journal::open_with_fs(sim_fs(sim), sim_dir(), options()) {
        Ok(j) => j,
        Err(Error::Io { .. }) => return (0, 0, true),
        Err(e) => panic!("open failed with an unexpected error: {e}"),
    };
    let (mut durable_acked, mut acked, mut failed) = (0, 0, false);
    let mut next = 1;
    for step in 0..STEPS {
        let durable = step % 4 != 0;
        let durability = if durable { Durability::Durable } else { Durability::Buffered };
        match journal.append_blocking(batch_at(next, step % 3 + 1), durability) {
            Ok(ack) => {
                assert!(!failed, "an append was acknowledged after a failure");
                assert!(journal.poisoned().is_none());
                next = ack.last_lsn + 1;
                acked = ack.last_lsn;
                if durable {
                    durable_acked = ack.last_lsn;
                }
            }
            Err(e) => {
                if failed {
                    assert!(matches!(e, Error::Poisoned { .. }), "later failure is not Poisoned: {e}");
                } else {
                    assert!(matches!(e, Error::Io { .. }), "first failure is not Io: {e}");
                    assert!(journal.poisoned().is_some());
                }
                failed = true;
            }
        }
    }
    (durable_acked, acked, failed)
}

fn reopen_and_check(sim: &SimFs, must_have: u64, context: &str) {
    let journal = Journal::open_with_fs(sim_fs(sim), sim_dir(), options())
        .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
    let next = journal.next_lsn();
    let ack = journal.append_blocking(batch_at(next, 1), Durability::Durable).unwrap();
    assert_eq!(ack.first_lsn, next, "{context}");
    drop(journal);
    let kept = assert_dense(&read_all(sim_fs(sim), &sim_dir()).unwrap());
    assert!(kept > must_have, "{context}: lost acknowledged events ({kept} <= {must_have})");
}

#[test]
fn every_failed_call_poisons_and_loses_nothing_acknowledged() {
    let clean = SimFs::new();
    workload(&clean);
    let mut failures = 0;
    for op in OPS {
        let calls = clean.calls(op);
        assert!(calls > 0, "the workload never calls {op:?}");
        for nth in 1..=calls {
            let context = format!("{op:?} call #{nth} failing");
            let sim = SimFs::new();
            sim.fail_call(op, nth);
            let (durable_acked, acked, failed) = workload(&sim);
            assert!(failed, "{context}: the failure was not reported");
            let crashed = sim.snapshot();
            // The same machine: the process restarts, the page cache stays.
            reopen_and_check(&sim, acked, &context);
            crashed.crash(CrashPolicy::DropUnsynced);
            reopen_and_check(&crashed, durable_acked, &format!("{context}, then power cut"));
            failures += 1;
        }
    }
    eprintln!("{failures} injected failures checked");
}
