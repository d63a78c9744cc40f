//! Seed 002 (hermes-agent): `end_session()` ran only on happy-path exits, so
//! after SIGKILL, OOM kills and crashes 29% of sessions were left with
//! `ended_at = NULL` forever.
//!
//! A real gateway process is killed with SIGKILL at random moments, again and
//! again, each new process recovering the journal the last one left. Every
//! open after a hard exit must end the sessions the dead process left active
//! (`crash_recovered`, in the same batch as the new `journal:open`), so after
//! the final open and a graceful close, `verify` finds zero sessions with a
//! start and no end, zero invariant violations, and exactly one end per span.
//! `BOOKEND_SLOW_TESTS=1` kills many more times.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bookend_journal::fs::StdFs;
use bookend_projector::verify;
use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions};
use bookend_tests::gateway::Gateway;
use bookend_tests::scale;

/// Runs one child until it has reported `min_starts` sessions, plus a random
/// pause, then kills it. Returns the ids it reported.
fn run_and_kill(dir: &std::path::Path, min_starts: usize, pause_ms: u64) -> Vec<String> {
    let mut gateway = Gateway::spawn(env!("CARGO_BIN_EXE_session-gateway-child"), dir, None);
    let mut started = gateway.started(min_starts);
    std::thread::sleep(Duration::from_millis(pause_ms));
    started.extend(gateway.kill());
    started
}

#[test]
fn sessions_of_a_killed_gateway_are_all_ended_on_the_next_open() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let kills = scale(4, 40);
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for round in 0..kills {
        reported.extend(run_and_kill(dir.path(), 5, (round as u64 * 37) % 50));
    }

    let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
    let report = journal.open_report().clone();
    assert!(report.unclean, "the last process was killed, so its epoch is open");
    assert!(!report.crash_recovered.is_empty(), "the killed gateway had active sessions");
    assert!(journal.active().is_empty(), "sessions of a dead process are still active");
    for id in &reported {
        let s = journal.get(id).unwrap().unwrap_or_else(|| panic!("acknowledged start of {id} is missing"));
        assert!(!s.active, "{id} leaked");
    }
    journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
    drop(journal);

    let audit = verify(Arc::new(StdFs), dir.path(), |_| {}).unwrap();
    assert_eq!(audit.violations_total, 0, "{:?}", audit.violations);
    assert_eq!(audit.open_sessions, 0);
    assert_eq!(audit.spans, audit.ends, "every span closed by exactly one end");
    assert!(audit.corruption.is_none());
    let recovered = audit.ends_by_reason.get("crash_recovered").copied().unwrap_or(0);
    assert!(recovered >= kills as u64, "each kill left at least one session to recover ({recovered})");
    eprintln!("{kills} kills, {} sessions, {} ended crash_recovered, 0 leaked", audit.sessions, recovered);
}
