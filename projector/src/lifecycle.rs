//! The lifecycle rules: which command is accepted, what it appends, and
//! how events fold into state. No I/O of its own: sessions that are not in
//! memory are looked up in the checkpoint store through the table.
//!
//! `decide` enforces the invariants of design.md §3 when a command is
//! accepted; `apply` folds an event and reports (without refusing) any
//! invariant a journal written by someone else breaks, which is what
//! `verify` builds on.

use std::collections::BTreeMap;

use crate::command::{Ack, Command, ResetMode, ResetPolicy, Sessions, Start};
use crate::error::{LifecycleError, Result};
use crate::event::{CloseReason, EndReason, EventBody, SessionsOnClose, StartFields, StoredEvent};
use crate::state::{Meta, SessionState, SessionTable};
use crate::store::ProjectionStore;

/// Longest session id, key or marker, in bytes.
pub const ID_LEN_MAX_BYTES: usize = 128;
/// Longest error text recorded by `finalize_failed`.
pub const ERROR_LEN_MAX_BYTES: usize = 4096;
/// Default number of finalize attempts before a session stops being pending.
pub const FINALIZE_ATTEMPTS_MAX_DEFAULT: u32 = 3;
/// Default window within which repeated touches of a session are coalesced.
pub const ACTIVITY_COALESCE_MS_DEFAULT: u64 = 1000;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Tunable rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub activity_coalesce_ms: u64,
    pub finalize_attempts_max: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            activity_coalesce_ms: ACTIVITY_COALESCE_MS_DEFAULT,
            finalize_attempts_max: FINALIZE_ATTEMPTS_MAX_DEFAULT,
        }
    }
}

/// What accepting a command means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Append these events as one atomic batch. The event at `answer` (or
    /// the last one) gives the ack's LSN.
    Append {
        events: Vec<EventBody>,
        answer: Option<usize>,
        session_id: Option<String>,
        reason: Option<EndReason>,
    },
    /// Nothing to append; the ack is complete (a duplicate, or nothing due).
    Done(Ack),
}

/// An invariant a folded event breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub lsn: u64,
    pub session_id: Option<String>,
    pub message: String,
}

/// The folded state of a journal.
#[derive(Debug, Default)]
pub struct Lifecycle {
    pub meta: Meta,
    pub table: SessionTable,
    /// Where sessions not in memory live (the writer's sled cache); `None`
    /// for in-memory folds (verify, read-only tools).
    pub store: Option<ProjectionStore>,
}

fn check_id(field: &'static str, value: &str) -> Result<(), LifecycleError> {
    if value.is_empty() {
        return Err(LifecycleError::Empty { field });
    }
    if value.len() > ID_LEN_MAX_BYTES {
        return Err(LifecycleError::TooLong { field, len: value.len(), max: ID_LEN_MAX_BYTES });
    }
    Ok(())
}

fn append(events: Vec<EventBody>, answer: Option<usize>, session_id: Option<&str>) -> Decision {
    Decision::Append { events, answer, session_id: session_id.map(str::to_string), reason: None }
}

fn done(lsn: Option<u64>, session_id: &str) -> Decision {
    Decision::Done(Ack { lsn, duplicate: true, session_id: Some(session_id.to_string()), ..Ack::default() })
}

