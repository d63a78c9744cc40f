//! A real `nats-server` with JetStream on a loopback port and a temporary
//! store, for the fleet tests (Debian's `nats-server`, installed by
//! `.ci/run`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bookend;

pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    store: PathBuf,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Nats {
    pub fn start(store: &Path) -> Nats {
        let mut nats = Nats { child: None, port: free_port(), store: store.to_path_buf() };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port and store) and waits until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (.ci/run installs it: apt-get install nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `bookend forward --dir D --nats URL extra…`, running.
pub fn forwarder(dir: &Path, url: &str, extra: &[&str]) -> Child {
    bookend()
        .arg("forward")
        .arg("--dir")
        .arg(dir)
        .args(["--nats", url])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bookend forward")
}

/// `bookend fleet verify --json`.
pub fn fleet_verify(url: &str) -> (bool, serde_json::Value) {
    let out = bookend().args(["fleet", "verify", "--json", "--nats", url]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("fleet verify: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

/// The journal's stats (`bookend stats --json`).
pub fn stats(dir: &Path) -> serde_json::Value {
    let out = bookend().args(["stats", "--json", "--dir"]).arg(dir).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

/// The forwarder's lag from the journal's stats.
pub fn forward_lag(dir: &Path) -> Option<u64> {
    let stats = stats(dir);
    stats["consumers"].as_array()?.iter().find(|c| c["name"] == "nats-forward")?["lag"].as_u64()
}

/// Waits (bounded) until the forwarder has caught up.
pub fn wait_caught_up(dir: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if forward_lag(dir) == Some(0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Commands for sessions `s{from}`..`s{to}`, each started on its own key
/// and ended: `bookend append` input for the forwarding tests.
pub fn start_end_pairs(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| {
            format!(
                "{{\"cmd\":\"start\",\"session_id\":\"s{i}\",\"key\":\"k{i}\"}}\n{{\"cmd\":\"end\",\"session_id\":\"s{i}\",\"reason\":\"manual_reset\"}}\n"
            )
        })
        .collect()
}
