//! Seed 004 (OpenClaw #57790): gateway shutdown and restart closed the
//! process without ending its active sessions, so `session_end` consumers
//! accumulated ghost "active" rows (11 orphans, 63 timeouts a day).
//!
//! `close(reason, Sessions::End)` ends every active session with `shutdown`
//! or `restart` and closes the epoch, all in one atomic batch; the next
//! open finds nothing to recover. `close(Restart, Sessions::Keep)` leaves
//! the sessions open for the next epoch, which resumes them; the reaper
//! then closes those that never come back, and only those.

use bookend_projector::{CloseReason, EndReason, Sessions};
use bookend_tests::sessions::{MINUTE, T0, events, open, start};

#[test]
fn shutdown_with_end_closes_every_session_in_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    for i in 0..11 {
        journal.start(start(&format!("s{i}"), &format!("chat:{i}"))).unwrap().wait().unwrap();
    }
    journal.end("s3", EndReason::ManualReset).unwrap().wait().unwrap();
    let ack = journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
    assert_eq!(ack.events.len(), 11, "10 ends and the journal:close");
    let close = ack.events.last().unwrap().to_json();
    assert_eq!(close["type"], "journal:close");
    assert_eq!(close["sessions"], "ended");
    assert!(ack.events[..10].iter().all(|e| e.to_json()["reason"] == "shutdown"));

    // One frame on disk: the drain is atomic.
    let mut reader = bookend_journal::Reader::open(dir.path(), ack.events[0].lsn).unwrap();
    let frame = reader.next_frame().unwrap().unwrap();
    assert_eq!((frame.first_lsn, frame.count), (ack.events[0].lsn, 11));
    drop(journal);

    let journal = open(dir.path(), &clock);
    assert!(!journal.open_report().unclean);
    assert!(journal.open_report().crash_recovered.is_empty());
    assert!(journal.active().is_empty());
    let ends = events(dir.path()).iter().filter(|e| e.body.type_name() == "session:end").count();
    assert_eq!(ends, 11, "every session ended exactly once");
}

#[test]
fn restart_with_keep_resumes_sessions_and_the_reaper_closes_strays() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    for i in 0..4 {
        journal.start(start(&format!("s{i}"), &format!("chat:{i}"))).unwrap().wait().unwrap();
    }
    let ack = journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    assert_eq!(ack.events.len(), 1);
    assert_eq!(ack.events[0].to_json()["sessions"], "kept");
    drop(journal);

    clock.advance(MINUTE);
    let journal = open(dir.path(), &clock);
    assert!(!journal.open_report().unclean);
    assert_eq!(journal.active().len(), 4, "kept sessions are resumed");
    // Two users come back; two never do.
    journal.touch("s0").unwrap().wait().unwrap();
    journal.touch("s2").unwrap().wait().unwrap();
    // 90 s after the restart: only the two that never came back are stale.
    clock.advance(MINUTE);
    let reaped = journal.reap(clock.now(), 90_000).unwrap().wait().unwrap();
    let ids: Vec<&str> = reaped.events.iter().filter_map(|e| e.body.session_id()).collect();
    assert_eq!(ids, ["s1", "s3"]);
    assert!(reaped.events.iter().all(|e| e.to_json()["reason"] == "reaped"));
    let active: Vec<String> = journal.active().into_iter().map(|s| s.start.session_id.clone()).collect();
    assert_eq!(active, ["s0", "s2"]);
}
