//! Seed 000 (hermes-agent #28746): `session:end` was emitted only from the
//! `/reset` command, never from the idle-expiry watcher (path A) or the
//! auto-reset branch that replaces a stale session on the same key (path B),
//! so hook subscribers kept orphan "running" rows forever.
//!
//! Path A: a session idles past the reset window; `expire` must append
//! `session:end{reason: idle_expiry}` for it, and a consumer reading the
//! journal sees it. Path B: a new session starts on a key whose session is
//! still active; one atomic batch must end the old id with `superseded`
//! and `next_id` = the new id, then start the new one.

use bookend_projector::{EndReason, ResetPolicy};
use bookend_tests::sessions::{MINUTE, T0, of_type, open, start};

#[test]
fn path_a_idle_expiry_appends_session_end() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    journal.start(start("s-idle", "telegram:42")).unwrap().wait().unwrap();
    journal.start(start("s-busy", "telegram:43")).unwrap().wait().unwrap();

    clock.advance(20 * MINUTE);
    journal.touch("s-busy").unwrap().wait().unwrap();
    clock.advance(15 * MINUTE);
    // The watcher's tick: 35 minutes after the start, idle window 30.
    let ack = journal.expire(clock.now(), ResetPolicy::idle(30)).unwrap().wait().unwrap();
    assert_eq!(ack.events.len(), 1, "only the idle session is due: {:?}", ack.events);

    let ends = of_type(dir.path(), "session:end");
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["session_id"], "s-idle");
    assert_eq!(ends[0]["reason"], "idle_expiry");
    assert_eq!(ends[0]["key"], "telegram:42");
    let s = journal.get("s-idle").unwrap().unwrap();
    assert!(!s.active);
    assert_eq!(s.end_reason, Some(EndReason::IdleExpiry));
    assert!(journal.get("s-busy").unwrap().unwrap().active);

    // A second watcher tick finds nothing more to end.
    let again = journal.expire(clock.now(), ResetPolicy::idle(30)).unwrap().wait().unwrap();
    assert!(again.events.is_empty());
    assert_eq!(of_type(dir.path(), "session:end").len(), 1);
}

#[test]
fn path_b_auto_reset_ends_the_old_session_with_superseded_and_next_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    let old = journal.start(start("s-old", "telegram:42")).unwrap().wait().unwrap();
    clock.advance(90 * MINUTE);
    let new = journal.start(start("s-new", "telegram:42")).unwrap().wait().unwrap();

    assert_eq!(new.events.len(), 2, "end + start in one batch");
    let (end, begin) = (&new.events[0], &new.events[1]);
    assert_eq!(begin.lsn, end.lsn + 1);
    assert_eq!(new.lsn, Some(begin.lsn));
    let end_json = end.to_json();
    assert_eq!(end_json["type"], "session:end");
    assert_eq!(end_json["session_id"], "s-old");
    assert_eq!(end_json["reason"], "superseded");
    assert_eq!(end_json["next_id"], "s-new");
    assert_eq!(begin.to_json()["type"], "session:start");
    assert!(old.lsn < Some(end.lsn));

    // Both events are in the same frame: atomic on disk too.
    let mut reader = bookend_journal::Reader::open(dir.path(), end.lsn).unwrap();
    let frame = reader.next_frame().unwrap().unwrap();
    assert_eq!((frame.first_lsn, frame.count), (end.lsn, 2));

    assert_eq!(journal.active_by_key("telegram:42").unwrap().unwrap().start.session_id, "s-new");
    let old_state = journal.get("s-old").unwrap().unwrap();
    assert_eq!(old_state.next_id.as_deref(), Some("s-new"));
}
