//! A reader that meets a frame still being written waits for it; it does not
//! call it corruption, skip it, or hand out part of it.
//!
//! The bytes of a frame are made to appear in the active segment a few at a
//! time, as another process's reader could see them mid-`write`: once at the
//! end of a growing file, and once over the zeros the writer preallocates
//! (the file's length never changes, only its bytes). At every partial
//! length the reader reports "nothing yet"; once the frame is whole it is
//! returned, and the reader then carries on with the next frame.

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Journal, JournalOptions, Reader, codec, format};
use bookend_tests::{TestEvent, batch_at, sim_dir, sim_fs};

#[test]
fn a_partial_frame_at_the_head_is_waited_for() {
    partial_frames_are_waited_for(false);
}

#[test]
fn a_partial_frame_over_preallocated_zeros_is_waited_for() {
    partial_frames_are_waited_for(true);
}

fn partial_frames_are_waited_for(zero_padded: bool) {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), JournalOptions::default()).unwrap();
    journal.append_blocking(batch_at(1, 2), Durability::Durable).unwrap();
    journal.append_blocking(batch_at(3, 3), Durability::Durable).unwrap();
    drop(journal);
    let path = sim_dir().join(format::segment_file_name(1));
    let file = sim.read_file(&path).unwrap();
    let frame_end =
        |start: usize| start + format::decode_frame_header(&file[start..], 2).unwrap().frame_len();
    let first_frame_end = frame_end(format::SEGMENT_HEADER_SIZE);
    let data_end = frame_end(first_frame_end);
    assert!(file[data_end..].iter().all(|b| *b == 0), "only zeros follow the frames");
    let visible = |len: usize| {
        let mut bytes = file[..len].to_vec();
        if zero_padded {
            bytes.resize(file.len(), 0);
        }
        bytes
    };

    sim.write_file(&path, &visible(first_frame_end)).unwrap();
    let mut reader = Reader::open_with_fs(sim_fs(&sim), sim_dir(), 1);
    let lsns: Vec<u64> = reader.next_frame().unwrap().unwrap().events().map(|(lsn, _)| lsn).collect();
    assert_eq!(lsns, [1, 2]);
    for partial in first_frame_end..data_end {
        sim.write_file(&path, &visible(partial)).unwrap();
        assert!(reader.next_frame().unwrap().is_none(), "partial frame ({partial} bytes) was handed out");
    }
    sim.write_file(&path, &visible(data_end)).unwrap();
    let frame = reader.next_frame().unwrap().expect("whole frame is returned");
    let events: Vec<TestEvent> = frame.events().map(|(_, b)| codec::decode(b).unwrap()).collect();
    assert_eq!(events, (3..=5).map(TestEvent::at).collect::<Vec<_>>());
    assert!(reader.next_frame().unwrap().is_none());
}
