//! Two session journals opened with `shared_writers` on one directory (two
//! handles: the kernel's flocks treat them as two processes) keep every
//! lifecycle invariant across each other: a start in B on a key active in
//! A supersedes A's session in one batch naming `next_id`; ends are
//! idempotent whichever writer repeats them; each sees the other's
//! sessions; a clean close of one ends only its own sessions; and when one
//! goes away without closing (its owner lock released, as the kernel does
//! on kill -9), the other ends exactly its sessions `crash_recovered` and
//! closes its epoch `writer_died` within the check interval.
//!
//! It guards against the failure seed 002 is about: a gateway of several
//! processes, where a killed process's sessions stay open for ever because
//! only the next open of the same single writer would have ended them.

use std::time::{Duration, Instant};

use bookend_journal::JournalOptions;
use bookend_projector::{
    CloseReason, EndReason, OnUnclean, SessionJournal, SessionJournalOptions, Sessions, Start, verify,
};

fn options() -> SessionJournalOptions {
    SessionJournalOptions {
        journal: JournalOptions { shared_writers: true, ..JournalOptions::default() },
        writer_check_interval: Duration::from_millis(50),
        ..SessionJournalOptions::default()
    }
}

fn start(j: &SessionJournal, id: &str, key: &str) -> bookend_projector::Ack {
    j.start(Start::new(id).key(key)).unwrap().wait().unwrap()
}

fn clean(dir: &std::path::Path) -> bool {
    let report = verify(std::sync::Arc::new(bookend_journal::fs::StdFs), dir, |_| {}).unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    report.corruption.is_none()
}

#[test]
fn two_writers_keep_the_invariants_across_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let a = SessionJournal::open(&dir, options()).unwrap();
    let b = SessionJournal::open(&dir, options()).unwrap();
    assert_ne!(a.open_report().epoch, b.open_report().epoch);
    start(&a, "a1", "telegram:1");
    start(&a, "a2", "telegram:2");
    let ack = start(&b, "b1", "telegram:1");
    assert_eq!(ack.events.len(), 3, "turn, the end of a1 (superseded) and the start: {:?}", ack.events);
    let a1 = a.get("a1").unwrap().unwrap();
    assert!(!a1.active && a1.end_reason == Some(EndReason::Superseded), "{a1:?}");
    assert_eq!(a.active_by_key("telegram:1").unwrap().unwrap().id(), "b1");
    // An end repeated by the other writer answers the first end.
    let first = a.end("b1", EndReason::ManualReset).unwrap().wait().unwrap();
    let again = b.end("b1", EndReason::IdleExpiry).unwrap().wait().unwrap();
    assert!(again.duplicate && again.lsn == first.lsn && again.reason == Some(EndReason::ManualReset));
    start(&b, "b2", "slack:9");
    // A clean close of A ends a2 and leaves b2 alone.
    a.close(CloseReason::Shutdown, Sessions::End).unwrap();
    assert!(b.get("b2").unwrap().unwrap().active);
    assert_eq!(b.get("a2").unwrap().unwrap().end_reason, Some(EndReason::Shutdown));
    b.close(CloseReason::Shutdown, Sessions::End).unwrap();
    assert!(clean(&dir));
}

#[test]
fn a_writer_that_vanishes_has_its_sessions_ended_by_the_survivor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let survivor = SessionJournal::open(&dir, options()).unwrap();
    let doomed = SessionJournal::open(&dir, options()).unwrap();
    let dead_epoch = doomed.open_report().epoch;
    start(&survivor, "s1", "k1");
    start(&doomed, "d1", "k2");
    start(&doomed, "d2", "k3");
    // A session reopened by another process moves to it: the doomed
    // process's death leaves it alone.
    start(&doomed, "moved", "k4");
    survivor.end("moved", EndReason::ManualReset).unwrap().wait().unwrap();
    doomed.reopen("moved", "resume").unwrap().wait().unwrap();
    assert!(survivor.reopen("moved", "resume").is_err(), "active: nothing to reopen");
    survivor.end("moved", EndReason::ManualReset).unwrap().wait().unwrap();
    survivor.reopen("moved", "resume").unwrap().wait().unwrap();
    drop(doomed); // no close: the owner lock is released, as on kill -9
    let died = Instant::now();
    let deadline = died + Duration::from_secs(2);
    while survivor.get("d2").unwrap().unwrap().active {
        assert!(Instant::now() < deadline, "the survivor did not end the dead writer's sessions within 2 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    for id in ["d1", "d2"] {
        assert_eq!(survivor.get(id).unwrap().unwrap().end_reason, Some(EndReason::CrashRecovered));
    }
    assert!(survivor.get("s1").unwrap().unwrap().active, "the survivor's own session is untouched");
    assert!(survivor.get("moved").unwrap().unwrap().active, "reopened by the survivor, so the survivor's");
    assert!(survivor.writers().iter().all(|w| w.epoch != dead_epoch), "{:?}", survivor.writers());
    survivor.close(CloseReason::Shutdown, Sessions::End).unwrap();
    assert!(clean(&dir));
}

#[test]
fn a_writer_that_asked_to_keep_has_its_sessions_kept_then_ended_by_the_last_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let survivor = SessionJournal::open(&dir, options()).unwrap();
    let keeper =
        SessionJournal::open(&dir, SessionJournalOptions { on_unclean: OnUnclean::Keep, ..options() })
            .unwrap();
    start(&keeper, "kept", "k");
    drop(keeper);
    let deadline = Instant::now() + Duration::from_secs(2);
    while survivor.writers().len() > 1 {
        assert!(Instant::now() < deadline, "the dead keeper's epoch was not closed within 2 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(survivor.get("kept").unwrap().unwrap().active, "kept for the gateway to resume");
    survivor.close(CloseReason::Shutdown, Sessions::End).unwrap();
    let kept = SessionJournal::open(&dir, options()).unwrap().get("kept").unwrap().unwrap();
    assert_eq!(kept.end_reason, Some(EndReason::Shutdown), "the last writer's close ends orphans");
}

#[test]
fn the_next_open_ends_what_writers_that_all_died_left() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    // Watchers that never look: every writer dies before any notices.
    let blind = SessionJournalOptions { writer_check_interval: Duration::from_secs(3600), ..options() };
    let writers: Vec<SessionJournal> =
        (0..3).map(|_| SessionJournal::open(&dir, blind.clone()).unwrap()).collect();
    for (i, j) in writers.iter().enumerate() {
        start(j, &format!("s{i}"), &format!("k{i}"));
    }
    drop(writers);
    let j = SessionJournal::open(&dir, options()).unwrap();
    let mut ended = j.open_report().crash_recovered.clone();
    ended.sort();
    assert_eq!(ended, ["s0", "s1", "s2"]);
    assert_eq!(j.writers().len(), 1, "only the new writer is open: {:?}", j.writers());
    j.close(CloseReason::Shutdown, Sessions::End).unwrap();
    assert!(clean(&dir));
    let owners = std::fs::read_dir(dir.join(bookend_projector::WRITERS_DIR_NAME)).unwrap().count();
    assert_eq!(owners, 0, "every owner file is removed once its epoch is closed");
}
