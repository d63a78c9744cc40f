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
//! ```no_run
//! use bookend_journal::{Batch, Durability, Journal, JournalOptions};
//! # fn main() -> bookend_journal::Result<()> {
//! let journal = Journal::open("/var/lib/gateway/journal", JournalOptions::default())?;
//! let ack = journal.append_blocking(Batch::of(&("session:start", "s1"))?, Durability::Durable)?;
//! let mut reader = journal.reader(1)?;
//! while let Some(frame) = reader.next_frame()? {
//!     for (lsn, bytes) in frame.events() {
//!         let event: (String, String) = bookend_journal::codec::decode(bytes)?;
//!         println!("{lsn}: {event:?}");
//!     }
//! }
//! # let _ = ack;
//! journal.close()
//! # }
//! ```

mod batch;
pub mod codec;
mod error;
pub mod format;
pub mod fs;
mod journal;
mod options;
mod reader;
mod recovery;
mod segment;
pub mod sim;
mod writer;

pub use batch::Batch;
pub use error::{Error, Result};
pub use journal::{AppendTicket, Journal, JournalStats};
pub use options::{
    BUFFERED_SYNC_INTERVAL_DEFAULT, Durability, FSYNCS_IN_FLIGHT_MAX_DEFAULT, GROUP_BYTES_MAX_DEFAULT,
    JournalOptions,
};
pub use reader::{FOLLOW_POLL_INTERVAL_DEFAULT, Follower, FrameView, OwnedFrame, Reader};
pub use recovery::{RecoveryReport, RepairReport, ScanMode, TornTail, repair};
pub use writer::{AppendAck, FSYNC_BUCKETS_MICROS, GROUP_BUCKETS_EVENTS};

use std::path::Path;
use std::sync::Arc;

/// Checks every frame of the journal in `dir` without changing anything:
/// CRCs, LSN continuity, segment headers and names. A torn tail is reported,
/// not fixed; corruption is returned as `Error::Corruption`. Safe to run
/// while a writer appends (a frame being written may show as a torn tail).
pub fn check(fs: Arc<dyn fs::Fs>, dir: &Path) -> Result<RecoveryReport> {
    Ok(recovery::recover(&*fs, dir, ScanMode::Full, recovery::Apply::ReadOnly)?.report)
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
