//! `bookend fleet serve` shows the sessions of every journal forwarded into
//! the stream, filters by journal, and its SSE stream resumes by stream
//! sequence (`Last-Event-ID`) with no gap and no duplicate.
//!
//! Guards against seed 002's setup, a dashboard that polls each gateway in
//! turn and shows whatever answered last: the fleet view reads one stream
//! that holds every journal exactly once.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nats::{Nats, forwarder, stats, wait_caught_up};
use common::{SseClient, append, bookend, http};

fn commands(prefix: &str, sessions: usize, end_every: usize) -> String {
    let mut out = String::new();
    for i in 0..sessions {
        out += &format!("{{\"cmd\":\"start\",\"session_id\":\"{prefix}{i}\",\"key\":\"{prefix}k{i}\"}}\n");
        if i % end_every == 0 {
            out +=
                &format!("{{\"cmd\":\"end\",\"session_id\":\"{prefix}{i}\",\"reason\":\"manual_reset\"}}\n");
        }
    }
    out
}

fn get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, "GET", path, &[], None);
    (status, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
}

fn start_fleet(url: &str) -> (Child, String) {
    let mut child = bookend()
        .args(["fleet", "serve", "--listen", "127.0.0.1:0", "--nats", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    (child, addr)
}

#[test]
fn one_view_of_every_journal_and_sse_that_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = Nats::start(&tmp.path().join("nats"));
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(append(&a, &commands("a", 30, 2), &[]).status.success());
    assert!(append(&b, &commands("b", 20, 4), &[]).status.success());
    for dir in [&a, &b] {
        let mut child = forwarder(dir, &nats.url(), &[]);
        assert!(wait_caught_up(dir, Duration::from_secs(30)));
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        child.wait().unwrap();
    }
    let total = stats(&a)["events"].as_u64().unwrap() + stats(&b)["events"].as_u64().unwrap();
    let (mut fleet, addr) = start_fleet(&nats.url());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, health) = get(&addr, "/v1/health");
        if health["last_sequence"].as_u64() == Some(total) {
            break;
        }
        assert!(Instant::now() < deadline, "the view did not catch up: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, all) = get(&addr, "/v1/sessions?limit=1000");
    assert_eq!(all["sessions"].as_array().unwrap().len(), 50);
    let a_id = stats(&a)["journal_id"].as_str().unwrap().to_string();
    let (_, only_a) = get(&addr, &format!("/v1/sessions?limit=1000&journal={a_id}"));
    let rows = only_a["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 30);
    assert_eq!(rows.iter().filter(|r| r["active"] == true).count(), 15);
    let (status, bad) = get(&addr, "/v1/sessions?active=maybe");
    assert_eq!((status, bad["error"]["kind"].as_str()), (400, Some("invalid_query")));
    // SSE: read the first 10, then resume after the 6th.
    let mut sse = SseClient::connect(&addr, "/v1/events", &[]);
    let first: Vec<u64> = (0..10).map(|_| sse.next_event().unwrap().id.unwrap().parse().unwrap()).collect();
    assert_eq!(first, (1..=10).collect::<Vec<_>>());
    drop(sse);
    let mut resumed = SseClient::connect(&addr, "/v1/events", &[("Last-Event-ID", "6")]);
    let next: Vec<u64> = (0..6).map(|_| resumed.next_event().unwrap().id.unwrap().parse().unwrap()).collect();
    assert_eq!(next, (7..=12).collect::<Vec<_>>());
    fleet.kill().unwrap();
    fleet.wait().unwrap();
}
