//! Arbitrary bytes on disk never make the journal panic or allocate beyond
//! its limits: they become `Corruption`, a torn tail, or codec errors.
//!
//! Property tests feed random bytes (alone, after a valid segment header,
//! and spliced into a valid journal) to recovery, to readers and to the
//! codec. Libraries never panic on input; a corrupt length of 4 GiB must be
//! an error, not an allocation.

use std::path::Path;
use std::sync::Arc;

use bookend_journal::fs::Fs;
use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Journal, JournalOptions, Reader, codec, format};
use bookend_tests::{TestEvent, batch_at, sim_dir, sim_fs};
use proptest::prelude::*;

fn segment_path() -> std::path::PathBuf {
    sim_dir().join(format::segment_file_name(1))
}

/// Runs every consumer of on-disk bytes over the directory; only checks
/// that none of them panics.
fn exercise(sim: &SimFs) {
    let fs: Arc<dyn Fs> = sim_fs(sim);
    let _ = bookend_journal::check(fs.clone(), Path::new("/journal"));
    let mut reader = Reader::open_with_fs(fs.clone(), sim_dir(), 1);
    for _ in 0..10_000 {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                for (_, bytes) in frame.events() {
                    let _ = codec::decode::<TestEvent>(bytes);
                }
            }
            _ => break,
        }
    }
    if let Ok(journal) = Journal::open_with_fs(fs, sim_dir(), JournalOptions::default()) {
        // Whatever recovery accepted must take appends again.
        journal.append_blocking(batch_at(journal.next_lsn(), 1), Durability::Durable).unwrap();
    }
}

fn valid_journal() -> Vec<u8> {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), JournalOptions::default()).unwrap();
    for i in 0..8 {
        journal.append_blocking(batch_at(journal.next_lsn(), i % 3 + 1), Durability::Durable).unwrap();
    }
    drop(journal);
    sim.read_file(&segment_path()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_segment_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let sim = SimFs::new();
        sim.create_dir_all(&sim_dir()).unwrap();
        sim.write_file(&segment_path(), &bytes).unwrap();
        exercise(&sim);
    }

    #[test]
    fn random_frames_after_a_valid_header_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let sim = SimFs::new();
        sim.create_dir_all(&sim_dir()).unwrap();
        let mut file = format::encode_segment_header(1, bookend_journal::JournalId([7; 16]), None).to_vec();
        file.extend_from_slice(&bytes);
        sim.write_file(&segment_path(), &file).unwrap();
        exercise(&sim);
    }

    #[test]
    fn spliced_garbage_in_a_valid_journal_never_panics(
        at in 0usize..4096,
        garbage in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let mut file = valid_journal();
        let at = at % file.len();
        let end = (at + garbage.len()).min(file.len());
        file[at..end].copy_from_slice(&garbage[..end - at]);
        let sim = SimFs::new();
        sim.create_dir_all(&sim_dir()).unwrap();
        sim.write_file(&segment_path(), &file).unwrap();
        exercise(&sim);
    }

    #[test]
    fn random_event_bytes_never_panic_the_codec(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode::<TestEvent>(&bytes);
        let _ = codec::decode::<Vec<String>>(&bytes);
    }
}

#[test]
fn a_four_gib_length_is_an_error_not_an_allocation() {
    let sim = SimFs::new();
    sim.create_dir_all(&sim_dir()).unwrap();
    let mut file = format::encode_segment_header(1, bookend_journal::JournalId([7; 16]), None).to_vec();
    let mut frame = [0u8; format::FRAME_HEADER_SIZE];
    frame[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    frame[8..16].copy_from_slice(&1u64.to_le_bytes());
    frame[16..20].copy_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&frame);
    file.extend_from_slice(&[0xAB; 100]);
    sim.write_file(&segment_path(), &file).unwrap();
    let report = bookend_journal::check(sim_fs(&sim), &sim_dir()).unwrap();
    let torn = report.torn_tail.expect("a bad frame at the very end is a torn tail");
    assert_eq!(torn.offset, format::SEGMENT_HEADER_SIZE as u64);
    assert!(torn.reason.contains("exceeds the limit"), "{}", torn.reason);
}
