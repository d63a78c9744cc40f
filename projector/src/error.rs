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
    #[error("{field} has {count} entries, over the limit of {max}")]
    TooMany { field: &'static str, count: usize, max: usize },
    #[error("{field} may hold only {allowed}")]
    Charset { field: &'static str, allowed: &'static str },
    #[error("invalid time: {reason}")]
    InvalidTime { reason: String },
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
    #[error("malformed JSON: {reason}")]
    Malformed { reason: String },
}

impl LifecycleError {
    /// A stable machine-readable name (the `kind` of CLI error acks).
    pub fn kind(&self) -> &'static str {
        match self {
            LifecycleError::UnknownSession { .. } => "unknown_session",
            LifecycleError::Empty { .. } => "empty_field",
            LifecycleError::TooLong { .. } | LifecycleError::TooMany { .. } => "too_long",
            LifecycleError::Charset { .. } => "invalid_chars",
            LifecycleError::InvalidTime { .. } => "invalid_time",
            LifecycleError::KeyMismatch { .. } => "key_mismatch",
            LifecycleError::KeyBusy { .. } => "key_busy",
            LifecycleError::SessionEnded { .. } => "session_ended",
            LifecycleError::AlreadyActive { .. } => "already_active",
            LifecycleError::AlreadyFinalized { .. } => "already_finalized",
            LifecycleError::AttemptsExhausted { .. } => "attempts_exhausted",
            LifecycleError::Invalid { .. } => "invalid_command",
            LifecycleError::Malformed { .. } => "malformed_json",
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
    /// The projection store (sled) failed; it is rebuilt from the journal.
    #[error("projection store {path}: {reason}")]
    Store { path: std::path::PathBuf, reason: String },
    /// Another process has the projection store open.
    #[error(
        "projection store {path} is in use by another process; stop the writer (bookend serve or append) first"
    )]
    StoreLocked { path: std::path::PathBuf },
    /// An event in the journal could not be decoded.
    #[error("event at LSN {lsn} cannot be decoded: {reason}")]
    Decode { lsn: u64, reason: String },
    /// An earlier append failed; the session journal must be reopened.
    #[error("session journal is poisoned by an earlier failure ({cause}); reopen it")]
    Poisoned { cause: String },
    /// Another reader holds this consumer's cursor.
    #[error(
        "consumer {name:?} is in use by another reader (a `bookend tail --consumer`, a server stream); stop it or use another name"
    )]
    ConsumerBusy { name: String },
    /// A cursor file that does not hold an LSN in bookend's form.
    #[error("the cursor of consumer {name:?} ({}) cannot be read: {reason}; fix or delete the file (deleting it makes the consumer start over from LSN 1)", path.display())]
    InvalidCursor { name: String, path: std::path::PathBuf, reason: String },
    /// A cursor past the journal's end: the journal lost what the consumer saw.
    #[error(
        "consumer {name:?} acknowledged LSN {acked} but the journal ends at LSN {end}: the journal lost events the consumer had seen (see `bookend verify`)"
    )]
    CursorAhead { name: String, acked: u64, end: u64 },
    /// An acknowledgement past what the journal has made durable (and so
    /// could have delivered).
    #[error("consumer {name:?} cannot acknowledge LSN {lsn}: the journal's durable end is LSN {durable}")]
    AckAhead { name: String, lsn: u64, durable: u64 },
    /// An event type name bookend does not know.
    #[error("unknown event type {name:?}; known types: {known}")]
    UnknownEventType { name: String, known: String },
    /// A consumer name that cannot be used as a cursor file name.
    #[error("invalid consumer name {name:?}: {reason}")]
    InvalidConsumer { name: String, reason: String },
    /// Several writer processes disagree about the journal (an owner file
    /// held for an epoch that is not open, frames another writer left that
    /// cannot be read under the append lock).
    #[error("several writers on {path}: {reason}")]
    SharedWriters { path: std::path::PathBuf, reason: String },
    /// I/O outside the journal (cursor files, owner files).
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
            Error::Journal(bookend_journal::Error::DataLoss { .. }) => "data_loss",
            Error::Journal(bookend_journal::Error::NoJournal { .. }) => "no_journal",
            Error::Journal(bookend_journal::Error::ForeignState { .. }) => "foreign_state",
            Error::Journal(bookend_journal::Error::Timeout { .. }) => "timeout",
            Error::Journal(bookend_journal::Error::Poisoned { .. }) | Error::Poisoned { .. } => "poisoned",
            Error::Journal(_) => "journal",
            Error::Store { .. } => "store",
            Error::StoreLocked { .. } => "store_locked",
            Error::Decode { .. } => "decode",
            Error::InvalidConsumer { .. } => "invalid_consumer",
            Error::ConsumerBusy { .. } => "consumer_busy",
            Error::InvalidCursor { .. } => "invalid_cursor",
            Error::CursorAhead { .. } => "cursor_ahead",
            Error::AckAhead { .. } => "invalid_ack",
            Error::UnknownEventType { .. } => "unknown_event_type",
            Error::SharedWriters { .. } => "shared_writers",
            Error::Io { .. } => "io",
        }
    }
}

