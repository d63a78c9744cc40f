//! Restarting replays only the tail after the last checkpoint, so open cost
//! does not grow with history; and a missing, corrupt or stale checkpoint
//! is rebuilt from the journal with the same result.
//!
//! Two journals with 10× different histories are closed (which saves a
//! checkpoint) and reopened: both opens must come from the checkpoint and
//! fold only the handful of events after it. Then the sled store is
//! deleted, replaced by garbage, and made stale (ahead of the journal):
//! every open must still give exactly the sessions it had. (The measured
//! open times for 1M events are in docs/performance-log/2026-11-21.md.)

use bookend_projector::{CloseReason, EndReason, SessionJournal, Sessions};
use bookend_tests::sessions::{T0, open, start};

fn build(dir: &std::path::Path, sessions: usize) -> Vec<bookend_projector::SessionState> {
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir, &clock);
    let pendings: Vec<_> = (0..sessions)
        .flat_map(|i| {
            let id = format!("s{i}");
            let started = journal.start(start(&id, &format!("k{}", i % 50))).unwrap();
            let ended = (i % 3 == 0).then(|| journal.end(&id, EndReason::Completed).unwrap());
            std::iter::once(started).chain(ended)
        })
        .collect();
    for p in pendings {
        p.wait().unwrap();
    }
    let all = journal.all_sessions().unwrap();
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    all
}

fn reopen(dir: &std::path::Path) -> SessionJournal {
    open(dir, &bookend_projector::ManualClock::new(T0 + 1))
}

#[test]
fn open_replays_only_the_tail_after_the_checkpoint() {
    for sessions in [300, 3000] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), sessions);
        let journal = reopen(dir.path());
        let report = journal.open_report();
        assert!(report.from_checkpoint, "{sessions}: no checkpoint used: {report:?}");
        assert!(!dir.path().join("projection.broken").exists(), "a store that was only busy was moved aside");
        assert!(report.replayed_events <= 2, "{sessions}: replayed {} events", report.replayed_events);
    }
}

#[test]
fn a_lost_corrupt_or_stale_checkpoint_is_rebuilt_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let expected = build(dir.path(), 500);
    let store = dir.path().join("projection");
    let same_sessions = |journal: &SessionJournal| {
        let mut got = journal.all_sessions().unwrap();
        // The new epoch's journal:open touches no session.
        got.retain(|s| s.start.session_id.starts_with('s'));
        assert_eq!(got.len(), expected.len(), "session count");
        if let Some((a, b)) = got.iter().zip(&expected).find(|(a, b)| a != b) {
            panic!("session differs after rebuild:\n got {a:?}\nwant {b:?}");
        }
    };

    std::fs::remove_dir_all(&store).unwrap();
    let journal = reopen(dir.path());
    assert!(!journal.open_report().from_checkpoint);
    same_sessions(&journal);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);

    for entry in std::fs::read_dir(&store).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::write(&path, b"this is not a sled file").unwrap();
        }
    }
    let journal = reopen(dir.path());
    assert!(!journal.open_report().from_checkpoint);
    same_sessions(&journal);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);

    // A checkpoint ahead of the journal (say, after `repair` cut the tail):
    // save one from a longer journal, then swap in a shorter journal.
    let other = tempfile::tempdir().unwrap();
    build(other.path(), 600);
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&other.path().join("projection"), &store);
    let journal = reopen(dir.path());
    assert!(!journal.open_report().from_checkpoint, "a checkpoint ahead of the journal was trusted");
    same_sessions(&journal);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
