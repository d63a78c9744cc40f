//! A damaged projection store never takes the process down: whatever
//! happens to its files, the journal opens, the store is moved aside (never
//! deleted) or found intact, the state is the journal's, and commands are
//! acknowledged.
//!
//! A journal whose sessions carry large attributes (so that sled keeps
//! them in blob files) is closed cleanly. Then every file under
//! `projection/` in turn is deleted, cut to half its length, or overwritten
//! with garbage, on a fresh copy each time. Every such open must succeed
//! with exactly the sessions the journal holds, accept a new start, and
//! close; a store that was moved aside is still there with its data file
//! (sled itself may drop blob files it finds unusable when it opens a
//! store; bookend deletes nothing). Before,
//! deleting one blob made `append`, `serve` and `replay` panic inside sled
//! ("tried to serialize Uninitialized", exit 101) on every open.

use std::path::{Path, PathBuf};

use bookend_projector::{CloseReason, EndReason, SessionJournal, SessionJournalOptions, Sessions, Start};

const SESSIONS: usize = 24;

fn build(dir: &Path) -> Vec<(String, bool)> {
    let journal = SessionJournal::open(dir, SessionJournalOptions::default()).unwrap();
    // As large as a start's attributes may be, so records span sled pages.
    let big = "x".repeat(bookend_projector::ATTRS_TOTAL_MAX_BYTES - 64);
    for i in 0..SESSIONS {
        let mut start = Start::new(format!("s{i:02}")).key(format!("k{i}"));
        std::sync::Arc::make_mut(&mut start.fields).attrs.insert("transcript".into(), format!("{i}{big}"));
        journal.start(start).unwrap().wait().unwrap();
        if i % 3 == 0 {
            journal.end(&format!("s{i:02}"), EndReason::Completed).unwrap().wait().unwrap();
        }
    }
    let expected = state(&journal);
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    expected
}

fn state(journal: &SessionJournal) -> Vec<(String, bool)> {
    journal.all_sessions().unwrap().into_iter().map(|s| (s.start.session_id.clone(), s.active)).collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { todo.push(path) } else { out.push(path) }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target)
        } else {
            std::fs::copy(&path, &target).map(|_| ()).unwrap()
        }
    }
}

fn damage(path: &Path, how: &str) {
    match how {
        "deleted" => std::fs::remove_file(path).unwrap(),
        "truncated" => {
            let len = std::fs::metadata(path).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len / 2).unwrap();
        }
        _ => {
            let len = std::fs::metadata(path).unwrap().len().max(64) as usize;
            let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
            std::fs::write(path, garbage).unwrap();
        }
    }
}

#[test]
fn every_file_of_the_store_damaged_every_way_still_opens_with_the_journals_state() {
    let original = tempfile::tempdir().unwrap();
    let expected = build(original.path());
    let store_files = files_under(&original.path().join("projection"));
    assert!(
        store_files.iter().any(|p| p.to_string_lossy().contains("blobs")),
        "no blob files: {store_files:?}"
    );
    let mut opened = 0;
    for file in &store_files {
        let relative = file.strip_prefix(original.path()).unwrap();
        for how in ["deleted", "truncated", "garbage"] {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(original.path(), copy.path());
            damage(&copy.path().join(relative), how);
            let context = format!("{} {how}", relative.display());
            let journal = SessionJournal::open(copy.path(), SessionJournalOptions::default())
                .unwrap_or_else(|e| panic!("{context}: open failed: {e}"));
            assert_eq!(state(&journal), expected, "{context}: the state is not the journal's");
            journal.start(Start::new("new")).unwrap().wait().unwrap();
            journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
            drop(journal);
            let aside = std::fs::read_dir(copy.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("projection.")));
            if let Some(aside) = aside
                && relative != Path::new("projection/db")
            {
                assert!(
                    aside.join("db").exists(),
                    "{context}: the damaged store was not kept ({})",
                    aside.display()
                );
            }
            opened += 1;
        }
    }
    eprintln!("{opened} damaged stores opened");
}
