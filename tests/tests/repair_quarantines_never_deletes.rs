//! `repair` makes a corrupt journal openable again without deleting a byte.
//!
//! A journal spanning several segments is damaged in the middle of a sealed
//! segment. Opening refuses with `Corruption`. `repair` moves the damaged
//! suffix of that segment and every later segment into quarantine files;
//! the kept bytes plus the quarantined bytes are exactly the original bytes;
//! the journal then opens with every event before the damage, and appends
//! continue densely from there. A second repair finds nothing to do.

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Error, Journal, repair};
use bookend_tests::{
    assert_dense, batch_at, read_all, segment_files, sim_dir, sim_fs, small_segments_full_scan,
};

#[test]
fn repair_moves_the_corrupt_suffix_aside_and_the_journal_opens() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), small_segments_full_scan()).unwrap();
    for i in 0..150u64 {
        journal.append_blocking(batch_at(journal.next_lsn(), i % 3 + 1), Durability::Durable).unwrap();
    }
    drop(journal);
    let fs = sim_fs(&sim);
    let segments = segment_files(&*fs, &sim_dir());
    assert!(segments.len() >= 4);
    let originals: Vec<Vec<u8>> = segments.iter().map(|p| sim.read_file(p).unwrap()).collect();

    // Damage the middle of the second segment.
    let damaged = &segments[1];
    let mut bytes = originals[1].clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    sim.write_file(damaged, &bytes).unwrap();
    let (segment, offset) = match Journal::open_with_fs(fs.clone(), sim_dir(), small_segments_full_scan()) {
        Err(Error::Corruption { segment, offset, .. }) => (segment, offset),
        other => panic!("expected corruption, got {other:?}"),
    };
    assert_eq!(&segment, damaged);

    let report = repair(&*fs, &sim_dir()).unwrap();
    assert_eq!(report.quarantined.len(), segments.len() - 1, "{:?}", report.quarantined);
    // Nothing deleted: the kept prefix plus its quarantine file is the damaged segment.
    let kept = sim.read_file(damaged).unwrap();
    assert_eq!(kept.len() as u64, offset);
    let mut rejoined = kept.clone();
    rejoined.extend(sim.read_file(&report.quarantined[0]).unwrap());
    assert_eq!(rejoined, bytes);
    for (later, original) in report.quarantined[1..].iter().zip(&originals[2..]) {
        assert_eq!(&sim.read_file(later).unwrap(), original, "{} changed", later.display());
    }

    let events = read_all(fs.clone(), &sim_dir()).unwrap();
    let survivors = assert_dense(&events);
    assert_eq!(survivors + 1, report.next_lsn);
    let journal = Journal::open_with_fs(fs.clone(), sim_dir(), small_segments_full_scan()).unwrap();
    let ack = journal.append_blocking(batch_at(report.next_lsn, 2), Durability::Durable).unwrap();
    assert_eq!(ack.first_lsn, report.next_lsn);
    drop(journal);
    assert_eq!(assert_dense(&read_all(fs.clone(), &sim_dir()).unwrap()), survivors + 2);

    let again = repair(&*fs, &sim_dir()).unwrap();
    assert!(again.quarantined.is_empty() && again.torn_tail.is_none());
}

#[test]
fn a_misnamed_or_missing_segment_is_corruption() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), small_segments_full_scan()).unwrap();
    for _ in 0..100 {
        journal.append_blocking(batch_at(journal.next_lsn(), 2), Durability::Durable).unwrap();
    }
    drop(journal);
    let fs = sim_fs(&sim);
    let segments = segment_files(&*fs, &sim_dir());
    let middle = &segments[1];
    let renamed = sim_dir().join("segment-two.wal");
    fs.rename(middle, &renamed).unwrap();
    match Journal::open_with_fs(fs.clone(), sim_dir(), small_segments_full_scan()) {
        Err(Error::Corruption { segment, .. }) => assert_eq!(segment, renamed),
        other => panic!("misnamed segment: expected corruption, got {other:?}"),
    }
    fs.rename(&renamed, &sim_dir().join("segment-two.bak")).unwrap();
    match Journal::open_with_fs(fs.clone(), sim_dir(), small_segments_full_scan()) {
        Err(Error::Corruption { segment, offset, reason }) => {
            assert_eq!(segment, segments[2]);
            assert_eq!(offset, 0);
            assert!(reason.contains("LSN gap"), "{reason}");
        }
        other => panic!("missing segment: expected corruption, got {other:?}"),
    }
}
