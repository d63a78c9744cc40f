//! Paging through `GET /v1/sessions` visits every session exactly once,
//! in start order, even while commands start, end and touch sessions.
//!
//! A listing of a big table must come in pages (before, one answer was
//! 75 MB), and pages are only useful if following `next` neither skips nor
//! repeats a session when the table changes between two pages.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::Server;
use serde_json::Value;

const BEFORE: usize = 500;

#[test]
fn following_next_sees_each_session_once_while_commands_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(dir.path(), &[]));
    let batch: Vec<String> = (0..BEFORE)
        .map(|i| format!(r#"{{"cmd":"start","session_id":"old-{i:04}","key":"k{}"}}"#, i % 50))
        .collect();
    let (status, _) = server.post_json(&format!("[{}]", batch.join(",")));
    assert_eq!(status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 2000 {
                // New sessions on busy keys supersede old ones: the table
                // changes under the reader on every request.
                server.post_json(&format!(
                    r#"{{"cmd":"start","session_id":"new-{i:05}","key":"k{}"}}"#,
                    i % 50
                ));
                server.post_json(&format!(r#"{{"cmd":"touch","session_id":"new-{i:05}"}}"#));
                i += 1;
            }
            i
        })
    };
    let mut seen = Vec::new();
    let mut after = 0u64;
    let mut pages = 0;
    loop {
        let (status, page) = server.get(&format!("/v1/sessions?limit=7&after={after}"));
        assert_eq!(status, 200, "{page}");
        let rows = page["sessions"].as_array().unwrap();
        assert!(rows.len() <= 7);
        for row in rows {
            seen.push((row["start_lsn"].as_u64().unwrap(), row["session_id"].as_str().unwrap().to_string()));
        }
        pages += 1;
        // Give the writer time to change the table between pages.
        std::thread::sleep(std::time::Duration::from_millis(3));
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
        if pages > 5000 {
            panic!("paging does not end");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let lsns: Vec<u64> = seen.iter().map(|(l, _)| *l).collect();
    assert!(lsns.windows(2).all(|w| w[0] < w[1]), "start order, nothing twice");
    let ids: BTreeSet<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), seen.len(), "no session twice");
    for i in 0..BEFORE {
        assert!(ids.contains(format!("old-{i:04}").as_str()), "old-{i:04} was skipped");
    }
    eprintln!("{pages} pages, {} sessions seen, {written} started meanwhile", seen.len());
    let (_, bad) = server.get("/v1/sessions?limit=0");
    assert_eq!(bad["error"]["kind"], "invalid_query");
    let (_, bad) = server.get("/v1/sessions?active=maybe");
    assert_eq!(bad["error"]["kind"], "invalid_query");
    let (_, bad) = server.get("/v1/sessions?foo=bar");
    assert_eq!(bad["error"]["kind"], "invalid_query");
    let (_, bad) = server.get("/v1/sessions?end_reason=nope");
    assert_eq!(bad["error"]["kind"], "invalid_query");
    let _: Value = bad;
}
