//! A power cut at any file-system call of a session journal — while it
//! creates the journal and its manifest, rotates segments (seal records,
//! manifest updates), or a consumer replaces its cursor file — leaves a
//! journal that opens by itself with its identity, every durable command,
//! and a cursor that is never ahead of it.
//!
//! The workload runs a `SessionJournal` entirely on the simulated file
//! system (no projection store): durable starts across several segments,
//! and a consumer that reads and acknowledges as it goes, then a clean
//! close. Before each call in turn the machine is copied and crashed
//! (unsynced data dropped, kept whole, or kept as a prefix). Every copy
//! must open without `accept_data_loss`, keep the id it had once anything
//! was acknowledged, hold every acknowledged start, and let the consumer
//! resume after its cursor. Cursor writes used to bypass the simulation
//! (plain `std::fs`), and the `consumers/` directory was not synced.

use bookend_journal::JournalOptions;
use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, StoreLocation};
use bookend_tests::sessions::start;
use bookend_tests::{scale, sim_dir, sim_fs};

fn options() -> SessionJournalOptions {
    let journal = JournalOptions { segment_size_max_bytes: 4096, ..JournalOptions::default() };
    SessionJournalOptions { journal, store: StoreLocation::Disabled, ..SessionJournalOptions::default() }
}

/// Returns, per acknowledged start, the call count when it returned and its id.
fn workload(sim: &SimFs, sessions: usize) -> Vec<(u64, String)> {
    let journal = SessionJournal::open_with_fs(sim_fs(sim), sim_dir(), options()).unwrap();
    let mut consumer = journal.subscribe("mirror").unwrap();
    let mut acked = Vec::new();
    for i in 0..sessions {
        let id = format!("s{i}");
        journal.start(start(&id, &format!("k{i}"))).unwrap().wait().unwrap();
        acked.push((sim.total_calls(), id));
        if i % 4 == 3 {
            while let Some(event) = consumer.try_next().unwrap() {
                consumer.ack(event.lsn).unwrap();
            }
        }
    }
    drop(consumer);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    acked
}

#[test]
fn every_crash_point_reopens_with_identity_commands_and_cursor() {
    let sessions = scale(24, 80);
    let total = {
        let sim = SimFs::new();
        workload(&sim, sessions);
        sim.total_calls()
    };
    let mut checked = 0;
    for call in 1..=total {
        let sim = SimFs::new();
        sim.snapshot_before_call(call);
        let acked = workload(&sim, sessions);
        let Some(before) = sim.take_snapshot() else { continue };
        let must_have: Vec<&String> = acked.iter().filter(|(c, _)| *c < call).map(|(_, id)| id).collect();
        let id_before = bookend_journal::journal_id(&*sim_fs(&before), &sim_dir()).ok().flatten();
        for policy in
            [CrashPolicy::DropUnsynced, CrashPolicy::KeepAllData, CrashPolicy::KeepUnsyncedPrefix(40)]
        {
            let crashed = before.snapshot();
            crashed.crash(policy.clone());
            let context = format!("crash before call {call} ({policy:?})");
            let journal = SessionJournal::open_with_fs(sim_fs(&crashed), sim_dir(), options())
                .unwrap_or_else(|e| panic!("{context}: open needs a person: {e}"));
            if !must_have.is_empty() {
                assert_eq!(Some(journal.journal_id()), id_before, "{context}: identity changed");
            }
            for id in &must_have {
                assert!(journal.get(id).unwrap().is_some(), "{context}: acknowledged start {id} lost");
            }
            let mut consumer = journal.subscribe("mirror").unwrap_or_else(|e| panic!("{context}: {e}"));
            let next = consumer.try_next().unwrap();
            assert!(
                next.is_none_or(|e| e.lsn == consumer.acked().unwrap_or(0) + 1),
                "{context}: the consumer skipped"
            );
            drop(consumer);
            journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} crashed machines checked");
    eprintln!("{total} crash points, {checked} crashed machines reopened");
}
