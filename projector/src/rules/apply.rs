//! `apply`: how each event folds into the state, one function per event.
//! A journal written by someone else may break the rules; each broken rule
//! is reported as a `Violation`, never refused (that is what `verify`
//! builds on). Events `decide` produced break none.

use super::{Lifecycle, Violation};
use std::sync::Arc;

use crate::error::Result;
use crate::event::{CloseReason, EndReason, EventBody, SessionsOnClose, StartFields, StoredEvent};
use crate::session::SessionState;

/// One event being folded: where it is, and what it broke so far.
struct Folding {
    lsn: u64,
    at: u64,
    violations: Vec<Violation>,
}

impl Folding {
    fn violation(&mut self, session_id: Option<&str>, message: String) {
        self.violations.push(Violation {
            lsn: self.lsn,
            session_id: session_id.map(str::to_string),
            message,
        });
    }
}

impl Lifecycle {
    /// Folds one event; returns the invariants it breaks.
    pub fn apply(&mut self, lsn: u64, event: &StoredEvent) -> Result<Vec<Violation>> {
        self.fold_event(lsn, event, false)
    }

    /// Folds an event that `decide` produced against this very state: a
    /// start's id was already looked up there, so it is not looked up in the
    /// projection store a second time (a sled walk per start).
    pub fn apply_decided(&mut self, lsn: u64, event: &StoredEvent) -> Result<Vec<Violation>> {
        self.fold_event(lsn, event, true)
    }

    fn fold_event(&mut self, lsn: u64, event: &StoredEvent, decided: bool) -> Result<Vec<Violation>> {
        let mut f = Folding { lsn, at: event.at, violations: Vec::new() };
        if let EventBody::JournalDataLoss { lost_from, lost_to, .. } = &event.body
            && *lost_from == self.meta.last_lsn + 1
            && lsn == lost_to + 1
        {
            // The first event after an accepted loss: the LSNs it names exist nowhere.
            self.meta.last_lsn = *lost_to;
        }
        if lsn != self.meta.last_lsn + 1 {
            f.violation(None, format!("folded out of order after LSN {}", self.meta.last_lsn));
        }
        self.meta.last_lsn = lsn;
        match &event.body {
            EventBody::JournalOpen { epoch, pid, host, .. } => {
                self.apply_open(*epoch, &mut f);
                self.writers.open_alone(*epoch, *pid, host);
            }
            EventBody::JournalJoin { epoch, pid, host, keep_on_death, .. } => {
                self.apply_open(*epoch, &mut f);
                self.writers.join_shared(*epoch, *pid, host, *keep_on_death);
            }
            EventBody::JournalTurn { epoch } => {
                if !self.writers.turn(*epoch) {
                    f.violation(None, format!("a turn of epoch {epoch}, which is not open"));
                }
            }
            EventBody::JournalClose { epoch, reason, sessions } => {
                self.apply_close(*epoch, *reason, *sessions, &mut f)
            }
            EventBody::JournalDataLoss { .. } => {}
            EventBody::SessionStart(fields) => self.apply_start(fields, decided, &mut f)?,
            EventBody::SessionEnd { session_id, reason, next_id, .. } => {
                self.apply_end(session_id, reason, next_id, &mut f)?
            }
            EventBody::SessionReopen { session_id, .. } => self.apply_reopen(session_id, &mut f)?,
            EventBody::SessionActivity { session_id, .. } => self.apply_activity(session_id, &mut f)?,
            EventBody::SessionFlush { session_id, marker, .. } => {
                self.apply_flush(session_id, marker, &mut f)?
            }
            EventBody::SessionExpiryFinalized { session_id, .. } => {
                self.apply_finalized(session_id, &mut f)?
            }
            EventBody::SessionFinalizeFailed { session_id, attempt, error, .. } => {
                self.apply_finalize_failed(session_id, *attempt, error, &mut f)?
            }
        }
        Ok(f.violations)
    }

    fn apply_open(&mut self, epoch: u64, f: &mut Folding) {
        if epoch != self.meta.epoch + 1 {
            f.violation(None, format!("epoch {epoch} does not follow epoch {}", self.meta.epoch));
        }
        self.meta.epoch = epoch;
        self.meta.epoch_open = true;
    }

    fn apply_close(&mut self, epoch: u64, reason: CloseReason, sessions: SessionsOnClose, f: &mut Folding) {
        if !self.meta.epoch_open || !self.writers.is_open(epoch) {
            f.violation(None, format!("close of epoch {epoch}, which is not an open epoch"));
        }
        if sessions == SessionsOnClose::Ended {
            let orphans = self.writers.close_takes_orphans(epoch, reason == CloseReason::WriterDied);
            let left =
                self.meta.active.iter().filter(|id| self.writers.closes_with(epoch, id, orphans)).count();
            if left > 0 {
                f.violation(None, format!("close says sessions ended, but {left} remain active"));
            }
        }
        self.writers.close(epoch);
        self.meta.epoch_open = self.writers.open_epochs().next().is_some();
    }

