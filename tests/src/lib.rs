//! Support shared by bookend's cross-crate scenario tests: a test event type
//! whose content is a pure function of its LSN, journal helpers for the
//! simulated file system, the environment switch for slow variants, and a
//! gateway child process to kill (`gateway`).

pub mod gateway;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bookend_journal::fs::Fs;
use bookend_journal::sim::SimFs;
use bookend_journal::{Batch, JournalOptions, Reader, codec};
use serde::{Deserialize, Serialize};

/// Set to `1` to run the long variants of slow tests (CI runs them small).
pub const SLOW_TESTS_ENV: &str = "BOOKEND_SLOW_TESTS";

/// Picks the CI size or the long size of a slow test.
pub fn scale(ci: usize, slow: usize) -> usize {
    if std::env::var(SLOW_TESTS_ENV).is_ok_and(|v| v == "1") { slow } else { ci }
}

/// An event whose every byte follows from the LSN it is written at, so a
/// test can check any event it reads back without remembering it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestEvent {
    pub lsn: u64,
    pub text: String,
}

impl TestEvent {
    pub fn at(lsn: u64) -> TestEvent {
        // Lengths vary with the LSN so frames have different sizes.
        let len = (lsn * 7919 % 61) as usize;
        let text: String = (0..len).map(|i| char::from(b'a' + ((lsn as usize + i) % 26) as u8)).collect();
        TestEvent { lsn, text }
    }
}

/// A batch of `count` test events for LSNs `first..first+count`.
pub fn batch_at(first: u64, count: u64) -> Batch {
    let mut batch = Batch::new();
    for lsn in first..first + count {
        batch.push(&TestEvent::at(lsn)).expect("test events encode");
    }
    batch
}

/// Options with tiny segments, so a few appends rotate.
pub fn small_segments() -> JournalOptions {
    JournalOptions { segment_size_max_bytes: 4096, ..JournalOptions::default() }
}

/// Small segments, and open checks every frame of every segment.
pub fn small_segments_full_scan() -> JournalOptions {
    JournalOptions { scan_mode: bookend_journal::ScanMode::Full, ..small_segments() }
}

/// The journal directory used on the simulated file system.
pub fn sim_dir() -> PathBuf {
    PathBuf::from("/journal")
}

/// Every event in the journal at `dir`, decoded, checking that each one is
/// the event its LSN says.
pub fn read_all(fs: Arc<dyn Fs>, dir: &Path) -> bookend_journal::Result<Vec<TestEvent>> {
    let mut reader = Reader::open_with_fs(fs, dir, 1);
    let mut events = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        for (lsn, bytes) in frame.events() {
            let event: TestEvent = codec::decode(bytes)?;
            assert_eq!(event, TestEvent::at(lsn), "event at LSN {lsn} has the wrong content");
            events.push(event);
        }
    }
    Ok(events)
}

/// The LSNs of `events`, which must be exactly 1..=n.
pub fn assert_dense(events: &[TestEvent]) -> u64 {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.lsn, i as u64 + 1, "LSNs are not dense");
    }
    events.len() as u64
}

/// A simulated file system as an `Arc<dyn Fs>`.
pub fn sim_fs(sim: &SimFs) -> Arc<dyn Fs> {
    Arc::new(sim.clone())
}

/// Segment files of `dir`, in LSN order.
pub fn segment_files(fs: &dyn Fs, dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs
        .list_files(dir)
        .expect("list journal dir")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// Where each frame of the segment `bytes` starts, up to its last frame
/// (preallocated zeros after the data are not frames).
pub fn frame_starts(bytes: &[u8]) -> Vec<u64> {
    let header = bookend_journal::format::decode_segment_header(bytes).expect("a segment header");
    let mut starts = Vec::new();
    let mut at = header.size();
    while at < bytes.len() && bytes[at..].iter().any(|b| *b != 0) {
        let Ok(frame) = bookend_journal::format::decode_frame_header(&bytes[at..], header.version) else {
            break;
        };
        starts.push(at as u64);
        at += frame.frame_len();
    }
    starts
}

/// Where the last frame of the segment file at `path` starts and ends.
pub fn last_frame(path: &Path) -> (u64, u64) {
    let bytes = std::fs::read(path).expect("read segment");
    let start = *frame_starts(&bytes).last().expect("a segment with frames");
    let header = bookend_journal::format::decode_segment_header(&bytes).expect("a segment header");
    let frame = bookend_journal::format::decode_frame_header(&bytes[start as usize..], header.version)
        .expect("a frame");
    (start, start + frame.frame_len() as u64)
}

/// The projection stores set aside in the journal directory `dir`
/// (`projection.<why>-<n>`): none, while every open trusted its store.
pub fn stores_set_aside(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list the journal directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("projection."))
        .collect()
}

