//! The seed scenarios, driven the way a gateway in another language would:
//! JSON lines into `bookend append` (with `at` driving simulated time),
//! `bookend tail` to read what consumers see, `bookend verify` to audit.
//!
//! Seed 000: idle expiry and auto-reset both emit `session:end` (with
//! `idle_expiry`, and `superseded` + `next_id`). Seeds 001/003: a flush and
//! finalization are recorded once and not pending again after a restart.
//! Seed 004: a shutdown close ends every active session in one batch.
//! Afterwards `verify` exits 0 and reports no open session.

mod common;

use common::{append, json_lines, run, tail};

const T0: u64 = 1_763_719_200_000;
const MIN: u64 = 60_000;

#[test]
fn seeds_through_append_tail_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let first = format!(
        "{}\n{}\n{}\n{}\n{}\n",
        format_args!(r#"{{"cmd":"start","session_id":"idle","key":"telegram:1","at":{T0}}}"#),
        format_args!(r#"{{"cmd":"start","session_id":"old","key":"telegram:2","at":{T0}}}"#),
        format_args!(r#"{{"cmd":"start","session_id":"new","key":"telegram:2","at":{}}}"#, T0 + 5 * MIN),
        format_args!(r#"{{"cmd":"expire","idle_minutes":30,"at":{}}}"#, T0 + 40 * MIN),
        format_args!(r#"{{"cmd":"flush","session_id":"idle","marker":"memory","at":{}}}"#, T0 + 41 * MIN),
    );
    let out = append(dir.path(), &first, &[]);
    assert!(out.status.success());
    assert!(json_lines(&out).iter().all(|a| a["ok"] == true));

    let ends = tail(dir.path(), &["--type", "session:end"]);
    let summary: Vec<(String, String, Option<String>)> = ends
        .iter()
        .map(|e| {
            (
                e["session_id"].as_str().unwrap().into(),
                e["reason"].as_str().unwrap().into(),
                e["next_id"].as_str().map(Into::into),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("old".into(), "superseded".into(), Some("new".into())),
            ("idle".into(), "idle_expiry".into(), None),
            ("new".into(), "idle_expiry".into(), None),
        ]
    );

    // A restart: the flush is not pending again; finalization is recorded once.
    let second = format!(
        "{}\n{}\n{}\n{}\n",
        format_args!(r#"{{"cmd":"flush","session_id":"idle","marker":"memory","at":{}}}"#, T0 + 50 * MIN),
        format_args!(r#"{{"cmd":"finalized","session_id":"idle","at":{}}}"#, T0 + 50 * MIN),
        format_args!(r#"{{"cmd":"start","session_id":"late","key":"telegram:3","at":{}}}"#, T0 + 51 * MIN),
        r#"{"cmd":"close","reason":"shutdown","sessions":"end"}"#,
    );
    let acks = json_lines(&append(dir.path(), &second, &[]));
    assert_eq!(acks[0]["duplicate"], true, "the flush was recorded before the restart");
    assert_eq!(acks[1]["ok"], true);
    assert_eq!(acks[3]["ok"], true);
    let flushes = tail(dir.path(), &["--type", "session:flush"]);
    assert_eq!(flushes.len(), 1);
    let shutdown: Vec<_> = tail(dir.path(), &["--type", "session:end"])
        .into_iter()
        .filter(|e| e["reason"] == "shutdown")
        .collect();
    assert_eq!(shutdown.len(), 1);
    assert_eq!(shutdown[0]["session_id"], "late");

    let verify = run(&["verify", "--json"], dir.path());
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stdout));
    let report = &json_lines(&verify)[0];
    assert_eq!(report["open_sessions"], 0);
    assert_eq!(report["spans"], report["ends"]);
}
