//! Options for opening a journal.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{
    FRAME_SIZE_LIMIT_BYTES, RECORD_SIZE_MAX_BYTES_DEFAULT, SEGMENT_SIZE_MAX_BYTES_DEFAULT,
    SEGMENT_SIZE_MIN_BYTES,
};
use crate::recovery::ScanMode;

/// How an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// Acknowledged after fdatasync: survives a power cut.
    #[default]
    Durable,
    /// Acknowledged after the write reaches the OS: survives a crash of the
    /// process, and is fsynced by the next durable append, by the buffered
    /// sync interval, or on close.
    Buffered,
}

impl std::str::FromStr for Durability {
    type Err = String;

    /// `durable` or `buffered`: the one parser of the command line and the
    /// server's config.
    fn from_str(text: &str) -> std::result::Result<Durability, String> {
        match text {
            "durable" => Ok(Durability::Durable),
            "buffered" => Ok(Durability::Buffered),
            other => Err(format!("{other:?} is not a durability (durable or buffered)")),
        }
    }
}

/// Default bound on how long buffered data may stay unsynced.
pub const BUFFERED_SYNC_INTERVAL_DEFAULT: Duration = Duration::from_millis(50);

/// Default bound on the bytes one group commit writes with one `write`.
pub const GROUP_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;

/// Default size of the zero-filled space kept ahead of the writer.
pub const PREALLOCATE_BYTES_DEFAULT: u64 = 1024 * 1024;

/// Default bound on appends waiting for the writer thread.
pub const SUBMISSION_QUEUE_MAX_REQUESTS_DEFAULT: usize = 4096;

/// Default number of fdatasyncs that may run at once.
pub const FSYNCS_IN_FLIGHT_MAX_DEFAULT: usize = 1;

#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// A new segment starts when the next frame would take the active one
    /// past this size. A single frame larger than it still fits in a
    /// segment of its own.
    pub segment_size_max_bytes: u64,
    /// The largest frame (one batch, header included) accepted.
    pub record_size_max_bytes: usize,
    /// Longest time buffered appends stay unsynced.
    pub buffered_sync_interval: Duration,
    /// Bytes one group commit collects before it writes.
    pub group_bytes_max: usize,
    /// How much of the journal recovery checks on open: by default every
    /// segment header and every frame of the last segment (design.md §2),
    /// so open time does not grow with history. Sealed segments are checked
    /// by every reader and by `check`/`verify`.
    pub scan_mode: ScanMode,
    /// How many fdatasyncs may run at once, each from its own writer
    /// thread. With 1 (the default) this is classic group commit. With 2,
    /// the appends that arrive while one fsync runs are written and synced
    /// at once instead of waiting for it; that pays on a device that runs
    /// flushes in parallel. On the virtual disk measured in
    /// docs/performance-log/2026-11-21.md ("Journal appends") it does not:
    /// each fsync slows down by as much.
    pub fsyncs_in_flight_max: usize,
    /// The writer fills the active segment with this many zero bytes ahead
    /// of its data (never past `segment_size_max_bytes`), so that most
    /// fdatasyncs flush data only, not a file-size change through the file
    /// system's journal. 0 turns it off. Readers and recovery treat the
    /// zeros as not yet written; sealed segments are trimmed to their data.
    pub preallocate_bytes: u64,
    /// When open finds that acknowledged LSNs are missing (a deleted or cut
    /// segment, evidence ahead of the journal's end), record the loss in
    /// the manifest and continue after the highest LSN known durable
    /// instead of refusing with `Error::DataLoss`. For a person to set,
    /// knowingly (`--accept-data-loss`); never a default.
    pub accept_data_loss: bool,
    /// The most appends (and sync requests) waiting for the writer thread.
    /// Past it, `submit` waits for room: backpressure, instead of a queue
    /// that grows without bound when the disk falls behind.
    pub submission_queue_max_requests: usize,
    /// Let several processes open this journal for writing at once, each
    /// with this option (docs/ARCHITECTURE.md, "Several writer
    /// processes"): each append happens in a turn under an exclusive flock
    /// on `bookend.append`, after taking in what the others appended. The
    /// journal layer only: `SessionJournal` does not use it yet. A
    /// directory opened one way refuses the other (`Locked`).
    pub shared_writers: bool,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_size_max_bytes: SEGMENT_SIZE_MAX_BYTES_DEFAULT,
            record_size_max_bytes: RECORD_SIZE_MAX_BYTES_DEFAULT,
            buffered_sync_interval: BUFFERED_SYNC_INTERVAL_DEFAULT,
            group_bytes_max: GROUP_BYTES_MAX_DEFAULT,
            scan_mode: ScanMode::LastSegment,
            fsyncs_in_flight_max: FSYNCS_IN_FLIGHT_MAX_DEFAULT,
            preallocate_bytes: PREALLOCATE_BYTES_DEFAULT,
            accept_data_loss: false,
            submission_queue_max_requests: SUBMISSION_QUEUE_MAX_REQUESTS_DEFAULT,
            shared_writers: false,
        }
    }
}

impl JournalOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidOptions { reason });
        if self.segment_size_max_bytes < SEGMENT_SIZE_MIN_BYTES {
            return invalid(format!(
                "segment_size_max_bytes {} is below the minimum of {SEGMENT_SIZE_MIN_BYTES}",
                self.segment_size_max_bytes
            ));
        }
        if self.record_size_max_bytes > FRAME_SIZE_LIMIT_BYTES || self.record_size_max_bytes < 64 {
            return invalid(format!(
                "record_size_max_bytes {} must be between 64 and {FRAME_SIZE_LIMIT_BYTES}",
                self.record_size_max_bytes
            ));
        }
        if self.buffered_sync_interval.is_zero() {
            return invalid("buffered_sync_interval must be positive".to_string());
        }
        if !(1..=16).contains(&self.fsyncs_in_flight_max) {
            return invalid(format!(
                "fsyncs_in_flight_max {} must be between 1 and 16",
                self.fsyncs_in_flight_max
            ));
        }
        if self.submission_queue_max_requests == 0 {
            return invalid("submission_queue_max_requests must be positive".to_string());
        }
        if self.group_bytes_max == 0 {
            return invalid("group_bytes_max must be positive".to_string());
        }
        Ok(())
    }
}
