//! Event streams are capped and cheap: past `--max-streams` a client gets
//! 503 with a JSON body, the streams admitted cost little memory each, and
//! commands stay quick while they catch up.
//!
//! 600 clients connect against a cap of 256: 256 stream, 344 are told
//! `too_many_streams`. Before, `--max-concurrent 2` admitted 10 streams,
//! 500 idle clients took the server from 64 to 674 MB, and a POST took
//! 1.4 s while they caught up.

mod common;

use std::time::{Duration, Instant};

use common::{Server, SseClient};
use serde_json::Value;

const CLIENTS: usize = 600;
const CAP: usize = 256;

#[test]
fn six_hundred_clients_against_a_cap_of_256() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-streams", "256"]);
    for i in 0..50 {
        server.post_json(&format!(r#"{{"cmd":"start","session_id":"s{i}"}}"#));
    }
    let rss_before = server.rss_kib();
    let mut streaming = Vec::new();
    let mut refused = 0;
    for _ in 0..CLIENTS {
        let mut client = SseClient::connect(&server.addr, "/v1/events?from=1", &[]);
        match client.status {
            200 => {
                assert!(client.next_event().is_some());
                streaming.push(client);
            }
            503 => {
                let body: Value = serde_json::from_str(&client.body()).unwrap();
                assert_eq!(body["error"]["kind"], "too_many_streams", "{body}");
                refused += 1;
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!((streaming.len(), refused), (CAP, CLIENTS - CAP));
    let grown_mib = server.rss_kib().saturating_sub(rss_before) / 1024;
    eprintln!("{CAP} open streams added {grown_mib} MiB");
    assert!(grown_mib < 64, "{CAP} streams added {grown_mib} MiB");

    let started = Instant::now();
    let (status, _) = server.post_json(r#"{"cmd":"start","session_id":"during-streams"}"#);
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(500), "a command took {:?}", started.elapsed());
    let (_, metrics) = server.request("GET", "/metrics", &[], None);
    assert!(metrics.contains(&format!("bookend_event_streams_open {CAP}")), "{metrics}");

    // Streams that end give their place back.
    streaming.truncate(CAP - 10);
    std::thread::sleep(Duration::from_millis(300));
    let mut late = SseClient::connect(&server.addr, "/v1/events?from=1", &[]);
    assert_eq!(late.status, 200);
    assert!(late.next_event().is_some());
}
