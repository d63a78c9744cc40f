//! A reader that meets a frame still being written waits for it; it does not
//! call it corruption, skip it, or hand out part of it.
//!
//! The bytes of a frame are made to appear in the active segment a few at a
//! time, as another process's reader could see them mid-`write`. At every
//! partial length the reader reports "nothing yet"; once the frame is whole
//! it is returned, and the reader then carries on with the next frame.

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Journal, JournalOptions, Reader, codec, format};
use bookend_tests::{TestEvent, batch_at, sim_dir, sim_fs};

#[test]
fn a_partial_frame_at_the_head_is_waited_for() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), JournalOptions::default()).unwrap();
    journal.append_blocking(batch_at(1, 2), Durability::Durable).unwrap();
    journal.append_blocking(batch_at(3, 3), Durability::Durable).unwrap();
    drop(journal);
    let path = sim_dir().join(format::segment_file_name(1));
    let whole = sim.read_file(&path).unwrap();
    let first_frame_end = format::SEGMENT_HEADER_SIZE
        + format::decode_frame_header(&whole[format::SEGMENT_HEADER_SIZE..]).unwrap().frame_len();

    sim.write_file(&path, &whole[..first_frame_end]).unwrap();
    let mut reader = Reader::open_with_fs(sim_fs(&sim), sim_dir(), 1);
    let lsns: Vec<u64> = reader.next_frame().unwrap().unwrap().events().map(|(lsn, _)| lsn).collect();
    assert_eq!(lsns, [1, 2]);
    for partial in first_frame_end + 1..whole.len() {
        sim.write_file(&path, &whole[..partial]).unwrap();
        assert!(reader.next_frame().unwrap().is_none(), "partial frame ({partial} bytes) was handed out");
    }
    sim.write_file(&path, &whole).unwrap();
    let frame = reader.next_frame().unwrap().expect("whole frame is returned");
    let events: Vec<TestEvent> = frame.events().map(|(_, b)| codec::decode(b).unwrap()).collect();
    assert_eq!(events, (3..=5).map(TestEvent::at).collect::<Vec<_>>());
    assert!(reader.next_frame().unwrap().is_none());
}
