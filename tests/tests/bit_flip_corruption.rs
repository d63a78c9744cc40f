//! A single flipped bit anywhere in a journal is found, located exactly, and
//! never silently dropped or "repaired" on open.
//!
//! The journal is written across several segments. At sampled offsets in the
//! segment headers and in the frames of sealed and active segments one bit is
//! flipped; opening must fail with `Corruption` naming that segment and the
//! offset where the damaged frame (or header, offset 0) starts, and must leave
//! every file byte-for-byte as it was. That includes the last frame of the
//! active segment: the durable hint the writer updates after every fsync
//! vouches for it, so damage there is not mistaken for a torn write (it
//! used to be, and was truncated). The one exception is a non-zero byte in
//! the zeros the writer preallocates after its data: nothing acknowledged
//! is there, so it is a torn tail (saved, truncated) at the end of the data.

use std::path::PathBuf;

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Error, Journal, format};
use bookend_tests::{batch_at, segment_files, sim_dir, sim_fs, small_segments_full_scan};

/// Every this many bytes a frame byte is flipped (headers: every byte).
const FRAME_SAMPLE_STRIDE: usize = 5;

struct Layout {
    segments: Vec<(PathBuf, Vec<u8>, Vec<u64>)>,
}

impl Layout {
    /// Where the frames of segment `index` end (its preallocated zeros begin).
    fn data_end(&self, index: usize) -> u64 {
        let (_, bytes, starts) = &self.segments[index];
        match starts.last() {
            Some(&last) => {
                last + format::decode_frame_header(&bytes[last as usize..], 2).unwrap().frame_len() as u64
            }
            None => format::SEGMENT_HEADER_SIZE as u64,
        }
    }
}

fn build() -> (SimFs, Layout) {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), small_segments_full_scan()).unwrap();
    let mut lsn = 1;
    for i in 0..120u64 {
        let ack = journal.append_blocking(batch_at(lsn, i % 4 + 1), Durability::Durable).unwrap();
        lsn = ack.last_lsn + 1;
    }
    drop(journal);
    let mut segments = Vec::new();
    for path in segment_files(&*sim_fs(&sim), &sim_dir()) {
        let bytes = sim.read_file(&path).unwrap();
        segments.push((path, bytes.clone(), frame_starts(&bytes)));
    }
    assert!(segments.len() >= 3, "the workload must span sealed segments");
    (sim, Layout { segments })
}

/// Offsets where frames start, read from the frame headers, up to the
/// preallocated zeros (if any).
fn frame_starts(bytes: &[u8]) -> Vec<u64> {
    let mut starts = Vec::new();
    let mut at = format::SEGMENT_HEADER_SIZE;
    while at < bytes.len() && bytes[at..].iter().any(|b| *b != 0) {
        starts.push(at as u64);
        let header = format::decode_frame_header(&bytes[at..], 2).unwrap();
        at += header.frame_len();
    }
    starts
}

fn all_files(sim: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
    let fs = sim_fs(sim);
    fs.list_files(&sim_dir()).unwrap().into_iter().map(|p| (p.clone(), sim.read_file(&p).unwrap())).collect()
}

#[test]
fn flipped_bits_are_reported_at_the_damaged_frame_and_nothing_changes() {
    let (sim, layout) = build();
    let last_segment = layout.segments.len() - 1;
    let mut checked = 0;
    for (index, (path, bytes, starts)) in layout.segments.iter().enumerate() {
        let header_offsets = 0..format::SEGMENT_HEADER_SIZE;
        let frame_offsets = (format::SEGMENT_HEADER_SIZE..bytes.len()).step_by(FRAME_SAMPLE_STRIDE);
        for offset in header_offsets.chain(frame_offsets) {
            let bit = (offset % 8) as u8;
            let damaged = sim.snapshot();
            let mut flipped = bytes.clone();
            flipped[offset] ^= 1 << bit;
            damaged.write_file(path, &flipped).unwrap();
            let frame_start = starts.iter().copied().filter(|s| *s <= offset as u64).max().unwrap_or(0);
            let data_end = layout.data_end(index);
            let frame_start = if offset as u64 >= data_end { data_end } else { frame_start };
            let in_preallocated_zeros = index == last_segment && frame_start == data_end;
            let before = all_files(&damaged);

            let result = Journal::open_with_fs(sim_fs(&damaged), sim_dir(), small_segments_full_scan());
            if in_preallocated_zeros {
                let journal = result.unwrap_or_else(|e| panic!("flip at {}:{offset}: {e}", path.display()));
                let torn = journal.recovery_report().torn_tail.clone().expect("torn tail reported");
                assert_eq!(torn.offset, frame_start);
                continue;
            }
            match result {
                Err(Error::Corruption { segment, offset: at, reason }) => {
                    assert_eq!(&segment, path, "flip at {offset}: wrong segment ({reason})");
                    assert_eq!(
                        at,
                        frame_start,
                        "flip at {}:{offset}: wrong offset ({reason})",
                        path.display()
                    );
                }
                other => panic!("flip at {}:{offset}: expected corruption, got {other:?}", path.display()),
            }
            assert_eq!(
                all_files(&damaged),
                before,
                "flip at {}:{offset}: files were modified",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} flips were checked");
}

/// With the default `ScanMode::LastSegment`, open checks only headers and
/// the last segment (so open time does not grow with history); a flipped
/// bit in a sealed segment is then caught by every reader and by `check`,
/// with the same segment and offset, and never read past.
#[test]
fn default_open_leaves_sealed_segments_to_readers_which_catch_flips() {
    use bookend_journal::{JournalOptions, Reader, ScanMode};
    let (sim, layout) = build();
    let (path, bytes, starts) = &layout.segments[0];
    let mut flipped = bytes.clone();
    let target = starts[3] as usize + format::FRAME_HEADER_SIZE + 1;
    flipped[target] ^= 0x20;
    sim.write_file(path, &flipped).unwrap();
    let options = JournalOptions { segment_size_max_bytes: 4096, ..JournalOptions::default() };
    assert_eq!(options.scan_mode, ScanMode::LastSegment);
    drop(Journal::open_with_fs(sim_fs(&sim), sim_dir(), options).expect("open scans only the last segment"));
    let mut reader = Reader::open_with_fs(sim_fs(&sim), sim_dir(), 1);
    let err = loop {
        match reader.next_frame() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the reader read past a flipped bit"),
            Err(e) => break e,
        }
    };
    match err {
        Error::Corruption { segment, offset, .. } => assert_eq!((&segment, offset), (path, starts[3])),
        other => panic!("expected corruption, got {other}"),
    }
    match bookend_journal::check(sim_fs(&sim), &sim_dir()) {
        Err(Error::Corruption { segment, offset, .. }) => assert_eq!((&segment, offset), (path, starts[3])),
        other => panic!("check: expected corruption, got {other:?}"),
    }
}
