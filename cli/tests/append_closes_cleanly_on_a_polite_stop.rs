//! A polite stop is not a crash: `bookend append` stopped by SIGTERM or
//! SIGINT, or whose stdout closes, closes the journal cleanly.
//!
//! A writer is fed sessions and then stopped three ways: SIGTERM, SIGINT,
//! and a reader that quits after the first ack (`… | bookend append | head
//! -1`). Each time it stops reading, waits for what was in flight, appends
//! `journal:close` (restart, sessions kept) and exits non-zero; the next
//! open finds a clean epoch and ends no session as `crash_recovered`, and
//! every acknowledged start is in the journal. Before, each of these left
//! the epoch open and the next open ended every active session (1 918 in
//! one test) as if the process had crashed.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{append, bookend, tail};

fn starts(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("{{\"cmd\":\"start\",\"session_id\":\"s{i}\",\"key\":\"k{i}\"}}\n"))
        .collect()
}

fn assert_closed_cleanly(dir: &std::path::Path, context: &str) {
    let closes = tail(dir, &["--type", "journal:close"]);
    let opens = tail(dir, &["--type", "journal:open"]);
    assert_eq!(closes.len(), opens.len(), "{context}: an epoch was left open");
    assert_eq!(closes.last().unwrap()["sessions"], "kept", "{context}");
    let out = append(dir, "", &[]);
    assert!(out.status.success());
    let ends = tail(dir, &["--type", "session:end"]);
    assert!(ends.iter().all(|e| e["reason"] != "crash_recovered"), "{context}: {ends:?}");
}

#[test]
fn sigterm_and_sigint_close_the_journal_and_exit_non_zero() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = bookend()
            .args(["append", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(starts(0, 200).as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut acks = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        acks.read_line(&mut first).unwrap();
        assert!(first.contains("\"ok\":true"), "{first}");
        // stdin stays open: the writer is waiting for more when the signal comes.
        let pid = child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        drop(stdin);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut acks, &mut rest).unwrap();
        let acked: Vec<String> = first
            .lines()
            .chain(rest.lines())
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["session_id"].as_str().map(str::to_string))
            .collect();
        let started: Vec<String> = tail(dir.path(), &["--type", "session:start"])
            .iter()
            .map(|e| e["session_id"].as_str().unwrap().to_string())
            .collect();
        assert!(acked.iter().all(|id| started.contains(id)), "SIG{signal}: an acked start is missing");
        assert_closed_cleanly(dir.path(), &format!("SIG{signal}"));
    }
}

#[test]
fn a_closed_stdout_stops_reading_and_closes_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bookend()
        .args(["append", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for batch in 0..50 {
            if stdin.write_all(starts(batch * 100, 100).as_bytes()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    // `| head -1`: read one ack, then close the pipe.
    let mut acks = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    acks.read_line(&mut first).unwrap();
    drop(acks);
    let status = child.wait().unwrap();
    feeder.join().unwrap();
    assert!(!status.success(), "a closed stdout was reported as success");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("stdout was closed"), "{stderr}");
    assert_closed_cleanly(dir.path(), "closed stdout");
}
