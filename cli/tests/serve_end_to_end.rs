//! `bookend serve` end to end, against a real server process on a random
//! loopback port: what a Python or TypeScript gateway relies on.
//!
//! Command round trips (one object and an array, with per-command errors
//! inside the acks); 400 for malformed JSON and for a wrong content type;
//! 413 for an oversize body; 404 for an unknown session; Server-Sent Events
//! catching up from disk then going live with no gap; resuming with
//! `Last-Event-ID` and with a named consumer's cursor (at-least-once: the
//! cursor moves only when the client says so); 401 without the token when
//! one is configured; metrics present; SIGTERM stops it cleanly (exit 0)
//! and `verify` is clean afterwards.

mod common;

use common::{Server, SseClient, run};
use serde_json::Value;

fn lsn_of(event: &common::SseEvent) -> u64 {
    event.id.as_deref().unwrap().parse().unwrap()
}

#[test]
fn commands_sessions_events_metrics_and_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--body-limit-bytes", "4096", "--on-shutdown", "end"]);

    let (status, ack) =
        server.post_json(r#"{"cmd":"start","session_id":"s1","key":"telegram:42","platform":"telegram"}"#);
    assert_eq!((status, ack["ok"].clone(), ack["lsn"].clone()), (200, Value::Bool(true), Value::from(2)));
    let (status, acks) = server.post_json(
        r#"[{"cmd":"start","session_id":"s2","key":"telegram:42"},{"cmd":"touch","session_id":"ghost"},{"cmd":"end","session_id":"s2","reason":"manual_reset"}]"#,
    );
    assert_eq!(status, 200);
    assert_eq!(acks[0]["events"][0]["type"], "session:end", "s1 superseded in the same batch");
    assert_eq!((acks[1]["ok"].clone(), acks[1]["index"].clone()), (Value::Bool(false), Value::from(1)));
    assert_eq!(acks[1]["error"]["kind"], "unknown_session");
    assert_eq!(acks[2]["reason"], "manual_reset");

    let (status, body) =
        server.request("POST", "/v1/commands", &[("Content-Type", "application/json")], Some("{nope"));
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["kind"], "malformed_json");
    let (status, _) = server.request("POST", "/v1/commands", &[("Content-Type", "text/plain")], Some("{}"));
    assert_eq!(status, 415);
    let huge = format!(r#"{{"cmd":"start","session_id":"{}"}}"#, "x".repeat(8000));
    let (status, body) =
        server.request("POST", "/v1/commands", &[("Content-Type", "application/json")], Some(&huge));
    assert_eq!(status, 413, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["kind"], "oversize");

    let (status, body) = server.request("GET", "/v1/sessions?active=true", &[], None);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["sessions"].as_array().unwrap().len(), 0);
    let (_, body) = server.request("GET", "/v1/sessions?end_reason=superseded", &[], None);
    let rows: Value = serde_json::from_str::<Value>(&body).unwrap()["sessions"].clone();
    assert_eq!(rows[0]["session_id"], "s1");
    assert_eq!(rows[0]["next_id"], "s2");
    let (status, _) = server.request("GET", "/v1/sessions/nobody", &[], None);
    assert_eq!(status, 404);

    // Catch-up from disk, then live.
    let mut sse = SseClient::connect(&server.addr, "/v1/events?from=1", &[]);
    assert_eq!(sse.status, 200);
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(lsn_of(&sse.next_event().unwrap()));
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    server.post_json(r#"{"cmd":"start","session_id":"s3","key":"slack:7"}"#);
    let live = sse.next_event().unwrap();
    assert_eq!((lsn_of(&live), live.event.as_deref()), (6, Some("session:start")));
    assert_eq!(serde_json::from_str::<Value>(&live.data).unwrap()["session_id"], "s3");

    // Resume after Last-Event-ID.
    let mut resumed = SseClient::connect(&server.addr, "/v1/events", &[("Last-Event-ID", "4")]);
    assert_eq!(lsn_of(&resumed.next_event().unwrap()), 5);

    // A named consumer: reads, acknowledges 3, reconnects after 3; then
    // reconnects with Last-Event-ID 5, which acknowledges up to 5.
    let mut hooks = SseClient::connect(&server.addr, "/v1/events?consumer=memory-hooks", &[]);
    for expected in 1..=4 {
        assert_eq!(lsn_of(&hooks.next_event().unwrap()), expected);
    }
    drop(hooks);
    let (status, body) = server.request(
        "POST",
        "/v1/consumers/memory-hooks/ack",
        &[("Content-Type", "application/json")],
        Some(r#"{"lsn":3}"#),
    );
    assert_eq!(status, 200, "{body}");
    let mut hooks = SseClient::connect(&server.addr, "/v1/events?consumer=memory-hooks", &[]);
    assert_eq!(lsn_of(&hooks.next_event().unwrap()), 4, "unacknowledged events are delivered again");
    drop(hooks);
    let mut hooks =
        SseClient::connect(&server.addr, "/v1/events?consumer=memory-hooks", &[("Last-Event-ID", "5")]);
    assert_eq!(lsn_of(&hooks.next_event().unwrap()), 6);
    let (_, body) = server.request("GET", "/v1/consumers", &[], None);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()[0]["acked_lsn"], 5);
    let (status, _) = server.request("GET", "/v1/events?consumer=../etc", &[], None);
    assert_eq!(status, 400);

    let (status, metrics) = server.request("GET", "/metrics", &[], None);
    assert_eq!(status, 200);
    for name in [
        "bookend_appends_total",
        "bookend_fsync_seconds_bucket",
        "bookend_group_commit_events_bucket",
        "bookend_sessions_active 1",
        "bookend_session_ends_total{reason=\"superseded\"} 1",
        "bookend_consumer_lag_events{consumer=\"memory-hooks\"}",
        "bookend_http_requests_total{code=\"4xx\"}",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}:\n{metrics}");
    }
    let (status, health) = server.request("GET", "/v1/health", &[], None);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&health).unwrap()["journal_open"], true);

    // SIGTERM: open event streams end, the journal closes (ending s3), exit 0.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(sse.next_event().is_none(), "the event stream ended with the server");
    let verify = run(&["verify", "--json"], dir.path());
    assert_eq!(verify.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(
        (report["open_sessions"].clone(), report["epoch_open"].clone()),
        (Value::from(0), Value::Bool(false))
    );
    assert_eq!(report["ends_by_reason"]["shutdown"], 1);
}

