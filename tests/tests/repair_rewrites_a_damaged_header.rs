//! A damaged segment header field that reading does not depend on is
//! mended, never a reason to set valid frames aside.
//!
//! One reserved bit is flipped in the header of the first of several
//! segments. Open refuses (the header's checksum no longer holds, and the
//! journal does not guess). `repair` rebuilds the header from what the
//! journal knows — the file name, the manifest's identity, the previous
//! segment's seal record — checks that the frames after it agree, saves the
//! damaged header aside and writes the rebuilt one: exactly the flipped
//! byte differed, no frame moved, nothing acknowledged was lost, and every
//! event reads back. The same holds for a flip in the journal id or in the
//! seal record of a later segment's header. Before, that one bit made
//! `repair` quarantine all four segments and report success ("next LSN is 1").

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Error, Journal, repair};
use bookend_tests::{assert_dense, batch_at, read_all, segment_files, sim_dir, sim_fs, small_segments};

#[test]
fn a_flipped_header_bit_is_rewritten_and_no_frame_moves() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), small_segments()).unwrap();
    for i in 0..200u64 {
        journal.append_blocking(batch_at(journal.next_lsn(), i % 3 + 1), Durability::Durable).unwrap();
    }
    let last = journal.next_lsn() - 1;
    drop(journal);
    let segments = segment_files(&*sim_fs(&sim), &sim_dir());
    assert!(segments.len() >= 4);
    // A reserved byte of segment 1, a journal-id byte of segment 2, and a
    // seal-record byte (the previous segment's length) of segment 3.
    for (index, byte) in [(0usize, 9usize), (1, 25), (2, 55)] {
        let damaged = sim.snapshot();
        let path = &segments[index];
        let original = damaged.read_file(path).unwrap();
        let mut bytes = original.clone();
        bytes[byte] ^= 0x01;
        damaged.write_file(path, &bytes).unwrap();
        match Journal::open_with_fs(sim_fs(&damaged), sim_dir(), small_segments()) {
            Err(Error::Corruption { segment, offset: 0, .. }) => assert_eq!(&segment, path),
            other => panic!("byte {byte} of {}: expected corruption at 0, got {other:?}", path.display()),
        }
        let report = repair(&*sim_fs(&damaged), &sim_dir()).unwrap();
        assert!(report.moved.is_empty(), "frames were moved: {:?}", report.moved);
        assert!(!report.lost_acknowledged() && report.unresolved.is_none(), "{report:?}");
        assert_eq!(report.headers_rewritten.len(), 1);
        let rewrite = &report.headers_rewritten[0];
        assert_eq!((&rewrite.segment, rewrite.changed_bytes.clone()), (path, vec![byte]));
        let header_len = bookend_journal::format::SEGMENT_HEADER_SIZE;
        assert_eq!(
            damaged.read_file(&rewrite.saved_to).unwrap(),
            bytes[..header_len].to_vec(),
            "old header not kept"
        );
        assert_eq!(damaged.read_file(path).unwrap(), original, "the rebuilt header is not the original one");
        let journal = Journal::open_with_fs(sim_fs(&damaged), sim_dir(), small_segments()).unwrap();
        assert_eq!(journal.next_lsn(), last + 1);
        drop(journal);
        assert_eq!(assert_dense(&read_all(sim_fs(&damaged), &sim_dir()).unwrap()), last);
    }
}
