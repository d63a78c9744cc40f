//! A checkpoint is saved only once the journal has made the state in it
//! durable, although the wait for that fsync happens on the checkpoint
//! thread and not under the lock every command takes. Buffered commands run
//! against a journal whose timer would sync only every hour, with a
//! checkpoint due every 50 events: the LSN of the store's checkpoint must
//! never pass the journal's durable LSN. A store ahead of the journal holds,
//! after a power cut, sessions the journal lost: state that contradicts the
//! journal (the 29% of sessions left `ended_at = NULL` after hard exits, the
//! other way round). Checkpoints must still be made: the checkpoint thread
//! asks the writer for the fsync rather than waiting for the timer.

use std::time::{Duration, Instant};

use bookend_journal::{Durability, JournalOptions};
use bookend_projector::{CloseReason, EndReason, SessionJournal, SessionJournalOptions, Sessions, Start};

const SESSIONS: usize = 2000;

#[test]
fn a_checkpoint_of_buffered_state_never_passes_the_durable_lsn() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = SessionJournalOptions {
        journal: JournalOptions {
            buffered_sync_interval: Duration::from_secs(3600),
            ..JournalOptions::default()
        },
        durability: Some(Durability::Buffered),
        checkpoint_every_events: 50,
        checkpoint_interval: Duration::from_secs(3600),
        ..SessionJournalOptions::default()
    };
    let journal = SessionJournal::open(dir.path(), options).unwrap();
    let store = journal.projection_store().expect("a checkpoint store");
    let mut highest = 0;
    for i in 0..SESSIONS {
        journal.start(Start::new(format!("s{i}")).key(format!("k{i}"))).unwrap().wait().unwrap();
        journal.end(&format!("s{i}"), EndReason::Completed).unwrap().wait().unwrap();
        // The checkpoint first: the durable LSN only grows, so a checkpoint
        // saved at or below it stays at or below what is read next.
        let saved = store.checkpoint_lsn().unwrap();
        let durable = journal.journal().durable_lsn();
        assert!(
            saved <= durable,
            "the store's checkpoint is at LSN {saved}, the journal durable to {durable}"
        );
        highest = highest.max(saved);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while highest == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        highest = store.checkpoint_lsn().unwrap();
    }
    assert!(highest > 0, "no checkpoint was saved in {} buffered events", 2 * SESSIONS);
    journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
}
