//! A checkpoint cut short by SIGKILL is rolled back at the next open: the
//! store is kept, never rebuilt, and still agrees with the journal.
//!
//! A checkpoint of more than a thousand sessions is written in several sled
//! batches. `bookend append` fed tens of thousands of starts, touches of
//! earlier sessions and ends checkpoints thousands of sessions at a time,
//! so a kill at a random moment often lands between those batches. Before,
//! the next open found the store half-written, moved it aside and folded
//! the whole journal again (31–35 s at 10M events). Now each batch keeps
//! what it changed, the next open puts it back, and replays the tail. Each
//! round kills a pipelined `bookend append` at a random moment and looks
//! into the store for a checkpoint left in progress; the next round's open
//! must keep the store. At the end a fold from LSN 1 must match the store
//! byte for byte. The roll-back itself is proven deterministically by the
//! store's unit test `a_checkpoint_cut_short_is_rolled_back_to_the_one_before`;
//! here it runs on real kills: rounds go on (up to 20) until at least one
//! kill has cut a checkpoint short. `BOOKEND_SLOW_TESTS=1` kills many more
//! times.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bookend_journal::fs::StdFs;
use bookend_projector::{ProjectionStore, SessionJournal, SessionJournalOptions, rebuild_and_compare};
use bookend_tests::{scale, stores_set_aside};
use common::bookend;

/// Starts of `r<round>-<i>`, each on a key of its own, with touches of the
/// session started 5 000 lines before and ends of the one 3 000 before:
/// checkpoints change sessions an earlier checkpoint saved.
fn input(round: usize, lines: usize) -> String {
    let mut out = String::new();
    for i in 0..lines {
        let id = format!("r{round}-{i}");
        out.push_str(&format!("{{\"cmd\":\"start\",\"session_id\":\"{id}\",\"key\":\"k-{id}\"}}\n"));
        if i >= 5000 && i % 3 == 0 {
            out.push_str(&format!("{{\"cmd\":\"touch\",\"session_id\":\"r{round}-{}\"}}\n", i - 5000));
        }
        if i >= 3000 && i % 4 == 0 {
            out.push_str(&format!(
                "{{\"cmd\":\"end\",\"session_id\":\"r{round}-{}\",\"reason\":\"idle_expiry\"}}\n",
                i - 3000
            ));
        }
    }
    out
}

fn kill_after(dir: &std::path::Path, round: usize, ms: u64) {
    let mut child = bookend()
        .args(["append", "--durability", "buffered", "--dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = input(round, 60_000);
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    std::thread::sleep(Duration::from_millis(ms));
    child.kill().unwrap();
    child.wait().unwrap();
    feeder.join().unwrap();
}

#[test]
fn checkpoints_cut_by_kill_9_are_rolled_back_and_the_store_kept() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut cut = 0;
    // Until a kill has cut a checkpoint short (about one in three does),
    // within a bounded number of rounds.
    let (rounds_min, rounds_max) = (scale(4, 40), scale(20, 60));
    let mut round = 0;
    while round < rounds_min || (cut == 0 && round < rounds_max) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        kill_after(dir.path(), round, 300 + seed % 900);
        let store = ProjectionStore::open(&dir.path().join("projection"), 1 << 20).unwrap();
        cut += usize::from(store.checkpoint_in_progress().unwrap().is_some());
        drop(store);
        assert_eq!(
            stores_set_aside(dir.path()),
            Vec::<String>::new(),
            "round {round}: the store was not kept"
        );
        round += 1;
    }
    assert!(cut > 0, "none of {round} kills cut a checkpoint short: nothing was rolled back");
    eprintln!("{cut} of {round} kills cut a checkpoint short");
    let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
    journal.close(bookend_projector::CloseReason::Shutdown, bookend_projector::Sessions::End).unwrap();
    drop(journal);
    assert_eq!(stores_set_aside(dir.path()), Vec::<String>::new(), "the last open did not keep the store");
    let report =
        rebuild_and_compare(Arc::new(StdFs), dir.path(), &dir.path().join("projection"), 1 << 20).unwrap();
    assert!(report.identical, "the store disagrees with the journal: {:?}", report.differences);
}
