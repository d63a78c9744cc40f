//! What bookend knows about each session and about the journal as a whole,
//! folded from the events: plain data, with no I/O and no rules.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{EndReason, StartFields};

/// Everything bookend knows about one session, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// What the session was started with (`session:start`'s fields),
    /// shared with the start event it was folded from.
    pub start: Arc<StartFields>,
    pub start_lsn: u64,
    pub started_at: u64,
    /// Whether the current span is open.
    pub active: bool,
    /// Spans opened so far (the start and every reopen).
    pub spans: u32,
    /// Time of the last start, reopen or recorded activity.
    pub last_activity_at: u64,
    /// The last end: when, at which LSN, why, and the session that replaced it.
    pub ended_at: Option<u64>,
    pub end_lsn: Option<u64>,
    pub end_reason: Option<EndReason>,
    pub next_id: Option<String>,
    /// Flush markers recorded, with the LSN that recorded each.
    pub flush_markers: BTreeMap<String, u64>,
    /// LSN of `session:expiry_finalized`, once recorded.
    pub expiry_finalized_lsn: Option<u64>,
    pub finalize_attempts: u32,
    pub last_finalize_error: Option<String>,
}

impl SessionState {
    /// A session just started at `lsn`, time `at`.
    pub fn started(start: Arc<StartFields>, lsn: u64, at: u64) -> SessionState {
        SessionState {
            start,
            start_lsn: lsn,
            started_at: at,
            active: true,
            spans: 1,
            last_activity_at: at,
            ended_at: None,
            end_lsn: None,
            end_reason: None,
            next_id: None,
            flush_markers: BTreeMap::new(),
            expiry_finalized_lsn: None,
            finalize_attempts: 0,
            last_finalize_error: None,
        }
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.start.session_id
    }

    /// Appends the state's encoding to `out` without the id it begins
    /// with (its first field), for stores that keep the id apart, once.
    /// `Ok(false)`, with `out` as it was, if the encoding does not begin
    /// with the id's.
    pub(crate) fn encode_without_id_into(&self, out: &mut Vec<u8>) -> crate::error::Result<bool> {
        let start = out.len();
        let id_len = bookend_journal::codec::encode_into(self.id(), out)?;
        if let Err(e) = bookend_journal::codec::encode_into(self, out) {
            out.truncate(start);
            return Err(e.into());
        }
        let (id, state) = out[start..].split_at(id_len);
        if !state.starts_with(id) {
            out.truncate(start);
            return Ok(false);
        }
        out.drain(start..start + 2 * id_len);
        Ok(true)
    }

    /// The key it was started on, if any.
    pub fn key(&self) -> Option<&str> {
        self.start.key.as_deref()
    }

    /// The JSON row consumers, `bookend sessions --json` and `GET /v1/sessions` show.
    pub fn to_json(&self) -> serde_json::Value {
        let start = &self.start;
        serde_json::json!({
            "session_id": start.session_id,
            "key": start.key,
            "platform": start.platform,
            "user_id": start.user_id,
            "source": start.source,
            "parent_id": start.parent_id,
            "attrs": start.attrs,
            "active": self.active,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason.as_ref().map(|r| r.as_str()),
            "next_id": self.next_id,
            "last_activity_at": self.last_activity_at,
            "expiry_finalized": self.expiry_finalized_lsn.is_some(),
            "finalize_attempts": self.finalize_attempts,
            "flush_markers": self.flush_markers.keys().collect::<Vec<_>>(),
            "spans": self.spans,
            "start_lsn": self.start_lsn,
            "end_lsn": self.end_lsn,
        })
    }

    /// The time of the session's last start, reopen, activity or end:
    /// a later command about it may not be dated before this.
    pub fn last_event_at(&self) -> u64 {
        self.last_activity_at.max(self.ended_at.unwrap_or(0))
    }

    /// Ended by expiry (idle or daily) and not finalized: the one definition
    /// of "awaiting finalization", used by the fold and the checkpoint index.
    pub fn awaits_finalization(&self) -> bool {
        !self.active
            && matches!(self.end_reason, Some(EndReason::IdleExpiry | EndReason::DailyReset))
            && self.expiry_finalized_lsn.is_none()
    }
}

/// Journal-wide state folded alongside the sessions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    /// The last LSN folded into this state.
    pub last_lsn: u64,
    /// The epoch of the last `journal:open`.
    pub epoch: u64,
    /// A `journal:open` with no `journal:close` after it.
    pub epoch_open: bool,
    /// Ids of active sessions.
    pub active: BTreeSet<String>,
    /// Ended by expiry (idle or daily) and not yet finalized or reopened.
    pub awaiting_finalization: BTreeSet<String>,
    pub sessions_total: u64,
    pub spans_total: u64,
    /// Ends by reason name.
    pub ends_by_reason: BTreeMap<String, u64>,
}

#[cfg(test)]
impl SessionState {
    /// A minimal session for unit tests: active, or ended for `end_reason`.
    pub(crate) fn for_tests(id: &str, end_reason: Option<EndReason>) -> SessionState {
        let start = StartFields { session_id: id.to_string(), ..StartFields::default() };
        let mut s = SessionState::started(start.into(), 1, 1);
        s.active = end_reason.is_none();
        s.ended_at = end_reason.as_ref().map(|_| 2);
        s.end_lsn = end_reason.as_ref().map(|_| 2);
        s.end_reason = end_reason;
        s
    }
}
