//! While NATS is down, the gateway's journal is unaffected: appends are
//! acknowledged at local speed and nothing waits on the network; the
//! forwarder's lag (in `bookend stats`) rises, and falls to 0 once NATS is
//! back, with every event in the stream once.
//!
//! Guards against a fleet design in which the distributed log is on the
//! write path: a NATS outage would then stop every gateway.

mod common;

use std::time::{Duration, Instant};

use common::append;
use common::nats::{Nats, fleet_verify, forward_lag, forwarder, start_end_pairs, stats, wait_caught_up};

#[test]
fn appends_go_on_while_nats_is_down_and_the_forwarder_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(&tmp.path().join("nats"));
    let dir = tmp.path().join("journal");
    assert!(append(&dir, &start_end_pairs(0, 50), &[]).status.success());
    let mut child = forwarder(&dir, &nats.url(), &[]);
    assert!(wait_caught_up(&dir, Duration::from_secs(30)));
    nats.stop();
    let started = Instant::now();
    let out = append(&dir, &start_end_pairs(50, 550), &[]);
    let took = started.elapsed();
    assert!(out.status.success());
    assert!(took < Duration::from_secs(20), "appends waited on NATS: {took:?}");
    std::thread::sleep(Duration::from_millis(300));
    let lag = forward_lag(&dir).unwrap();
    assert!(lag >= 1000, "the lag did not rise while NATS was down: {lag}");
    nats.restart();
    assert!(wait_caught_up(&dir, Duration::from_secs(60)), "lag stayed at {:?}", forward_lag(&dir));
    std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(child.wait().unwrap().success());
    let (clean, report) = fleet_verify(&nats.url());
    assert!(clean, "{report:#}");
    assert_eq!(report["journals"][0]["messages"], stats(&dir)["events"]);
}
