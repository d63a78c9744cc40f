//! A write cut short at any byte of the last frames is a torn tail, never a
//! lost acknowledged event and never corruption.
//!
//! For every byte offset inside the last few frames of the active segment,
//! the segment is cut there and the journal reopened: recovery must yield
//! exactly the frames that were whole, save the cut bytes in a `.torn` file,
//! and the next append must continue the LSNs densely. This is the state a
//! crash in the middle of a group commit leaves (fjall and raft-engine test
//! the same edge).

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Journal, JournalOptions};
use bookend_tests::{assert_dense, batch_at, read_all, segment_files, sim_dir, sim_fs};

/// Frames at the end of the segment whose every byte is a cut point.
const FRAMES_CUT: usize = 4;

#[test]
fn every_cut_inside_the_last_frames_recovers_exactly_the_whole_frames() {
    let sim = SimFs::new();
    let dir = sim_dir();
    let journal = Journal::open_with_fs(sim_fs(&sim), &dir, JournalOptions::default()).unwrap();
    // Frame boundaries (end offsets) and the last LSN in each frame.
    let mut frames: Vec<(u64, u64)> = Vec::new();
    let mut lsn = 1;
    for i in 0..10u64 {
        let count = i % 3 + 1;
        let ack = journal.append_blocking(batch_at(lsn, count), Durability::Durable).unwrap();
        lsn = ack.last_lsn + 1;
        let segment = &segment_files(&*sim_fs(&sim), &dir)[0];
        frames.push((sim.read_file(segment).unwrap().len() as u64, ack.last_lsn));
    }
    drop(journal);
    let segment = segment_files(&*sim_fs(&sim), &dir)[0].clone();
    let whole = sim.read_file(&segment).unwrap();
    let cut_from = frames[frames.len() - FRAMES_CUT - 1].0;

    for cut in cut_from..whole.len() as u64 {
        let crashed = sim.snapshot();
        crashed.write_file(&segment, &whole[..cut as usize]).unwrap();
        let expect_last =
            frames.iter().filter(|(end, _)| *end <= cut).map(|(_, l)| *l).next_back().unwrap_or(0);
        let at_boundary = frames.iter().any(|(end, _)| *end == cut);

        let journal = Journal::open_with_fs(sim_fs(&crashed), &dir, JournalOptions::default())
            .unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
        let report = journal.recovery_report().clone();
        assert_eq!(report.next_lsn, expect_last + 1, "cut at {cut}");
        assert_eq!(report.torn_tail.is_some(), !at_boundary, "cut at {cut}: torn tail reported wrongly");
        if let Some(torn) = &report.torn_tail {
            let saved = crashed.read_file(torn.saved_to.as_ref().unwrap()).unwrap();
            let boundary = frames.iter().map(|(e, _)| *e).filter(|e| *e <= cut).max().unwrap();
            assert_eq!(saved, whole[boundary as usize..cut as usize], "cut at {cut}: torn bytes not saved");
        }
        let ack = journal.append_blocking(batch_at(expect_last + 1, 2), Durability::Durable).unwrap();
        assert_eq!(ack.first_lsn, expect_last + 1, "cut at {cut}: LSNs do not continue densely");
        drop(journal);

        let events = read_all(sim_fs(&crashed), &dir).unwrap();
        assert_eq!(assert_dense(&events), expect_last + 2, "cut at {cut}");
    }
}
