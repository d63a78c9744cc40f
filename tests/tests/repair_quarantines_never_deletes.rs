//! `repair` moves exactly the damaged bytes aside, says which LSNs they
//! held and whether they had been acknowledged, and never deletes a byte.
//!
//! A journal spanning several segments is damaged in the middle of a sealed
//! segment. Opening refuses with `Corruption`. `repair` moves the rest of
//! *that* segment into a quarantine file — the later segments, every frame
//! of which is valid, stay where they are — and reports the byte range, the
//! LSN range, and that those LSNs had been acknowledged (a sealed segment
//! was durable), so it is not a success. The kept bytes plus the
//! quarantined bytes are exactly the damaged segment. The journal still
//! refuses to open until the loss is accepted; with `accept_data_loss` it
//! opens, every event before the damage and every event of the later
//! segments is still read, the recorded gap is exactly the quarantined
//! range, appends continue after the last LSN (none is reused), and a
//! second repair finds nothing to do. Before this, `repair` quarantined
//! every later segment too (valid, acknowledged frames included).

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Error, Journal, JournalOptions, repair};
use bookend_tests::{batch_at, read_all, segment_files, sim_dir, sim_fs, small_segments_full_scan};

fn accepting() -> JournalOptions {
    JournalOptions { accept_data_loss: true, ..small_segments_full_scan() }
}

#[test]
fn repair_moves_only_the_damaged_suffix_and_says_what_it_held() {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), small_segments_full_scan()).unwrap();
    for i in 0..150u64 {
        journal.append_blocking(batch_at(journal.next_lsn(), i % 3 + 1), Durability::Durable).unwrap();
    }
    let last = journal.next_lsn() - 1;
    journal.close().unwrap();
    drop(journal);
    let fs = sim_fs(&sim);
    let segments = segment_files(&*fs, &sim_dir());
    assert!(segments.len() >= 4);
    let originals: Vec<Vec<u8>> = segments.iter().map(|p| sim.read_file(p).unwrap()).collect();

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
    assert_eq!(report.moved.len(), 1, "{:?}", report.moved);
    let moved = &report.moved[0];
    assert_eq!((&moved.from, moved.bytes), (damaged, (offset, bytes.len() as u64)));
    assert!(moved.acknowledged, "a sealed segment's frames were acknowledged");
    assert!(report.lost_acknowledged() && report.unresolved.is_some(), "{report:?}");
    let next_first = segment_files(&*fs, &sim_dir())[2].file_stem().unwrap().to_str().unwrap().parse::<u64>();
    let (lost_from, lost_to) = moved.lsns.expect("the LSN range of the moved bytes");
    assert_eq!(lost_to + 1, next_first.unwrap());
    let kept = sim.read_file(damaged).unwrap();
    assert_eq!(kept.len() as u64, offset);
    assert_eq!([kept, sim.read_file(&moved.to).unwrap()].concat(), bytes, "bytes were lost");
    for (later, original) in segments[2..].iter().zip(&originals[2..]) {
        assert_eq!(&sim.read_file(later).unwrap(), original, "{} was touched", later.display());
    }

    assert!(matches!(
        Journal::open_with_fs(fs.clone(), sim_dir(), small_segments_full_scan()),
        Err(Error::Corruption { .. })
    ));
    let journal = Journal::open_with_fs(fs.clone(), sim_dir(), accepting()).unwrap();
    let accepted: Vec<(u64, u64)> =
        journal.recovery_report().accepted_now.iter().map(|l| (l.lost_from, l.lost_to)).collect();
    assert_eq!(accepted, vec![(lost_from, lost_to)]);
    let ack = journal.append_blocking(batch_at(last + 1, 2), Durability::Durable).unwrap();
    assert_eq!(ack.first_lsn, last + 1, "LSNs continue after the last one");
    drop(journal);
    let lsns: Vec<u64> = read_all(fs.clone(), &sim_dir()).unwrap().iter().map(|e| e.lsn).collect();
    let expected: Vec<u64> = (1..lost_from).chain(lost_to + 1..=last + 2).collect();
    assert_eq!(lsns, expected);

    let again = repair(&*fs, &sim_dir()).unwrap();
    assert!(again.moved.is_empty() && again.torn_tail.is_none() && again.unresolved.is_none(), "{again:?}");
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
    for scan in [bookend_journal::ScanMode::Full, bookend_journal::ScanMode::LastSegment] {
        let options = JournalOptions { scan_mode: scan, ..small_segments_full_scan() };
        match Journal::open_with_fs(fs.clone(), sim_dir(), options) {
            Err(Error::Corruption { segment, offset, reason }) => {
                assert_eq!((segment, offset), (segments[2].clone(), 0), "{reason}");
                assert!(reason.contains("is missing"), "{reason}");
            }
            other => panic!("missing segment ({scan:?}): expected corruption, got {other:?}"),
        }
    }
}
