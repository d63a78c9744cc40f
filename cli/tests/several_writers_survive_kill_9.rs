//! Four real `bookend append --shared-writers` processes write one journal
//! at once, starting, touching and ending sessions on overlapping keys (a
//! start on a key another process holds supersedes its session), while
//! the test kills one of them with -9 at a random moment, 20 times (100
//! with `BOOKEND_SLOW_TESTS`), starting a new one each time. After every
//! kill a survivor must, within 2 s (by the time it stamps on the close)
//! and with the default check interval, append the end (`crash_recovered`) of exactly the sessions the dead
//! process owned and close its epoch `writer_died`. At the end `verify` is
//! clean, every acknowledged start is in the journal at its LSN, and no
//! session is left active.
//!
//! It guards against seed 002 in a gateway of several processes: a CLI
//! process killed by SIGKILL, the OOM killer or a closed terminal whose
//! sessions keep `ended_at = NULL` because nothing but the next open of
//! that same process would ever end them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::writers::{Rng, Writer, check_dead_batch, closed_after_kill, epoch_of, percentiles, wait_joined};
use serde_json::Value;

const PROCESSES: usize = 4;
const KEYS: u64 = 6;

fn rounds() -> usize {
    if std::env::var_os("BOOKEND_SLOW_TESTS").is_some() { 100 } else { 20 }
}

/// A few commands for `w`: a start on a shared key, and a touch and an
/// end of sessions it started before.
fn burst(w: &mut Writer, rng: &mut Rng, n: &mut usize) {
    for _ in 0..1 + rng.below(4) {
        *n += 1;
        let (id, key) = (format!("{}-{n}", w.name), format!("k{}", rng.below(KEYS)));
        w.send(&format!(r#"{{"cmd":"start","session_id":"{id}","key":"{key}"}}"#));
        let earlier = format!("{}-{}", w.name, 1 + rng.below(*n as u64));
        match rng.below(3) {
            0 => w.send(&format!(r#"{{"cmd":"touch","session_id":"{earlier}"}}"#)),
            1 => w.send(&format!(r#"{{"cmd":"end","session_id":"{earlier}","reason":"manual_reset"}}"#)),
            _ => true,
        };
    }
}

/// Every acknowledged start is in the journal at the LSN its ack named.
fn check_acked_starts(events: &[Value], acked: &[(String, u64)]) -> usize {
    let starts: BTreeMap<&str, u64> = events
        .iter()
        .filter(|e| e["type"] == "session:start")
        .map(|e| (e["session_id"].as_str().unwrap(), e["lsn"].as_u64().unwrap()))
        .collect();
    for (id, lsn) in acked {
        assert_eq!(starts.get(id.as_str()), Some(lsn), "acknowledged start of {id} is missing or moved");
    }
    acked.len()
}

#[test]
fn a_survivor_ends_a_killed_writers_sessions_within_two_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let mut rng = Rng::from_env();
    let mut spawned = 0usize;
    // Each writer has joined before the rounds go on, so every kill is of
    // a writer with an epoch (the seed 002 test kills them while opening too).
    let mut spawn = |dir: &std::path::Path| {
        spawned += 1;
        let w = Writer::spawn(dir, &format!("w{spawned}"), &[]);
        assert!(wait_joined(dir, w.pid, Duration::from_secs(10)).is_some(), "w{spawned} did not join");
        w
    };
    let mut live: Vec<Writer> = (0..PROCESSES).map(|_| spawn(&dir)).collect();
    let (mut n, mut acks, mut latencies, mut ended) = (0usize, Vec::new(), Vec::new(), 0usize);
    for round in 0..rounds() {
        for w in live.iter_mut() {
            burst(w, &mut rng, &mut n);
        }
        // Some rounds wait for every ack; others kill mid-stream.
        if rng.below(2) == 0 {
            assert!(
                live.iter().all(|w| w.wait_acked(Duration::from_secs(10))),
                "round {round}: acks stalled"
            );
        }
        let victim = live.swap_remove(rng.below(live.len() as u64) as usize);
        let pid = victim.pid;
        let (killed_at, printed) = victim.kill9();
        acks.extend(printed);
        // The replacement starts once the death is handled: its own open
        // would close the dead epoch too, and the watcher is what is tested.
        let epoch = epoch_of(&common::tail(&dir, &[]), pid).expect("every writer joined before its kill");
        let (_, latency) = closed_after_kill(&dir, epoch, killed_at, &format!("round {round}"));
        latencies.push(latency);
        ended += check_dead_batch(&common::tail(&dir, &[]), epoch);
        live.push(spawn(&dir));
    }
    for w in live.drain(..) {
        acks.extend(w.finish("end"));
    }
    let events = common::tail(&dir, &[]);
    let checked = check_acked_starts(&events, &acks);
    let (p50, p99) = percentiles(&latencies);
    eprintln!(
        "{} kills, {} dead epochs closed, {ended} sessions ended crash_recovered, {checked} acked starts checked; detection p50 {p50} ms, p99 {p99} ms",
        rounds(),
        latencies.len()
    );
    let verify = common::run(&["verify", "--json"], &dir);
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert!(verify.status.success(), "verify: {report}");
    assert_eq!(report["open_sessions"], 0, "{report}");
}
