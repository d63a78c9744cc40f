//! Under load from many concurrent clients, every command `bookend serve`
//! answered with 200 and `"ok": true` is in the journal afterwards.
//!
//! 32 clients post `[start, end]` pairs for their own sessions for a bounded
//! time (2 s; 20 s with `BOOKEND_SLOW_TESTS=1`), then the server is stopped
//! with SIGTERM. The journal must hold a start and an end for every pair
//! that was acknowledged, verify clean, and have shared fsyncs between
//! requests. Requests/s and p99 latency are printed;
//! docs/performance-log/2026-11-21.md records them from a release build.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Server, run, tail};

const CLIENTS: usize = 32;

#[test]
fn every_acknowledged_command_survives_concurrent_load() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let server = Server::start(dir.path(), &[]);
    let duration = Duration::from_secs(bookend_tests::scale(2, 20) as u64);
    let deadline = Instant::now() + duration;
    let addr = server.addr.clone();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let (mut acked, mut latencies) = (Vec::new(), Vec::new());
                let mut n = 0;
                while Instant::now() < deadline {
                    let id = format!("c{c}-{n}");
                    let body = format!(
                        r#"[{{"cmd":"start","session_id":"{id}","key":"user:{c}"}},{{"cmd":"end","session_id":"{id}","reason":"completed"}}]"#
                    );
                    let began = Instant::now();
                    let (status, text) =
                        common::http(&addr, "POST", "/v1/commands", &[("Content-Type", "application/json")], Some(&body));
                    latencies.push(began.elapsed());
                    let acks: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    if status == 200 && acks[0]["ok"] == true && acks[1]["ok"] == true {
                        acked.push(id);
                    }
                    n += 1;
                }
                (acked, latencies)
            })
        })
        .collect();
    let mut acked = BTreeSet::new();
    let mut latencies = Vec::new();
    for w in workers {
        let (a, l) = w.join().unwrap();
        acked.extend(a);
        latencies.extend(l);
    }
    let (status, metrics) = server.request("GET", "/metrics", &[], None);
    assert_eq!(status, 200);
    assert!(server.stop().success());

    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let rate = latencies.len() as f64 / duration.as_secs_f64();
    eprintln!(
        "{} requests ({} commands) in {duration:?}: {rate:.0} requests/s, p99 {p99:?}",
        latencies.len(),
        2 * latencies.len()
    );

    let starts: BTreeSet<String> = tail(dir.path(), &["--type", "session:start"])
        .iter()
        .map(|e| e["session_id"].as_str().unwrap().to_string())
        .collect();
    let ends: BTreeSet<String> = tail(dir.path(), &["--type", "session:end"])
        .iter()
        .map(|e| e["session_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!acked.is_empty());
    assert!(acked.is_subset(&starts), "acknowledged starts are missing");
    assert!(acked.is_subset(&ends), "acknowledged ends are missing");
    assert_eq!(run(&["verify"], dir.path()).status.code(), Some(0));
    let number = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert!(
        number("bookend_fsyncs_total ") < number("bookend_appends_total "),
        "requests did not share fsyncs"
    );
}
