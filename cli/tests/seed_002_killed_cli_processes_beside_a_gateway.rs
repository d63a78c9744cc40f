//! Seed 002 as it happens: a long-lived gateway (`bookend serve
//! --shared-writers`) runs while 50 short-lived "CLI" processes (`bookend
//! append --shared-writers`), several at a time, each start a session on
//! the same journal and are killed with -9 at a random moment: before
//! their start is acknowledged, right after, or a while later. Every
//! session a killed process started must be ended `crash_recovered` by a
//! survivor (the gateway, or a CLI process still alive) within 2 s of the
//! kill; at the end no session leaks, the gateway's own sessions are
//! untouched until its clean close, and `verify` is clean.
//!
//! The seed: hermes-agent left 29% of its sessions with `ended_at = NULL`,
//! mostly CLI processes killed by SIGKILL, the OOM killer, a closed
//! terminal or an ssh drop, beside a gateway that never learnt of it.

mod common;

use std::time::Duration;

use common::Server;
use common::writers::{Rng, Writer, closed_after_kill, epoch_of, percentiles};
use serde_json::Value;

const CLI_PROCESSES: usize = 50;
const AT_ONCE: usize = 5;

#[test]
fn fifty_killed_cli_processes_leak_no_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let gateway = Server::start(&dir, &["--shared-writers", "--on-shutdown", "end"]);
    let (status, ack) = gateway.post_json(r#"{"cmd":"start","session_id":"gw-1","key":"telegram:1"}"#);
    assert_eq!(status, 200, "{ack}");
    let mut rng = Rng::from_env();
    let (mut latencies, mut started) = (Vec::new(), 0usize);
    for wave in 0..CLI_PROCESSES / AT_ONCE {
        let mut cli: Vec<Writer> = (0..AT_ONCE)
            .map(|i| {
                let mut w = Writer::spawn(&dir, &format!("cli-{wave}-{i}"), &[]);
                let key = format!("cli:{}", rng.below(3)); // keys shared between CLI processes
                w.send(&format!(r#"{{"cmd":"start","session_id":"{}","key":"{key}"}}"#, w.name));
                w
            })
            .collect();
        let mut killed = Vec::new();
        while !cli.is_empty() {
            std::thread::sleep(Duration::from_millis(rng.below(60)));
            let w = cli.swap_remove(rng.below(cli.len() as u64) as usize);
            let pid = w.pid;
            let (at, acked) = w.kill9();
            started += acked.len();
            killed.push((pid, at));
        }
        let events = common::tail(&dir, &[]);
        for (pid, killed_at) in killed {
            // A process killed before it joined wrote nothing.
            let Some(epoch) = epoch_of(&events, pid) else { continue };
            let (_, latency) = closed_after_kill(&dir, epoch, killed_at, &format!("pid {pid}"));
            latencies.push(latency);
        }
    }
    let events = common::tail(&dir, &[]);
    let cli_active = active_sessions(&events).into_iter().filter(|id| id.starts_with("cli-")).count();
    assert_eq!(cli_active, 0, "sessions of killed CLI processes leaked");
    let (status, gw) = gateway.get("/v1/sessions?key=telegram:1");
    assert_eq!(status, 200);
    assert_eq!(gw["sessions"][0]["active"], true, "the gateway's session is its own: {gw}");
    // Every CLI process is gone: the gateway is the one live writer, owning its one session.
    let (_, health) = gateway.get("/v1/health");
    let writers = health["writers"].as_array().unwrap();
    assert_eq!(writers.len(), 1, "{health}");
    assert_eq!(
        (writers[0]["pid"].as_u64(), writers[0]["sessions_owned"].as_u64()),
        (Some(gateway.pid().into()), Some(1))
    );
    assert!(gateway.stop().success());
    let (p50, p99) = percentiles(&latencies);
    eprintln!(
        "{CLI_PROCESSES} CLI processes killed, {} had joined, {started} starts acknowledged; detection p50 {p50} ms, p99 {p99} ms",
        latencies.len()
    );
    let verify = common::run(&["verify", "--json"], &dir);
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert!(verify.status.success(), "verify: {report}");
    assert_eq!(report["open_sessions"], 0, "{report}");
}

/// Ids of the sessions active at the end of `events`.
fn active_sessions(events: &[Value]) -> Vec<String> {
    let mut active = std::collections::BTreeSet::new();
    for e in events {
        let id = e["session_id"].as_str().unwrap_or_default().to_string();
        match e["type"].as_str() {
            Some("session:start" | "session:reopen") => {
                active.insert(id);
            }
            Some("session:end") => {
                active.remove(&id);
            }
            _ => {}
        }
    }
    active.into_iter().collect()
}