impl Error {
    /// The fields of the error a program may act on (the session, the key,
    /// the holder of a lock, where corruption was found), as a JSON object
    /// beside `kind` and `message`: the Python package's exceptions carry
    /// them as attributes, over HTTP and embedded alike.
    pub fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let value = match self {
            Error::Lifecycle(e) => return e.details(),
            Error::Journal(bookend_journal::Error::Corruption { segment, offset, .. }) => {
                json!({"segment": segment.display().to_string(), "offset": offset})
            }
            Error::Journal(bookend_journal::Error::Locked { dir, pid }) => {
                json!({"dir": dir.display().to_string(), "pid": pid})
            }
            Error::Journal(bookend_journal::Error::DataLoss { found_lsn, expected_lsn, .. }) => {
                json!({"found_lsn": found_lsn, "expected_lsn": expected_lsn})
            }
            Error::ConsumerBusy { name } | Error::InvalidConsumer { name, .. } => json!({"consumer": name}),
            Error::CursorAhead { name, acked, end } => json!({"consumer": name, "acked": acked, "end": end}),
            Error::AckAhead { name, lsn, durable } => {
                json!({"consumer": name, "lsn": lsn, "durable": durable})
            }
            Error::Decode { lsn, .. } => json!({"lsn": lsn}),
            _ => json!({}),
        };
        into_map(value)
    }

    /// `{"kind", "message", ...details}`: the error object of an ack or an
    /// HTTP error body.
    pub fn to_json(&self) -> serde_json::Value {
        error_object(self.kind(), self.to_string(), self.details())
    }
}

impl LifecycleError {
    /// See [`Error::details`].
    pub fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let value = match self {
            LifecycleError::UnknownSession { session_id }
            | LifecycleError::AlreadyActive { session_id }
            | LifecycleError::AlreadyFinalized { session_id } => json!({"session_id": session_id}),
            LifecycleError::SessionEnded { session_id, reason } => {
                json!({"session_id": session_id, "reason": reason.as_str()})
            }
            LifecycleError::AttemptsExhausted { session_id, max } => {
                json!({"session_id": session_id, "max": max})
            }
            LifecycleError::KeyBusy { key, active_id } => json!({"key": key, "active_id": active_id}),
            LifecycleError::KeyMismatch { session_id, existing, requested } => {
                json!({"session_id": session_id, "existing": existing, "requested": requested})
            }
            LifecycleError::Empty { field } => json!({"field": field}),
            LifecycleError::TooLong { field, len, max } => json!({"field": field, "len": len, "max": max}),
            LifecycleError::TooMany { field, count, max } => {
                json!({"field": field, "count": count, "max": max})
            }
            LifecycleError::Charset { field, .. } => json!({"field": field}),
            _ => json!({}),
        };
        into_map(value)
    }

    /// `{"kind", "message", ...details}`: the error object of an ack.
    pub fn to_json(&self) -> serde_json::Value {
        error_object(self.kind(), self.to_string(), self.details())
    }
}

/// The fields of a `json!({...})` object literal.
fn into_map(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// `{"kind", "message", ...details}`.
fn error_object(
    kind: &str,
    message: String,
    mut details: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    details.insert("kind".into(), kind.into());
    details.insert("message".into(), message.into());
    serde_json::Value::Object(details)
}