/// Session-journal helpers for the lifecycle scenarios.
pub mod sessions {
    use std::path::Path;
    use std::sync::Arc;

    use bookend_projector::{Event, ManualClock, SessionJournal, SessionJournalOptions, Start, decode_event};

    /// 2025-11-21T10:00:00Z, a fixed start for simulated time.
    pub const T0: u64 = 1_763_719_200_000;
    pub const MINUTE: u64 = 60_000;

    pub fn options(clock: &Arc<ManualClock>) -> SessionJournalOptions {
        SessionJournalOptions { clock: clock.clone(), ..SessionJournalOptions::default() }
    }

    pub fn open(dir: &Path, clock: &Arc<ManualClock>) -> SessionJournal {
        SessionJournal::open(dir, options(clock)).expect("open session journal")
    }

    /// Waits (at most 30 s) until the store's known-ids filter is ready:
    /// loaded from the file a clean close saved, or filled by a scan, on a
    /// thread of its own after open.
    pub fn wait_ids_known(journal: &SessionJournal) {
        let store = journal.projection_store().expect("a checkpoint store");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !store.ids_known() {
            assert!(std::time::Instant::now() < deadline, "the known-ids filter was not ready within 30 s");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    pub fn start(id: &str, key: &str) -> Start {
        Start::new(id).key(key).platform("telegram").user_id("u1")
    }

    /// The id of the `n`th session `write_pairs` writes.
    pub fn history_id(n: usize) -> String {
        format!("0190f5c2-7a1b-7c3d-9e8f-{n:012x}")
    }

    /// A history of `sessions` sessions started and ended (ids from
    /// `history_id`, 1 000 keys), in batches of 1 000 commands, closed.
    pub fn write_pairs(dir: &Path, sessions: usize) {
        use bookend_projector::{CloseReason, Command, CommandLine, EndReason, Sessions};
        let journal = SessionJournal::open(dir, SessionJournalOptions::default()).expect("open");
        let lines: Vec<CommandLine> = (0..sessions)
            .flat_map(|n| {
                let start = Command::Start(Start::new(history_id(n)).key(format!("telegram:{}", n % 1000)));
                let end = Command::End { session_id: history_id(n), reason: EndReason::Completed };
                [start, end].map(|command| CommandLine { command, at: None })
            })
            .collect();
        for chunk in lines.chunks(1000) {
            for answer in journal.execute_batch(chunk.to_vec()).expect("batch") {
                answer.expect("accepted").wait().expect("durable");
            }
        }
        journal.close(CloseReason::Restart, Sessions::Keep).expect("close");
    }

    /// Every event in the journal at `dir`, decoded (read-only, like `tail`).
    pub fn events(dir: &Path) -> Vec<Event> {
        let mut reader = bookend_journal::Reader::open(dir, 1).expect("reader");
        let mut out = Vec::new();
        while let Some(frame) = reader.next_frame().expect("read frame") {
            for (lsn, bytes) in frame.events() {
                out.push(decode_event(lsn, bytes).expect("decode"));
            }
        }
        out
    }

    /// The events of one type, as JSON (what a consumer sees).
    pub fn of_type(dir: &Path, type_name: &str) -> Vec<serde_json::Value> {
        events(dir).iter().filter(|e| e.body.type_name() == type_name).map(Event::to_json).collect()
    }
}
