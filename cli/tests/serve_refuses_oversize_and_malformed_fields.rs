//! Every field of every command has a limit, and a command over one is
//! refused with a kind that names it, appending nothing.
//!
//! Before, end and reopen reasons, `parent_id`, `attrs`, markers and error
//! strings had no limit (a 500 KB `parent_id` was accepted although the
//! docs said 128 bytes); every distinct end reason became a metrics label
//! (100 reasons of 900 KB made `/metrics` 90 MB); ids and keys could hold
//! ESC and CR, which `sessions` printed raw; a key given twice in one JSON
//! object was taken silently, last one winning.

mod common;

use common::Server;
use serde_json::{Value, json};

fn durable_lsn(server: &Server) -> u64 {
    server.get("/v1/health").1["durable_lsn"].as_u64().unwrap()
}

fn refused(server: &Server, command: &str) -> String {
    let before = durable_lsn(server);
    // A command refused is a 200 answer with an error ack; a body that is
    // not JSON at all is refused whole, 400.
    let (status, ack) = server.post_json(command);
    assert!(status == 200 || (status == 400 && ack["error"]["kind"] == "malformed_json"), "{status} {ack}");
    assert_eq!(ack["ok"], false, "{command} was accepted: {ack}");
    assert_eq!(durable_lsn(server), before, "{command} appended something");
    ack["error"]["kind"].as_str().unwrap().to_string()
}

#[test]
fn each_oversize_or_malformed_field_is_refused_with_nothing_appended() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.post_json(r#"{"cmd":"start","session_id":"s1","key":"k1"}"#);
    server.post_json(r#"{"cmd":"start","session_id":"gone","key":"k2"}"#);
    server.post_json(r#"{"cmd":"end","session_id":"gone","reason":"completed"}"#);
    let long = |n: usize| "x".repeat(n);
    let start = |field: &str, value: Value| {
        let mut c = json!({"cmd": "start", "session_id": "new"});
        c[field] = value;
        c.to_string()
    };
    let many_attrs: serde_json::Map<String, Value> = (0..65).map(|i| (format!("a{i}"), json!("v"))).collect();
    let cases: Vec<(String, &str)> = vec![
        (start("session_id", json!(long(129))), "too_long"),
        (start("key", json!(long(1025))), "too_long"),
        (start("platform", json!(long(257))), "too_long"),
        (start("user_id", json!(long(257))), "too_long"),
        (start("source", json!(long(257))), "too_long"),
        (start("parent_id", json!(long(129))), "too_long"),
        (start("attrs", json!({"transcript": long(16 * 1024)})), "too_long"),
        (start("attrs", Value::Object(many_attrs)), "too_long"),
        (start("attrs", json!({"Bad Name": "v"})), "invalid_chars"),
        (start("key", json!("chat\u{1b}[2K\rOK")), "invalid_chars"),
        (start("session_id", json!("s\r1")), "invalid_chars"),
        (start("session_id", json!("")), "invalid_command"),
        (json!({"cmd": "end", "session_id": "s1", "reason": long(65)}).to_string(), "too_long"),
        (json!({"cmd": "end", "session_id": "s1", "reason": "Gone Fishing"}).to_string(), "invalid_chars"),
        (json!({"cmd": "end", "key": "k1", "reason": "x\u{1b}"}).to_string(), "invalid_chars"),
        (json!({"cmd": "reopen", "session_id": "gone", "reason": long(65)}).to_string(), "too_long"),
        (json!({"cmd": "flush", "session_id": "s1", "marker": long(65)}).to_string(), "too_long"),
        (json!({"cmd": "flush", "session_id": "s1", "marker": "mem ory"}).to_string(), "invalid_chars"),
        (json!({"cmd": "finalize_failed", "session_id": "gone", "error": ""}).to_string(), "empty_field"),
        (
            r#"{"cmd":"end","session_id":"s1","session_id":"s2","reason":"completed"}"#.to_string(),
            "malformed_json",
        ),
        (r#"{"cmd":"end","session_id":"s1","key":"k1","reason":"completed"}"#.to_string(), "invalid_command"),
    ];
    for (command, kind) in &cases {
        assert_eq!(&refused(&server, command), kind, "{command}");
    }
    // A key as long as real gateways make them is fine.
    let key = format!("agent:main:slack:group:T0{}:C0{}:thread:1717.22:U0{}", long(40), long(40), long(40));
    let (_, ack) =
        server.post_json(&json!({"cmd": "start", "session_id": "long-key", "key": key}).to_string());
    assert_eq!(ack["ok"], true, "{ack}");
    // Error text is cut to its limit rather than refused: a failure is
    // worth recording even when its message is huge.
    let (_, ack) = server.post_json(
        &json!({"cmd": "finalize_failed", "session_id": "gone", "error": long(100_000)}).to_string(),
    );
    assert_eq!(ack["ok"], true, "{ack}");

    // Metrics label only the reasons bookend knows, plus `other`.
    for i in 0..20 {
        server.post_json(&format!(r#"{{"cmd":"start","session_id":"r{i}"}}"#));
        server.post_json(&format!(r#"{{"cmd":"end","session_id":"r{i}","reason":"custom_reason_{i}"}}"#));
    }
    let (_, metrics) = server.request("GET", "/metrics", &[], None);
    assert!(metrics.contains("bookend_session_ends_total{reason=\"other\"} 20"), "{metrics}");
    assert!(!metrics.contains("custom_reason"), "{metrics}");
}
