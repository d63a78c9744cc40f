//! How the fold reads a journal several writer processes wrote: epochs
//! opened with `journal:join` stay open side by side, `journal:turn` says
//! which epoch writes, each session belongs to the epoch that started or
//! last reopened it, and a survivor's close of a dead epoch
//! (`writer_died`) ends exactly that epoch's sessions.
//!
//! It guards against the failure seed 002 is about, seen from the
//! auditor's side: a process killed -9 beside others must leave a journal
//! that `verify` finds clean once a survivor has closed its epoch, and one
//! that ends another live process's sessions, or claims ends it did not
//! write, must be reported. A single writer's `journal:open` still
//! supersedes every epoch before it, as it always did.

use std::sync::Arc;

use bookend_journal::fs::StdFs;
use bookend_journal::{Batch, Durability, Journal, JournalOptions};
use bookend_projector::{
    CloseReason, EndReason, EventBody, Inspection, SessionsOnClose, StartFields, StoredEvent, verify,
};

fn join(epoch: u64, pid: u32, keep_on_death: bool) -> EventBody {
    EventBody::JournalJoin { epoch, pid, host: "h".into(), version: "t".into(), keep_on_death }
}

fn start(id: &str, key: &str) -> EventBody {
    EventBody::SessionStart(
        StartFields { session_id: id.into(), key: Some(key.into()), ..StartFields::default() }.into(),
    )
}

fn end(id: &str, key: &str, reason: EndReason) -> EventBody {
    EventBody::SessionEnd { session_id: id.into(), key: Some(key.into()), reason, next_id: None }
}

fn close(epoch: u64, reason: CloseReason, sessions: SessionsOnClose) -> EventBody {
    EventBody::JournalClose { epoch, reason, sessions }
}

fn write(dir: &std::path::Path, events: &[EventBody]) {
    let journal = Journal::open(dir, JournalOptions::default()).unwrap();
    for body in events {
        let mut batch = Batch::new();
        batch.push(&StoredEvent { at: 1_000, body: body.clone() }).unwrap();
        journal.append_blocking(batch, Durability::Buffered).unwrap();
    }
    journal.close().unwrap();
}

fn messages(dir: &std::path::Path) -> Vec<(u64, String)> {
    let report = verify(Arc::new(StdFs), dir, |_| {}).unwrap();
    report.violations.iter().map(|v| (v.lsn, v.message.clone())).collect()
}

/// Epoch 1 (a gateway) and epoch 2 (a CLI) write turn by turn; epoch 2
/// reopens a session of epoch 1 (it moves to epoch 2) and dies; epoch 1
/// closes it, ending only epoch 2's sessions, then closes itself.
fn two_writers_one_dies() -> Vec<EventBody> {
    vec![
        join(1, 100, false),
        start("g1", "kg1"),
        start("g2", "kg2"),
        join(2, 200, false),
        start("c1", "kc1"),
        EventBody::JournalTurn { epoch: 1 },
        end("g2", "kg2", EndReason::Completed),
        EventBody::JournalTurn { epoch: 2 },
        EventBody::SessionReopen {
            session_id: "g2".into(),
            key: Some("kg2".into()),
            reason: "resume".into(),
        },
        EventBody::JournalTurn { epoch: 1 },
        end("c1", "kc1", EndReason::CrashRecovered),
        end("g2", "kg2", EndReason::CrashRecovered),
        close(2, CloseReason::WriterDied, SessionsOnClose::Ended),
        end("g1", "kg1", EndReason::Shutdown),
        close(1, CloseReason::Shutdown, SessionsOnClose::Ended),
    ]
}

#[test]
fn a_survivor_closing_a_dead_epoch_leaves_a_clean_journal() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &two_writers_one_dies());
    assert_eq!(messages(dir.path()), Vec::<(u64, String)>::new());
    let inspection = Inspection::open_with_fs(Arc::new(StdFs), dir.path()).unwrap();
    let sessions = inspection.all_sessions().unwrap();
    assert_eq!(sessions.len(), 3);
    assert!(sessions.iter().all(|s| !s.active), "{sessions:?}");
}

#[test]
fn closes_that_break_ownership_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            join(1, 100, false),
            start("g1", "kg1"),
            join(2, 200, false),
            start("c1", "kc1"),
            // A survivor closing epoch 2 as ended while its session is active.
            EventBody::JournalTurn { epoch: 1 },
            close(2, CloseReason::WriterDied, SessionsOnClose::Ended),
            // A turn of the closed epoch.
            EventBody::JournalTurn { epoch: 2 },
            // Epoch 1's own close as ended while its session is active.
            EventBody::JournalTurn { epoch: 1 },
            close(1, CloseReason::Shutdown, SessionsOnClose::Ended),
        ],
    );
    let found = messages(dir.path());
    let texts: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        texts,
        [
            "close says sessions ended, but 1 remain active",
            "a turn of epoch 2, which is not open",
            "close says sessions ended, but 2 remain active",
        ],
        "{found:?}"
    );
    assert_eq!(found.iter().map(|(lsn, _)| *lsn).collect::<Vec<_>>(), [6, 7, 9]);
}

#[test]
fn a_single_writers_open_still_supersedes_the_epochs_before_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            join(1, 100, false),
            join(2, 200, false),
            EventBody::JournalOpen { epoch: 3, pid: 300, host: "h".into(), version: "t".into() },
            close(3, CloseReason::Shutdown, SessionsOnClose::Ended),
        ],
    );
    assert_eq!(messages(dir.path()), Vec::<(u64, String)>::new());
}

#[test]
fn the_open_epochs_name_their_processes_and_the_sessions_each_owns() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = two_writers_one_dies();
    events.truncate(9); // before epoch 2 dies: g2 was reopened by epoch 2
    write(dir.path(), &events);
    let inspection = Inspection::open_with_fs(Arc::new(StdFs), dir.path()).unwrap();
    let epochs: Vec<(u64, u32, u64)> =
        inspection.open_epochs().iter().map(|e| (e.epoch, e.pid, e.sessions_owned)).collect();
    assert_eq!(epochs, [(1, 100, 1), (2, 200, 2)]);
}
