//! Real `bookend append --shared-writers` child processes on one journal,
//! and what the journal says about their deaths.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A small deterministic random source (the seed is printed, so a failing
/// run can be repeated with `BOOKEND_TEST_SEED`).
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("BOOKEND_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
        eprintln!("seed {seed} (set BOOKEND_TEST_SEED to repeat)");
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One `bookend append --shared-writers` process, its acks read as they come.
pub struct Writer {
    pub name: String,
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    acks: Arc<Mutex<Vec<Value>>>,
    reader: Option<JoinHandle<()>>,
    /// Every line sent, in order: ack `i` answers line `i`.
    lines: Vec<String>,
    pub sent: usize,
}

impl Writer {
    pub fn spawn(dir: &Path, name: &str, extra: &[&str]) -> Writer {
        let mut child = super::bookend()
            .arg("append")
            .arg("--dir")
            .arg(dir)
            .arg("--shared-writers")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bookend append --shared-writers");
        let stdout = child.stdout.take().unwrap();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let collected = acks.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let ack: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
                collected.lock().unwrap().push(ack);
            }
        });
        let pid = child.id();
        let stdin = child.stdin.take();
        Writer {
            name: name.to_string(),
            pid,
            child,
            stdin,
            acks,
            reader: Some(reader),
            lines: Vec::new(),
            sent: 0,
        }
    }

    /// Sends one command line; false if the process no longer reads.
    pub fn send(&mut self, line: &str) -> bool {
        let Some(stdin) = self.stdin.as_mut() else { return false };
        let ok = writeln!(stdin, "{line}").and_then(|()| stdin.flush()).is_ok();
        if ok {
            self.sent += 1;
            self.lines.push(line.to_string());
        }
        ok
    }

    pub fn acks(&self) -> Vec<Value> {
        self.acks.lock().unwrap().clone()
    }

    /// `(session, LSN)` of every start this process acknowledged (a start's
    /// ack names the session's start LSN).
    pub fn acked_starts(&self) -> Vec<(String, u64)> {
        let acks = self.acks();
        let pairs =
            self.lines.iter().zip(&acks).filter(|(l, a)| l.contains(r#""cmd":"start""#) && a["ok"] == true);
        pairs
            .map(|(_, a)| (a["session_id"].as_str().unwrap().to_string(), a["lsn"].as_u64().unwrap()))
            .collect()
    }

    /// Waits until every command sent has its ack (at most `limit`).
    pub fn wait_acked(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.acks.lock().unwrap().len() < self.sent {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// kill -9; returns the wall-clock ms of the kill and the starts it
    /// acknowledged.
    pub fn kill9(mut self) -> (u64, Vec<(String, u64)>) {
        self.child.kill().expect("kill -9");
        let killed_at = now_ms();
        let _ = self.child.wait();
        self.reader.take().map(|r| r.join());
        (killed_at, self.acked_starts())
    }

    /// Closes the journal (`close` with `sessions`), ends input and waits;
    /// returns the starts it acknowledged.
    pub fn finish(mut self, sessions: &str) -> Vec<(String, u64)> {
        self.send(&format!(r#"{{"cmd":"close","reason":"shutdown","sessions":"{sessions}"}}"#));
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        self.reader.take().map(|r| r.join());
        assert!(status.success(), "{} exited with {status}", self.name);
        self.acked_starts()
    }
}

/// The epoch the process `pid` joined as, from its `journal:join`.
pub fn epoch_of(events: &[Value], pid: u32) -> Option<u64> {
    events.iter().find(|e| e["type"] == "journal:join" && e["pid"] == pid).and_then(|e| e["epoch"].as_u64())
}

/// Waits until the process `pid` has joined the journal (at most `limit`);
/// its epoch.
pub fn wait_joined(dir: &Path, pid: u32, limit: Duration) -> Option<u64> {
    let deadline = Instant::now() + limit;
    loop {
        // Until the first writer has made it, there is no journal to read.
        let out = super::bookend().arg("tail").arg("--dir").arg(dir).output().unwrap();
        if out.status.success()
            && let Some(epoch) = epoch_of(&super::json_lines(&out), pid)
        {
            return Some(epoch);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `journal:close` of `epoch` with reason `writer_died`, once it is in
/// the journal (polled with `bookend tail`, at most `limit`).
/// The `writer_died` close of `epoch`, which must say it was appended at
/// most `DETECTION_MAX_MS` after `killed_at` (ms since the epoch). It is
/// polled for much longer: each poll runs `bookend tail` over the whole
/// journal, slow on a loaded machine, and what is tested is when the
/// survivor closed the epoch, not how soon the test saw it.
pub fn closed_after_kill(dir: &Path, epoch: u64, killed_at: u64, what: &str) -> (Value, u64) {
    let close = wait_writer_died(dir, epoch, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("{what}: epoch {epoch} not closed within 15 s of its kill -9"));
    let latency = close["at"].as_u64().unwrap_or(0).saturating_sub(killed_at);
    assert!(latency <= DETECTION_MAX_MS, "{what}: epoch {epoch} was closed {latency} ms after its kill -9");
    (close, latency)
}

/// How soon after a kill -9 a survivor must close the dead writer's epoch.
pub const DETECTION_MAX_MS: u64 = 2_000;

pub fn wait_writer_died(dir: &Path, epoch: u64, limit: Duration) -> Option<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let events = super::tail(dir, &[]);
        let close = events
            .iter()
            .find(|e| e["type"] == "journal:close" && e["epoch"] == epoch && e["reason"] == "writer_died");
        if let Some(close) = close {
            return Some(close.clone());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Which epoch owns each active session, event by event, as the journal
/// tells it (the epoch of the last `journal:open`, `journal:join` or
/// `journal:turn` started or reopened it).
#[derive(Default)]
pub struct Owners {
    current: u64,
    pub owner: BTreeMap<String, u64>,
}

impl Owners {
    pub fn apply(&mut self, e: &Value) {
        let id = e["session_id"].as_str().map(str::to_string);
        match e["type"].as_str().unwrap_or_default() {
            "journal:open" | "journal:join" | "journal:turn" => self.current = e["epoch"].as_u64().unwrap(),
            "session:start" | "session:reopen" => {
                self.owner.insert(id.unwrap(), self.current);
            }
            "session:end" => {
                self.owner.remove(&id.unwrap());
            }
            _ => {}
        }
    }

    pub fn owned_by(&self, epoch: u64) -> BTreeSet<String> {
        self.owner.iter().filter(|(_, e)| **e == epoch).map(|(id, _)| id.clone()).collect()
    }
}

/// Checks that the survivor's batch for dead `epoch` (the `crash_recovered`
/// ends right before its `writer_died` close) ended exactly the sessions
/// that epoch owned at that moment. Returns how many it ended.
pub fn check_dead_batch(events: &[Value], epoch: u64) -> usize {
    let mut owners = Owners::default();
    let mut batch: BTreeSet<String> = BTreeSet::new();
    let mut owned_before: Option<BTreeSet<String>> = None;
    for e in events {
        let is_close = e["type"] == "journal:close" && e["epoch"] == epoch && e["reason"] == "writer_died";
        if is_close {
            let expected = owned_before.take().unwrap_or_else(|| owners.owned_by(epoch));
            assert_eq!(batch, expected, "the survivor ended other sessions than epoch {epoch}'s");
            assert!(owners.owned_by(epoch).is_empty(), "epoch {epoch} closed with sessions left");
            return batch.len();
        }
        let dead_end = e["type"] == "session:end"
            && e["reason"] == "crash_recovered"
            && e["session_id"].as_str().is_some_and(|id| owners.owner.get(id) == Some(&epoch));
        if dead_end {
            owned_before.get_or_insert_with(|| owners.owned_by(epoch));
            batch.insert(e["session_id"].as_str().unwrap().to_string());
        } else {
            owned_before = None;
            batch.clear();
        }
        owners.apply(e);
    }
    panic!("no writer_died close of epoch {epoch}");
}

/// p50 and p99 of `samples` (ms), for the figures.
pub fn percentiles(samples: &[u64]) -> (u64, u64) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}
