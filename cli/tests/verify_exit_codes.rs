//! `bookend verify` exits 0 on a clean journal (a torn tail is reported but
//! is not corruption), 1 on a lifecycle violation, and 2 on corruption, with
//! a message that names the segment file and the byte offset.

mod common;

use bookend_journal::{Batch, Durability, Journal, JournalOptions, format};
use bookend_projector::{EndReason, EventBody, StartFields, StoredEvent};
use common::{append, run};

fn journal_with_sessions() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..20)
        .map(|i| format!("{{\"cmd\":\"start\",\"session_id\":\"s{i}\",\"key\":\"k{i}\"}}\n"))
        .collect();
    assert!(append(dir.path(), &input, &[]).status.success());
    dir
}

fn segment(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(format::segment_file_name(1))
}

#[test]
fn clean_journal_exits_0() {
    let dir = journal_with_sessions();
    let out = run(&["verify"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn torn_tail_is_reported_and_exits_0() {
    let dir = journal_with_sessions();
    let mut bytes = std::fs::read(segment(dir.path())).unwrap();
    bytes.extend_from_slice(&[0x30, 0, 0, 0, 0xAB, 0xCD]);
    std::fs::write(segment(dir.path()), &bytes).unwrap();
    let out = run(&["verify"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("torn tail"), "{text}");
}

#[test]
fn flipped_bit_exits_2_naming_segment_and_offset() {
    let dir = journal_with_sessions();
    let path = segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let first_frame = format::SEGMENT_HEADER_SIZE;
    bytes[first_frame + 30] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();
    let out = run(&["verify"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("00000000000000000001.wal"), "{text}");
    assert!(text.contains(&format!("offset {first_frame}")), "{text}");
    let json = run(&["verify", "--json"], dir.path());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["corruption"]["offset"], first_frame);
}

#[test]
fn crafted_lifecycle_violation_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    // Written below the lifecycle rules: a session ended twice, and an
    // activity after its end.
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let start =
        EventBody::SessionStart(StartFields { session_id: "s1".into(), ..StartFields::default() }.into());
    let end = |reason| EventBody::SessionEnd { session_id: "s1".into(), key: None, reason, next_id: None };
    let open = EventBody::JournalOpen { epoch: 1, pid: 1, host: "h".into(), version: "0".into() };
    let touch = EventBody::SessionActivity { session_id: "s1".into(), key: None };
    let mut batch = Batch::new();
    for body in [open, start, end(EndReason::Completed), end(EndReason::Shutdown), touch] {
        batch.push(&StoredEvent { at: 1, body }).unwrap();
    }
    journal.append_blocking(batch, Durability::Durable).unwrap();
    drop(journal);
    let out = run(&["verify"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("VIOLATION at LSN 4"), "{text}");
    assert!(text.contains("VIOLATION at LSN 5"), "{text}");
}
