//! The stored bytes and the JSON of every lifecycle event type are frozen.
//!
//! Events are stored through bincode 2.0.1 (pinned, upstream stopped), so
//! the variant order of `EventBody` and every field's encoding are the
//! on-disk format; the JSON (`type` names, field names) is the interface
//! consumers are written against. One golden file per event pins both.
//! Regenerate deliberately with `BOOKEND_BLESS=1` (and bump the format
//! version for any stored-byte change).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bookend_journal::codec;
use bookend_projector::{
    CloseReason, EndReason, Event, EventBody, SessionsOnClose, StartFields, StoredEvent,
};

fn samples() -> Vec<(&'static str, EventBody)> {
    let id = || "0190f5c2-7a1b-7c3d-9e8f-000000000001".to_string();
    let key = || Some("telegram:42".to_string());
    vec![
        (
            "journal_open",
            EventBody::JournalOpen { epoch: 7, pid: 4242, host: "gw-1".into(), version: "0.1.0".into() },
        ),
        (
            "journal_close",
            EventBody::JournalClose {
                epoch: 7,
                reason: CloseReason::Restart,
                sessions: SessionsOnClose::Kept,
            },
        ),
        (
            "session_start",
            EventBody::SessionStart(
                StartFields {
                    session_id: id(),
                    key: key(),
                    platform: Some("telegram".into()),
                    user_id: Some("u1".into()),
                    source: Some("dm".into()),
                    parent_id: None,
                    attrs: BTreeMap::from([("lang".into(), "en".into())]),
                }
                .into(),
            ),
        ),
        ("session_activity", EventBody::SessionActivity { session_id: id(), key: key() }),
        ("session_flush", EventBody::SessionFlush { session_id: id(), key: key(), marker: "memory".into() }),
        ("session_expiry_finalized", EventBody::SessionExpiryFinalized { session_id: id(), key: key() }),
        (
            "session_finalize_failed",
            EventBody::SessionFinalizeFailed {
                session_id: id(),
                key: key(),
                attempt: 2,
                error: "timeout".into(),
            },
        ),
        (
            "session_end",
            EventBody::SessionEnd {
                session_id: id(),
                key: key(),
                reason: EndReason::Superseded,
                next_id: Some("s2".into()),
            },
        ),
        (
            "session_end_other_reason",
            EventBody::SessionEnd {
                session_id: id(),
                key: None,
                reason: EndReason::parse("archived"),
                next_id: None,
            },
        ),
        (
            "session_reopen",
            EventBody::SessionReopen { session_id: id(), key: key(), reason: "resume".into() },
        ),
        (
            "journal_data_loss",
            EventBody::JournalDataLoss {
                lost_from: 1201,
                lost_to: 1500,
                evidence: "the durable hint written after the last fsync".into(),
            },
        ),
    ]
}

#[test]
fn stored_bytes_and_json_of_every_event_are_frozen() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden");
    let bless = std::env::var("BOOKEND_BLESS").is_ok_and(|v| v == "1");
    for (name, body) in samples() {
        let stored = StoredEvent { at: 1_763_719_200_000, body };
        let bytes = codec::encode(&stored).unwrap();
        let back: StoredEvent = codec::decode(&bytes).unwrap();
        assert_eq!(back, stored, "{name} does not round-trip");
        let json = Event { lsn: 12, at: stored.at, body: stored.body }.to_json();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let golden = format!("{hex}\n{}\n", serde_json::to_string(&json).unwrap());
        let path = dir.join(format!("event_{name}.golden"));
        if bless {
            std::fs::write(&path, &golden).unwrap();
            continue;
        }
        let stored_golden =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(stored_golden, golden, "{name}: the stored bytes or the JSON changed");
    }
}
