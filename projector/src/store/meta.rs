//! The meta record: the folded state's counters and LSN, saved with every
//! checkpoint, and loading it back with the index keys it counts.

use std::collections::BTreeMap;

use bookend_journal::codec;
use serde::{Deserialize, Serialize};

use super::undo::IN_PROGRESS_WITH_UNDO;
use super::{
    ACTIVE_PREFIX, AWAITING_PREFIX, CHECKPOINT_IN_PROGRESS_KEY, Indexed, META_KEY, ProjectionStore,
    STORE_FORMAT, store_error,
};
use crate::error::Result;
use crate::session::Meta;

// Format: { format u32 | last_lsn u64 | epoch u64 | epoch_open bool | sessions_total u64
//           | spans_total u64 | ends_by_reason map<string, u64> | active u64
//           | awaiting u64 } (codec-encoded)
// The active and awaiting-finalization sets are not in it: they are index
// keys written with each session, so a checkpoint never copies them whole.
// Their sizes are, so that a store that lost index keys is noticed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMeta {
    format: u32,
    pub(super) last_lsn: u64,
    epoch: u64,
    epoch_open: bool,
    sessions_total: u64,
    spans_total: u64,
    ends_by_reason: BTreeMap<String, u64>,
    active: u64,
    awaiting: u64,
}

impl StoredMeta {
    /// The part of `meta` stored as the meta record.
    pub fn of(meta: &Meta) -> StoredMeta {
        StoredMeta {
            format: STORE_FORMAT,
            last_lsn: meta.last_lsn,
            epoch: meta.epoch,
            epoch_open: meta.epoch_open,
            sessions_total: meta.sessions_total,
            spans_total: meta.spans_total,
            ends_by_reason: meta.ends_by_reason.clone(),
            active: meta.active.len() as u64,
            awaiting: meta.awaiting_finalization.len() as u64,
        }
    }
}

impl ProjectionStore {
    /// The stored meta state (with the active and awaiting sets read from
    /// their index keys), or `None` if there is none of this format.
    pub fn load_meta(&self) -> Result<Option<Meta>> {
        match self.guarded("reading the meta record", || self.db.get(CHECKPOINT_IN_PROGRESS_KEY))? {
            Some(torn) => self.roll_back(&torn)?,
            None => self.remove_stale_undo()?,
        }
        let Some(bytes) = self.guarded("reading the meta record", || self.db.get(META_KEY))? else {
            return Ok(None);
        };
        let Ok(stored) = codec::decode::<StoredMeta>(&bytes) else { return Ok(None) };
        if stored.format != STORE_FORMAT {
            return Ok(None);
        }
        let active = self.index(ACTIVE_PREFIX)?;
        let awaiting_finalization = self.index(AWAITING_PREFIX)?;
        if (active.len() as u64, awaiting_finalization.len() as u64) != (stored.active, stored.awaiting) {
            let reason = format!(
                "the checkpoint recorded {} active and {} awaiting sessions, the index holds {} and {}",
                stored.active,
                stored.awaiting,
                active.len(),
                awaiting_finalization.len()
            );
            return Err(store_error(&self.path, "loading the checkpoint", &reason));
        }
        *self.indexed() = Some(Indexed {
            active: active.iter().cloned().collect(),
            awaiting: awaiting_finalization.iter().cloned().collect(),
        });
        Ok(Some(Meta {
            last_lsn: stored.last_lsn,
            epoch: stored.epoch,
            epoch_open: stored.epoch_open,
            active,
            awaiting_finalization,
            sessions_total: stored.sessions_total,
            spans_total: stored.spans_total,
            ends_by_reason: stored.ends_by_reason,
        }))
    }

    /// Rolls back the checkpoint whose in-progress record is `torn`: it was
    /// cut short. One written by an older bookend kept no undo records:
    /// then the store contradicts itself and is rebuilt.
    fn roll_back(&self, torn: &[u8]) -> Result<()> {
        let lsn = in_progress_lsn(torn).unwrap_or(0);
        if torn.get(8) != Some(&IN_PROGRESS_WITH_UNDO) {
            let reason = format!("a checkpoint to LSN {lsn} was cut short and left the store half-written");
            return Err(store_error(&self.path, "loading the checkpoint", &reason));
        }
        let whole = self.checkpoint_lsn()?;
        self.roll_back_cut_checkpoint(whole, lsn)?;
        tracing::warn!(
            store = %self.path.display(),
            lsn,
            checkpoint_lsn = whole,
            "a checkpoint was cut short (the process stopped while writing it); the store was rolled back to the checkpoint before it, and the journal's tail is replayed from there"
        );
        Ok(())
    }

    /// The LSN of a checkpoint of several batches that was being written
    /// and did not finish (the process stopped meanwhile): the next
    /// `load_meta` rolls it back.
    pub fn checkpoint_in_progress(&self) -> Result<Option<u64>> {
        let torn = self.guarded("reading the meta record", || self.db.get(CHECKPOINT_IN_PROGRESS_KEY))?;
        Ok(torn.and_then(|t| in_progress_lsn(&t)))
    }

    /// The LSN of the stored checkpoint (0 if there is none of this format).
    pub fn checkpoint_lsn(&self) -> Result<u64> {
        let Some(bytes) = self.guarded("reading the meta record", || self.db.get(META_KEY))? else {
            return Ok(0);
        };
        Ok(codec::decode::<StoredMeta>(&bytes)
            .ok()
            .filter(|m| m.format == STORE_FORMAT)
            .map_or(0, |m| m.last_lsn))
    }
}

/// The LSN an in-progress record names (its first 8 bytes).
fn in_progress_lsn(record: &[u8]) -> Option<u64> {
    record.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
}
