//! Which epochs are open and which sessions each owns, as the fold sees
//! them: the state several writer processes on one journal need (see
//! docs/ARCHITECTURE.md, "Several writer processes"). A single writer's
//! journal has at most one open epoch, which owns every active session it
//! started or reopened.
//!
//! A session belongs to the epoch that started or last reopened it; the
//! epoch writing is the one named by the last `journal:open`,
//! `journal:join` or `journal:turn`. A session whose owner is closed, or
//! not known (its start is behind a checkpoint), is an orphan: the next
//! close that ends sessions ends it too.

use std::collections::{BTreeMap, HashMap};

use crate::event::{CloseReason, EndReason, EventBody, SessionsOnClose};

/// An open epoch: the process writing it (pid 0 and an empty host when
/// its `journal:open` is behind a checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterEpoch {
    pub epoch: u64,
    pub pid: u32,
    pub host: String,
    /// Its sessions are kept, not ended, if it dies.
    pub keep_on_death: bool,
    /// Active sessions it owns.
    pub sessions_owned: u64,
}

/// The open epochs and the owner of every active session.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writers {
    /// The epoch whose events are being folded.
    current: u64,
    open: BTreeMap<u64, WriterEpoch>,
    owner: HashMap<String, u64>,
    /// A `journal:join` was folded: owners are tracked from then on (a
    /// single writer's journal, where every session is the one open
    /// epoch's or an orphan, costs no map).
    shared: bool,
    /// The epoch of the process holding this state, once it has joined
    /// (several writers): its close is of this epoch, whoever wrote last.
    own: Option<u64>,
}

impl Writers {
    /// After a checkpoint load: the one open epoch (if any) is the
    /// checkpoint's; the owners of its active sessions are not known.
    pub fn assume_single(&mut self, epoch: u64, open: bool) {
        *self = Writers { current: epoch, ..Writers::default() };
        if open {
            self.open.insert(epoch, WriterEpoch::unknown(epoch));
        }
    }

    /// `journal:open`: a single writer, alone; earlier epochs are over.
    pub fn open_alone(&mut self, epoch: u64, pid: u32, host: &str) {
        self.open.clear();
        self.join(epoch, pid, host, false);
    }

    /// One more writer beside those open.
    fn join(&mut self, epoch: u64, pid: u32, host: &str, keep_on_death: bool) {
        let writer = WriterEpoch { epoch, pid, host: host.to_string(), keep_on_death, sessions_owned: 0 };
        self.open.insert(epoch, writer);
        self.current = epoch;
    }

    /// This process writes as `epoch` (several writers).
    pub fn set_own(&mut self, epoch: u64) {
        self.own = Some(epoch);
    }

    pub fn own(&self) -> Option<u64> {
        self.own
    }

    /// The epoch whose events are being folded (the last to take a turn).
    pub fn current(&self) -> u64 {
        self.current
    }

    /// Whether a close of `epoch` for `reason` also ends orphans (sessions
    /// whose owner is closed or unknown): only a process's own close, and
    /// only when no other writer is open, so that one process's close
    /// never ends what a live neighbour may still resume.
    pub fn close_takes_orphans(&self, epoch: u64, died: bool) -> bool {
        !died && self.open.keys().all(|e| *e == epoch)
    }

    /// Whether no epoch ever owned this active session (it was started by
    /// a single writer, or behind a checkpoint).
    pub fn unowned(&self, session_id: &str) -> bool {
        !self.owner.contains_key(session_id)
    }

    /// `journal:join` also switches owner tracking on.
    pub fn join_shared(&mut self, epoch: u64, pid: u32, host: &str, keep_on_death: bool) {
        self.shared = true;
        self.join(epoch, pid, host, keep_on_death);
    }

    /// `journal:turn`; false if `epoch` is not open.
    pub fn turn(&mut self, epoch: u64) -> bool {
        self.current = epoch;
        self.open.contains_key(&epoch)
    }

    /// `journal:close` of `epoch`; false if it was not open.
    pub fn close(&mut self, epoch: u64) -> bool {
        self.open.remove(&epoch).is_some()
    }

    pub fn is_open(&self, epoch: u64) -> bool {
        self.open.contains_key(&epoch)
    }

    /// A start or reopen: the session now belongs to the epoch writing.
    pub fn take_ownership(&mut self, session_id: &str) {
        if !self.shared {
            return;
        }
        self.disown(session_id);
        self.owner.insert(session_id.to_string(), self.current);
        if let Some(w) = self.open.get_mut(&self.current) {
            w.sessions_owned += 1;
        }
    }

    /// An end: the session belongs to no one.
    pub fn disown(&mut self, session_id: &str) {
        if let Some(epoch) = self.owner.remove(session_id)
            && let Some(w) = self.open.get_mut(&epoch)
        {
            w.sessions_owned = w.sessions_owned.saturating_sub(1);
        }
    }

