//! The projector's typed errors.

use crate::event::EndReason;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a command was refused. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    #[error("unknown session {session_id:?}")]
    UnknownSession { session_id: String },
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} bytes, over the limit of {max} bytes")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("session {session_id:?} was started with key {existing:?}, not {requested:?}")]
    KeyMismatch { session_id: String, existing: Option<String>, requested: Option<String> },
    #[error("key {key:?} already has an active session {active_id:?}")]
    KeyBusy { key: String, active_id: String },
    #[error("session {session_id:?} has ended ({reason}); only reopen is allowed after an end")]
    SessionEnded { session_id: String, reason: EndReason },
    #[error("session {session_id:?} is active; only an ended session can be reopened")]
    AlreadyActive { session_id: String },
    #[error("session {session_id:?} is already finalized")]
    AlreadyFinalized { session_id: String },
    #[error("session {session_id:?} has used all {max} finalize attempts")]
    AttemptsExhausted { session_id: String, max: u32 },
    #[error("invalid command: {reason}")]
    Invalid { reason: String },
}

impl LifecycleError {
    /// A stable machine-readable name (the `kind` of CLI error acks).
    pub fn kind(&self) -> &'static str {
        match self {
            LifecycleError::UnknownSession { .. } => "unknown_session",
            LifecycleError::Empty { .. } => "empty_field",
            LifecycleError::TooLong { .. } => "too_long",
            LifecycleError::KeyMismatch { .. } => "key_mismatch",
            LifecycleError::KeyBusy { .. } => "key_busy",
            LifecycleError::SessionEnded { .. } => "session_ended",
            LifecycleError::AlreadyActive { .. } => "already_active",
            LifecycleError::AlreadyFinalized { .. } => "already_finalized",
            LifecycleError::AttemptsExhausted { .. } => "attempts_exhausted",
            LifecycleError::Invalid { .. } => "invalid_command",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command breaks a lifecycle rule; nothing was appended.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The journal failed (I/O, corruption, lock, poisoning, limits).
    #[error(transparent)]
    Journal(#[from] bookend_journal::Error),
    /// The sled projection cache failed; it can be rebuilt from the journal.
    #[error("projection cache {path}: {reason}")]
    Cache { path: std::path::PathBuf, reason: String },
    /// Another process has the projection cache open.
    #[error(
        "projection cache {path} is in use by another process; stop the writer (bookend serve or append) first"
    )]
    CacheLocked { path: std::path::PathBuf },
    /// An event in the journal could not be decoded.
    #[error("event at LSN {lsn} cannot be decoded: {reason}")]
    Decode { lsn: u64, reason: String },
    /// An earlier append failed; the session journal must be reopened.
    #[error("session journal is poisoned by an earlier failure ({cause}); reopen it")]
    Poisoned { cause: String },
    /// A consumer name that cannot be used as a cursor file name.
    #[error("invalid consumer name {name:?}: {reason}")]
    InvalidConsumer { name: String, reason: String },
    /// I/O outside the journal (cursor files).
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A stable machine-readable name (the `kind` of CLI error acks).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Lifecycle(e) => e.kind(),
            Error::Journal(bookend_journal::Error::RecordTooLarge { .. }) => "oversize",
            Error::Journal(bookend_journal::Error::Corruption { .. }) => "corruption",
            Error::Journal(bookend_journal::Error::Locked { .. }) => "locked",
            Error::Journal(bookend_journal::Error::Poisoned { .. }) | Error::Poisoned { .. } => "poisoned",
            Error::Journal(_) => "journal",
            Error::Cache { .. } => "cache",
            Error::CacheLocked { .. } => "cache_locked",
            Error::Decode { .. } => "decode",
            Error::InvalidConsumer { .. } => "invalid_consumer",
            Error::Io { .. } => "io",
        }
    }
}
