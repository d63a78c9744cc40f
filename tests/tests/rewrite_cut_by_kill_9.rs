//! A gateway killed with SIGKILL while its open rebuilds the projection
//! store from the journal, or copies the rebuilt store into a fresh file,
//! leaves a directory that the next open puts right: the copy's leftovers
//! are removed or the store moved back, nothing is set aside, and the store
//! agrees with the journal.
//!
//! Guards against the rewrite (`store/rewrite.rs`) costing what it is for:
//! it renames the store away and the copy into its place, and a stop
//! between the two renames leaves no `projection/` at all. A real gateway
//! child opens a 120 000-event journal whose store was deleted; once its
//! copy of the rebuilt store appears, it is killed 0, 2, 4, … ms later,
//! through the copy, the renames and past them. After each kill an open in this process must succeed and
//! leave nothing beside the store; at the end a fold from LSN 1 must
//! match the store byte for byte. `BOOKEND_SLOW_TESTS=1` kills more often.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bookend_journal::fs::StdFs;
use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, rebuild_and_compare};
use bookend_tests::gateway::Gateway;
use bookend_tests::sessions::{history_id, write_pairs};
use bookend_tests::{scale, stores_set_aside};

const SESSIONS: usize = 60_000;

/// What a rewrite leaves beside the store while it runs.
fn leftovers(dir: &Path) -> Vec<String> {
    let names =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|n| n.starts_with("projection.rewrite")).collect()
}

/// Starts a child on `dir` with its store deleted, waits until its copy
/// of the rebuilt store appears, and kills it `after` that.
fn open_and_kill(dir: &Path, after: Duration) {
    std::fs::remove_dir_all(dir.join("projection")).unwrap();
    let gateway = Gateway::spawn(env!("CARGO_BIN_EXE_session-gateway-child"), dir, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("projection.rewrite").exists() {
        assert!(Instant::now() < deadline, "the child never began to copy its rebuilt store");
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(after);
    gateway.kill();
}

#[test]
fn a_rewrite_cut_by_kill_9_is_put_right_at_the_next_open() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    write_pairs(dir, SESSIONS);
    let rounds = scale(6, 24);
    let mut cut_in_rewrite = 0;
    for round in 0..rounds {
        // From the copy's first moment to past the renames.
        open_and_kill(dir, Duration::from_millis(2 * round as u64));
        cut_in_rewrite += usize::from(!leftovers(dir).is_empty() || !dir.join("projection").exists());
        let journal = SessionJournal::open(dir, SessionJournalOptions::default()).unwrap();
        assert_eq!(leftovers(dir), Vec::<String>::new(), "round {round}: left beside the store");
        assert_eq!(stores_set_aside(dir), Vec::<String>::new(), "round {round}: the store was not trusted");
        assert_eq!(journal.get(&history_id(SESSIONS - 1)).unwrap().map(|s| s.active), Some(false));
        journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    }
    eprintln!("{cut_in_rewrite} of {rounds} kills cut a rewrite short");
    assert!(cut_in_rewrite > 0, "no kill landed in a rewrite");
    let report = rebuild_and_compare(Arc::new(StdFs), dir, &dir.join("projection"), 1 << 20).unwrap();
    assert!(report.identical, "the store disagrees with the journal: {:?}", report.differences);
    assert!(report.sessions >= SESSIONS, "{} sessions", report.sessions);
}
