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

/// Default bound on how long buffered data may stay unsynced.
pub const BUFFERED_SYNC_INTERVAL_DEFAULT: Duration = Duration::from_millis(50);

/// Default bound on the bytes one group commit writes with one `write`.
pub const GROUP_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;

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
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_size_max_bytes: SEGMENT_SIZE_MAX_BYTES_DEFAULT,
            record_size_max_bytes: RECORD_SIZE_MAX_BYTES_DEFAULT,
            buffered_sync_interval: BUFFERED_SYNC_INTERVAL_DEFAULT,
            group_bytes_max: GROUP_BYTES_MAX_DEFAULT,
            scan_mode: ScanMode::LastSegment,
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
        if self.group_bytes_max == 0 {
            return invalid("group_bytes_max must be positive".to_string());
        }
        Ok(())
    }
}
