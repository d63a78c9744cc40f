//! Concurrent appenders share fsyncs, and every one of them gets its own,
//! correct acknowledgement.
//!
//! 64 threads (blocking API) and 64 tokio tasks (async API) append durable
//! batches at once on a real disk. Every acknowledgement must carry the LSNs
//! of its own batch, the journal must hold each batch exactly at those LSNs,
//! and the number of fsyncs must be well below the number of appends: that
//! is what group commit is for (on this machine fdatasync costs ~170 µs).
//! Appenders wake the writer thread about once per group, not once per
//! append: a thread gathering a cohort of 64 used to be woken (a futex call
//! and a context switch) by each of the 63 appends before the one it waited
//! for.
//! The threads run once with the default single fsync in flight and once
//! with two in flight across many segment rotations; both reopen to every
//! acknowledged event.

use std::collections::BTreeMap;
use std::sync::Arc;

use bookend_journal::{Batch, Durability, Journal, JournalOptions, codec};
use serde::{Deserialize, Serialize};

const WORKERS: u64 = 64;
const APPENDS_EACH: u64 = 40;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Tagged {
    worker: u64,
    seq: u64,
}

fn check_journal(journal: &Journal, acks: &BTreeMap<u64, (u64, u64)>) {
    let mut reader = journal.reader(1).unwrap();
    let mut seen = 0;
    while let Some(frame) = reader.next_frame().unwrap() {
        for (lsn, bytes) in frame.events() {
            let event: Tagged = codec::decode(bytes).unwrap();
            assert_eq!(acks.get(&lsn), Some(&(event.worker, event.seq)), "LSN {lsn} holds another batch");
            seen += 1;
        }
    }
    assert_eq!(seen, acks.len());
}

#[test]
fn threads_share_fsyncs_and_get_their_own_lsns() {
    threads_share_fsyncs(JournalOptions::default());
}

/// The same with two fsyncs allowed in flight and segments small enough to
/// rotate many times while they run (each writer thread reopens its own
/// handle on every new segment).
#[test]
fn two_fsyncs_in_flight_across_rotations() {
    let segments_created = threads_share_fsyncs(JournalOptions {
        fsyncs_in_flight_max: 2,
        segment_size_max_bytes: 16 * 1024,
        ..JournalOptions::default()
    });
    assert!(segments_created > 2, "the test must cross segment boundaries");
}

/// Returns how many segments the appends created.
fn threads_share_fsyncs(options: JournalOptions) -> u64 {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let journal = Arc::new(Journal::open(dir.path(), options.clone()).unwrap());
    let handles: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                let mut acks = Vec::new();
                for seq in 0..APPENDS_EACH {
                    let ack = journal
                        .append_blocking(Batch::of(&Tagged { worker, seq }).unwrap(), Durability::Durable)
                        .unwrap();
                    assert_eq!(ack.first_lsn, ack.last_lsn);
                    acks.push((ack.first_lsn, (worker, seq)));
                }
                acks
            })
        })
        .collect();
    let acks: BTreeMap<u64, (u64, u64)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert_eq!(acks.len() as u64, WORKERS * APPENDS_EACH);
    check_journal(&journal, &acks);
    let stats = journal.stats();
    assert!(
        stats.fsyncs * 2 < stats.appends,
        "no group commit: {} fsyncs for {} appends",
        stats.fsyncs,
        stats.appends
    );
    assert!(
        stats.writer_wakes * 2 < stats.appends,
        "the writer thread was woken {} times for {} appends",
        stats.writer_wakes,
        stats.appends
    );
    eprintln!(
        "threads: {} appends, {} fsyncs, {} groups, {} wakes",
        stats.appends, stats.fsyncs, stats.groups, stats.writer_wakes
    );
    // Everything acknowledged is there after a reopen, too.
    let last = *acks.keys().last().unwrap();
    let segments_created = stats.segments_created;
    Arc::into_inner(journal).unwrap().close().unwrap();
    let reopened = Journal::open(dir.path(), options).unwrap();
    assert_eq!(reopened.next_lsn(), last + 1);
    check_journal(&reopened, &acks);
    segments_created
}

#[test]
fn async_tasks_share_fsyncs_without_blocking_the_runtime() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let journal = Arc::new(Journal::open(dir.path(), JournalOptions::default()).unwrap());
    // A current-thread runtime: if an append blocked its thread, the other
    // tasks could not submit and nothing would be grouped.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let acks: BTreeMap<u64, (u64, u64)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    let mut acks = Vec::new();
                    for seq in 0..APPENDS_EACH {
                        let batch = Batch::of(&Tagged { worker, seq }).unwrap();
                        let ack = journal.append(batch, Durability::Durable).await.unwrap();
                        acks.push((ack.first_lsn, (worker, seq)));
                    }
                    acks
                })
            })
            .collect();
        let mut all = BTreeMap::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    check_journal(&journal, &acks);
    let stats = journal.stats();
    assert!(stats.fsyncs * 8 < stats.appends, "{} fsyncs for {} appends", stats.fsyncs, stats.appends);
    eprintln!("tasks: {} appends, {} fsyncs, {} groups", stats.appends, stats.fsyncs, stats.groups);
}
