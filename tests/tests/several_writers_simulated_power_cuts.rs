//! Two writers sharing one journal (`JournalOptions::shared_writers`) on
//! the simulated file system, their appends interleaved at random, then a
//! power cut that drops, tears or keeps the unsynced writes: the journal
//! reopens by itself, dense from LSN 1, with every batch either writer was
//! told was durable at exactly the LSNs it was given.
//!
//! Guards against a turn that loses track of another writer's frames (two
//! writers numbering or writing the same place), a seal record that leaves
//! out the other writer's bytes (the next open would call a good segment
//! corrupt), and a crash between two writers' turns that needs a person.

use std::collections::BTreeMap;

use bookend_journal::fs::Fs;
use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_journal::{Batch, Durability, Journal, JournalOptions, codec};
use bookend_tests::{scale, sim_dir, sim_fs};

fn options() -> JournalOptions {
    JournalOptions { segment_size_max_bytes: 4096, shared_writers: true, ..JournalOptions::default() }
}

fn batch(writer: u64, seq: u64) -> Batch {
    let mut batch = Batch::new();
    for _ in 0..seq % 3 + 1 {
        batch.push(&(writer, seq)).unwrap();
    }
    batch
}

#[test]
fn interleaved_writers_survive_every_kind_of_power_cut() {
    let policies = [CrashPolicy::DropUnsynced, CrashPolicy::KeepUnsyncedPrefix(37), CrashPolicy::KeepAllData];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..scale(12, 100) {
        let sim = SimFs::new();
        let writers = [
            Journal::open_with_fs(sim_fs(&sim), sim_dir(), options()).unwrap(),
            Journal::open_with_fs(sim_fs(&sim), sim_dir(), options()).unwrap(),
        ];
        let mut durable: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for seq in 0..300u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let w = (seed % 2) as usize;
            let durability = if seed.is_multiple_of(5) { Durability::Buffered } else { Durability::Durable };
            let ack = writers[w].append_blocking(batch(w as u64, seq), durability).unwrap();
            if durability == Durability::Durable {
                for lsn in ack.first_lsn..=ack.last_lsn {
                    durable.insert(lsn, (w as u64, seq));
                }
            }
        }
        let crashed = sim.snapshot();
        crashed.crash(policies[round % policies.len()].clone());
        drop(writers);
        let reopened = Journal::open_with_fs(sim_fs(&crashed), sim_dir(), options())
            .unwrap_or_else(|e| panic!("round {round}: the crashed journal did not reopen: {e}"));
        let mut reader = reopened.reader(1).unwrap();
        let mut seen = 0u64;
        while let Some(frame) = reader.next_frame().unwrap() {
            for (lsn, bytes) in frame.events() {
                seen += 1;
                assert_eq!(lsn, seen, "round {round}: LSNs are not dense");
                let event: (u64, u64) = codec::decode(bytes).unwrap();
                if let Some(expected) = durable.get(&lsn) {
                    assert_eq!(&event, expected, "round {round}: LSN {lsn} holds another batch");
                }
            }
        }
        assert!(
            sim.list_files(&sim_dir())
                .unwrap()
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "wal"))
                .count()
                > 2
        );
        let last_durable = durable.keys().last().copied().unwrap_or(0);
        assert!(seen >= last_durable, "round {round}: durable LSN {last_durable} lost ({seen} survived)");
    }
}
