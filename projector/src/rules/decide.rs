//! `decide`: whether a command is accepted and what it appends, one
//! function per command. Nothing here changes state.

use std::borrow::Cow;
use std::sync::Arc;

use super::{Decision, Lifecycle, Rules, check_id, end_of};
use crate::command::{Ack, Command, ResetMode, ResetPolicy, Sessions, Start};
use crate::error::{LifecycleError, Result};
use crate::event::{CloseReason, EndReason, EventBody, SessionsOnClose, StartFields};
use crate::limits::{
    ERROR_LEN_MAX_BYTES, KEY_LEN_MAX_BYTES, LABEL_LEN_MAX_BYTES, MARKER_LEN_MAX_BYTES, REASON_LEN_MAX_BYTES,
    check_attrs, check_name, check_text,
};
use crate::session::SessionState;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

fn append(events: Vec<EventBody>, answer: Option<usize>, session_id: Option<&str>) -> Decision {
    Decision::Append { events, answer, session_id: session_id.map(str::to_string), reason: None }
}

/// The command had been done already: nothing to append, answer `lsn`.
fn done(lsn: Option<u64>, session_id: &str) -> Decision {
    Decision::Done(Ack { lsn, duplicate: true, session_id: Some(session_id.to_string()), ..Ack::default() })
}

fn batch_or_nothing(events: Vec<EventBody>) -> Decision {
    if events.is_empty() { Decision::Done(Ack::default()) } else { append(events, None, None) }
}

fn refuse_if_ended(s: &SessionState) -> Result<(), LifecycleError> {
    if s.active {
        return Ok(());
    }
    Err(LifecycleError::SessionEnded {
        session_id: s.id().to_string(),
        reason: s.end_reason.clone().unwrap_or(EndReason::Other("unknown".into())),
    })
}

