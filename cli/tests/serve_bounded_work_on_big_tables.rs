//! Work on big session tables is bounded: a shutdown drain of every active
//! session runs in bounded memory and time, listings come a page at a
//! time, and a bulk command's ack gives counts, not every event.
//!
//! Before, 400k active sessions with `--on-shutdown end` took 21 s to stop
//! (systemd's default stop timeout is 90 s, but a busy host's is often 10)
//! and peaked at 6.4 GB; `GET /v1/sessions` returned 75 MB at once; one
//! `expire` ack listed every event it appended (11.8 MB). CI runs this with
//! 20 000 sessions; `BOOKEND_SLOW_TESTS=1` with the 400 000 of the report.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bookend_tests::scale;
use common::{Server, append, run};
use serde_json::Value;

/// Growth of the server's memory the drain may cause.
const DRAIN_GROWTH_MAX_MIB: u64 = 256;
const DRAIN_TIME_MAX: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// `active` sessions, and `idle` ones last seen two hours ago.
fn build(dir: &std::path::Path, active: usize, idle: usize) {
    let long_ago = now_ms() - 2 * 3_600_000;
    let mut lines = String::new();
    for i in 0..idle {
        lines.push_str(&format!(
            "{{\"cmd\":\"start\",\"session_id\":\"idle-{i:07}\",\"key\":\"agent:main:slack:group:T01:C02:thread:{i}\",\"at\":{long_ago}}}\n"
        ));
    }
    for i in 0..active {
        lines.push_str(&format!(
            "{{\"cmd\":\"start\",\"session_id\":\"live-{i:07}\",\"key\":\"agent:main:telegram:dm:{i}\",\"platform\":\"telegram\"}}\n"
        ));
    }
    let out = append(dir, &lines, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn big_tables_drain_page_and_ack_in_bounded_work() {
    let active = scale(20_000, 400_000);
    let idle = scale(2_000, 20_000);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), active, idle);
    let server = Server::start(dir.path(), &["--on-shutdown", "end"]);

    let (status, ack) = server.post_json(r#"{"cmd":"expire","idle_minutes":60}"#);
    assert_eq!((status, ack["ended"].as_u64()), (200, Some(idle as u64)), "{ack}");
    assert_eq!(ack["events"].as_array().unwrap().len(), 100);
    assert_eq!(ack["events_truncated"], true);
    assert!(ack.to_string().len() < 16 * 1024, "the ack is {} bytes", ack.to_string().len());

    let (status, page) = server.get("/v1/sessions?active=true");
    assert_eq!(status, 200);
    assert_eq!(page["sessions"].as_array().unwrap().len(), 100, "the default page");
    assert!(page["next"].is_u64());

    let rss_before = server.rss_kib();
    let pid = server.pid();
    let started = Instant::now();
    server.terminate();
    let mut peak = rss_before;
    while std::path::Path::new(&format!("/proc/{pid}/status")).exists()
        && started.elapsed() < Duration::from_secs(60)
    {
        peak = peak.max(server.rss_kib());
        std::thread::sleep(Duration::from_millis(5));
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && status.split_whitespace().nth(2) == Some("Z")
        {
            break;
        }
    }
    let took = started.elapsed();
    let grown = peak.saturating_sub(rss_before) / 1024;
    eprintln!(
        "drain of {active} sessions: {took:?}, RSS {} MiB before, +{grown} MiB at peak",
        rss_before / 1024
    );
    assert!(server.stop_status().success());
    assert!(took < DRAIN_TIME_MAX, "the drain took {took:?}");
    assert!(grown <= DRAIN_GROWTH_MAX_MIB, "the drain grew the server by {grown} MiB");

    let report: Value = serde_json::from_slice(&run(&["verify", "--json"], dir.path()).stdout).unwrap();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["open_sessions"], 0, "{report}");
    assert_eq!(report["ends_by_reason"]["shutdown"], active as u64, "{report}");
}