impl Lifecycle {
    fn session(&self, id: &str) -> Result<Option<std::borrow::Cow<'_, SessionState>>> {
        self.table.get(id, self.store.as_ref())
    }

    fn existing(&self, id: &str) -> Result<std::borrow::Cow<'_, SessionState>> {
        check_id("session_id", id)?;
        self.session(id)?.ok_or_else(|| LifecycleError::UnknownSession { session_id: id.to_string() }.into())
    }

    /// Decides what `command` appends at time `at`. `start` must carry a
    /// session id by now (the caller mints one when it was absent).
    pub fn decide(&self, command: &Command, at: u64, rules: &Rules) -> Result<Decision> {
        match command {
            Command::Start(start) => self.decide_start(start),
            Command::Touch { session_id } => {
                let s = self.existing(session_id)?;
                refuse_if_ended(&s)?;
                if at < s.last_activity_at.saturating_add(rules.activity_coalesce_ms) {
                    return Ok(Decision::Done(Ack {
                        session_id: Some(session_id.clone()),
                        ..Ack::default()
                    }));
                }
                let body = EventBody::SessionActivity { session_id: session_id.clone(), key: s.key.clone() };
                Ok(append(vec![body], None, Some(session_id)))
            }
            Command::Flush { session_id, marker } => {
                let s = self.existing(session_id)?;
                check_id("marker", marker)?;
                if let Some(lsn) = s.flush_markers.get(marker) {
                    return Ok(done(Some(*lsn), session_id));
                }
                let body = EventBody::SessionFlush {
                    session_id: session_id.clone(),
                    key: s.key.clone(),
                    marker: marker.clone(),
                };
                Ok(append(vec![body], None, Some(session_id)))
            }
            Command::End { session_id, reason } => {
                let s = self.existing(session_id)?;
                if !s.active {
                    return Ok(Decision::Done(Ack {
                        lsn: s.end_lsn,
                        duplicate: true,
                        session_id: Some(session_id.clone()),
                        reason: s.end_reason.clone(),
                        events: Vec::new(),
                    }));
                }
                Ok(Decision::Append {
                    events: vec![end_of(&s, reason.clone(), None)],
                    answer: None,
                    session_id: Some(session_id.clone()),
                    reason: Some(reason.clone()),
                })
            }
            Command::Reopen { session_id, reason } => {
                let s = self.existing(session_id)?;
                if s.active {
                    return Err(LifecycleError::AlreadyActive { session_id: session_id.clone() }.into());
                }
                if let Some(key) = &s.key
                    && let Some(active_id) = self.table.active_on_key(key)
                {
                    return Err(LifecycleError::KeyBusy {
                        key: key.clone(),
                        active_id: active_id.to_string(),
                    }
                    .into());
                }
                let body = EventBody::SessionReopen {
                    session_id: session_id.clone(),
                    key: s.key.clone(),
                    reason: reason.clone(),
                };
                Ok(append(vec![body], None, Some(session_id)))
            }
            Command::Expire { idle_minutes, daily_at_hour, utc_offset_minutes } => {
                if daily_at_hour.is_some_and(|h| h > 23) {
                    return Err(
                        LifecycleError::Invalid { reason: "daily_at_hour must be 0..=23".into() }.into()
                    );
                }
                let policy = Command::reset_policy(*idle_minutes, *daily_at_hour, *utc_offset_minutes);
                Ok(self.decide_expire(at, &policy))
            }
            Command::Finalized { session_id } => {
                let s = self.existing(session_id)?;
                if let Some(lsn) = s.expiry_finalized_lsn {
                    return Ok(done(Some(lsn), session_id));
                }
                let body =
                    EventBody::SessionExpiryFinalized { session_id: session_id.clone(), key: s.key.clone() };
                Ok(append(vec![body], None, Some(session_id)))
            }
            Command::FinalizeFailed { session_id, error } => {
                let s = self.existing(session_id)?;
                if s.expiry_finalized_lsn.is_some() {
                    return Err(LifecycleError::AlreadyFinalized { session_id: session_id.clone() }.into());
                }
                if s.finalize_attempts >= rules.finalize_attempts_max {
                    return Err(LifecycleError::AttemptsExhausted {
                        session_id: session_id.clone(),
                        max: rules.finalize_attempts_max,
                    }
                    .into());
                }
                let error = truncate_utf8(error, ERROR_LEN_MAX_BYTES);
                let body = EventBody::SessionFinalizeFailed {
                    session_id: session_id.clone(),
                    key: s.key.clone(),
                    attempt: s.finalize_attempts + 1,
                    error,
                };
                Ok(append(vec![body], None, Some(session_id)))
            }
            Command::Reap { ttl_ms } => Ok(self.decide_reap(at, *ttl_ms)),
            Command::Close { reason, sessions } => Ok(self.decide_close(*reason, *sessions)),
        }
    }

    fn decide_start(&self, start: &Start) -> Result<Decision> {
        let Some(id) = start.session_id.as_deref() else {
            return Err(LifecycleError::Empty { field: "session_id" }.into());
        };
        check_id("session_id", id)?;
        if let Some(key) = &start.key {
            check_id("key", key)?;
        }
        for (field, value) in
            [("platform", &start.platform), ("user_id", &start.user_id), ("source", &start.source)]
        {
            if let Some(v) = value {
                check_id(field, v)?;
            }
        }
        if let Some(s) = self.session(id)? {
            if s.key != start.key {
                return Err(LifecycleError::KeyMismatch {
                    session_id: id.to_string(),
                    existing: s.key.clone(),
                    requested: start.key.clone(),
                }
                .into());
            }
            return Ok(done(Some(s.start_lsn), id));
        }
        let body = EventBody::SessionStart(StartFields {
            session_id: id.to_string(),
            key: start.key.clone(),
            platform: start.platform.clone(),
            user_id: start.user_id.clone(),
            source: start.source.clone(),
            parent_id: start.parent_id.clone(),
            attrs: start.attrs.clone(),
        });
        let busy = start.key.as_deref().and_then(|k| self.table.active_on_key(k).map(|a| (k, a)));
        let Some((key, active_id)) = busy else {
            return Ok(append(vec![body], None, Some(id)));
        };
        if !start.supersede {
            return Err(
                LifecycleError::KeyBusy { key: key.to_string(), active_id: active_id.to_string() }.into()
            );
        }
        let prev = self.existing(active_id)?;
        let end = end_of(&prev, EndReason::Superseded, Some(id.to_string()));
        Ok(append(vec![end, body], Some(1), Some(id)))
    }

    fn decide_expire(&self, now: u64, policy: &ResetPolicy) -> Decision {
        let daily_boundary = daily_boundary(now, policy);
        let mut events = Vec::new();
        for s in self.active_sessions() {
            let idle_due = matches!(policy.mode, ResetMode::Idle | ResetMode::Both)
                && now >= s.last_activity_at.saturating_add(policy.idle_minutes.saturating_mul(MINUTE_MS));
            let daily_due = matches!(policy.mode, ResetMode::Daily | ResetMode::Both)
                && daily_boundary.is_some_and(|b| s.last_activity_at < b);
            let reason = if idle_due {
                EndReason::IdleExpiry
            } else if daily_due {
                EndReason::DailyReset
            } else {
                continue;
            };
            events.push(end_of(s, reason, None));
        }
        self.batch_or_nothing(events)
    }

    fn decide_reap(&self, now: u64, ttl_ms: u64) -> Decision {
        let events = self
            .active_sessions()
            .filter(|s| now >= s.last_activity_at.saturating_add(ttl_ms))
            .map(|s| end_of(s, EndReason::Reaped, None))
            .collect();
        self.batch_or_nothing(events)
    }

    fn decide_close(&self, reason: CloseReason, sessions: Sessions) -> Decision {
        let mut events: Vec<EventBody> = match sessions {
            Sessions::End => self.active_sessions().map(|s| end_of(s, reason.end_reason(), None)).collect(),
            Sessions::Keep => Vec::new(),
        };
        let sessions = match sessions {
            Sessions::End => SessionsOnClose::Ended,
            Sessions::Keep => SessionsOnClose::Kept,
        };
        events.push(EventBody::JournalClose { epoch: self.meta.epoch, reason, sessions });
        append(events, None, None)
    }

    /// The `journal:open` batch for a new epoch: with `end_active`, every
    /// session left active by an unclean shutdown is ended `crash_recovered`.
    pub fn open_batch(&self, pid: u32, host: String, version: String, end_active: bool) -> Vec<EventBody> {
        let mut events = vec![EventBody::JournalOpen { epoch: self.meta.epoch + 1, pid, host, version }];
        if self.meta.epoch_open && end_active {
            events.extend(self.active_sessions().map(|s| end_of(s, EndReason::CrashRecovered, None)));
        }
        events
    }

    fn batch_or_nothing(&self, events: Vec<EventBody>) -> Decision {
        if events.is_empty() { Decision::Done(Ack::default()) } else { append(events, None, None) }
    }

    /// Writes every session changed since the last checkpoint, and the meta
    /// record, to the store in one batch; ended sessions then leave memory.
    /// The caller makes sure every folded LSN is durable. Returns the
    /// number of sessions written. Without a store, ended sessions are
    /// packed in memory instead, and 0 is returned.
    pub fn save_checkpoint(&mut self) -> Result<usize> {
        let Some(store) = self.store.as_ref() else {
            self.table.pack_ended();
            return Ok(0);
        };
        let written = store.save(&crate::store::StoredMeta::of(&self.meta), self.table.dirty())?;
        self.table.checkpointed();
        Ok(written)
    }

    /// Brings every session `events` will change into memory, so that
    /// folding them after they are appended never needs the store.
    pub fn bring_into_memory(&mut self, events: &[EventBody]) -> Result<()> {
        for body in events {
            if let (Some(id), false) = (body.session_id(), matches!(body, EventBody::SessionStart(_))) {
                self.table.get_mut(id, self.store.as_ref())?;
            }
        }
        Ok(())
    }

    /// Active sessions, in id order. Active sessions are always in memory.
    pub fn active_sessions(&self) -> impl Iterator<Item = &SessionState> {
        self.meta.active.iter().filter_map(|id| self.table.in_memory(id))
    }

    /// Folds one event; returns the invariants it breaks (empty for every
    /// event `decide` produced).
    pub fn apply(&mut self, lsn: u64, event: &StoredEvent) -> Result<Vec<Violation>> {
        self.fold_event(lsn, event, false)
    }

    /// Folds an event that `decide` produced against this very state: a
    /// start's id was already looked up there, so it is not looked up in the
    /// checkpoint store a second time (a sled walk per start).
    pub fn apply_decided(&mut self, lsn: u64, event: &StoredEvent) -> Result<Vec<Violation>> {
        self.fold_event(lsn, event, true)
    }

    fn fold_event(&mut self, lsn: u64, event: &StoredEvent, decided: bool) -> Result<Vec<Violation>> {
        let mut v = Vec::new();
        let mut violation = |session_id: Option<&str>, message: String| {
            v.push(Violation { lsn, session_id: session_id.map(str::to_string), message })
        };
        if let EventBody::JournalDataLoss { lost_from, lost_to, .. } = &event.body
            && *lost_from == self.meta.last_lsn + 1
            && lsn == lost_to + 1
        {
            // The first event after an accepted loss: the LSNs it names exist nowhere.
            self.meta.last_lsn = *lost_to;
        }
        if lsn != self.meta.last_lsn + 1 {
            violation(None, format!("folded out of order after LSN {}", self.meta.last_lsn));
        }
        self.meta.last_lsn = lsn;
        let at = event.at;
        match &event.body {
            EventBody::JournalOpen { epoch, .. } => {
                if *epoch != self.meta.epoch + 1 {
                    violation(None, format!("epoch {epoch} does not follow epoch {}", self.meta.epoch));
                }
                self.meta.epoch = *epoch;
                self.meta.epoch_open = true;
            }
            EventBody::JournalClose { epoch, sessions, .. } => {
                if !self.meta.epoch_open || *epoch != self.meta.epoch {
                    violation(None, format!("close of epoch {epoch}, which is not the open epoch"));
                }
                if *sessions == SessionsOnClose::Ended && !self.meta.active.is_empty() {
                    violation(
                        None,
                        format!("close says sessions ended, but {} remain active", self.meta.active.len()),
                    );
                }
                self.meta.epoch_open = false;
            }
            EventBody::JournalDataLoss { .. } => {}
            EventBody::SessionStart(fields) => self.apply_start(fields, lsn, at, decided, &mut violation)?,
            EventBody::SessionEnd { session_id, reason, next_id, .. } => {
                self.apply_end(session_id, reason, next_id, lsn, at, &mut violation)?
            }
            EventBody::SessionReopen { session_id, .. } => {
                self.apply_reopen(session_id, at, &mut violation)?
            }
            EventBody::SessionActivity { session_id, .. } => {
                let Some(s) = self.table.get_mut(session_id, self.store.as_ref())? else {
                    violation(Some(session_id), "activity for an unknown session".into());
                    return Ok(v);
                };
                if !s.active {
                    violation(Some(session_id), "activity after the session ended".into());
                }
                s.last_activity_at = s.last_activity_at.max(at);
            }
            EventBody::SessionFlush { session_id, marker, .. } => {
                let Some(s) = self.table.get_mut(session_id, self.store.as_ref())? else {
                    violation(Some(session_id), "flush for an unknown session".into());
                    return Ok(v);
                };
                if s.flush_markers.contains_key(marker) {
                    violation(Some(session_id), format!("flush marker {marker:?} recorded twice"));
                } else {
                    s.flush_markers.insert(marker.clone(), lsn);
                }
            }
            EventBody::SessionExpiryFinalized { session_id, .. } => {
                let Some(s) = self.table.get_mut(session_id, self.store.as_ref())? else {
                    violation(Some(session_id), "expiry_finalized for an unknown session".into());
                    return Ok(v);
                };
                if s.expiry_finalized_lsn.is_some() {
                    violation(Some(session_id), "expiry_finalized recorded twice".into());
                } else {
                    s.expiry_finalized_lsn = Some(lsn);
                }
                self.meta.awaiting_finalization.remove(session_id);
            }
            EventBody::SessionFinalizeFailed { session_id, attempt, error, .. } => {
                let Some(s) = self.table.get_mut(session_id, self.store.as_ref())? else {
                    violation(Some(session_id), "finalize_failed for an unknown session".into());
                    return Ok(v);
                };
                s.finalize_attempts = s.finalize_attempts.max(*attempt);
                s.last_finalize_error = Some(error.clone());
            }
        }
        Ok(v)
    }

    fn apply_start(
        &mut self,
        f: &StartFields,
        lsn: u64,
        at: u64,
        decided: bool,
        violation: &mut impl FnMut(Option<&str>, String),
    ) -> Result<()> {
        let id = f.session_id.as_str();
        let store = if decided { None } else { self.store.as_ref() };
        // A store that cannot be read is an error (the owner rebuilds it),
        // never "no such session": that would start a stored session again.
        if self.table.get(id, store)?.is_some() {
            violation(Some(id), "a second start for the same session".into());
            return Ok(());
        }
        if let Some(key) = &f.key {
            if let Some(other) = self.table.active_on_key(key) {
                violation(
                    Some(id),
                    format!("started on key {key:?} while session {other:?} is active on it"),
                );
            }
            self.table.set_key_owner(key, id);
        }
        self.table.insert(SessionState {
            session_id: id.to_string(),
            key: f.key.clone(),
            platform: f.platform.clone(),
            user_id: f.user_id.clone(),
            source: f.source.clone(),
            parent_id: f.parent_id.clone(),
            attrs: f.attrs.clone(),
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
        });
        self.meta.active.insert(id.to_string());
        self.meta.sessions_total += 1;
        self.meta.spans_total += 1;
        Ok(())
    }

    fn apply_end(
        &mut self,
        id: &str,
        reason: &EndReason,
        next_id: &Option<String>,
        lsn: u64,
        at: u64,
        violation: &mut impl FnMut(Option<&str>, String),
    ) -> Result<()> {
        let Some(s) = self.table.get_mut(id, self.store.as_ref())? else {
            violation(Some(id), "end of an unknown session".into());
            return Ok(());
        };
        if !s.active {
            violation(
                Some(id),
                format!("a second end ({reason}) for a span already ended at LSN {:?}", s.end_lsn),
            );
            return Ok(());
        }
        s.active = false;
        s.ended_at = Some(at);
        s.end_lsn = Some(lsn);
        s.end_reason = Some(reason.clone());
        s.next_id = next_id.clone();
        let key = s.key.clone();
        let awaits = s.awaits_finalization();
        if let Some(key) = key {
            self.table.release_key(&key, id);
        }
        self.meta.active.remove(id);
        *self.meta.ends_by_reason.entry(reason.as_str().to_string()).or_insert(0) += 1;
        if awaits {
            self.meta.awaiting_finalization.insert(id.to_string());
        }
        Ok(())
    }

    fn apply_reopen(
        &mut self,
        id: &str,
        at: u64,
        violation: &mut impl FnMut(Option<&str>, String),
    ) -> Result<()> {
        let Some(s) = self.table.get_mut(id, self.store.as_ref())? else {
            violation(Some(id), "reopen of an unknown session".into());
            return Ok(());
        };
        if s.active {
            violation(Some(id), "reopen of a session that is active".into());
            return Ok(());
        }
        s.active = true;
        s.spans += 1;
        s.last_activity_at = at;
        s.ended_at = None;
        s.end_lsn = None;
        s.end_reason = None;
        s.next_id = None;
        let key = s.key.clone();
        if let Some(key) = key {
            if let Some(other) = self.table.active_on_key(&key) {
                violation(
                    Some(id),
                    format!("reopened on key {key:?} while session {other:?} is active on it"),
                );
            }
            self.table.set_key_owner(&key, id);
        }
        self.meta.active.insert(id.to_string());
        self.meta.awaiting_finalization.remove(id);
        self.meta.spans_total += 1;
        Ok(())
    }
}