    /// The session an event names, to change; `None` (with a violation) if
    /// it is unknown.
    fn named(&mut self, id: &str, event: &str, f: &mut Folding) -> Result<Option<&mut SessionState>> {
        let found = self.table.get_mut(id)?;
        if found.is_none() {
            f.violation(Some(id), format!("{event} for an unknown session"));
        }
        Ok(found)
    }

    fn apply_start(&mut self, fields: &Arc<StartFields>, decided: bool, f: &mut Folding) -> Result<()> {
        let id = fields.session_id.as_str();
        // A store that cannot be read is an error (the owner rebuilds it),
        // never "no such session": that would start a stored session again.
        if self.table.lookup(id, !decided)?.is_some() {
            f.violation(Some(id), "a second start for the same session".into());
            return Ok(());
        }
        if let Some(key) = &fields.key {
            if let Some(other) = self.table.active_on_key(key) {
                f.violation(
                    Some(id),
                    format!("started on key {key:?} while session {other:?} is active on it"),
                );
            }
            self.table.set_key_owner(key, id);
        }
        self.table.insert(SessionState::started(Arc::clone(fields), f.lsn, f.at));
        self.meta.active.insert(id.to_string());
        self.writers.take_ownership(id);
        self.meta.sessions_total += 1;
        self.meta.spans_total += 1;
        Ok(())
    }

    fn apply_end(
        &mut self,
        id: &str,
        reason: &EndReason,
        next_id: &Option<String>,
        f: &mut Folding,
    ) -> Result<()> {
        let (lsn, at) = (f.lsn, f.at);
        let Some(s) = self.named(id, "end", f)? else { return Ok(()) };
        if !s.active {
            let message = format!("a second end ({reason}) for a span already ended at LSN {:?}", s.end_lsn);
            f.violation(Some(id), message);
            return Ok(());
        }
        s.active = false;
        s.ended_at = Some(at);
        s.end_lsn = Some(lsn);
        s.end_reason = Some(reason.clone());
        s.next_id = next_id.clone();
        let key = s.start.key.clone();
        let awaits = s.awaits_finalization();
        if let Some(key) = key {
            self.table.release_key(&key, id);
        }
        self.meta.active.remove(id);
        self.writers.disown(id);
        *self.meta.ends_by_reason.entry(reason.as_str().to_string()).or_insert(0) += 1;
        if awaits {
            self.meta.awaiting_finalization.insert(id.to_string());
        }
        Ok(())
    }

    fn apply_reopen(&mut self, id: &str, f: &mut Folding) -> Result<()> {
        let at = f.at;
        let Some(s) = self.named(id, "reopen", f)? else { return Ok(()) };
        if s.active {
            f.violation(Some(id), "reopen of a session that is active".into());
            return Ok(());
        }
        s.active = true;
        s.spans += 1;
        s.last_activity_at = at;
        s.ended_at = None;
        s.end_lsn = None;
        s.end_reason = None;
        s.next_id = None;
        if let Some(key) = s.start.key.clone() {
            if let Some(other) = self.table.active_on_key(&key) {
                f.violation(
                    Some(id),
                    format!("reopened on key {key:?} while session {other:?} is active on it"),
                );
            }
            self.table.set_key_owner(&key, id);
        }
        self.meta.active.insert(id.to_string());
        self.writers.take_ownership(id);
        self.meta.awaiting_finalization.remove(id);
        self.meta.spans_total += 1;
        Ok(())
    }

    fn apply_activity(&mut self, id: &str, f: &mut Folding) -> Result<()> {
        let at = f.at;
        let Some(s) = self.named(id, "activity", f)? else { return Ok(()) };
        let ended = !s.active;
        s.last_activity_at = s.last_activity_at.max(at);
        if ended {
            f.violation(Some(id), "activity after the session ended".into());
        }
        Ok(())
    }

    fn apply_flush(&mut self, id: &str, marker: &str, f: &mut Folding) -> Result<()> {
        let lsn = f.lsn;
        let Some(s) = self.named(id, "flush", f)? else { return Ok(()) };
        if s.flush_markers.contains_key(marker) {
            f.violation(Some(id), format!("flush marker {marker:?} recorded twice"));
        } else {
            s.flush_markers.insert(marker.to_string(), lsn);
        }
        Ok(())
    }

    fn apply_finalized(&mut self, id: &str, f: &mut Folding) -> Result<()> {
        let lsn = f.lsn;
        let Some(s) = self.named(id, "expiry_finalized", f)? else { return Ok(()) };
        if s.expiry_finalized_lsn.is_some() {
            f.violation(Some(id), "expiry_finalized recorded twice".into());
        } else {
            s.expiry_finalized_lsn = Some(lsn);
        }
        self.meta.awaiting_finalization.remove(id);
        Ok(())
    }

    fn apply_finalize_failed(&mut self, id: &str, attempt: u32, error: &str, f: &mut Folding) -> Result<()> {
        let Some(s) = self.named(id, "finalize_failed", f)? else { return Ok(()) };
        s.finalize_attempts = s.finalize_attempts.max(attempt);
        s.last_finalize_error = Some(error.to_string());
        Ok(())
    }
}
