//! A reader of the open journal starts inside the recovered last segment
//! at a frame recovery checked, not at the segment's header, and still
//! returns exactly the events from the LSN asked for.
//!
//! Opening a session journal reads the journal's tail after the
//! checkpoint: usually nothing, or a few thousand events at the end of a
//! segment (16 MiB at most, 64 MiB then). The reader used to read and
//! CRC-check that whole segment again (recovery had just done so) to find
//! the tail; at 10M events that was a third of the open. Now recovery notes a frame every
//! MiB and where the frames end, and `Journal::reader` starts at the
//! nearest one. This proves that the events handed out are the same from
//! every kind of start (the segment's first LSN, inside a frame of several
//! events, at a noted frame, the last event, the next LSN to write, an
//! earlier segment), and that the frames before the start are not read
//! again: a byte damaged after the open, early in the segment, stops a
//! plain reader that scans from the header but not the journal's own
//! reader started past it (a reader from LSN 1 still finds the damage).

use bookend_journal::sim::SimFs;
use bookend_journal::{Durability, Journal, JournalOptions, Reader, codec};
use bookend_tests::{TestEvent, batch_at, segment_files, sim_dir, sim_fs};

/// Events in the last segment: about 5 MiB of frames of 1 to 90 events.
const BATCHES: u64 = 2_000;

fn write_history(sim: &SimFs, options: &JournalOptions) -> u64 {
    let journal = Journal::open_with_fs(sim_fs(sim), sim_dir(), options.clone()).unwrap();
    let mut next = 1;
    for i in 0..BATCHES {
        let count = 1 + (i * 37) % 90;
        journal.append_blocking(batch_at(next, count), Durability::Buffered).unwrap();
        next += count;
    }
    journal.close().unwrap();
    next - 1
}

/// The LSNs and events `reader` yields until it has nothing more.
fn drain(mut reader: Reader) -> bookend_journal::Result<Vec<u64>> {
    let mut lsns = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        for (lsn, bytes) in frame.events() {
            let event: TestEvent = codec::decode(bytes).unwrap();
            assert_eq!(event, TestEvent::at(lsn), "the event at LSN {lsn} is the one written there");
            lsns.push(lsn);
        }
    }
    Ok(lsns)
}

/// A history written with `options`, and the journal reopened on it (so
/// that recovery has checked its last segment): the journal and its last LSN.
fn reopened(sim: &SimFs, options: JournalOptions) -> (Journal, u64) {
    let last = write_history(sim, &options);
    (Journal::open_with_fs(sim_fs(sim), sim_dir(), options).unwrap(), last)
}

/// A fresh reader of `journal` from each LSN of `starts` yields exactly the
/// events from there to `last`.
fn reads_from_each(journal: &Journal, starts: &[u64], last: u64) {
    for &from in starts {
        let lsns = drain(journal.reader(from).unwrap()).unwrap();
        assert_eq!(lsns, (from..=last).collect::<Vec<_>>(), "a reader from LSN {from}");
    }
}

#[test]
fn every_start_yields_exactly_the_events_from_it() {
    let sim = SimFs::new();
    let (journal, last) = reopened(&sim, JournalOptions::default());
    reads_from_each(&journal, &[1, 2, 45, 46, 47, last / 3, last / 2 + 1, last - 90, last - 1, last], last);
    assert!(drain(journal.reader(last + 1).unwrap()).unwrap().is_empty(), "nothing past the end");
    journal.append_blocking(batch_at(last + 1, 3), Durability::Durable).unwrap();
    let lsns = drain(journal.reader(last + 1).unwrap()).unwrap();
    assert_eq!(lsns, vec![last + 1, last + 2, last + 3], "events appended after the open");
    journal.close().unwrap();
}

#[test]
fn a_start_in_an_earlier_segment_reads_on_into_the_last() {
    let sim = SimFs::new();
    let options = JournalOptions { segment_size_max_bytes: 1 << 20, ..JournalOptions::default() };
    let (journal, last) = reopened(&sim, options);
    assert!(segment_files(&*sim_fs(&sim), &sim_dir()).len() > 3, "the history spans several segments");
    reads_from_each(&journal, &[1, last / 2, last - 5], last);
    journal.close().unwrap();
}

#[test]
fn frames_before_the_start_are_not_read_again() {
    let sim = SimFs::new();
    let (journal, last) = reopened(&sim, JournalOptions::default());
    // Damage a payload byte of an early frame, after recovery checked it.
    let path = segment_files(&*sim_fs(&sim), &sim_dir()).pop().unwrap();
    let mut bytes = sim.read_file(&path).unwrap();
    bytes[200] ^= 0x40;
    sim.write_file(&path, &bytes).unwrap();

    let from = last - 100;
    let lsns = drain(journal.reader(from).unwrap()).unwrap();
    assert_eq!(lsns, (from..=last).collect::<Vec<_>>(), "the journal's reader starts past the damage");
    let plain = drain(Reader::open_with_fs(sim_fs(&sim), sim_dir(), from));
    assert!(plain.is_err(), "a reader scanning from the header meets the damage: {plain:?}");
    let from_start = drain(journal.reader(1).unwrap());
    assert!(from_start.is_err(), "a reader from LSN 1 meets the damage: {from_start:?}");
    journal.close().unwrap();
}
