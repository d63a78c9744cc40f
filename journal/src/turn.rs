//! A turn held across several appends (several writer processes only).
//!
//! A single append takes and lets go of the append lock by itself. A caller
//! that must decide against the whole journal before it appends (the
//! session layer: one active session per key across every process) holds
//! the lock across its reads and its appends with [`Journal::hold_turn`]:
//! while it holds the turn no other process appends, so what it read is
//! still the journal's end when its own frames go in behind it.

use crate::error::{Error, Result};
use crate::journal::Journal;

/// The append lock, held until dropped. Every frame this process appends
/// meanwhile is written before the lock is let go.
#[must_use = "the turn ends when this is dropped"]
pub struct HeldTurn<'a> {
    journal: &'a Journal,
    end_lsn: u64,
}

impl HeldTurn<'_> {
    /// The last LSN in the journal when the turn began, every other
    /// process's frames included: nothing lies past it but what this
    /// process appends in the turn.
    pub fn end_lsn(&self) -> u64 {
        self.end_lsn
    }
}

impl Drop for HeldTurn<'_> {
    fn drop(&mut self) {
        self.journal.pipeline.lock().release_turn();
    }
}

impl Journal {
    /// Takes the append lock and what the other processes appended, and
    /// holds it until the returned guard is dropped; `None` for a journal
    /// opened without `shared_writers`, whose appends need no turn. Do not
    /// close the journal while holding it.
    pub fn hold_turn(&self) -> Result<Option<HeldTurn<'_>>> {
        if !self.options.shared_writers {
            return Ok(None);
        }
        let mut writer = self.pipeline.lock();
        if let Some(cause) = self.poisoned() {
            return Err(Error::Poisoned { cause });
        }
        if writer.closed() {
            return Err(Error::Closed);
        }
        writer.begin_turn()?;
        writer.hold_turn();
        let end_lsn = writer.next_lsn() - 1;
        Ok(Some(HeldTurn { journal: self, end_lsn }))
    }
}
