//! A hole in a journal's history is found by the writer's open, at a cost
//! of O(segments), and nothing is appended after it until a person acts.
//!
//! A journal of several sealed segments loses one in the middle, has one
//! cut short, or has one grow: each time open refuses with `Corruption`
//! naming the segment, with the default scan (which reads one header and
//! one frame per sealed segment, not their bytes) and with a full scan,
//! and leaves every file as it was. Accepting the loss keeps every later
//! segment, records the lost LSNs as a gap, and continues after the last
//! LSN. Garbage inside a sealed segment is left to readers and `verify`
//! (open does not read sealed bytes), but `repair` then moves only that
//! segment's damaged suffix: an event acknowledged after the damage is
//! never set aside with it. Before format version 2, open checked only
//! the last segment, acknowledged new commands after a hole, and `repair`
//! then quarantined them.

use std::path::PathBuf;

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Error, Journal, JournalOptions, Reader, ScanMode};
use bookend_tests::{batch_at, read_all, segment_files, sim_dir, sim_fs, small_segments};

fn build() -> (SimFs, Vec<PathBuf>, u64) {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), small_segments()).unwrap();
    for i in 0..300u64 {
        journal.append_blocking(batch_at(journal.next_lsn(), i % 3 + 1), Durability::Durable).unwrap();
    }
    let last = journal.next_lsn() - 1;
    journal.close().unwrap();
    drop(journal);
    let segments = segment_files(&*sim_fs(&sim), &sim_dir());
    assert!(segments.len() >= 5, "the workload must span several sealed segments");
    (sim, segments, last)
}

fn snapshot(sim: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
    let fs = sim_fs(sim);
    fs.list_files(&sim_dir()).unwrap().into_iter().map(|p| (p.clone(), sim.read_file(&p).unwrap())).collect()
}

fn expect_refusal(sim: &SimFs, segment: &PathBuf, what: &str) {
    let before = snapshot(sim);
    for scan_mode in [ScanMode::LastSegment, ScanMode::Full] {
        let options = JournalOptions { scan_mode, ..small_segments() };
        match Journal::open_with_fs(sim_fs(sim), sim_dir(), options) {
            Err(Error::Corruption { segment: found, reason, .. }) => {
                assert_eq!(&found, segment, "{what} ({scan_mode:?}): {reason}");
            }
            other => panic!("{what} ({scan_mode:?}): expected corruption, got {other:?}"),
        }
    }
    assert_eq!(snapshot(sim), before, "{what}: refusing to open changed files");
}

/// Accepting the loss keeps every segment after the hole and continues
/// after the last LSN; returns the LSNs the journal then holds.
fn accept_and_append(sim: &SimFs, last: u64) -> Vec<u64> {
    let options = JournalOptions { accept_data_loss: true, ..small_segments() };
    let journal = Journal::open_with_fs(sim_fs(sim), sim_dir(), options).unwrap();
    assert_eq!(journal.recovery_report().accepted_now.len(), 1, "one gap is recorded");
    assert_eq!(journal.next_lsn(), last + 1, "LSNs continue after the last one");
    journal.append_blocking(batch_at(last + 1, 1), Durability::Durable).unwrap();
    drop(journal);
    read_all(sim_fs(sim), &sim_dir()).unwrap().iter().map(|e| e.lsn).collect()
}

#[test]
fn a_missing_sealed_segment_is_refused_and_the_rest_is_kept_when_accepted() {
    let (sim, segments, last) = build();
    sim_fs(&sim).remove_file(&segments[2]).unwrap();
    expect_refusal(&sim, &segments[3], "a missing segment");
    let lsns = accept_and_append(&sim, last);
    let first_lost = segment_first(&segments[2]);
    let first_after = segment_first(&segments[3]);
    let expected: Vec<u64> = (1..first_lost).chain(first_after..=last + 1).collect();
    assert_eq!(lsns, expected);
}

#[test]
fn a_sealed_segment_cut_short_or_grown_is_refused() {
    let (sim, segments, last) = build();
    let bytes = sim.read_file(&segments[1]).unwrap();
    let cut = sim.snapshot();
    cut.write_file(&segments[1], &bytes[..bytes.len() - 30]).unwrap();
    expect_refusal(&cut, &segments[1], "a cut segment");
    let lsns = accept_and_append(&cut, last);
    assert_eq!(lsns.last(), Some(&(last + 1)));
    assert!(lsns.contains(&segment_first(&segments[2])), "the segment after the cut was kept");

    let grown = sim.snapshot();
    grown.write_file(&segments[1], &[bytes.clone(), vec![0xEE; 40]].concat()).unwrap();
    expect_refusal(&grown, &segments[1], "a grown segment");
}

#[test]
fn garbage_in_a_sealed_segment_never_costs_later_acknowledged_events() {
    let (sim, segments, last) = build();
    let mut bytes = sim.read_file(&segments[1]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 8].copy_from_slice(b"garbage!");
    sim.write_file(&segments[1], &bytes).unwrap();
    // Open does not read sealed bytes; readers do, and stop at the damage.
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), small_segments()).unwrap();
    let acked = journal.append_blocking(batch_at(last + 1, 2), Durability::Durable).unwrap();
    drop(journal);
    let mut reader = Reader::open_with_fs(sim_fs(&sim), sim_dir(), 1);
    let err = std::iter::from_fn(|| Some(reader.next_frame().map(|f| f.is_some())))
        .find(|r| !matches!(r, Ok(true)));
    assert!(matches!(err, Some(Err(Error::Corruption { .. }))), "{err:?}");

    let report = bookend_journal::repair(&*sim_fs(&sim), &sim_dir()).unwrap();
    assert_eq!(report.moved.len(), 1);
    assert_eq!(report.moved[0].from, segments[1], "only the damaged segment's suffix moves");
    assert!(report.moved[0].acknowledged);
    for later in &segments[2..] {
        assert!(sim_fs(&sim).exists(later), "{} was moved", later.display());
    }
    let lsns = accept_and_append(&sim, acked.last_lsn);
    assert!(
        lsns.contains(&acked.first_lsn) && lsns.contains(&acked.last_lsn),
        "the acknowledged append is gone"
    );
}

fn segment_first(path: &std::path::Path) -> u64 {
    path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).unwrap()
}
