//! A gateway killed with SIGKILL while its checkpoints write runs of ended
//! sessions and merge them leaves a store that the next open trusts and
//! that agrees with the journal.
//!
//! The projection store packs ended sessions into runs (a new one each
//! checkpoint, merged four at a time), written in several sled batches
//! before one batch names them. A kill between those batches must leave
//! only blocks that no run names (removed at the next open), never a
//! store that is missing a session or reads an old version of one. A real
//! gateway child checkpoints every 40 events, so each life of a few hundred
//! milliseconds writes and merges dozens of runs, and is killed at a
//! random moment. After every kill the next open must keep the store (no
//! store moved aside), and at the end a fold from LSN 1 must match the
//! store plus the tail byte for byte, with every acknowledged start there.
//! `BOOKEND_SLOW_TESTS=1` kills many more times.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bookend_journal::fs::StdFs;
use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, rebuild_and_compare};
use bookend_tests::gateway::Gateway;
use bookend_tests::{scale, stores_set_aside};

/// Runs one child for `ms` milliseconds after its first start, then kills
/// it; returns the ids whose starts it acknowledged.
fn run_and_kill(dir: &std::path::Path, ms: u64) -> Vec<String> {
    let mut gateway = Gateway::spawn(env!("CARGO_BIN_EXE_session-gateway-child"), dir, Some(40));
    let mut started = gateway.started(1);
    std::thread::sleep(Duration::from_millis(ms));
    started.extend(gateway.kill());
    started
}

#[test]
fn runs_cut_short_by_kill_9_leave_a_store_that_agrees_with_the_journal() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..scale(8, 60) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        acked.extend(run_and_kill(dir.path(), 150 + seed % 350));
        assert_eq!(
            stores_set_aside(dir.path()),
            Vec::<String>::new(),
            "round {round}: the store was not trusted"
        );
    }
    let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
    for id in &acked {
        assert!(journal.get(id).unwrap().is_some(), "acknowledged start of {id} is missing");
    }
    journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
    drop(journal);
    assert_eq!(stores_set_aside(dir.path()), Vec::<String>::new());
    let report =
        rebuild_and_compare(Arc::new(StdFs), dir.path(), &dir.path().join("projection"), 1 << 20).unwrap();
    assert!(report.identical, "the store disagrees with the journal: {:?}", report.differences);
    assert!(report.sessions >= acked.len(), "{} sessions, {} acknowledged", report.sessions, acked.len());
    assert!(acked.len() > 200, "only {} sessions: too few for runs to merge", acked.len());
}
