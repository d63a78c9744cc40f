//! Seeds 001 and 003 (hermes-agent): memory providers never ran on idle
//! expiry, and the expiry watcher kept "already flushed" sessions in an
//! in-memory set, so every restart re-flushed every expired session — a
//! flush storm of LLM calls that grew with history.
//!
//! Here expiry ends sessions in the journal, `pending_finalization()` and
//! `pending_flush("memory")` list what still needs doing, and `finalized` /
//! `mark_flushed` record it once. A gateway that restarts ten times — some
//! graceful, some crashes, one in the middle of a flush round — re-flushes
//! nothing that was recorded, and finishes exactly what was left. Finalize
//! failures are counted in the journal, so the attempt cap survives restarts.

use std::collections::BTreeSet;

use bookend_projector::{CloseReason, ResetPolicy, Sessions};
use bookend_tests::sessions::{MINUTE, T0, open, start};

const SESSIONS: usize = 40;

/// What the gateway's expiry watcher does on each tick: flush and finalize
/// whatever is pending, at most `budget` sessions. Returns the ids flushed.
fn watcher_tick(journal: &bookend_projector::SessionJournal, budget: usize) -> Vec<String> {
    let mut flushed = Vec::new();
    for s in journal.pending_finalization().unwrap().into_iter().take(budget) {
        // The expensive part (an LLM call in seed 003) happens here.
        flushed.push(s.start.session_id.clone());
        journal.mark_flushed(&s.start.session_id, "memory").unwrap().wait().unwrap();
        journal.finalized(&s.start.session_id).unwrap().wait().unwrap();
    }
    flushed
}

#[test]
fn expired_sessions_are_flushed_once_whatever_the_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    for i in 0..SESSIONS {
        journal.start(start(&format!("s{i}"), &format!("topic:{i}"))).unwrap().wait().unwrap();
    }
    clock.advance(25 * 60 * MINUTE);
    let ack = journal.expire(clock.now(), ResetPolicy::idle(24 * 60)).unwrap().wait().unwrap();
    assert_eq!(ack.events.len(), SESSIONS);
    assert_eq!(journal.pending_finalization().unwrap().len(), SESSIONS);

    // Half the round, then a crash in the middle of flushing.
    let mut flushed: Vec<String> = watcher_tick(&journal, SESSIONS / 2);
    drop(journal);

    let mut restarts = 0;
    for round in 0..10 {
        let journal = open(dir.path(), &clock);
        restarts += 1;
        flushed.extend(watcher_tick(&journal, usize::MAX));
        assert!(journal.pending_flush("memory").unwrap().is_empty(), "round {round}");
        assert!(journal.pending_finalization().unwrap().is_empty(), "round {round}");
        if round % 2 == 0 {
            journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
        }
        // Odd rounds: the process dies without closing.
    }
    assert_eq!(restarts, 10);
    let unique: BTreeSet<&String> = flushed.iter().collect();
    assert_eq!(flushed.len(), SESSIONS, "re-flushes happened: {flushed:?}");
    assert_eq!(unique.len(), SESSIONS);

    let events = bookend_tests::sessions::events(dir.path());
    let flushes = events.iter().filter(|e| e.body.type_name() == "session:flush").count();
    let finals = events.iter().filter(|e| e.body.type_name() == "session:expiry_finalized").count();
    assert_eq!((flushes, finals), (SESSIONS, SESSIONS), "recorded once each");
}

#[test]
fn finalize_attempts_are_capped_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    journal.start(start("s-flaky", "topic:1")).unwrap().wait().unwrap();
    clock.advance(31 * MINUTE);
    journal.expire(clock.now(), ResetPolicy::idle(30)).unwrap().wait().unwrap();
    drop(journal);

    for attempt in 1..=3u32 {
        let journal = open(dir.path(), &clock);
        let pending = journal.pending_finalization().unwrap();
        assert_eq!(pending.len(), 1, "attempt {attempt}");
        assert_eq!(pending[0].finalize_attempts, attempt - 1);
        journal.finalize_failed("s-flaky", "memory provider timed out").unwrap().wait().unwrap();
    }
    let journal = open(dir.path(), &clock);
    assert!(journal.pending_finalization().unwrap().is_empty(), "cap of 3 attempts not kept");
    let err = journal.finalize_failed("s-flaky", "again").unwrap_err();
    assert_eq!(err.kind(), "attempts_exhausted");
    let s = journal.get("s-flaky").unwrap().unwrap();
    assert_eq!(s.finalize_attempts, 3);
    assert_eq!(s.last_finalize_error.as_deref(), Some("memory provider timed out"));
}
