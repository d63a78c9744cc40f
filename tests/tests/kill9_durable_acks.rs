//! A writer process killed with SIGKILL at a random moment never loses an
//! event it acknowledged as durable.
//!
//! A child process appends durable batches with several in flight and prints
//! each acknowledgement to a pipe. The parent kills it after a random delay,
//! then starts the next child on the same directory (which recovers the
//! journal). At the end every acknowledged batch must be in the journal byte
//! for byte, and the journal must be dense and readable. This is the real
//! version of the simulated power-loss test: seed 002's hard exits.
//! `BOOKEND_SLOW_TESTS=1` runs many more kills.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bookend_journal::fs::StdFs;
use bookend_journal::{Durability, Journal, JournalOptions};
use bookend_tests::{assert_dense, batch_at, read_all, scale};

#[test]
fn acknowledged_batches_survive_kill_9() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let kills = scale(6, 100);
    let mut acked_last = 0u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_journal-append-child"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split(' ').map(|p| p.parse::<u64>().unwrap());
                let (first, last) = (parts.next().unwrap(), parts.next().unwrap());
                if tx.send((first, last)).is_err() {
                    break;
                }
            }
        });
        // Wait for the child to be appending, then kill it at a random moment.
        let first = rx.recv_timeout(Duration::from_secs(30)).expect("child never acknowledged an append");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 60));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let acks: Vec<(u64, u64)> = std::iter::once(first).chain(rx.try_iter()).collect();
        for pair in acks.windows(2) {
            assert_eq!(pair[1].0, pair[0].1 + 1, "round {round}: acks out of order");
        }
        acked_last = acked_last.max(acks.last().unwrap().1);
    }
    // Recover once more in this process, append, and check everything.
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let next = journal.next_lsn();
    assert!(next > acked_last, "acknowledged LSN {acked_last} is missing (next LSN {next})");
    journal.append_blocking(batch_at(next, 1), Durability::Durable).unwrap();
    journal.close().unwrap();
    drop(journal);
    let events = read_all(Arc::new(StdFs), dir.path()).unwrap();
    assert_eq!(assert_dense(&events), next);
    eprintln!("{kills} kills, {acked_last} events acknowledged, {next} in the journal");
}
