//! Several processes append to one journal at once
//! (`JournalOptions::shared_writers`, the journal layer of
//! docs/ARCHITECTURE.md "Several writer processes"), and processes killed
//! with -9 at random moments, in the middle of a turn or not, lose nothing
//! anyone acknowledged.
//!
//! Four child processes append durable batches of `(worker, seq)` pairs
//! with several in flight, on segments so small that the processes keep
//! rotating under each other. A supervisor kills one with -9 at a random
//! moment, 20 times in CI (100 with `BOOKEND_SLOW_TESTS=1`), and starts a
//! new one in its place; at the end the survivors finish and close. Every
//! batch any process acknowledged must be in the journal at exactly the
//! LSNs its acknowledgement named, and the LSNs must be dense from 1: no
//! two processes ever numbered or wrote the same place. A second test puts
//! a dead writer's unfinished frame at the end of the data and checks that
//! the next turn moves it aside to `.torn` and appends after it, and that a
//! single writer is refused while shared ones are live.
//!
//! Guards against seed 002's setting (many short-lived processes on one
//! store, killed at random) once a gateway's processes share a journal: a
//! lost or overwritten acknowledged batch, or a journal that a death leaves
//! needing a person.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use bookend_journal::fs::StdFs;
use bookend_journal::{Batch, Durability, Journal, JournalOptions, codec};
use bookend_tests::scale;

const RUNNING: usize = 4;
const BATCHES_EACH: u64 = 300;

/// An acknowledged batch: its LSNs, and whose it was.
type Acked = (u64, u64, u64, u64);

struct Writer {
    child: Child,
    worker: u64,
    acks: Receiver<Acked>,
    reader: JoinHandle<()>,
}

fn start(dir: &Path, worker: u64) -> Writer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shared-writer-child"))
        .arg(dir)
        .arg(worker.to_string())
        .arg(BATCHES_EACH.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, acks) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Vec<u64> = line.split(' ').map(|p| p.parse().unwrap()).collect();
            if tx.send((v[0], v[1], worker, v[2])).is_err() {
                break;
            }
        }
    });
    Writer { child, worker, acks, reader }
}

fn collect(writer: Writer, into: &mut Vec<Acked>) -> std::process::ExitStatus {
    let Writer { mut child, acks, reader, .. } = writer;
    let status = child.wait().unwrap();
    reader.join().unwrap();
    into.extend(acks.try_iter());
    status
}

fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Every event of the journal, in LSN order, checked dense from 1.
fn read_everything(dir: &Path) -> BTreeMap<u64, (u64, u64)> {
    let options = JournalOptions { shared_writers: true, ..JournalOptions::default() };
    let journal = Journal::open(dir, options).unwrap();
    let mut reader = journal.reader(1).unwrap();
    let mut events = BTreeMap::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        for (lsn, bytes) in frame.events() {
            assert_eq!(lsn, events.len() as u64 + 1, "LSNs are not dense");
            events.insert(lsn, codec::decode(bytes).unwrap());
        }
    }
    assert_eq!(journal.next_lsn(), events.len() as u64 + 1);
    journal.close().unwrap();
    events
}

#[test]
fn four_processes_killed_at_random_lose_no_acknowledged_batch() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let kills = scale(20, 100);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut acked: Vec<Acked> = Vec::new();
    let mut workers = 0u64;
    let mut running: Vec<Writer> = (0..RUNNING)
        .map(|_| {
            workers += 1;
            start(dir.path(), workers)
        })
        .collect();
    for _ in 0..kills {
        let victim = (next(&mut seed) % RUNNING as u64) as usize;
        let first = running[victim].acks.recv_timeout(Duration::from_secs(30));
        acked.extend(first);
        std::thread::sleep(Duration::from_millis(next(&mut seed) % 40));
        let _ = running[victim].child.kill();
        workers += 1;
        let dead = std::mem::replace(&mut running[victim], start(dir.path(), workers));
        collect(dead, &mut acked);
    }
    for writer in running {
        let worker = writer.worker;
        let status = collect(writer, &mut acked);
        assert!(status.success(), "surviving writer {worker} failed: {status}");
    }
    // Every segment, sealed by whichever process rotated it, checks out.
    let report = bookend_journal::check(std::sync::Arc::new(StdFs), dir.path()).unwrap();
    assert!(report.torn_tail.is_none(), "{report:?}");
    let events = read_everything(dir.path());
    for &(first, last, worker, seq) in &acked {
        for lsn in first..=last {
            assert_eq!(events.get(&lsn), Some(&(worker, seq)), "LSN {lsn}: acknowledged to {worker}/{seq}");
        }
    }
    let named = |suffix: &str| {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(suffix)))
            .count()
    };
    // The processes really wrote in turns, not one after the other.
    let switches = events.values().zip(events.values().skip(1)).filter(|(a, b)| a.0 != b.0).count();
    eprintln!(
        "{kills} kills, {workers} writer processes, {} batches acknowledged, {} events in {} segments, \
         {switches} changes of writer, {} torn frames moved aside",
        acked.len(),
        events.len(),
        named(".wal"),
        named(".torn")
    );
    assert!(acked.len() as u64 >= RUNNING as u64 * BATCHES_EACH);
    assert!(switches > 10 * kills, "only {switches} changes of writer: the processes hardly overlapped");
    assert!(named(".wal") > 3, "the processes never rotated under each other");
}

#[test]
fn a_dead_writers_unfinished_frame_is_moved_aside_by_the_next_turn() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = JournalOptions { shared_writers: true, ..JournalOptions::default() };
    let journal = Journal::open(dir.path(), options.clone()).unwrap();
    let one = |n: u64| {
        let mut batch = Batch::new();
        batch.push(&(0u64, n)).unwrap();
        batch
    };
    for n in 0..3 {
        journal.append_blocking(one(n), Durability::Durable).unwrap();
    }
    // A single writer (and `repair`, which locks the same way) is kept out
    // while shared writers are live.
    let single = Journal::open(dir.path(), JournalOptions::default());
    assert!(matches!(single, Err(bookend_journal::Error::Locked { .. })), "{single:?}");
    // What a process killed halfway through its write leaves: the start of
    // a frame after the data, before the preallocated zeros.
    let segment = dir.path().join("00000000000000000001.wal");
    let bytes = std::fs::read(&segment).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
        file.write_all_at(&[0x5A; 40], end as u64).unwrap();
    }
    let ack = journal.append_blocking(one(3), Durability::Durable).unwrap();
    assert_eq!(ack.first_lsn, 4);
    journal.close().unwrap();
    drop(journal);
    let events = read_everything(dir.path());
    assert_eq!(events.len(), 4);
    let torn: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".torn"))
        .collect();
    assert_eq!(torn.len(), 1, "the unfinished frame was not moved aside");
    assert_eq!(std::fs::read(torn[0].path()).unwrap(), vec![0x5A; 40]);
}
