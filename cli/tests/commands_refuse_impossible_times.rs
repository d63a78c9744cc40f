//! Time only runs forward: a command dated before its session's last event,
//! or further ahead of the clock than the allowed skew, is refused with
//! `invalid_time`.
//!
//! Before, `at` was trusted: a `touch` at u64::MAX made a session immune to
//! `reap` and `expire` forever, and `end at 1000` after `start at 5000` was
//! accepted and `verify` called the journal clean.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Server, append, json_lines};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn backwards_and_far_future_times_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let lines = [
        r#"{"cmd":"start","session_id":"s1","at":5000}"#.to_string(),
        r#"{"cmd":"end","session_id":"s1","reason":"completed","at":1000}"#.to_string(),
        format!(r#"{{"cmd":"touch","session_id":"s1","at":{}}}"#, u64::MAX),
        format!(r#"{{"cmd":"touch","session_id":"s1","at":{}}}"#, now + 10 * 60_000),
        format!(r#"{{"cmd":"expire","idle_minutes":30,"at":{}}}"#, now + 24 * 3_600_000),
        format!(r#"{{"cmd":"touch","session_id":"s1","at":{}}}"#, now + 60_000),
        r#"{"cmd":"end","session_id":"s1","reason":"completed","at":6000}"#.to_string(),
    ];
    let acks = json_lines(&append(dir.path(), &(lines.join("\n") + "\n"), &[]));
    let kinds: Vec<&str> = acks.iter().map(|a| a["error"]["kind"].as_str().unwrap_or("ok")).collect();
    assert_eq!(
        kinds,
        ["ok", "invalid_time", "invalid_time", "invalid_time", "invalid_time", "ok", "invalid_time"]
    );
    assert!(acks[1]["error"]["message"].as_str().unwrap().contains("before session \"s1\"'s last event"));
}

#[test]
fn the_allowed_skew_is_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--clock-skew-ms", "0"]);
    let (_, ack) =
        server.post_json(&format!(r#"{{"cmd":"start","session_id":"s1","at":{}}}"#, now_ms() + 60_000));
    assert_eq!(ack["error"]["kind"], "invalid_time", "{ack}");
    let (_, ack) =
        server.post_json(&format!(r#"{{"cmd":"start","session_id":"s1","at":{}}}"#, now_ms() - 1000));
    assert_eq!(ack["ok"], true, "{ack}");
}