impl Lifecycle {
    fn existing(&self, id: &str) -> Result<Cow<'_, SessionState>> {
        check_id("session_id", id)?;
        self.table
            .get(id)?
            .ok_or_else(|| LifecycleError::UnknownSession { session_id: id.to_string() }.into())
    }

    /// Decides what `command` appends at time `at`. `start` must carry a
    /// session id by now (the caller mints one when it was empty).
    pub fn decide(&self, command: &Command, at: u64, rules: &Rules) -> Result<Decision> {
        // The session a command names is looked up once: from the store, a
        // lookup reads and decompresses a block.
        let named = self.named_session(command)?;
        check_time(named.as_deref(), at)?;
        match command {
            Command::Start(start) => self.decide_start(start),
            Command::Touch { session_id } => decide_touch(found(session_id, named)?, at, rules),
            Command::Flush { session_id, marker } => decide_flush(found(session_id, named)?, marker),
            Command::End { session_id, reason } => decide_end(found(session_id, named)?, reason),
            Command::EndKey { key, reason } => decide_end_key(key, named, reason),
            Command::Reopen { session_id, reason } => self.decide_reopen(found(session_id, named)?, reason),
            Command::Expire { idle_minutes, daily_at_hour, utc_offset_minutes } => {
                if daily_at_hour.is_some_and(|h| h > 23) {
                    let reason = "daily_at_hour must be 0..=23".into();
                    return Err(LifecycleError::Invalid { reason }.into());
                }
                let policy = Command::reset_policy(*idle_minutes, *daily_at_hour, *utc_offset_minutes);
                Ok(self.decide_expire(at, &policy))
            }
            Command::Finalized { session_id } => decide_finalized(found(session_id, named)?),
            Command::FinalizeFailed { session_id, error } => {
                decide_finalize_failed(found(session_id, named)?, error, rules)
            }
            Command::Reap { ttl_ms } => Ok(self.decide_reap(at, *ttl_ms)),
            Command::Close { reason, sessions } => Ok(self.decide_close(*reason, *sessions)),
        }
    }

    fn decide_start(&self, start: &Start) -> Result<Decision> {
        let fields = &start.fields;
        let id = fields.session_id.as_str();
        check_start_fields(fields)?;
        if let Some(s) = self.table.get(id)? {
            if s.start.key != fields.key {
                let (existing, requested) = (s.start.key.clone(), fields.key.clone());
                return Err(
                    LifecycleError::KeyMismatch { session_id: id.to_string(), existing, requested }.into()
                );
            }
            return Ok(done(Some(s.start_lsn), id));
        }
        let body = EventBody::SessionStart(Arc::clone(&start.fields));
        let busy = fields.key.as_deref().and_then(|k| self.table.active_on_key(k).map(|a| (k, a)));
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

    /// The session `command` names, if it names one and it exists (a start
    /// looks its id up itself: its time is not checked against it).
    fn named_session(&self, command: &Command) -> Result<Option<Cow<'_, SessionState>>> {
        let id = match command {
            Command::EndKey { key, .. } => self.table.active_on_key(key),
            Command::Start(_) | Command::Expire { .. } | Command::Reap { .. } | Command::Close { .. } => None,
            other => other.session_id(),
        };
        match id.filter(|id| check_id("session_id", id).is_ok()) {
            Some(id) => self.table.get(id),
            None => Ok(None),
        }
    }

    fn decide_reopen(&self, s: Cow<'_, SessionState>, reason: &str) -> Result<Decision> {
        let id = s.id();
        check_name("reason", reason, REASON_LEN_MAX_BYTES)?;
        if s.active {
            return Err(LifecycleError::AlreadyActive { session_id: id.to_string() }.into());
        }
        if let Some(key) = &s.start.key
            && let Some(active_id) = self.table.active_on_key(key)
        {
            return Err(LifecycleError::KeyBusy { key: key.clone(), active_id: active_id.to_string() }.into());
        }
        let body = EventBody::SessionReopen {
            session_id: id.to_string(),
            key: s.start.key.clone(),
            reason: reason.to_string(),
        };
        Ok(append(vec![body], None, Some(id)))
    }

    fn decide_expire(&self, now: u64, policy: &ResetPolicy) -> Decision {
        let daily_boundary = daily_boundary(now, policy);
        let idle_ms = policy.idle_minutes.saturating_mul(MINUTE_MS);
        let mut events = Vec::new();
        for s in self.active_sessions() {
            let idle_due = matches!(policy.mode, ResetMode::Idle | ResetMode::Both)
                && now >= s.last_activity_at.saturating_add(idle_ms);
            let daily_due = matches!(policy.mode, ResetMode::Daily | ResetMode::Both)
                && daily_boundary.is_some_and(|b| s.last_activity_at < b);
            let reason = match (idle_due, daily_due) {
                (true, _) => EndReason::IdleExpiry,
                (false, true) => EndReason::DailyReset,
                (false, false) => continue,
            };
            events.push(end_of(s, reason, None));
        }
        batch_or_nothing(events)
    }

    fn decide_reap(&self, now: u64, ttl_ms: u64) -> Decision {
        let events = self
            .active_sessions()
            .filter(|s| now >= s.last_activity_at.saturating_add(ttl_ms))
            .map(|s| end_of(s, EndReason::Reaped, None))
            .collect();
        batch_or_nothing(events)
    }

    /// The close of this process's epoch: it ends only the sessions this
    /// epoch owns (and orphans, when no other writer is open), never
    /// another live writer's.
    fn decide_close(&self, reason: CloseReason, sessions: Sessions) -> Decision {
        let epoch = self.writers.own().unwrap_or(self.meta.epoch);
        let orphans = self.writers.close_takes_orphans(epoch, false);
        let (mut events, sessions): (Vec<EventBody>, _) = match sessions {
            Sessions::End => {
                let ends = self
                    .active_sessions()
                    .filter(|s| self.writers.closes_with(epoch, s.id(), orphans))
                    .map(|s| end_of(s, reason.end_reason(), None))
                    .collect();
                (ends, SessionsOnClose::Ended)
            }
            Sessions::Keep => (Vec::new(), SessionsOnClose::Kept),
        };
        events.push(EventBody::JournalClose { epoch, reason, sessions });
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
}

/// The session a command names, as `decide` looked it up: an invalid id
/// or one never started is an error here.
fn found<'a>(id: &str, named: Option<Cow<'a, SessionState>>) -> Result<Cow<'a, SessionState>> {
    check_id("session_id", id)?;
    named.ok_or_else(|| LifecycleError::UnknownSession { session_id: id.to_string() }.into())
}

/// A command about a session may not be dated before that session's
/// last event: time runs forward within a session.
fn check_time(named: Option<&SessionState>, at: u64) -> Result<()> {
    let Some(s) = named else { return Ok(()) };
    let last = s.last_event_at();
    if at < last {
        let reason = format!("at {at} is before session {:?}'s last event at {last}", s.id());
        return Err(LifecycleError::InvalidTime { reason }.into());
    }
    Ok(())
}

