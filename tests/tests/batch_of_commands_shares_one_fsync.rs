//! `SessionJournal::execute_batch` runs many commands under one hold of the
//! lock and makes them durable with one fsync, while each command keeps
//! its own answer and its own atomicity.
//!
//! Proves: a durable batch of 1 000 commands (500 sessions started and
//! ended) costs one fsync, not 1 000; later commands see what earlier ones
//! in the same batch did (a second start on a key supersedes the first); a
//! refused command answers for itself and the rest go on; `close` is
//! refused inside a batch; and a power cut after a buffered batch keeps a
//! prefix of it, never a later command without an earlier one.
//!
//! Guards against a batch API that is a loop of single commands in
//! disguise (each waiting for its own fsync, ~7k/s, as SQLite FULL without
//! a transaction), and against one whose staged frames are never written
//! when its last command is refused.

use bookend_journal::Durability;
use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_projector::{
    Command, CommandLine, EndReason, SessionJournal, SessionJournalOptions, Start, StoreLocation,
};
use bookend_tests::{sim_dir, sim_fs};

fn start(id: &str, key: &str) -> CommandLine {
    CommandLine { command: Command::Start(Start::new(id).key(key)), at: None }
}

fn end(id: &str) -> CommandLine {
    CommandLine { command: Command::End { session_id: id.into(), reason: EndReason::Completed }, at: None }
}

#[test]
fn a_durable_batch_of_1000_commands_costs_one_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = SessionJournal::open(tmp.path(), SessionJournalOptions::default()).unwrap();
    // Quiet first: a sync request open left behind would otherwise make the
    // writer thread take (and fsync) the part of the batch staged so far,
    // as it would for any other caller appending at the same time.
    journal.journal().sync_blocking().unwrap();
    let before = journal.journal().stats();
    let lines: Vec<CommandLine> =
        (0..500).flat_map(|i| [start(&format!("s{i}"), &format!("k{i}")), end(&format!("s{i}"))]).collect();
    let answers = journal.execute_batch(lines).unwrap();
    assert_eq!(answers.len(), 1000);
    for answer in answers {
        assert!(answer.unwrap().wait().unwrap().lsn.is_some());
    }
    let after = journal.journal().stats();
    assert_eq!(after.appends - before.appends, 1000);
    let fsyncs = after.fsyncs - before.fsyncs;
    assert_eq!(fsyncs, 1, "fsyncs for one batch");
    assert_eq!(journal.stats().unwrap()["sessions"]["ended"], 500);
}

#[test]
fn each_command_sees_the_ones_before_it_and_answers_for_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = SessionJournal::open(tmp.path(), SessionJournalOptions::default()).unwrap();
    let close = CommandLine {
        command: Command::Close {
            reason: bookend_projector::CloseReason::Shutdown,
            sessions: bookend_projector::Sessions::End,
        },
        at: None,
    };
    let lines = vec![start("a", "k"), end("nobody"), start("b", "k"), close, end("a")];
    let mut answers = journal.execute_batch(lines).unwrap().into_iter();
    assert!(answers.next().unwrap().unwrap().wait().is_ok());
    let unknown = answers.next().unwrap().err().unwrap();
    assert_eq!(unknown.kind(), "unknown_session");
    let superseding = answers.next().unwrap().unwrap().wait().unwrap();
    assert!(superseding.events.iter().any(|e| e.body.type_name() == "session:end"));
    assert_eq!(answers.next().unwrap().err().unwrap().kind(), "invalid_command");
    // `a` was ended by the supersede before the batch's own end of it.
    assert!(answers.next().unwrap().unwrap().wait().unwrap().duplicate);
    let a = journal.get("a").unwrap().unwrap();
    assert_eq!(a.end_reason.map(|r| r.to_string()).as_deref(), Some("superseded"));
    // A refused last command still leaves the batch written and durable.
    let answers = journal.execute_batch(vec![start("c", "kc"), end("nobody")]).unwrap();
    let c = answers.into_iter().next().unwrap().unwrap().wait().unwrap();
    assert!(journal.journal().durable_lsn() >= c.lsn.unwrap());
}

#[test]
fn a_power_cut_keeps_a_prefix_of_a_buffered_batch() {
    let options = || SessionJournalOptions {
        durability: Some(Durability::Buffered),
        store: StoreLocation::Disabled,
        ..SessionJournalOptions::default()
    };
    for keep in [0usize, 40, 97, 300, 1000, 5000, 20_000] {
        let sim = SimFs::new();
        let journal = SessionJournal::open_with_fs(sim_fs(&sim), sim_dir(), options()).unwrap();
        let lines: Vec<CommandLine> =
            (0..400).map(|i| start(&format!("s{i:03}"), &format!("k{i}"))).collect();
        for answer in journal.execute_batch(lines).unwrap() {
            answer.unwrap().wait().unwrap();
        }
        let crashed = sim.snapshot();
        crashed.crash(CrashPolicy::KeepUnsyncedPrefix(keep));
        drop(journal);
        let reopened = SessionJournal::open_with_fs(sim_fs(&crashed), sim_dir(), options()).unwrap();
        let kept: Vec<bool> =
            (0..400).map(|i| reopened.get(&format!("s{i:03}")).unwrap().is_some()).collect();
        let first_missing = kept.iter().position(|k| !k).unwrap_or(kept.len());
        assert!(
            kept[first_missing..].iter().all(|k| !k),
            "keep {keep}: a later command survived an earlier one"
        );
    }
}
