//! A projection store rebuilt from the journal takes at most half the
//! journal's space, holds every session the journal says it should, and is
//! what the next open loads.
//!
//! Guards against the cache outgrowing what it caches: a rebuild writes
//! every ended session again at each level of merges, and sled, which
//! never shrinks its file, kept two to four times the live bytes: the
//! store of a 751 MB journal was 441 MB after its rebuild, 1.1 GiB before
//! ended sessions were compressed. Now the rebuilt store is rewritten into
//! a fresh file before use.

use std::path::Path;

use bookend_projector::{
    CloseReason, Command, CommandLine, EndReason, SessionJournal, SessionJournalOptions, Sessions, Start,
};

fn bytes_of(dir: &Path, keep: &dyn Fn(&str) -> bool) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                bytes_of(&e.path(), &|_| true)
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

fn id(n: usize) -> String {
    format!("0190f5c2-7a1b-7c3d-9e8f-{n:012x}")
}

/// `sessions` sessions started and ended, in batches of 1 000 commands.
fn write_history(dir: &Path, sessions: usize) {
    let journal = SessionJournal::open(dir, SessionJournalOptions::default()).unwrap();
    let lines: Vec<CommandLine> = (0..sessions)
        .flat_map(|n| {
            let start = Command::Start(Start::new(id(n)).key(format!("telegram:{}", n % 1000)));
            let end = Command::End { session_id: id(n), reason: EndReason::Completed };
            [start, end].map(|command| CommandLine { command, at: None })
        })
        .collect();
    for chunk in lines.chunks(1000) {
        for answer in journal.execute_batch(chunk.to_vec()).unwrap() {
            answer.unwrap().wait().unwrap();
        }
    }
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
}

#[test]
fn a_rebuilt_store_is_at_most_half_the_journal() {
    let sessions = bookend_tests::scale(60_000, 1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    write_history(&dir, sessions);
    std::fs::remove_dir_all(dir.join("projection")).unwrap();

    let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).unwrap();
    assert!(!journal.open_report().from_checkpoint, "the store was rebuilt");
    for n in (0..sessions).step_by(997) {
        let s = journal.get(&id(n)).unwrap().unwrap_or_else(|| panic!("session {n} is in the store"));
        assert!(!s.active, "session {n} ended");
    }
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);

    let journal_bytes = bytes_of(&dir, &|name| name.ends_with(".wal"));
    let store_bytes = bytes_of(&dir.join("projection"), &|_| true);
    assert!(
        store_bytes * 2 <= journal_bytes,
        "the store takes {store_bytes} bytes beside a journal of {journal_bytes}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("projection."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).unwrap();
    assert!(journal.open_report().from_checkpoint, "the rewritten store is loaded, not rebuilt again");
    assert_eq!(journal.get(&id(sessions - 1)).unwrap().map(|s| s.active), Some(false));
}
