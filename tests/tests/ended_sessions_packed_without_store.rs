//! A fold without a checkpoint store (`verify`, `replay`, read-only tools,
//! a journal opened with `StoreLocation::Disabled`) keeps ended sessions
//! encoded once they are more than `FOLD_CHECKPOINT_EVERY_EVENTS` events
//! behind, and loses nothing by it.
//!
//! Session A ends; thousands of other sessions follow, so A is packed
//! before it is named again. Then a journal written below the rules
//! starts A again, ends it again, touches it, repeats a flush marker and a
//! finalization: `verify` must report the same violations as on the same
//! journal without the filler, and folding must give A the same state.
//! Through `SessionJournal` without a store, a packed session must still
//! answer a repeated start as a duplicate and accept flush, finalize and
//! reopen.

use std::sync::Arc;

use bookend_journal::fs::StdFs;
use bookend_journal::{Batch, Durability, Journal, JournalOptions};
use bookend_projector::verify;
use bookend_projector::{
    CloseReason, EndReason, EventBody, SessionJournal, SessionJournalOptions, SessionState, Sessions, Start,
    StartFields, StoreLocation, StoredEvent,
};
use bookend_projector::{FOLD_CHECKPOINT_EVERY_EVENTS, Inspection};

/// Start+end pairs between A's end and its next mention: enough for A to be
/// packed at least once.
const FILLER_SESSIONS: usize = FOLD_CHECKPOINT_EVERY_EVENTS as usize;

fn start(id: &str, key: &str) -> EventBody {
    EventBody::SessionStart(
        StartFields {
            session_id: id.into(),
            key: Some(key.into()),
            platform: Some("telegram".into()),
            ..StartFields::default()
        }
        .into(),
    )
}

fn end(id: &str, key: &str, reason: EndReason) -> EventBody {
    EventBody::SessionEnd { session_id: id.into(), key: Some(key.into()), reason, next_id: None }
}

fn flush(marker: &str) -> EventBody {
    EventBody::SessionFlush { session_id: "A".into(), key: Some("kA".into()), marker: marker.into() }
}

fn finalized() -> EventBody {
    EventBody::SessionExpiryFinalized { session_id: "A".into(), key: Some("kA".into()) }
}

/// Writes, below the lifecycle rules, a journal where A ends, `filler`
/// other sessions start and end, and then A is named again: five times
/// against the rules, then legitimately (a new marker, a reopen, an end).
fn write_journal(dir: &std::path::Path, filler: usize) {
    let mut events = vec![
        EventBody::JournalOpen { epoch: 1, pid: 1, host: "h".into(), version: "0".into() },
        start("A", "kA"),
        flush("m1"),
        end("A", "kA", EndReason::IdleExpiry),
        finalized(),
    ];
    for i in 0..filler {
        let (id, key) = (format!("filler-{i:05}"), format!("k{i}"));
        events.push(start(&id, &key));
        events.push(end(&id, &key, EndReason::Completed));
    }
    events.extend([
        start("A", "kA"),
        end("A", "kA", EndReason::Shutdown),
        EventBody::SessionActivity { session_id: "A".into(), key: Some("kA".into()) },
        flush("m1"),
        finalized(),
        flush("m2"),
        EventBody::SessionReopen { session_id: "A".into(), key: Some("kA".into()), reason: "user".into() },
        end("A", "kA", EndReason::Completed),
        EventBody::JournalClose {
            epoch: 1,
            reason: CloseReason::Shutdown,
            sessions: bookend_projector::SessionsOnClose::Ended,
        },
    ]);
    let journal = Journal::open(dir, JournalOptions::default()).unwrap();
    for chunk in events.chunks(1000) {
        let mut batch = Batch::new();
        for body in chunk {
            batch.push(&StoredEvent { at: 1_000, body: body.clone() }).unwrap();
        }
        journal.append_blocking(batch, Durability::Buffered).unwrap();
    }
    journal.close().unwrap();
}

fn session_a(dir: &std::path::Path) -> (SessionState, usize) {
    let all = Inspection::open_with_fs(Arc::new(StdFs), dir).unwrap().all_sessions().unwrap();
    let a = all.iter().find(|s| s.id() == "A").cloned().unwrap();
    (a, all.len())
}

