//! Arbitrary bytes on disk never make the journal panic or allocate beyond
//! its limits: they become `Corruption`, a torn tail, or codec errors.
//!
//! Property tests feed random bytes (alone, after a valid segment header,
//! and spliced into a valid journal) to recovery, to readers and to the
//! codec. Each must answer with a typed damage error (`Corruption`,
//! `DataLoss`, `ForeignState`, `NoJournal`, `Codec`) or a torn tail — never
//! an I/O error, a panic, or any other kind — and no allocation may exceed
//! [`ALLOCATION_MAX_BYTES`], so a corrupt length of 4 GiB is an error, not
//! an allocation. Guards against a decoder that trusts a length from disk
//! (the classic out-of-memory abort after a power cut scrambles a header).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use bookend_journal::fs::Fs;
use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Journal, JournalOptions, Reader, codec, format};
use bookend_tests::{TestEvent, batch_at, sim_dir, sim_fs};
use proptest::prelude::*;

/// The largest single allocation any of this file's checks may make: the
/// 1 MiB scan buffer recovery and readers use, with slack. Nothing read from
/// disk may size an
/// allocation beyond it.
const ALLOCATION_MAX_BYTES: usize = (1 << 20) + 64 * 1024;

/// What a length prefix can make the codec reserve before the bytes behind
/// it are read (serde's cautious size hint: 1 MiB), with slack.
const CODEC_PREALLOCATION_MAX_BYTES: usize = (1 << 20) + 64 * 1024;

/// Records, per thread, the largest allocation requested.
struct Watching;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only
// records the requested size in a const-initialised thread-local.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `f` and returns the largest allocation it made on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    f();
    LARGEST.with(|l| l.get())
}

/// Damage must be reported as one of the typed damage kinds.
fn assert_damage_kind(e: &bookend_journal::Error, during: &str) {
    use bookend_journal::Error as E;
    assert!(
        matches!(e, E::Corruption { .. } | E::DataLoss { .. } | E::ForeignState { .. } | E::NoJournal { .. }),
        "{during} answered random bytes with {e:?}, not a damage error"
    );
}

fn segment_path() -> std::path::PathBuf {
    sim_dir().join(format::segment_file_name(1))
}

/// Runs every consumer of on-disk bytes over the directory: each answers
/// with a value or a typed damage error, and the scans (recovery's check and
/// a reader) allocate within the bound. Open runs the same scan, then
/// preallocates a segment in the simulated file system, so it is not measured.
fn exercise(sim: &SimFs) {
    let largest = largest_allocation(|| exercise_readers(sim));
    assert!(largest <= ALLOCATION_MAX_BYTES, "an allocation of {largest} bytes was made from random bytes");
    exercise_open(sim);
}

fn exercise_readers(sim: &SimFs) {
    let fs: Arc<dyn Fs> = sim_fs(sim);
    if let Err(e) = bookend_journal::check(fs.clone(), Path::new("/journal")) {
        assert_damage_kind(&e, "check");
    }
    let mut reader = Reader::open_with_fs(fs.clone(), sim_dir(), 1);
    for _ in 0..10_000 {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                for (_, bytes) in frame.events() {
                    if let Err(e) = codec::decode::<TestEvent>(bytes) {
                        assert!(matches!(e, bookend_journal::Error::Codec { .. }), "decode gave {e:?}");
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                assert_damage_kind(&e, "the reader");
                break;
            }
        }
    }
}

fn exercise_open(sim: &SimFs) {
    match Journal::open_with_fs(sim_fs(sim), sim_dir(), JournalOptions::default()) {
        // Whatever recovery accepted must take appends again.
        Ok(journal) => {
            journal.append_blocking(batch_at(journal.next_lsn(), 1), Durability::Durable).unwrap();
        }
        Err(e) => assert_damage_kind(&e, "open"),
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
        let largest = largest_allocation(|| {
            for result in [codec::decode::<TestEvent>(&bytes).map(|_| ()), codec::decode::<Vec<String>>(&bytes).map(|_| ())] {
                if let Err(e) = result {
                    assert!(matches!(e, bookend_journal::Error::Codec { .. }), "decode gave {e:?}");
                }
            }
        });
        // A claimed length is not trusted: serde caps what a length prefix
        // can preallocate at 1 MiB, whatever the prefix says.
        prop_assert!(largest <= CODEC_PREALLOCATION_MAX_BYTES, "the codec allocated {} bytes for {} input bytes", largest, bytes.len());
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
    let mut report = None;
    let largest =
        largest_allocation(|| report = Some(bookend_journal::check(sim_fs(&sim), &sim_dir()).unwrap()));
    assert!(largest <= ALLOCATION_MAX_BYTES, "reading a 4 GiB length allocated {largest} bytes");
    let report = report.unwrap();
    let torn = report.torn_tail.expect("a bad frame at the very end is a torn tail");
    assert_eq!(torn.offset, format::SEGMENT_HEADER_SIZE as u64);
    assert!(torn.reason.contains("exceeds the limit"), "{}", torn.reason);
}
