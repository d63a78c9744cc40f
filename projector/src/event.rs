//! The stored events of the session lifecycle, and their JSON form.
//!
//! Stored events are plain serde types encoded by the journal's codec
//! (bincode's serde path: no `tag`, `flatten` or `skip`); the variant order
//! of [`EventBody`] is part of the on-disk format and is frozen by golden
//! tests. JSON is built separately ([`Event::to_json`]) with the `type`
//! names consumers see: `session:start`, `session:end`, …

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

/// Why a session span ended. Stable snake_case names; an unknown name
/// round-trips as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    ManualReset,
    IdleExpiry,
    DailyReset,
    Superseded,
    Compression,
    Switched,
    Deleted,
    Completed,
    Shutdown,
    Restart,
    CrashRecovered,
    Reaped,
    Error,
    Timeout,
    Other(String),
}

const END_REASONS: [(EndReason, &str); 14] = [
    (EndReason::ManualReset, "manual_reset"),
    (EndReason::IdleExpiry, "idle_expiry"),
    (EndReason::DailyReset, "daily_reset"),
    (EndReason::Superseded, "superseded"),
    (EndReason::Compression, "compression"),
    (EndReason::Switched, "switched"),
    (EndReason::Deleted, "deleted"),
    (EndReason::Completed, "completed"),
    (EndReason::Shutdown, "shutdown"),
    (EndReason::Restart, "restart"),
    (EndReason::CrashRecovered, "crash_recovered"),
    (EndReason::Reaped, "reaped"),
    (EndReason::Error, "error"),
    (EndReason::Timeout, "timeout"),
];

impl EndReason {
    pub fn as_str(&self) -> &str {
        match self {
            EndReason::Other(s) => s,
            known => END_REASONS.iter().find(|(r, _)| r == known).map_or("other", |(_, name)| name),
        }
    }

    /// The metrics label for this reason: its name if bookend knows it,
    /// `other` if not (so clients cannot grow the label set).
    pub fn name(&self) -> &'static str {
        END_REASONS.iter().find(|(r, _)| r == self).map_or("other", |(_, name)| name)
    }

    /// Parses a reason; names bookend does not know become `Other`.
    pub fn parse(name: &str) -> EndReason {
        END_REASONS
            .iter()
            .find(|(_, n)| *n == name)
            .map_or_else(|| EndReason::Other(name.to_string()), |(r, _)| r.clone())
    }

    /// Every reason bookend knows, for reports.
    pub fn known() -> impl Iterator<Item = EndReason> {
        END_REASONS.iter().map(|(r, _)| r.clone())
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Stored (and shown) as its name, so an unknown reason written by a newer
// gateway survives a round trip through an older bookend.
impl Serialize for EndReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EndReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(EndReason::parse(&String::deserialize(d)?))
    }
}

/// Why the journal was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Shutdown,
    Restart,
    /// Written by another writer process for an epoch whose process died
    /// (its owner lock was released without a close).
    WriterDied,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Shutdown => "shutdown",
            CloseReason::Restart => "restart",
            CloseReason::WriterDied => "writer_died",
        }
    }

    /// The end reason given to sessions ended by a close with this reason.
    pub fn end_reason(self) -> EndReason {
        match self {
            CloseReason::Shutdown => EndReason::Shutdown,
            CloseReason::Restart => EndReason::Restart,
            CloseReason::WriterDied => EndReason::CrashRecovered,
        }
    }
}

/// What a close did with the sessions still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionsOnClose {
    /// Every active session was ended in the close batch.
    Ended,
    /// Active sessions were left open for the next epoch to resume.
    Kept,
}

impl SessionsOnClose {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionsOnClose::Ended => "ended",
            SessionsOnClose::Kept => "kept",
        }
    }
}

/// The fields of `session:start`: what a start command asks for, what the
/// event stores, and what a session keeps. One definition for all three.
///
/// The `default` and `deny_unknown_fields` attributes shape only the JSON
/// form (commands); the stored form (bincode) is the fields in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartFields {
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
}

