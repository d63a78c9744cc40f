//! Consumer names cost nothing at rest, and a named consumer has one
//! reader at a time wherever it reads from.
//!
//! Under `ulimit -n 256`, 2 000 distinct consumer names acknowledge and
//! stream; the server's descriptors stay bounded and every request is
//! answered. Before, every name kept 2 descriptors forever: from about the
//! 1 000th name on, acks failed with "Too many open files" and new event
//! streams answered 200 with an empty body. A second stream of a name
//! being read, over HTTP or by `bookend tail --consumer`, is refused with
//! `consumer_busy` (409); before, two HTTP streams got the same events.

mod common;

use std::time::Duration;

use common::{Server, SseClient, bookend};
use serde_json::Value;

const NAMES: usize = 2000;
const FD_LIMIT: u32 = 256;

fn ack(server: &Server, name: &str, lsn: u64) -> (u16, Value) {
    let (status, body) = server.request(
        "POST",
        &format!("/v1/consumers/{name}/ack"),
        &[("Content-Type", "application/json")],
        Some(&format!(r#"{{"lsn":{lsn}}}"#)),
    );
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn two_thousand_names_under_a_256_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_fd_limit(dir.path(), &[], FD_LIMIT);
    server.post_json(r#"{"cmd":"start","session_id":"s1"}"#);
    let mut most_fds = 0;
    for i in 0..NAMES {
        let name = format!("consumer-{i:04}");
        let (status, body) = ack(&server, &name, 1);
        assert_eq!((status, body["acked_lsn"].as_u64()), (200, Some(1)), "ack {i}: {body}");
        if i % 100 == 0 {
            // A stream of the name delivers what follows its cursor.
            let mut sse = SseClient::connect(&server.addr, &format!("/v1/events?consumer={name}"), &[]);
            assert_eq!(sse.status, 200);
            let event = sse.next_event().expect("the stream delivers");
            assert_eq!(event.id.as_deref(), Some("2"), "{event:?}");
            most_fds = most_fds.max(server.open_fds());
        }
    }
    most_fds = most_fds.max(server.open_fds());
    assert!(most_fds < 64, "the server held {most_fds} descriptors");
    let (status, list) = server.get("/v1/consumers");
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(NAMES)));
}

#[test]
fn a_named_consumer_has_one_reader_across_http_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.post_json(r#"{"cmd":"start","session_id":"s1"}"#);
    let mut first = SseClient::connect(&server.addr, "/v1/events?consumer=hooks", &[]);
    assert_eq!(first.status, 200);
    assert!(first.next_event().is_some());
    let (status, body) = server.request("GET", "/v1/events?consumer=hooks", &[], None);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, body["error"]["kind"].as_str()), (409, Some("consumer_busy")), "{body}");
    let tail = bookend().args(["tail", "--consumer", "hooks", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(!tail.status.success());
    assert!(String::from_utf8_lossy(&tail.stderr).contains("in use by another reader"));
    drop(first);
    // Once the stream is gone, the name is free again (after the server
    // notices the connection closed).
    std::thread::sleep(Duration::from_millis(200));
    let mut again = SseClient::connect(&server.addr, "/v1/events?consumer=hooks", &[]);
    assert_eq!(again.status, 200);
    assert!(again.next_event().is_some(), "nothing was acknowledged, so it is delivered again");
}
