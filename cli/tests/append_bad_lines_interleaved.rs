//! `bookend append` answers every line, in input order: good commands with
//! `{"ok":true,"lsn":…}`, bad ones with `{"ok":false,"line":K,"error":…}`,
//! and a bad line appends nothing and does not stop the stream.
//!
//! Malformed JSON, an unknown command, a missing field, an invalid
//! transition (touching an unknown session), an id over 128 bytes and a
//! line over the size limit are interleaved with good commands; the acks
//! must line up, and the journal must hold exactly the good commands.

mod common;

use common::{append, json_lines, tail};

#[test]
fn every_line_gets_an_ack_in_order_and_bad_lines_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let long_id = "x".repeat(129);
    let huge = format!("{{\"cmd\":\"start\",\"session_id\":\"{}\"}}", "y".repeat(2 * 1024 * 1024));
    let input = [
        r#"{"cmd":"start","session_id":"s1","key":"telegram:42","platform":"telegram","user_id":"u1"}"#
            .to_string(),
        "{not json".to_string(),
        r#"{"cmd":"explode"}"#.to_string(),
        r#"{"cmd":"touch"}"#.to_string(),
        r#"{"cmd":"touch","session_id":"ghost"}"#.to_string(),
        format!(r#"{{"cmd":"start","session_id":"{long_id}"}}"#),
        huge,
        String::new(),
        r#"{"cmd":"flush","session_id":"s1","marker":"memory"}"#.to_string(),
        r#"{"cmd":"end","session_id":"s1","reason":"manual_reset"}"#.to_string(),
        r#"{"cmd":"end","session_id":"s1","reason":"shutdown"}"#.to_string(),
    ]
    .join("\n");
    let out = append(dir.path(), &input, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let acks = json_lines(&out);
    let kinds: Vec<(bool, Option<u64>, Option<&str>)> = acks
        .iter()
        .map(|a| (a["ok"].as_bool().unwrap(), a["line"].as_u64(), a["error"]["kind"].as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (true, None, None),
            (false, Some(2), Some("malformed_json")),
            (false, Some(3), Some("invalid_command")),
            (false, Some(4), Some("invalid_command")),
            (false, Some(5), Some("unknown_session")),
            (false, Some(6), Some("too_long")),
            (false, Some(7), Some("oversize")),
            (true, None, None),
            (true, None, None),
            (true, None, None),
        ]
    );
    for bad in acks.iter().filter(|a| a["ok"] == false) {
        assert!(!bad["error"]["message"].as_str().unwrap().is_empty());
    }
    // The repeated end answers with the first end's LSN and reason.
    assert_eq!(acks[9]["lsn"], acks[8]["lsn"]);
    assert_eq!(acks[9]["reason"], "manual_reset");
    assert_eq!(acks[9]["duplicate"], true);

    let types: Vec<String> =
        tail(dir.path(), &[]).iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["journal:open", "session:start", "session:flush", "session:end", "journal:close"]);
}