fn decide_touch(s: Cow<'_, SessionState>, at: u64, rules: &Rules) -> Result<Decision> {
    let id = s.id();
    refuse_if_ended(&s)?;
    if at < s.last_activity_at.saturating_add(rules.activity_coalesce_ms) {
        return Ok(Decision::Done(Ack { session_id: Some(id.to_string()), ..Ack::default() }));
    }
    let body = EventBody::SessionActivity { session_id: id.to_string(), key: s.start.key.clone() };
    Ok(append(vec![body], None, Some(id)))
}

fn decide_flush(s: Cow<'_, SessionState>, marker: &str) -> Result<Decision> {
    let id = s.id();
    check_name("marker", marker, MARKER_LEN_MAX_BYTES)?;
    if let Some(lsn) = s.flush_markers.get(marker) {
        return Ok(done(Some(*lsn), id));
    }
    let body = EventBody::SessionFlush {
        session_id: id.to_string(),
        key: s.start.key.clone(),
        marker: marker.to_string(),
    };
    Ok(append(vec![body], None, Some(id)))
}

fn decide_end(s: Cow<'_, SessionState>, reason: &EndReason) -> Result<Decision> {
    let id = s.id();
    check_name("reason", reason.as_str(), REASON_LEN_MAX_BYTES)?;
    if !s.active {
        // The first end stands; a repeat answers with it.
        let ack = Ack {
            lsn: s.end_lsn,
            duplicate: true,
            session_id: Some(id.to_string()),
            reason: s.end_reason.clone(),
            events: Vec::new(),
        };
        return Ok(Decision::Done(ack));
    }
    Ok(Decision::Append {
        events: vec![end_of(&s, reason.clone(), None)],
        answer: None,
        session_id: Some(id.to_string()),
        reason: Some(reason.clone()),
    })
}

/// Ends whatever is active on `key` (`decide` looked it up); nothing to do
/// (an ack naming no session) if nothing is.
fn decide_end_key(key: &str, active: Option<Cow<'_, SessionState>>, reason: &EndReason) -> Result<Decision> {
    check_text("key", key, KEY_LEN_MAX_BYTES)?;
    check_name("reason", reason.as_str(), REASON_LEN_MAX_BYTES)?;
    match active {
        Some(s) => decide_end(s, reason),
        None => Ok(Decision::Done(Ack::default())),
    }
}

fn decide_finalized(s: Cow<'_, SessionState>) -> Result<Decision> {
    let id = s.id();
    if let Some(lsn) = s.expiry_finalized_lsn {
        return Ok(done(Some(lsn), id));
    }
    let body = EventBody::SessionExpiryFinalized { session_id: id.to_string(), key: s.start.key.clone() };
    Ok(append(vec![body], None, Some(id)))
}

fn decide_finalize_failed(s: Cow<'_, SessionState>, error: &str, rules: &Rules) -> Result<Decision> {
    let id = s.id();
    if error.is_empty() {
        return Err(LifecycleError::Empty { field: "error" }.into());
    }
    if s.expiry_finalized_lsn.is_some() {
        return Err(LifecycleError::AlreadyFinalized { session_id: id.to_string() }.into());
    }
    let max = rules.finalize_attempts_max;
    if s.finalize_attempts >= max {
        return Err(LifecycleError::AttemptsExhausted { session_id: id.to_string(), max }.into());
    }
    let body = EventBody::SessionFinalizeFailed {
        session_id: id.to_string(),
        key: s.start.key.clone(),
        attempt: s.finalize_attempts + 1,
        error: truncate_utf8(error, ERROR_LEN_MAX_BYTES),
    };
    Ok(append(vec![body], None, Some(id)))
}

/// Every field of a start within its limits (docs/format.md lists them).
fn check_start_fields(fields: &StartFields) -> Result<(), LifecycleError> {
    check_id("session_id", &fields.session_id)?;
    if let Some(key) = &fields.key {
        check_text("key", key, KEY_LEN_MAX_BYTES)?;
    }
    if let Some(parent) = &fields.parent_id {
        check_id("parent_id", parent)?;
    }
    for (field, value) in
        [("platform", &fields.platform), ("user_id", &fields.user_id), ("source", &fields.source)]
    {
        if let Some(v) = value {
            check_text(field, v, LABEL_LEN_MAX_BYTES)?;
        }
    }
    check_attrs(&fields.attrs)
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