#[test]
fn a_configured_token_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "a-very-secret-token-1234\n").unwrap();
    let journal = dir.path().join("journal");
    let server = Server::start(&journal, &["--token-file", token_file.to_str().unwrap()]);
    let body = r#"{"cmd":"start","session_id":"s1"}"#;
    let (status, text) =
        server.request("POST", "/v1/commands", &[("Content-Type", "application/json")], Some(body));
    assert_eq!(status, 401, "{text}");
    let (status, _) = server.request(
        "GET",
        "/v1/sessions",
        &[("Authorization", "Bearer wrong-token-of-some-length")],
        None,
    );
    assert_eq!(status, 401);
    let auth = ("Authorization", "Bearer a-very-secret-token-1234");
    let (status, _) =
        server.request("POST", "/v1/commands", &[("Content-Type", "application/json"), auth], Some(body));
    assert_eq!(status, 200);
    let (status, _) = server.request("GET", "/v1/health", &[], None);
    assert_eq!(status, 200, "health needs no token");
    assert!(server.stop().success());
}

#[test]
fn a_remote_address_needs_allow_remote_and_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        common::bookend().args(["serve", "--listen", "0.0.0.0:0", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
    let out = common::bookend()
        .args(["serve", "--listen", "0.0.0.0:0", "--allow-remote", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
}