#[test]
fn verify_and_fold_see_a_packed_session_as_they_see_a_fresh_one() {
    let plain = tempfile::tempdir().unwrap();
    let filled = tempfile::tempdir().unwrap();
    write_journal(plain.path(), 0);
    write_journal(filled.path(), FILLER_SESSIONS);

    let plain_report = verify(Arc::new(StdFs), plain.path(), |_| {}).unwrap();
    let filled_report = verify(Arc::new(StdFs), filled.path(), |_| {}).unwrap();
    let shift = 2 * FILLER_SESSIONS as u64;
    let found = |r: &bookend_projector::VerifyReport, shift: u64| -> Vec<(u64, String)> {
        r.violations.iter().map(|v| (v.lsn - shift, v.message.clone())).collect()
    };
    let expected_messages = [
        "a second start for the same session",
        "a second end (shutdown) for a span already ended at LSN",
        "activity after the session ended",
        "flush marker \"m1\" recorded twice",
        "expiry_finalized recorded twice",
    ];
    let plain_found = found(&plain_report, 0);
    assert_eq!(plain_found.len(), expected_messages.len(), "{plain_found:?}");
    for ((lsn, message), expected) in plain_found.iter().zip(expected_messages) {
        assert!(message.starts_with(expected), "LSN {lsn}: {message:?}, expected {expected:?}");
    }
    // The LSN A ended at is named in the second-end message; it is the same
    // in both journals (it comes before the filler).
    assert_eq!(found(&filled_report, shift), plain_found);
    assert_eq!(filled_report.sessions, 1 + FILLER_SESSIONS as u64);
    assert_eq!(filled_report.spans, 2 + FILLER_SESSIONS as u64);
    assert_eq!(filled_report.ends, 2 + FILLER_SESSIONS as u64);
    assert_eq!(filled_report.open_sessions, 0);

    let (plain_a, plain_count) = session_a(plain.path());
    let (filled_a, filled_count) = session_a(filled.path());
    assert_eq!(plain_count, 1);
    assert_eq!(filled_count, 1 + FILLER_SESSIONS);
    // Only what happened after the filler moves by its length.
    let mut expected = plain_a.clone();
    expected.end_lsn = plain_a.end_lsn.map(|lsn| lsn + shift);
    if let Some(lsn) = expected.flush_markers.get_mut("m2") {
        *lsn += shift;
    }
    assert_eq!(filled_a, expected);
    assert_eq!(filled_a.spans, 2);
    assert!(filled_a.flush_markers.contains_key("m1") && filled_a.flush_markers.contains_key("m2"));
    assert!(filled_a.expiry_finalized_lsn.is_some() && !filled_a.active);
}

#[test]
fn a_journal_without_a_store_still_knows_its_ended_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        SessionJournalOptions { store: StoreLocation::Disabled, ..SessionJournalOptions::default() };
    let journal = SessionJournal::open(dir.path(), options).unwrap();
    let a = Start::new("A").key("kA");
    let started = journal.start(a.clone()).unwrap().wait().unwrap();
    journal.end("A", EndReason::IdleExpiry).unwrap().wait().unwrap();
    let mut pending = Vec::new();
    for i in 0..FILLER_SESSIONS {
        let id = format!("filler-{i:05}");
        pending.push(journal.start(Start::new(id.clone())).unwrap());
        pending.push(journal.end(&id, EndReason::Completed).unwrap());
    }
    for p in pending {
        p.wait().unwrap();
    }
    // A was packed by now; every rule that needs its state still holds.
    let again = journal.start(a).unwrap().wait().unwrap();
    assert!(again.duplicate);
    assert_eq!(again.lsn, started.lsn);
    assert!(journal.touch("A").is_err(), "a touch after the end is refused");
    assert!(journal.mark_flushed("A", "m1").unwrap().wait().unwrap().lsn.is_some());
    assert!(journal.mark_flushed("A", "m1").unwrap().wait().unwrap().duplicate);
    assert_eq!(journal.pending_finalization().unwrap().len(), 1);
    journal.finalized("A").unwrap().wait().unwrap();
    assert!(journal.finalized("A").unwrap().wait().unwrap().duplicate);
    journal.reopen("A", "user_came_back").unwrap().wait().unwrap();
    let a = journal.get("A").unwrap().unwrap();
    assert!(a.active);
    assert_eq!(a.spans, 2);
    assert_eq!(journal.all_sessions().unwrap().len(), 1 + FILLER_SESSIONS);
    journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
    let report = verify(Arc::new(StdFs), dir.path(), |_| {}).unwrap();
    assert_eq!(report.exit_code(), 0, "{:?}", report.violations);
    assert_eq!(report.spans, 2 + FILLER_SESSIONS as u64);
}
