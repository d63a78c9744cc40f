//! Every event of every journal reaches the JetStream stream exactly once,
//! although the forwarders are killed with -9 at random moments and
//! nats-server itself restarts twice mid-run.
//!
//! Four journals are written concurrently by four `bookend append`
//! processes, each forwarded by its own `bookend forward` against a real
//! nats-server on loopback. Each forwarder is killed -9 several times (24
//! kills in all, more with BOOKEND_SLOW_TESTS) and restarted. At the end
//! `bookend fleet verify` reads the whole stream: per journal, the message
//! count equals the journal's last LSN, no (journal, LSN) appears twice,
//! LSNs are dense, every span ended once. This is the guarantee a fleet
//! view depends on: a resend after a crash that the duplicate window did
//! not drop would count a session twice; a cursor acked before JetStream's
//! ack would lose one.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::bookend;
use common::nats::{Nats, fleet_verify, forwarder, stats, wait_caught_up};

const JOURNALS: usize = 4;

fn slow() -> bool {
    std::env::var_os("BOOKEND_SLOW_TESTS").is_some()
}

/// A small deterministic generator (the seed is printed on failure).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn spawn_append(dir: &Path) -> Child {
    bookend()
        .arg("append")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Writes `sessions` start/end pairs slowly, then closes stdin (the
/// journal closes); returns when the writer has exited.
fn write_sessions(mut append: Child, journal: usize, sessions: usize) {
    let mut stdin = append.stdin.take().unwrap();
    for i in 0..sessions {
        let id = format!("j{journal}-s{i}");
        writeln!(stdin, r#"{{"cmd":"start","session_id":"{id}","key":"k{i}"}}"#).unwrap();
        writeln!(stdin, r#"{{"cmd":"end","session_id":"{id}","reason":"manual_reset"}}"#).unwrap();
        if i % 10 == 9 {
            stdin.flush().unwrap();
            thread::sleep(Duration::from_millis(8));
        }
    }
    drop(stdin);
    assert!(append.wait().unwrap().success());
}

/// Starts and kills -9 the journal's forwarder `rounds` times.
fn kill_forwarders(dir: PathBuf, url: String, rounds: usize, seed: u64) {
    let mut rng = Lcg(seed);
    for _ in 0..rounds {
        let mut child = forwarder(&dir, &url, &[]);
        thread::sleep(Duration::from_millis(40 + rng.next(260)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn every_event_once_through_kills_and_server_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(&tmp.path().join("nats"));
    let url = nats.url();
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let (sessions, rounds) = if slow() { (3000, 25) } else { (400, 6) };
    let dirs: Vec<PathBuf> = (0..JOURNALS).map(|j| tmp.path().join(format!("journal-{j}"))).collect();
    let mut workers = Vec::new();
    for (j, dir) in dirs.iter().enumerate() {
        let append = spawn_append(dir);
        // The forwarder needs the journal's id: wait until the writer made it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("bookend.manifest").exists() {
            assert!(Instant::now() < deadline, "append did not create {}", dir.display());
            thread::sleep(Duration::from_millis(10));
        }
        workers.push(thread::spawn(move || write_sessions(append, j, sessions)));
        let (dir, url) = (dir.clone(), url.clone());
        workers.push(thread::spawn(move || kill_forwarders(dir, url, rounds, seed ^ j as u64)));
    }
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(if slow() { 3000 } else { 600 }));
        nats.restart();
    }
    for w in workers {
        w.join().unwrap();
    }
    // Final forwarders: each catches up, then stops cleanly on SIGTERM.
    let mut finals: Vec<Child> = dirs.iter().map(|d| forwarder(d, &url, &[])).collect();
    for dir in &dirs {
        assert!(
            wait_caught_up(dir, Duration::from_secs(60)),
            "seed {seed}: {} did not catch up",
            dir.display()
        );
    }
    for child in &mut finals {
        bookend_kill_term(child);
        assert!(child.wait().unwrap().success(), "a forwarder did not stop cleanly on SIGTERM");
    }
    let (clean, report) = fleet_verify(&url);
    assert!(clean, "seed {seed}: {report:#}");
    let journals = report["journals"].as_array().unwrap();
    assert_eq!(journals.len(), JOURNALS);
    for dir in &dirs {
        let s = stats(dir);
        let id = s["journal_id"].as_str().unwrap();
        let r = journals.iter().find(|r| r["journal_id"] == id).unwrap();
        assert_eq!(r["messages"], s["events"], "seed {seed}: {r:#}");
        assert_eq!(r["last_lsn"], s["events"], "seed {seed}: {r:#}");
    }
}

fn bookend_kill_term(child: &Child) {
    let status = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(status.unwrap().success());
}
