//! A forwarder that starts again after longer than the stream's duplicate
//! window, with its cursor behind what the stream holds (here: the cursor
//! file deleted), resends nothing: before publishing it asks the stream for
//! the last LSN it holds for the journal and starts after it.
//!
//! Without that check the duplicate window is the only guard, and a
//! forwarder down for longer than two minutes (a long NATS outage, a host
//! reboot) would publish the journal's history twice.

mod common;

use std::process::Command;
use std::time::Duration;

use common::nats::{Nats, fleet_verify, forwarder, start_end_pairs, stats, wait_caught_up};
use common::{append, bookend};

fn forward_until_caught_up(dir: &std::path::Path, url: &str) {
    let mut child = forwarder(dir, url, &["--duplicate-window-s", "1"]);
    assert!(wait_caught_up(dir, Duration::from_secs(30)));
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_lost_cursor_after_the_window_resends_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = Nats::start(&tmp.path().join("nats"));
    let dir = tmp.path().join("journal");
    assert!(append(&dir, &start_end_pairs(0, 100), &[]).status.success());
    forward_until_caught_up(&dir, &nats.url());
    let before = stats(&dir)["events"].as_u64().unwrap();
    std::fs::remove_file(dir.join("consumers").join("nats-forward.cursor")).unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // past the 1 s duplicate window
    // More history after the gap, so the restart has something new to send.
    assert!(append(&dir, &start_end_pairs(100, 120), &[]).status.success());
    forward_until_caught_up(&dir, &nats.url());
    let (clean, report) = fleet_verify(&nats.url());
    assert!(clean, "{report:#}");
    let journal = &report["journals"][0];
    let events = stats(&dir)["events"].as_u64().unwrap();
    assert!(events > before);
    assert_eq!(journal["messages"], events, "{report:#}");
    let out = bookend().args(["stats", "--dir"]).arg(&dir).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("consumer nats-forward: acked LSN"));
}
