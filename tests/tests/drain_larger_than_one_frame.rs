//! A shutdown drain, an expiry or a crash recovery with more sessions than
//! one frame can hold still closes every span exactly once.
//!
//! One frame holds at most 65 536 events and `record_size_max_bytes`; a
//! gateway can have more active sessions than that. The events are then
//! appended as consecutive atomic batches, with `journal:close` last. Here
//! the record limit is made tiny so a few hundred sessions need many
//! batches: the drain must succeed, and a power cut at every point inside
//! it must leave a journal whose next open ends whatever was left
//! (`crash_recovered`), so `verify` finds exactly one end per span.

use bookend_journal::JournalOptions;
use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_projector::verify;
use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, Start, StoreLocation};
use bookend_tests::{sim_dir, sim_fs};

const SESSIONS: usize = 300;

fn options() -> SessionJournalOptions {
    SessionJournalOptions {
        journal: JournalOptions { record_size_max_bytes: 2048, ..JournalOptions::default() },
        store: StoreLocation::Disabled,
        ..SessionJournalOptions::default()
    }
}

fn with_active_sessions(sim: &SimFs) -> SessionJournal {
    let journal = SessionJournal::open_with_fs(sim_fs(sim), sim_dir(), options()).unwrap();
    // One at a time, so the file-system calls before the drain are the same
    // in every run and "call N" is a point inside the drain.
    for i in 0..SESSIONS {
        let start = Start::new(format!("session-{i:04}"));
        journal.start(start).unwrap().wait().unwrap();
    }
    journal
}

fn assert_every_span_ended_once(sim: &SimFs, context: &str) {
    let audit = verify(sim_fs(sim), &sim_dir(), |_| {}).unwrap();
    assert_eq!(audit.violations_total, 0, "{context}: {:?}", audit.violations);
    assert_eq!(audit.open_sessions, 0, "{context}");
    assert_eq!(audit.spans, audit.ends, "{context}");
    assert_eq!(audit.sessions, SESSIONS as u64, "{context}");
}

#[test]
fn a_drain_of_many_frames_ends_every_session() {
    let sim = SimFs::new();
    let journal = with_active_sessions(&sim);
    let ack = journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
    assert_eq!(ack.events.len(), SESSIONS + 1);
    assert_eq!(ack.events.last().unwrap().body.type_name(), "journal:close");
    drop(journal);
    assert_every_span_ended_once(&sim, "after the drain");
}

#[test]
fn a_power_cut_inside_a_multi_frame_drain_is_recovered() {
    let calls_before_close = {
        let sim = SimFs::new();
        let journal = with_active_sessions(&sim);
        let before = sim.total_calls();
        journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
        (before, sim.total_calls())
    };
    let (from, to) = calls_before_close;
    assert!(to > from, "the drain made no file-system call");
    for call in from + 1..=to {
        let sim = SimFs::new();
        sim.snapshot_before_call(call);
        let journal = with_active_sessions(&sim);
        journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
        drop(journal);
        // The writer may group the drain's batches differently from run to
        // run; a run with fewer calls has no point `call` to cut at.
        let Some(before_cut) = sim.take_snapshot() else { continue };
        // The drain's frames may share one write: tear it at many points so
        // the cut falls between (and inside) its frames.
        let active = bookend_tests::segment_files(&*sim_fs(&before_cut), &sim_dir()).pop().unwrap();
        let unsynced = before_cut.unsynced_len(&active);
        let mut policies = vec![CrashPolicy::DropUnsynced, CrashPolicy::KeepAllData];
        policies.extend((1..unsynced).step_by(211).map(CrashPolicy::KeepUnsyncedPrefix));
        for policy in policies {
            let crashed = before_cut.snapshot();
            crashed.crash(policy.clone());
            let context = format!("power cut before call {call}, {policy:?}");
            let reopened = SessionJournal::open_with_fs(sim_fs(&crashed), sim_dir(), options()).unwrap();
            assert!(reopened.active().is_empty(), "{context}: sessions left active");
            reopened.close(CloseReason::Shutdown, Sessions::End).unwrap();
            drop(reopened);
            assert_every_span_ended_once(&crashed, &context);
        }
    }
}
