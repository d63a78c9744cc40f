//! The lifecycle rules: which command is accepted and what it appends
//! (`decide`), and how events fold into state (`apply`). One function per
//! command and per event, each short. No I/O of their own: sessions come
//! from the session table, which alone knows whether one is in memory, in
//! the projection store, or packed.
//!
//! `decide` enforces the invariants of design.md §3 when a command is
//! accepted; `apply` folds an event and reports (without refusing) any
//! invariant a journal written by someone else breaks, which is what
//! `verify` builds on.

mod apply;
mod decide;
mod writers;

use crate::command::Ack;
use crate::error::{LifecycleError, Result};
use crate::event::{EndReason, EventBody};
use crate::session::{Meta, SessionState};
use crate::table::SessionTable;
pub use writers::WriterEpoch;
pub(crate) use writers::Writers;

/// Default number of finalize attempts before a session stops being pending.
pub const FINALIZE_ATTEMPTS_MAX_DEFAULT: u32 = 3;
/// Default window within which repeated touches of a session are coalesced.
pub const ACTIVITY_COALESCE_MS_DEFAULT: u64 = 1000;

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
pub(crate) enum Decision {
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

/// The folded state of a journal: the journal-wide meta state and the
/// session table.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    pub(crate) meta: Meta,
    pub(crate) table: SessionTable,
    /// Open epochs and the owners of active sessions.
    pub(crate) writers: Writers,
}

impl Lifecycle {
    /// An empty state whose table keeps ended sessions in `table`'s way.
    pub fn with_table(table: SessionTable) -> Lifecycle {
        Lifecycle { meta: Meta::default(), table, writers: Writers::default() }
    }

    /// Active sessions, in id order. Active sessions are always in memory.
    pub fn active_sessions(&self) -> impl Iterator<Item = &SessionState> {
        self.meta.active.iter().filter_map(|id| self.table.in_memory(id))
    }

    /// Brings every session `events` will change into memory, so that
    /// folding them after they are appended never needs the store.
    pub fn bring_into_memory(&mut self, events: &[EventBody]) -> Result<()> {
        for body in events {
            if let (Some(id), false) = (body.session_id(), matches!(body, EventBody::SessionStart(_))) {
                self.table.get_mut(id)?;
            }
        }
        Ok(())
    }

    /// Saves every session changed since the last checkpoint and the meta
    /// state (to the store, or packed in memory without one); see
    /// `SessionTable::save`.
    pub fn save_checkpoint(&mut self) -> Result<usize> {
        self.table.save(&self.meta)
    }
}

fn check_id(field: &'static str, value: &str) -> Result<(), LifecycleError> {
    crate::limits::check_text(field, value, crate::limits::SESSION_ID_LEN_MAX_BYTES)
}

fn end_of(s: &SessionState, reason: EndReason, next_id: Option<String>) -> EventBody {
    EventBody::SessionEnd { session_id: s.id().to_string(), key: s.start.key.clone(), reason, next_id }
}
