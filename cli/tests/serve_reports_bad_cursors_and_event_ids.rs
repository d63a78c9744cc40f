//! One bad cursor is that consumer's problem alone, and event ids a client
//! sends are parsed strictly.
//!
//! `bookend serve` runs beside a good consumer and a cursor file holding
//! garbage. `GET /v1/consumers` answers 200 and lists both, the bad one
//! with its error; `/metrics` keeps the good consumer's lag line and
//! exports the bad one as a cursor error; `bookend stats` names it.
//! `Last-Event-ID: xyz`, `Last-Event-ID: 18446744073709551615` and
//! `?from=abc` get a 400 with a JSON body. Before, the garbage cursor made
//! `/v1/consumers` answer 500 ("invalid consumer name") and dropped every
//! lag line from `/metrics`, an unparsable `Last-Event-ID` was ignored, and
//! a huge one replayed the journal from LSN 1.

mod common;

use common::{Server, run};

#[test]
fn bad_cursors_and_event_ids_are_reported_not_swallowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for i in 0..3 {
        server.post_json(&format!("{{\"cmd\":\"start\",\"session_id\":\"s{i}\",\"key\":\"k{i}\"}}"));
    }
    let (status, _) = server.request(
        "POST",
        "/v1/consumers/good/ack",
        &[("Content-Type", "application/json")],
        Some(r#"{"lsn":2}"#),
    );
    assert_eq!(status, 200);
    std::fs::write(dir.path().join("consumers/broken.cursor"), "not an lsn\n").unwrap();

    let (status, consumers) = server.get("/v1/consumers");
    assert_eq!(status, 200, "{consumers}");
    let list = consumers.as_array().unwrap();
    let good = list.iter().find(|c| c["name"] == "good").unwrap();
    let broken = list.iter().find(|c| c["name"] == "broken").unwrap();
    assert!(good["error"].is_null() && good["lag"].as_u64().is_some(), "{good}");
    assert!(broken["error"].as_str().unwrap().contains("broken.cursor"), "{broken}");

    let (_, metrics) = server.request("GET", "/metrics", &[], None);
    assert!(metrics.contains("bookend_consumer_lag_events{consumer=\"good\"}"), "{metrics}");
    assert!(metrics.contains("bookend_consumer_cursor_errors{consumer=\"broken\"} 1"), "{metrics}");
    let stats = run(&["stats"], dir.path());
    assert!(String::from_utf8_lossy(&stats.stdout).contains("consumer broken: ERROR"), "{stats:?}");

    for (header, query) in [("xyz", ""), ("18446744073709551615", ""), ("", "?from=abc")] {
        let headers: Vec<(&str, &str)> =
            if header.is_empty() { vec![] } else { vec![("Last-Event-ID", header)] };
        let (status, body) = server.request("GET", &format!("/v1/events{query}"), &headers, None);
        assert_eq!(status, 400, "{header}{query}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["ok"], false);
        assert!(body["error"]["kind"].as_str().is_some_and(|k| k.starts_with("invalid")), "{body}");
    }
    assert!(server.stop().success());
}
