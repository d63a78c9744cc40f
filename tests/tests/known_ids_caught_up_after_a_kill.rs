//! After a gateway is killed, the next open catches the known-ids filter
//! saved at the last clean close up from the journal instead of scanning
//! the whole store, and the caught-up filter still knows every stored id.
//!
//! The filter file is saved with the checkpoint of a clean close. A process
//! killed after later checkpoints leaves it older than the store, and the
//! next open used to throw it away and scan every id out of sled (6.7 s at
//! 5M sessions) on a thread of its own; a short-lived process (a hook
//! script's `bookend append`) exited before the scan ended, never saved a
//! filter, and so every later one scanned again. Now the open adds the ids
//! started in the journal since the file's checkpoint. The failure this
//! guards against is a filter that misses an id the store holds: a start
//! of that id again would then be taken for a new session. Proof: a real
//! gateway process is killed with SIGKILL after its checkpoints; on the
//! next open the filter comes from the file (no scan), and starting every
//! id that process reported, and the ids from before it, is a duplicate.

use bookend_projector::{CloseReason, EndReason, SessionJournal, Sessions};
use bookend_tests::gateway::Gateway;
use bookend_tests::sessions::{T0, open, start, wait_ids_known};

/// Runs a gateway until it has reported `starts` durable starts, then
/// kills it with SIGKILL. Returns the ids it reported.
fn run_and_kill(dir: &std::path::Path, starts: usize) -> Vec<String> {
    // Many checkpoints, so the store moves well past the saved filter.
    let mut gateway = Gateway::spawn(env!("CARGO_BIN_EXE_session-gateway-child"), dir, Some(40));
    let mut started = gateway.started(starts);
    started.extend(gateway.kill());
    started
}

/// The key the gateway child started `id` on (`p<pid>-<n>` on `chat:<n % 5>`),
/// or the id itself for the sessions started here.
fn key_of(id: &str) -> String {
    match id.rsplit_once('-').and_then(|(p, n)| p.starts_with('p').then(|| n.parse::<u64>().ok()).flatten()) {
        Some(n) => format!("chat:{}", n % 5),
        None => id.to_string(),
    }
}

fn assert_known(journal: &SessionJournal, ids: &[String], what: &str) {
    for id in ids {
        let ack = journal.start(start(id, &key_of(id))).unwrap().wait().unwrap();
        assert!(ack.duplicate, "{what}: {id} is stored, but its start again was taken for a new session");
    }
}

fn close(journal: SessionJournal) {
    journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
}

#[test]
fn a_filter_saved_before_a_kill_is_caught_up_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    let before: Vec<String> = (0..400).map(|i| format!("before-{i}")).collect();
    for id in &before {
        journal.start(start(id, id)).unwrap().wait().unwrap();
        journal.end(id, EndReason::Completed).unwrap().wait().unwrap();
    }
    close(journal);

    let killed = run_and_kill(dir.path(), 300);

    let journal = open(dir.path(), &clock);
    wait_ids_known(&journal);
    let loaded = journal.projection_store().unwrap().ids_loaded_from_file();
    assert!(loaded, "the filter was rebuilt by a scan of the store, not caught up");
    assert_known(&journal, &killed, "started by the killed gateway");
    assert_known(&journal, &before, "started before the clean close");
    close(journal);

    // The close saved the caught-up filter with its own checkpoint.
    let journal = open(dir.path(), &clock);
    wait_ids_known(&journal);
    assert!(journal.projection_store().unwrap().ids_loaded_from_file());
    assert_known(&journal, &killed[..50], "after the next clean close");
    close(journal);
}
