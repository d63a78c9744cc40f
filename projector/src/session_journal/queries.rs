//! Queries: the state as accepted (see docs/lifecycle.md). With several
//! writer processes each query first takes in what the others appended
//! (`SessionJournal::read_core`), so it sees every process's sessions.

use super::SessionJournal;
use super::Summary;
use crate::error::Result;
use crate::event::EndReason;
use crate::fold;
use crate::session::{Meta, SessionState};

impl SessionJournal {
    pub fn get(&self, session_id: &str) -> Result<Option<SessionState>> {
        let mut core = self.read_core();
        self.with_store_retry(&mut core, |core| Ok(core.life.table.get(session_id)?.map(|c| c.into_owned())))
    }

    /// The session active on `key`, if any (active sessions are in memory).
    pub fn active_by_key(&self, key: &str) -> Result<Option<SessionState>> {
        let core = self.read_core();
        let Some(id) = core.life.table.active_on_key(key) else { return Ok(None) };
        Ok(core.life.table.in_memory(id).cloned())
    }

    /// The journal's identity.
    pub fn journal_id(&self) -> bookend_journal::JournalId {
        self.inner.journal.id()
    }

    /// Every named consumer and its lag behind the durable end, or why its
    /// cursor cannot be used (one bad cursor does not hide the others).
    pub fn consumers(&self) -> Result<Vec<crate::cursor::ConsumerStatus>> {
        let j = &self.inner.journal;
        crate::cursor::consumer_statuses(&**j.fs(), j.dir(), Some(j.id()), j.durable_lsn())
    }

    pub fn active(&self) -> Vec<SessionState> {
        self.read_core().life.active_sessions().cloned().collect()
    }

    /// Every session, in id order (reads the whole checkpoint store).
    pub fn all_sessions(&self) -> Result<Vec<SessionState>> {
        self.sessions_where(|_| true)
    }

    /// The sessions `keep` accepts, in id order. Reads the whole checkpoint
    /// store, but without holding up commands: the sessions in memory are
    /// copied (shared) under the lock, and the store is read after it is
    /// released. Each session is at least as recent as at the call. Only
    /// the matches are held decoded.
    pub fn sessions_where(&self, keep: impl Fn(&SessionState) -> bool) -> Result<Vec<SessionState>> {
        let core = self.read_core();
        let Some(store) = core.life.table.store().cloned() else {
            return fold::sessions_where(&core.life, keep);
        };
        let hot = core.life.table.hot_snapshot();
        drop(core);
        fold::overlay(store.sessions(), hot.values().map(|s| &**s), |id| hot.contains_key(id), keep)
    }

    /// One page of the sessions `keep` accepts, in start order, after the
    /// start LSN `after` (0 for the first page); at most `limit`. Like
    /// [`SessionJournal::sessions_where`], it reads the store without
    /// holding up commands, and holds at most `limit + 1` sessions decoded.
    pub fn sessions_page(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(&SessionState) -> bool,
    ) -> Result<crate::page::SessionPage> {
        let core = self.read_core();
        let table = &core.life.table;
        let Some(store) = table.store().cloned() else {
            let stored = table.packed();
            return crate::page::select(
                stored,
                table.hot(),
                |id| table.in_memory(id).is_some(),
                after,
                limit,
                keep,
            );
        };
        let hot = table.hot_snapshot();
        drop(core);
        let memory = hot.values().map(|s| &**s);
        crate::page::select(store.sessions(), memory, |id| hot.contains_key(id), after, limit, keep)
    }

    pub fn ended_by_reason(&self, reason: &EndReason) -> Result<Vec<SessionState>> {
        self.sessions_where(|s| !s.active && s.end_reason.as_ref() == Some(reason))
    }

    /// Sessions ended by expiry (idle or daily) whose finalization has not
    /// succeeded and still has attempts left.
    pub fn pending_finalization(&self) -> Result<Vec<SessionState>> {
        let mut core = self.read_core();
        let max = self.inner.options.rules.finalize_attempts_max;
        self.with_store_retry(&mut core, |core| {
            let mut out = Vec::new();
            for id in &core.life.meta.awaiting_finalization {
                if let Some(s) = core.life.table.get(id)?
                    && s.finalize_attempts < max
                    && s.expiry_finalized_lsn.is_none()
                {
                    out.push(s.into_owned());
                }
            }
            Ok(out)
        })
    }

    /// Ended sessions that have no flush marker `marker`.
    pub fn pending_flush(&self, marker: &str) -> Result<Vec<SessionState>> {
        self.sessions_where(|s| !s.active && !s.flush_markers.contains_key(marker))
    }

    /// Counts for dashboards and metrics, without copying any set.
    pub fn summary(&self) -> Summary {
        let core = self.read_core();
        let meta = &core.life.meta;
        Summary {
            epoch: meta.epoch,
            last_lsn: meta.last_lsn,
            sessions_total: meta.sessions_total,
            active: meta.active.len() as u64,
            awaiting_finalization: meta.awaiting_finalization.len() as u64,
            ends_by_reason: meta.ends_by_reason.clone(),
        }
    }

    /// The epochs the journal has open: with several writer processes,
    /// each live one (and any dead one no survivor has closed yet).
    pub fn writers(&self) -> Vec<crate::rules::WriterEpoch> {
        let core = self.read_core();
        core.life.writers.listing(core.life.meta.active.len())
    }

    /// The folded journal-wide state.
    pub fn meta(&self) -> Meta {
        self.read_core().life.meta.clone()
    }
}
