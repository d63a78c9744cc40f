//! bookend's durable log.
//!
//! A journal is a directory of segment files holding checksummed frames; each
//! frame is one atomic batch of events with dense LSNs. One writer thread
//! commits appends in groups (one write, one fdatasync for every append
//! waiting), readers and followers read while it writes, and recovery on
//! open truncates a torn tail but refuses to open over corruption.
//!
//! The journal knows nothing about sessions: events are opaque values that
//! the [`codec`] turns into bytes.
//!
//! ```
//! use bookend_journal::{Batch, Durability, Journal, JournalOptions};
//! # fn main() -> bookend_journal::Result<()> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path().join("journal");
//! let journal = Journal::open(&dir, JournalOptions::default())?;
//! let ack = journal.append_blocking(Batch::of(&("session:start", "s1"))?, Durability::Durable)?;
//! let mut reader = journal.reader(1)?;
//! while let Some(frame) = reader.next_frame()? {
//!     for (lsn, bytes) in frame.events() {
//!         let event: (String, String) = bookend_journal::codec::decode(bytes)?;
//!         assert_eq!((lsn, event), (ack.first_lsn, ("session:start".into(), "s1".into())));
//!     }
//! }
//! journal.close()
//! # }
//! ```

mod batch;
pub mod codec;
mod durable_wait;
mod error;
pub mod format;
pub mod fs;
mod journal;
mod manifest;
mod open;
mod options;
mod reader;
mod recovery;
mod seek;
mod segment;
pub mod sim;
mod turn;
mod writer;

pub use batch::Batch;
pub use durable_wait::DurableWaiter;
pub use error::{Error, Result};
pub use format::JournalId;
pub use journal::{AppendTicket, Journal, JournalStats};
pub use open::LockedDir;
pub use options::{
    BUFFERED_SYNC_INTERVAL_DEFAULT, Durability, FSYNCS_IN_FLIGHT_MAX_DEFAULT, GROUP_BYTES_MAX_DEFAULT,
    JournalOptions, SUBMISSION_QUEUE_MAX_REQUESTS_DEFAULT,
};
pub use reader::{FOLLOW_POLL_INTERVAL_DEFAULT, Follower, FrameView, OwnedFrame, Reader};
pub use recovery::{
    Evidence, HeaderRewrite, Moved, RecoveryReport, RepairReport, ScanMode, TornTail, repair,
};
pub use turn::HeldTurn;
pub use writer::{AppendAck, FSYNC_BUCKETS_MICROS, GROUP_BUCKETS_EVENTS};

use std::path::Path;
use std::sync::Arc;

/// Checks every frame of the journal in `dir` without changing anything:
/// CRCs, LSN continuity, segment headers, names and seal records, and that
/// the journal does not end before what it knows was durable. A torn tail
/// is reported, not fixed; corruption is returned as `Error::Corruption`,
/// lost data as `Error::DataLoss`. Safe to run while a writer appends (a
/// frame being written may show as a torn tail).
pub fn check(fs: Arc<dyn fs::Fs>, dir: &Path) -> Result<RecoveryReport> {
    match recovery::check_partial(&*fs, dir)? {
        (report, None) => Ok(report),
        (_, Some(e)) => Err(e),
    }
}

/// Like [`check`], but also says what was checked before the first
/// problem: the counts in the report stop there.
pub fn check_partial(fs: Arc<dyn fs::Fs>, dir: &Path) -> Result<(RecoveryReport, Option<Error>)> {
    recovery::check_partial(&*fs, dir)
}

/// Whether `dir` holds a journal: a segment file or a manifest. Read-only
/// tools refuse a directory that holds neither rather than report it as
/// an empty journal.
pub fn has_journal(fs: &dyn fs::Fs, dir: &Path) -> Result<bool> {
    if !fs.exists(dir) {
        return Ok(false);
    }
    if fs.exists(&dir.join(format::MANIFEST_FILE_NAME)) {
        return Ok(true);
    }
    Ok(!segment::list_segments(fs, dir)?.is_empty())
}

/// The last LSN of the journal in `dir`, read without changing anything:
/// the chain of sealed segments and the last segment are checked as on
/// open (0 for a journal without events).
pub fn last_lsn(fs: Arc<dyn fs::Fs>, dir: &Path) -> Result<u64> {
    let opts = recovery::Options {
        mode: ScanMode::LastSegment,
        apply: recovery::Apply::ReadOnly,
        evidence: Evidence::default(),
        accept_data_loss: false,
    };
    match recovery::recover(&*fs, dir, &opts).map_err(recovery::Broken::into_error) {
        Ok(recovered) => Ok(recovered.report.next_lsn - 1),
        Err(Error::DataLoss { found_lsn, .. }) => Ok(found_lsn),
        Err(e) => Err(e),
    }
}

/// The identity of the journal in `dir`, as its manifest records it
/// (`None` for a journal without one yet).
pub fn journal_id(fs: &dyn fs::Fs, dir: &Path) -> Result<Option<JournalId>> {
    Ok(manifest::load_manifest(fs, dir)?.map(|m| m.journal_id))
}

/// One segment file, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub path: std::path::PathBuf,
    pub first_lsn: u64,
    pub bytes: u64,
}

/// The segment files of the journal in `dir`, in LSN order, with their
/// sizes (a misnamed `.wal` file is reported as corruption).
pub fn segment_files(fs: &dyn fs::Fs, dir: &Path) -> Result<Vec<SegmentFile>> {
    segment::list_segments(fs, dir)?
        .into_iter()
        .map(|s| {
            let file = fs.open_read(&s.path).map_err(|e| Error::Io {
                op: "open",
                path: s.path.clone(),
                source: e,
            })?;
            let bytes = file.size().map_err(|e| Error::Io { op: "stat", path: s.path.clone(), source: e })?;
            Ok(SegmentFile { path: s.path, first_lsn: s.first_lsn, bytes })
        })
        .collect()
}