/// What happened. The variant order is part of the on-disk format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    JournalOpen {
        epoch: u64,
        pid: u32,
        host: String,
        version: String,
    },
    JournalClose {
        epoch: u64,
        reason: CloseReason,
        sessions: SessionsOnClose,
    },
    /// Shared with the started session's state (`SessionState::start`), so
    /// that folding a start and acknowledging it need one copy of its
    /// fields, not two. Encoded as the fields themselves.
    SessionStart(Arc<StartFields>),
    SessionActivity {
        session_id: String,
        key: Option<String>,
    },
    SessionFlush {
        session_id: String,
        key: Option<String>,
        marker: String,
    },
    SessionExpiryFinalized {
        session_id: String,
        key: Option<String>,
    },
    SessionFinalizeFailed {
        session_id: String,
        key: Option<String>,
        attempt: u32,
        error: String,
    },
    SessionEnd {
        session_id: String,
        key: Option<String>,
        reason: EndReason,
        next_id: Option<String>,
    },
    SessionReopen {
        session_id: String,
        key: Option<String>,
        reason: String,
    },
    /// A person accepted the loss of LSNs `lost_from..=lost_to`
    /// (`--accept-data-loss`); `evidence` says why they had been durable.
    /// Appended by the open that accepted it, first in its batch.
    JournalDataLoss {
        lost_from: u64,
        lost_to: u64,
        evidence: String,
    },
    /// A process opening a journal that several processes write
    /// (`shared_writers`) starts epoch `epoch` beside the epochs still
    /// open, where `journal:open` (a single writer) supersedes them.
    /// `keep_on_death`: the sessions it owns are kept, not ended, if it
    /// dies (its `on_unclean`).
    JournalJoin {
        epoch: u64,
        pid: u32,
        host: String,
        version: String,
        keep_on_death: bool,
    },
    /// The events after this one, up to the next `journal:turn`, were
    /// written by epoch `epoch` (several writers only).
    JournalTurn {
        epoch: u64,
    },
}

/// The stored form of one event: when, and what. The LSN is where the
/// event sits in the journal, so it is not stored inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub at: u64,
    pub body: EventBody,
}

/// An event as read back: its LSN, its wall-clock time (ms) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub lsn: u64,
    pub at: u64,
    pub body: EventBody,
}

impl EventBody {
    /// The `type` name consumers see.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::JournalOpen { .. } => "journal:open",
            EventBody::JournalClose { .. } => "journal:close",
            EventBody::SessionStart(_) => "session:start",
            EventBody::SessionActivity { .. } => "session:activity",
            EventBody::SessionFlush { .. } => "session:flush",
            EventBody::SessionExpiryFinalized { .. } => "session:expiry_finalized",
            EventBody::SessionFinalizeFailed { .. } => "session:finalize_failed",
            EventBody::SessionEnd { .. } => "session:end",
            EventBody::SessionReopen { .. } => "session:reopen",
            EventBody::JournalDataLoss { .. } => "journal:data_loss",
            EventBody::JournalJoin { .. } => "journal:join",
            EventBody::JournalTurn { .. } => "journal:turn",
        }
    }

    /// Every `type` name, for validating filters.
    pub const TYPE_NAMES: [&'static str; 12] = [
        "journal:open",
        "journal:close",
        "session:start",
        "session:activity",
        "session:flush",
        "session:expiry_finalized",
        "session:finalize_failed",
        "session:end",
        "session:reopen",
        "journal:data_loss",
        "journal:join",
        "journal:turn",
    ];

    /// The session the event is about, if any.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            EventBody::JournalOpen { .. }
            | EventBody::JournalClose { .. }
            | EventBody::JournalDataLoss { .. }
            | EventBody::JournalJoin { .. }
            | EventBody::JournalTurn { .. } => None,
            EventBody::SessionStart(s) => Some(&s.session_id),
            EventBody::SessionActivity { session_id, .. }
            | EventBody::SessionFlush { session_id, .. }
            | EventBody::SessionExpiryFinalized { session_id, .. }
            | EventBody::SessionFinalizeFailed { session_id, .. }
            | EventBody::SessionEnd { session_id, .. }
            | EventBody::SessionReopen { session_id, .. } => Some(session_id),
        }
    }

    /// The session key the event carries, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            EventBody::JournalOpen { .. }
            | EventBody::JournalClose { .. }
            | EventBody::JournalDataLoss { .. }
            | EventBody::JournalJoin { .. }
            | EventBody::JournalTurn { .. } => None,
            EventBody::SessionStart(s) => s.key.as_deref(),
            EventBody::SessionActivity { key, .. }
            | EventBody::SessionFlush { key, .. }
            | EventBody::SessionExpiryFinalized { key, .. }
            | EventBody::SessionFinalizeFailed { key, .. }
            | EventBody::SessionEnd { key, .. }
            | EventBody::SessionReopen { key, .. } => key.as_deref(),
        }
    }
}

