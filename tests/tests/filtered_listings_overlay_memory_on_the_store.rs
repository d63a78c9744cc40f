//! Filtered session listings (`sessions_where`, `ended_by_reason`,
//! `pending_flush`) read the checkpoint store without the command lock,
//! overlaid with the sessions in memory, and give exactly what filtering
//! the full listing gives, with each session's newest state.
//!
//! Sessions are spread over every place a state can be: ended and only in
//! the store, ended in the store but changed since (a flush marker after a
//! checkpoint, so memory is newer than the store), active (in the store's
//! `a/` records and in memory), and started or ended after the last
//! checkpoint (memory only). The same listings are taken with and without a
//! store, and while another thread keeps issuing commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bookend_projector::{
    EndReason, SessionJournal, SessionJournalOptions, SessionState, Start, StoreLocation,
};

fn ids(sessions: &[SessionState]) -> Vec<&str> {
    sessions.iter().map(|s| s.start.session_id.as_str()).collect()
}

fn start(journal: &SessionJournal, id: &str) {
    let start = Start::new(id).key(format!("key-{id}"));
    journal.start(start).unwrap().wait().unwrap();
}

/// Writes the same history through `journal`.
fn history(journal: &SessionJournal) {
    for i in 0..300 {
        let id = format!("old-{i:03}");
        start(journal, &id);
        let reason = if i % 3 == 0 { EndReason::IdleExpiry } else { EndReason::Completed };
        if i % 10 != 0 {
            journal.end(&id, reason).unwrap().wait().unwrap();
        }
    }
    journal.checkpoint().unwrap();
    // Memory is now newer than the store for these.
    for i in (0..300).step_by(7) {
        journal.mark_flushed(&format!("old-{i:03}"), "nightly").unwrap().wait().unwrap();
    }
    for i in 0..50 {
        let id = format!("new-{i:02}");
        start(journal, &id);
        if i % 2 == 0 {
            journal.end(&id, EndReason::IdleExpiry).unwrap().wait().unwrap();
        }
    }
}

fn open(dir: &std::path::Path, store: StoreLocation) -> SessionJournal {
    let options = SessionJournalOptions {
        store,
        // Only the explicit checkpoint above: the layout stays as described.
        checkpoint_every_events: u64::MAX,
        checkpoint_interval: std::time::Duration::from_secs(3600),
        // A fixed clock, so both journals record the same times.
        clock: bookend_projector::ManualClock::new(bookend_tests::sessions::T0),
        ..SessionJournalOptions::default()
    };
    SessionJournal::open(dir, options).unwrap()
}

#[test]
fn filtered_listings_equal_the_filtered_full_listing_with_and_without_a_store() {
    let with_store = tempfile::tempdir().unwrap();
    let without_store = tempfile::tempdir().unwrap();
    let stored = open(with_store.path(), StoreLocation::InJournalDir);
    let in_memory = open(without_store.path(), StoreLocation::Disabled);
    history(&stored);
    history(&in_memory);

    for journal in [&stored, &in_memory] {
        let all = journal.all_sessions().unwrap();
        assert_eq!(all.len(), 350);
        let sorted = {
            let mut v = ids(&all);
            v.sort();
            v
        };
        assert_eq!(ids(&all), sorted, "listings are in id order");

        let idle: Vec<SessionState> =
            all.iter().filter(|s| s.end_reason == Some(EndReason::IdleExpiry)).cloned().collect();
        assert_eq!(journal.ended_by_reason(&EndReason::IdleExpiry).unwrap(), idle);
        assert_eq!(idle.len(), 90 + 25);

        let unflushed: Vec<SessionState> =
            all.iter().filter(|s| !s.active && !s.flush_markers.contains_key("nightly")).cloned().collect();
        assert_eq!(journal.pending_flush("nightly").unwrap(), unflushed);
        // 270 old sessions ended; every 7th was flushed after the
        // checkpoint (43), 5 of those (multiples of 70) while still active.
        // 25 new ones ended.
        assert_eq!(unflushed.len(), 270 - (43 - 5) + 25);

        let active = journal.sessions_where(|s| s.active).unwrap();
        assert_eq!(active, journal.active());
        assert_eq!(active.len(), 30 + 25);
    }
    let (a, b) = (stored.all_sessions().unwrap(), in_memory.all_sessions().unwrap());
    assert!(a == b, "the store and the in-memory fold list different sessions");
}

#[test]
fn a_listing_taken_while_commands_run_misses_nothing_that_existed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(open(dir.path(), StoreLocation::InJournalDir));
    history(&journal);
    let before = journal.all_sessions().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (journal, stop) = (journal.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("during-{i:05}");
                start(&journal, &id);
                journal.end(&id, EndReason::Completed).unwrap().wait().unwrap();
                if i % 100 == 99 {
                    journal.checkpoint().unwrap();
                }
                i += 1;
            }
            i
        })
    };
    for _ in 0..20 {
        let listed = journal.all_sessions().unwrap();
        let listed_ids: std::collections::HashSet<&str> =
            listed.iter().map(|s| s.start.session_id.as_str()).collect();
        for s in &before {
            assert!(listed_ids.contains(s.start.session_id.as_str()), "{} is missing", s.start.session_id);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert_eq!(journal.all_sessions().unwrap().len(), before.len() + written);
}
