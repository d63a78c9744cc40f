//! Killing `bookend append` with SIGKILL at any moment loses nothing it
//! acknowledged: every `start` whose ack reached stdout is in the journal.
//!
//! A writer thread streams start commands into the process's stdin while a
//! reader collects acks; the process is killed after a varying number of
//! acks. The next `append` recovers the journal (ending what the dead
//! process left active as `crash_recovered`), and `tail` must show a
//! `session:start` for every acknowledged session and a `session:end` for
//! every one of them. `BOOKEND_SLOW_TESTS=1` repeats this more times.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{append, bookend, tail};

fn kill_after(dir: &std::path::Path, round: usize, acks_wanted: usize) -> BTreeSet<String> {
    let mut child = bookend()
        .arg("append")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0.. {
            let line =
                format!("{{\"cmd\":\"start\",\"session_id\":\"r{round}-{i}\",\"key\":\"k{}\"}}\n", i % 7);
            if stdin.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut acked = BTreeSet::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < acks_wanted {
        let ack: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(ack["ok"], true, "{ack}");
        acked.insert(ack["session_id"].as_str().unwrap().to_string());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Acks already printed before the kill count too.
    for line in lines.map_while(Result::ok) {
        if let Ok(ack) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(id) = ack["session_id"].as_str()
        {
            acked.insert(id.to_string());
        }
    }
    feeder.join().unwrap();
    acked
}

#[test]
fn acknowledged_lines_survive_kill_9() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let rounds = bookend_tests::scale(3, 30);
    let mut acked = BTreeSet::new();
    for round in 0..rounds {
        acked.extend(kill_after(dir.path(), round, 50 + round * 97 % 400));
    }
    assert!(append(dir.path(), "", &[]).status.success(), "recovery after the last kill");
    let started: BTreeSet<String> = tail(dir.path(), &["--type", "session:start"])
        .iter()
        .map(|e| e["session_id"].as_str().unwrap().to_string())
        .collect();
    let ended: BTreeSet<String> = tail(dir.path(), &["--type", "session:end"])
        .iter()
        .map(|e| e["session_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<_> = acked.difference(&started).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    let open: Vec<_> = started.difference(&ended).collect();
    assert!(open.is_empty(), "sessions left open after recovery: {open:?}");
    eprintln!("{rounds} kills, {} acknowledged starts, all present", acked.len());
}