impl Event {
    /// The JSON form: `{"lsn":…,"at":…,"type":"session:end",…fields}`.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("lsn".into(), json!(self.lsn));
        map.insert("at".into(), json!(self.at));
        map.insert("type".into(), json!(self.body.type_name()));
        let fields = match &self.body {
            EventBody::JournalOpen { epoch, pid, host, version } => {
                json!({"epoch": epoch, "pid": pid, "host": host, "version": version})
            }
            EventBody::JournalClose { epoch, reason, sessions } => {
                json!({"epoch": epoch, "reason": reason.as_str(), "sessions": sessions.as_str()})
            }
            EventBody::SessionStart(s) => json!({
                "session_id": s.session_id, "key": s.key, "platform": s.platform, "user_id": s.user_id,
                "source": s.source, "parent_id": s.parent_id, "attrs": s.attrs,
            }),
            EventBody::SessionActivity { session_id, key } => json!({"session_id": session_id, "key": key}),
            EventBody::SessionFlush { session_id, key, marker } => {
                json!({"session_id": session_id, "key": key, "marker": marker})
            }
            EventBody::SessionExpiryFinalized { session_id, key } => {
                json!({"session_id": session_id, "key": key})
            }
            EventBody::SessionFinalizeFailed { session_id, key, attempt, error } => {
                json!({"session_id": session_id, "key": key, "attempt": attempt, "error": error})
            }
            EventBody::SessionEnd { session_id, key, reason, next_id } => {
                json!({"session_id": session_id, "key": key, "reason": reason.as_str(), "next_id": next_id})
            }
            EventBody::SessionReopen { session_id, key, reason } => {
                json!({"session_id": session_id, "key": key, "reason": reason})
            }
            EventBody::JournalDataLoss { lost_from, lost_to, evidence } => {
                json!({"lost_from": lost_from, "lost_to": lost_to, "evidence": evidence})
            }
            EventBody::JournalJoin { epoch, pid, host, version, keep_on_death } => json!({
                "epoch": epoch, "pid": pid, "host": host, "version": version, "keep_on_death": keep_on_death,
            }),
            EventBody::JournalTurn { epoch } => json!({"epoch": epoch}),
        };
        if let Value::Object(fields) = fields {
            map.extend(fields);
        }
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons_round_trip_including_unknown_ones() {
        for reason in EndReason::known() {
            assert_eq!(EndReason::parse(reason.as_str()), reason);
        }
        let other = EndReason::parse("moved_to_cold_storage");
        assert_eq!(other, EndReason::Other("moved_to_cold_storage".into()));
        let bytes = bookend_journal::codec::encode(&other).unwrap();
        assert_eq!(bookend_journal::codec::decode::<EndReason>(&bytes).unwrap(), other);
        assert_eq!(serde_json::to_string(&EndReason::IdleExpiry).unwrap(), "\"idle_expiry\"");
    }

    #[test]
    fn type_names_cover_every_variant() {
        let body = EventBody::SessionEnd {
            session_id: "s".into(),
            key: None,
            reason: EndReason::Reaped,
            next_id: None,
        };
        assert!(EventBody::TYPE_NAMES.contains(&body.type_name()));
        let json = Event { lsn: 9, at: 5, body }.to_json();
        assert_eq!(json["type"], "session:end");
        assert_eq!(json["reason"], "reaped");
        assert_eq!(json["lsn"], 9);
    }
}
