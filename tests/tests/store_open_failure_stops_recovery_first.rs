//! A projection store that cannot be opened stops the journal's recovery
//! before recovery changes anything the store's evidence decides.
//!
//! The store opens on its own thread while the journal recovers, and the
//! recovery asks for the store's checkpoint (evidence of what was durable)
//! only once it has checked the segments. This proves the order still holds
//! where it matters. Two gateways configured with one store path: while
//! one holds the store, the other's open fails with `StoreLocked`, and its
//! journal's torn tail is neither truncated nor copied to a `.torn` file:
//! the checkpoint it could not read might have vouched for those bytes, and
//! truncating acknowledged data is the loss bookend exists to prevent. Once
//! the store is free, the open settles the torn tail and every session is
//! still there.

use std::path::{Path, PathBuf};

use bookend_journal::JournalOptions;
use bookend_projector::{
    CACHE_CAPACITY_BYTES_DEFAULT, CloseReason, Error, ProjectionStore, SessionJournal, SessionJournalOptions,
    Sessions, StoreLocation,
};
use bookend_tests::sessions::start;

const SESSIONS: usize = 20;

fn options(store: &Path) -> SessionJournalOptions {
    // No preallocated zeros: the segment ends where its last frame does.
    let journal = JournalOptions { preallocate_bytes: 0, ..JournalOptions::default() };
    SessionJournalOptions { journal, store: StoreLocation::At(store.to_path_buf()), ..Default::default() }
}

fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// Appends the first 38 bytes of a frame that claims 100 bytes of payload
/// and the LSN after `last_lsn`: a write cut short by a power cut.
fn tear(segment: &Path, last_lsn: u64) -> u64 {
    let mut torn = Vec::new();
    torn.extend_from_slice(&100u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
    torn.extend_from_slice(&(last_lsn + 1).to_le_bytes());
    torn.extend_from_slice(&1u32.to_le_bytes());
    torn.extend_from_slice(&last_lsn.to_le_bytes());
    torn.extend_from_slice(&[7u8; 10]);
    let mut bytes = std::fs::read(segment).unwrap();
    bytes.extend_from_slice(&torn);
    std::fs::write(segment, &bytes).unwrap();
    bytes.len() as u64
}

#[test]
fn a_store_held_elsewhere_leaves_the_torn_tail_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store) = (tmp.path().join("journal"), tmp.path().join("store"));
    let journal = SessionJournal::open(&dir, options(&store)).unwrap();
    for i in 0..SESSIONS {
        journal.start(start(&format!("s{i}"), &format!("k{i}"))).unwrap().wait().unwrap();
    }
    let last_lsn = journal.journal().next_lsn() - 1;
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
    drop(journal);
    let segment = files_with_extension(&dir, "wal").pop().unwrap();
    // The close appended its own event after `last_lsn`.
    let torn_len = tear(&segment, last_lsn + 1);

    let holder = ProjectionStore::open(&store, CACHE_CAPACITY_BYTES_DEFAULT).unwrap();
    match SessionJournal::open(&dir, options(&store)) {
        Err(Error::StoreLocked { path }) => assert_eq!(path, store),
        other => panic!("expected StoreLocked while another open holds the store, got {other:?}"),
    }
    let len = std::fs::metadata(&segment).unwrap().len();
    assert_eq!(len, torn_len, "the failed open changed the last segment's length");
    assert!(files_with_extension(&dir, "torn").is_empty(), "the failed open set the torn tail aside");
    drop(holder);

    let journal = SessionJournal::open(&dir, options(&store)).unwrap();
    let torn = journal.journal().recovery_report().torn_tail.clone();
    let torn = torn.expect("the torn tail is settled once the store opens");
    assert_eq!(torn.saved_to.map(|p| p.extension().map(|e| e == "torn")), Some(Some(true)));
    assert_eq!(journal.sessions_where(|_| true).unwrap().len(), SESSIONS, "every session survived");
    journal.close(CloseReason::Restart, Sessions::Keep).unwrap();
}
