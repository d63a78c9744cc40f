//! A checkpoint is taken once a thousand sessions have changed, however
//! long `checkpoint_every_events` is, so in steady state each one is a
//! single sled batch.
//!
//! A checkpoint of more sessions than one sled batch holds
//! (`SAVE_CHUNK_SESSIONS`) is written in chunks, each with undo records and
//! an in-progress record, and sled keeps every page a batch replaces until
//! the batch ends. With checkpoints every 5 000 events, start/end pairs gave
//! 2 500 changed sessions a checkpoint (often more, while the one before
//! was still being written), and that is where most of the gateway
//! scenarios' peak RSS went (docs/performance-log/2026-12-05-late.md,
//! "2026-12-05 (late night)"). Here the event count is set out of reach (a million events,
//! an hour), 1 500 sessions are started, and the store must hold a
//! checkpoint taken when the thousandth session changed.

use std::time::{Duration, Instant};

use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, Start};

const SESSIONS: usize = 1500;
/// `SAVE_CHUNK_SESSIONS`: the sessions one sled batch of a checkpoint holds.
const ONE_BATCH: u64 = 1000;

#[test]
fn a_thousand_changed_sessions_make_a_checkpoint_due() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = SessionJournalOptions {
        checkpoint_every_events: 1_000_000,
        checkpoint_interval: Duration::from_secs(3600),
        ..SessionJournalOptions::default()
    };
    let journal = SessionJournal::open(dir.path(), options).unwrap();
    let opened_at = journal.meta().last_lsn;
    for i in 0..SESSIONS {
        journal.start(Start::new(format!("s{i}")).key(format!("k{i}"))).unwrap().wait().unwrap();
    }
    let store = journal.projection_store().expect("a checkpoint store");
    let deadline = Instant::now() + Duration::from_secs(30);
    let saved = loop {
        let saved = store.load_meta().unwrap().map_or(0, |meta| meta.last_lsn);
        if saved > opened_at || Instant::now() > deadline {
            break saved;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(saved > opened_at, "no checkpoint after {SESSIONS} changed sessions (LSN {opened_at} stored)");
    assert!(
        (opened_at + ONE_BATCH..opened_at + ONE_BATCH + 10).contains(&saved),
        "the first checkpoint was taken at LSN {saved}, not when the {ONE_BATCH}th session changed (after LSN {opened_at})"
    );
    journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
}