    /// Whether a close of `epoch` that ends sessions must end this active
    /// one: it is `epoch`'s, or (`with_orphans`, a close by the process
    /// itself rather than by a survivor of its death) an orphan.
    pub fn closes_with(&self, epoch: u64, session_id: &str, with_orphans: bool) -> bool {
        match self.owner.get(session_id) {
            Some(owner) => *owner == epoch || (with_orphans && !self.open.contains_key(owner)),
            None => with_orphans,
        }
    }

    /// The open epochs, oldest first.
    pub fn open_epochs(&self) -> impl Iterator<Item = &WriterEpoch> {
        self.open.values()
    }

    /// The open epochs as a listing shows them: without owner tracking (a
    /// single writer), the one open epoch owns all `active` sessions.
    pub fn listing(&self, active: usize) -> Vec<WriterEpoch> {
        let mut epochs: Vec<WriterEpoch> = self.open.values().cloned().collect();
        if !self.shared
            && let [only] = epochs.as_mut_slice()
        {
            only.sessions_owned = active as u64;
        }
        epochs
    }
}

impl WriterEpoch {
    /// `{"epoch", "pid", "host", "sessions_owned"}`, as `bookend stats`,
    /// `GET /v1/stats` and `GET /v1/health` list the live writers.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "epoch": self.epoch, "pid": self.pid, "host": self.host, "sessions_owned": self.sessions_owned,
        })
    }

    fn unknown(epoch: u64) -> WriterEpoch {
        WriterEpoch { epoch, pid: 0, host: String::new(), keep_on_death: false, sessions_owned: 0 }
    }
}

/// The batches several writer processes append about each other.
impl super::Lifecycle {
    /// What a survivor appends for a writer that died with `epoch` open:
    /// the end of every session it owned (`crash_recovered`), unless it
    /// asked for them to be kept (`on_unclean` keep), and the close of its
    /// epoch (`writer_died`).
    pub fn dead_writer_batch(&self, epoch: u64) -> Vec<EventBody> {
        let keep = self.writers.open.get(&epoch).is_some_and(|w| w.keep_on_death);
        let mut events: Vec<EventBody> = if keep {
            Vec::new()
        } else {
            self.active_sessions()
                .filter(|s| self.writers.closes_with(epoch, s.id(), false))
                .map(|s| super::end_of(s, EndReason::CrashRecovered, None))
                .collect()
        };
        let sessions = if keep { SessionsOnClose::Kept } else { SessionsOnClose::Ended };
        events.push(EventBody::JournalClose { epoch, reason: CloseReason::WriterDied, sessions });
        events
    }

    /// The ends of active sessions no epoch ever owned (a single writer's,
    /// left by its crash), `crash_recovered`: what a joining process does
    /// when it finds no other writer alive, as a single writer's unclean
    /// open does.
    pub fn unowned_ends(&self) -> Vec<EventBody> {
        self.active_sessions()
            .filter(|s| self.writers.unowned(s.id()))
            .map(|s| super::end_of(s, EndReason::CrashRecovered, None))
            .collect()
    }

    /// Whether `epoch` is open and not this process's own.
    pub fn is_other_open_epoch(&self, epoch: u64) -> bool {
        self.writers.own() != Some(epoch) && self.writers.is_open(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(w: &Writers) -> Vec<(u64, u64)> {
        w.open_epochs().map(|e| (e.epoch, e.sessions_owned)).collect()
    }

    #[test]
    fn sessions_follow_the_epoch_that_started_or_reopened_them() {
        let mut w = Writers::default();
        w.join_shared(1, 10, "h", false);
        w.take_ownership("a");
        w.join_shared(2, 20, "h", true);
        w.take_ownership("b");
        assert!(w.turn(1));
        w.take_ownership("b"); // reopened by epoch 1
        assert_eq!(owned(&w), [(1, 2), (2, 0)]);
        assert!(w.closes_with(1, "b", false) && !w.closes_with(2, "b", false));
        w.disown("a");
        assert_eq!(owned(&w), [(1, 1), (2, 0)]);
    }

    #[test]
    fn a_closed_owner_leaves_orphans_that_any_close_ends() {
        let mut w = Writers::default();
        w.join_shared(1, 10, "h", false);
        w.take_ownership("a");
        w.join_shared(2, 20, "h", false);
        w.take_ownership("b");
        assert!(!w.closes_with(2, "a", true), "epoch 1 is alive: its session is not epoch 2's to end");
        assert!(w.close(1));
        assert!(w.closes_with(2, "a", true), "an orphan is ended by the next close");
        assert!(!w.closes_with(2, "a", false), "but not by a survivor closing a dead epoch");
        assert!(w.closes_with(2, "unknown-owner", true));
        assert!(!w.close(1), "closing twice is reported");
        assert!(!w.turn(1), "a turn of a closed epoch is reported");
    }

    #[test]
    fn a_single_writers_open_supersedes_every_open_epoch() {
        let mut w = Writers::default();
        w.join(1, 10, "h", false);
        w.join(2, 20, "h", false);
        w.open_alone(3, 30, "h");
        assert_eq!(w.open_epochs().map(|e| e.epoch).collect::<Vec<_>>(), vec![3]);
    }
}
