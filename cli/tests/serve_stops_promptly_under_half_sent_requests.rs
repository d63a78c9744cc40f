//! A half-sent request never keeps the server from stopping: on SIGTERM it
//! exits within 3 s and closes the journal as `--on-shutdown` says.
//!
//! Before, one request with half its body (or half its headers) kept
//! graceful shutdown waiting for over 60 s; under systemd that becomes a
//! SIGKILL, and the sessions end `crash_recovered` on the next start
//! instead of `shutdown` now.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, run};
use serde_json::Value;

#[test]
fn sigterm_with_half_sent_requests_closes_the_journal_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--on-shutdown", "end"]);
    for i in 0..3 {
        let (status, _) = server.post_json(&format!(r#"{{"cmd":"start","session_id":"s{i}"}}"#));
        assert_eq!(status, 200);
    }
    let addr = server.addr.clone();
    let mut half_body = TcpStream::connect(&addr).unwrap();
    half_body
        .write_all(b"POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"cmd\"")
        .unwrap();
    let mut half_headers = TcpStream::connect(&addr).unwrap();
    half_headers.write_all(b"POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Ty").unwrap();
    let idle = TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let status = server.stop();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    drop((half_body, half_headers, idle));

    let report: Value = serde_json::from_slice(&run(&["verify", "--json"], dir.path()).stdout).unwrap();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["epoch_open"], false, "the journal was closed: {report}");
    assert_eq!(report["ends_by_reason"]["shutdown"], 3, "sessions ended as --on-shutdown says: {report}");
}
