//! `bookend serve --forward-nats URL` forwards the journal it serves into
//! JetStream from its own process: every command acknowledged over HTTP
//! reaches the stream once, the forwarder's lag shows in
//! `GET /v1/consumers`, and on SIGTERM the server closes its journal first
//! and then forwards through the close, so the 20 003 `shutdown` ends and the
//! `journal:close` are in the stream too.
//!
//! Guards against an in-process forwarder that stops before the journal's
//! last events (a fleet view would then show every session the shutdown
//! ended as still active: seed 005's ghost rows, fleet-wide) and against
//! one that holds the server's shutdown hostage.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::nats::{Nats, fleet_verify, stats};

fn forward_lag(server: &Server) -> Option<u64> {
    let (status, list) = server.get("/v1/consumers");
    assert_eq!(status, 200);
    list.as_array()?.iter().find(|c| c["name"] == "nats-forward")?["lag"].as_u64()
}

#[test]
fn serve_forwards_every_event_through_its_close() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = Nats::start(&tmp.path().join("nats"));
    let dir = tmp.path().join("journal");
    let url = nats.url();
    let server = Server::start(
        &dir,
        &["--forward-nats", &url, "--on-shutdown", "end", "--body-limit-bytes", "8388608"],
    );
    for i in 0..100 {
        let start = format!(r#"{{"cmd":"start","session_id":"s{i}","key":"k{i}"}}"#);
        assert_eq!(server.post_json(&start).0, 200);
        if i >= 3 {
            let end = format!(r#"{{"cmd":"end","session_id":"s{i}","reason":"manual_reset"}}"#);
            assert_eq!(server.post_json(&end).0, 200);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while forward_lag(&server) != Some(0) {
        assert!(Instant::now() < deadline, "the forwarder's lag stayed at {:?}", forward_lag(&server));
        std::thread::sleep(Duration::from_millis(50));
    }
    // 20 000 sessions started just before SIGTERM and left active: the
    // forwarder is behind when the close ends them all, and must catch up
    // through the close before the server exits.
    for batch in 0..4 {
        let open: Vec<String> = (0..5000)
            .map(|i| format!(r#"{{"cmd":"start","session_id":"o{batch}-{i}","key":"open{batch}-{i}"}}"#))
            .collect();
        assert_eq!(server.post_json(&format!("[{}]", open.join(","))).0, 200);
    }
    let stopping = Instant::now();
    assert!(server.stop().success());
    // At most the 5 s drain grace and the 6 s stop grace, with room to spare.
    assert!(stopping.elapsed() < Duration::from_secs(15), "shutdown took {:?}", stopping.elapsed());
    let (clean, report) = fleet_verify(&url);
    assert!(clean, "{report:#}");
    let journal = &report["journals"][0];
    // Everything the journal holds, the `shutdown` ends and the
    // close included, is in the stream, once.
    assert_eq!(journal["messages"], stats(&dir)["events"], "{report:#}");
    assert_eq!(journal["open_sessions"], 0, "{report:#}");
}
