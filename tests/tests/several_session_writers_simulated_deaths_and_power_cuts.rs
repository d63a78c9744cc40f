//! Three session journals opened with `shared_writers` on the simulated
//! file system take turns at random (starts on five shared keys, touches,
//! ends), and at random steps one of them dies (its handle dropped: its
//! owner lock and directory lock go, as the kernel releases them on kill
//! -9) and a survivor notices, ending the dead epoch's sessions; a new
//! writer joins in its place. Then, after a random number of steps, a
//! power cut drops, tears or keeps the unsynced writes. The journal reopens by itself, `verify` finds every
//! lifecycle invariant kept across all the writers (one active session per
//! key, one end per span, closes that end exactly their epoch's sessions),
//! every start a writer was told was durable is there at its LSN, and the
//! reopening writer, finding every other writer dead, leaves no session
//! active.
//!
//! Guards against a turn that decides on a stale table (two active
//! sessions on one key across processes), a survivor that ends a live
//! writer's sessions or misses a dead one's, and a power cut between two
//! writers' turns that leaves a journal needing a person.

use std::collections::BTreeMap;
use std::time::Duration;

use bookend_journal::JournalOptions;
use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_projector::{
    CloseReason, EndReason, SessionJournal, SessionJournalOptions, Sessions, Start, verify,
};
use bookend_tests::{scale, sim_dir, sim_fs};

fn options() -> SessionJournalOptions {
    SessionJournalOptions {
        journal: JournalOptions {
            segment_size_max_bytes: 8192,
            shared_writers: true,
            ..JournalOptions::default()
        },
        // Deaths are noticed when the test says so: the order stays the seed's.
        writer_check_interval: Duration::from_secs(3600),
        ..SessionJournalOptions::default()
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One random command by `j`; records durable starts in `acked`.
fn step(j: &SessionJournal, rng: &mut Rng, n: &mut u64, acked: &mut BTreeMap<String, u64>) {
    match rng.below(4) {
        0 | 1 => {
            *n += 1;
            let id = format!("s{n}");
            let ack = j.start(Start::new(&id).key(format!("k{}", rng.below(5)))).unwrap().wait().unwrap();
            acked.insert(id, ack.lsn.unwrap());
        }
        2 => {
            let id = format!("s{}", 1 + rng.below((*n).max(1)));
            // Refused if unknown: nothing appended, nothing to check.
            let _ = j.end(&id, EndReason::ManualReset).and_then(|p| p.wait());
        }
        _ => {
            let id = format!("s{}", 1 + rng.below((*n).max(1)));
            let _ = j.touch(&id).and_then(|p| p.wait());
        }
    }
}

#[test]
fn writers_that_die_and_a_power_cut_leave_a_journal_that_verifies() {
    let policies = [CrashPolicy::DropUnsynced, CrashPolicy::KeepUnsyncedPrefix(53), CrashPolicy::KeepAllData];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..scale(12, 200) {
        let sim = SimFs::new();
        let open = || SessionJournal::open_with_fs(sim_fs(&sim), sim_dir(), options()).unwrap();
        let mut writers: Vec<SessionJournal> = (0..3).map(|_| open()).collect();
        let (mut n, mut acked, mut deaths) = (0u64, BTreeMap::new(), 0);
        // The power cut falls after a different number of steps each round.
        for _ in 0..1 + rng.below(150) {
            let w = rng.below(writers.len() as u64) as usize;
            step(&writers[w], &mut rng, &mut n, &mut acked);
            if rng.below(25) == 0 {
                drop(writers.swap_remove(w));
                deaths += 1;
                let survivor = rng.below(writers.len() as u64) as usize;
                assert_eq!(writers[survivor].end_dead_writers().unwrap(), 1, "round {round}");
                writers.push(open());
            }
        }
        // A clean close of one writer on the way, then the power cut.
        writers.pop().unwrap().close(CloseReason::Shutdown, Sessions::End).unwrap();
        let crashed = sim.snapshot();
        crashed.crash(policies[round % policies.len()].clone());
        drop(writers);
        let reopened = SessionJournal::open_with_fs(sim_fs(&crashed), sim_dir(), options())
            .unwrap_or_else(|e| panic!("round {round}: the crashed journal did not reopen: {e}"));
        for (id, lsn) in &acked {
            let s =
                reopened.get(id).unwrap().unwrap_or_else(|| panic!("round {round}: durable start {id} lost"));
            assert_eq!(s.start_lsn, *lsn, "round {round}: {id} moved");
        }
        assert!(
            reopened.active().is_empty(),
            "round {round}: {} sessions left active",
            reopened.active().len()
        );
        reopened.close(CloseReason::Shutdown, Sessions::End).unwrap();
        let report = verify(sim_fs(&crashed), &sim_dir(), |_| {}).unwrap();
        assert!(report.violations.is_empty(), "round {round} ({deaths} deaths): {:?}", report.violations);
        assert!(report.corruption.is_none(), "round {round}: {:?}", report.corruption);
    }
}
