//! `bookend tail` follows a journal another process is writing, and as a
//! named consumer resumes from its durable cursor: a run that is stopped
//! re-reads at most what it had not acknowledged, and never skips.
//!
//! One process runs `tail --follow` while a second process appends; every
//! appended event must appear, in order, and SIGTERM must stop the follower
//! cleanly (exit 0). A consumer run reads part of the journal and stops; the
//! next run with the same name starts right after it. A consumer name with
//! `../` is refused before any file is touched.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{append, bookend, tail};

fn starts(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("{{\"cmd\":\"start\",\"session_id\":\"s{i}\",\"key\":\"k{i}\"}}\n"))
        .collect()
}

#[test]
fn follow_sees_another_process_appends_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    assert!(append(dir.path(), &starts(0, 3), &[]).status.success());
    let mut follower = bookend()
        .args(["tail", "--follow", "--type", "session:start", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    for expected in 0..3 {
        let e: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(e["session_id"], format!("s{expected}"));
    }
    let started = Instant::now();
    assert!(append(dir.path(), &starts(3, 50), &[]).status.success());
    for expected in 3..53 {
        let e: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(e["session_id"], format!("s{expected}"), "gap or reorder");
    }
    eprintln!("50 events appended by another process seen within {:?}", started.elapsed());
    let pid = follower.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = follower.wait().unwrap();
    assert!(status.success(), "tail --follow did not exit cleanly on SIGTERM: {status:?}");
}

#[test]
fn a_consumer_resumes_after_what_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    assert!(append(dir.path(), &starts(0, 10), &[]).status.success());
    let first = tail(dir.path(), &["--consumer", "dashboard"]);
    let last_seen = first.last().unwrap()["lsn"].as_u64().unwrap();
    assert!(append(dir.path(), &starts(10, 5), &[]).status.success());
    let second = tail(dir.path(), &["--consumer", "dashboard"]);
    assert_eq!(
        second.first().unwrap()["lsn"].as_u64().unwrap(),
        last_seen + 1,
        "not resumed right after the cursor"
    );
    let ids: Vec<&str> = second.iter().filter_map(|e| e["session_id"].as_str()).collect();
    assert_eq!(ids, ["s10", "s11", "s12", "s13", "s14"]);
    assert!(tail(dir.path(), &["--consumer", "dashboard"]).is_empty(), "everything was acknowledged");

    // A follower stopped by SIGTERM acknowledges what it printed, so the
    // next run has nothing to re-read. (Re-reading after a kill before the
    // ack is tested with the library: tests/consumer_cursor_survives_restarts.rs.)
    let mut follower = bookend()
        .args(["tail", "--follow", "--consumer", "hooks", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut read = 0;
    while read < 5 {
        lines.next().unwrap().unwrap();
        read += 1;
    }
    std::thread::sleep(Duration::from_millis(200));
    let pid = follower.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(follower.wait().unwrap().success());
    assert!(
        tail(dir.path(), &["--consumer", "hooks"]).is_empty(),
        "SIGTERM must acknowledge what was printed"
    );
}

#[test]
fn consumer_names_that_are_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(append(dir.path(), &starts(0, 1), &[]).status.success());
    for name in ["../escape", "a/b", ".hidden", ""] {
        let out = bookend().args(["tail", "--consumer", name, "--dir"]).arg(dir.path()).output().unwrap();
        assert!(!out.status.success(), "{name:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid consumer name"), "{name:?}: {err}");
    }
    assert!(!dir.path().join("escape.cursor").exists());
    assert!(!dir.path().parent().unwrap().join("escape.cursor").exists());
}
