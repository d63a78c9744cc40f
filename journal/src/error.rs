//! The journal's typed errors. Every error names what failed and where.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused a file operation.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The bytes on disk are not what the journal wrote. The journal refuses
    /// to open; `bookend repair` moves the damaged suffix aside.
    #[error(
        "corruption in {segment} at byte offset {offset}: {reason} (with no writer running, `bookend repair` sets damaged bytes aside and says what else to do)"
    )]
    Corruption { segment: PathBuf, offset: u64, reason: String },

    /// Acknowledged LSNs are missing: the journal ends at `found_lsn` but
    /// `evidence` says every LSN up to `expected_lsn` was durable (a deleted
    /// or cut segment, a checkpoint or cursor ahead of the journal). Nothing
    /// is appended until a person restores the data or accepts the loss.
    #[error(
        "journal {dir} has lost acknowledged data: it ends at LSN {found_lsn} but LSN {expected_lsn} was durable ({evidence}); restore the missing segment files from a backup, or open with --accept-data-loss to record the loss and continue at LSN {next}",
        next = expected_lsn + 1
    )]
    DataLoss { dir: PathBuf, found_lsn: u64, expected_lsn: u64, evidence: String },

    /// A directory that holds no journal, opened by a read-only tool.
    #[error("no journal in {dir}: it holds no segment files and no manifest (check --dir)")]
    NoJournal { dir: PathBuf },

    /// State that belongs to another journal (a copied segment, projection
    /// store or cursor file).
    #[error("{what} belongs to journal {found}, not to journal {expected} in {dir}")]
    ForeignState { dir: PathBuf, what: String, expected: String, found: String },

    /// The caller could not gather its own evidence of durability
    /// (`LockedDir::open_with_evidence_from`): recovery stopped before it
    /// changed anything that depends on it.
    #[error("recovery of {dir} stopped: the evidence of what was durable could not be gathered ({reason})")]
    EvidenceUnavailable { dir: PathBuf, reason: String },

    /// A wait for durability did not finish in time.
    #[error("{what} did not finish within {millis} ms")]
    Timeout { what: &'static str, millis: u64 },

    /// Another process holds the writer lock.
    #[error("journal {dir} is locked by another writer ({holder}); stop that process or open read-only", holder = describe_pid(*pid))]
    Locked { dir: PathBuf, pid: Option<u32> },

    /// An earlier write or fsync failed; nothing more is accepted until the
    /// journal is reopened (which recovers from what reached the disk).
    #[error("journal is poisoned by an earlier I/O failure ({cause}); reopen it to recover")]
    Poisoned { cause: String },

    /// One encoded event or one batch is over its limit.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },

    /// A batch holds more events than a frame may carry.
    #[error("batch of {count} events exceeds the limit of {max} events")]
    BatchTooLarge { count: usize, max: usize },

    /// A batch with no events cannot be appended.
    #[error("cannot append an empty batch")]
    EmptyBatch,

    /// The codec could not encode or decode a value.
    #[error("codec error: {reason}")]
    Codec { reason: String },

    /// Options that cannot work together.
    #[error("invalid journal options: {reason}")]
    InvalidOptions { reason: String },

    /// The journal was closed (or its writer thread stopped).
    #[error("journal is closed")]
    Closed,
}

fn describe_pid(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    pub(crate) fn corruption(segment: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption { segment: segment.into(), offset, reason: reason.into() }
    }
}

/// Adds the operation and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