fn refuse_if_ended(s: &SessionState) -> Result<(), LifecycleError> {
    if s.active {
        return Ok(());
    }
    Err(LifecycleError::SessionEnded {
        session_id: s.session_id.clone(),
        reason: s.end_reason.clone().unwrap_or(EndReason::Other("unknown".into())),
    })
}

fn end_of(s: &SessionState, reason: EndReason, next_id: Option<String>) -> EventBody {
    EventBody::SessionEnd { session_id: s.session_id.clone(), key: s.key.clone(), reason, next_id }
}

/// The most recent daily reset time at or before `now`, in UTC ms.
fn daily_boundary(now: u64, policy: &ResetPolicy) -> Option<u64> {
    let offset = i64::from(policy.utc_offset_minutes) * 60_000;
    let local = i64::try_from(now).ok()? + offset;
    let mut boundary = local - local.rem_euclid(DAY_MS) + i64::from(policy.daily_at_hour) * HOUR_MS;
    if boundary > local {
        boundary -= DAY_MS;
    }
    u64::try_from(boundary - offset).ok()
}

fn truncate_utf8(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_boundary_is_the_last_reset_hour_passed() {
        let policy = ResetPolicy::daily(4);
        let day = DAY_MS as u64;
        let hour = HOUR_MS as u64;
        assert_eq!(daily_boundary(10 * day + 5 * hour, &policy), Some(10 * day + 4 * hour));
        assert_eq!(daily_boundary(10 * day + 3 * hour, &policy), Some(9 * day + 4 * hour));
        let east = ResetPolicy { utc_offset_minutes: 120, ..policy };
        assert_eq!(daily_boundary(10 * day + 3 * hour, &east), Some(10 * day + 2 * hour));
    }
}
