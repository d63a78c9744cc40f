//! Saving a checkpoint: the ended sessions as a new run (`runs.rs`), the
//! active ones under `a/`, their index keys, the run manifest and the meta
//! record. Merging the runs is the caller's next step (`compact`, or
//! `merge_step` between checkpoints).
//!
//! The new run's blocks are written first; nothing names them until the
//! last batch, which holds the manifest and the meta record. The index
//! changes of up to [`SAVE_CHUNK_SESSIONS`] sessions go in that last sled
//! batch. A larger one (an expiry or a drain of many sessions) is written in
//! batches of that many: sled holds every page a batch replaces until the
//! batch ends, so one batch of 400 000 sessions took 6 GB and 50 s, while
//! batches of a thousand stay near 100 MB. Such a checkpoint first records
//! that it is in progress and removes that record in its last batch, with
//! the meta record: sled recovers a prefix of its writes, so a store that
//! still says "in progress" was cut short. Every batch but the last also
//! keeps what it changed (`undo.rs`), and `load_meta` rolls such a store
//! back to the checkpoint before it; one an older bookend cut short is
//! rebuilt from the journal.

use bookend_journal::codec;

use super::runs::RUNS_KEY;
use super::undo::IN_PROGRESS_WITH_UNDO;
use super::{
    ACTIVE_PREFIX, AWAITING_PREFIX, CHECKPOINT_IN_PROGRESS_KEY, Indexed, META_KEY, ProjectionStore,
    StoredMeta, prefixed, reclaim_sled_garbage,
};
use crate::error::Result;
use crate::session::SessionState;

/// The most sessions one sled batch of a checkpoint holds.
pub const SAVE_CHUNK_SESSIONS: usize = 1000;

/// Index keys that change for one session: (id, now active, now awaiting).
type IndexChange<'a> = (&'a str, bool, bool);

impl ProjectionStore {
    /// Writes `sessions` (active ones under `a/`, the others as a new run),
    /// the awaiting index keys and `meta`: the run's blocks, then one atomic
    /// batch, or, for more than [`SAVE_CHUNK_SESSIONS`], batches bracketed
    /// by the in-progress record (see the module's comment).
    pub fn save<'a>(
        &self,
        meta: &StoredMeta,
        sessions: impl Iterator<Item = &'a SessionState>,
    ) -> Result<usize> {
        let sessions: Vec<&SessionState> = sessions.collect();
        self.sync_opened()?;
        let _writing = self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let runs = self.stage_run(&sessions)?;
        let chunked = sessions.len() > SAVE_CHUNK_SESSIONS;
        // With the LSN of the last whole checkpoint, if chunked.
        let whole = if chunked { Some(self.start_chunked(meta)?) } else { None };
        let mut undo = Vec::new();
        let mut indexed = self.indexed();
        // At least one batch: the meta record is saved even with no session.
        let chunks: Vec<&[&SessionState]> =
            if sessions.is_empty() { vec![&[]] } else { sessions.chunks(SAVE_CHUNK_SESSIONS).collect() };
        for (i, chunk) in chunks.iter().enumerate() {
            let mut batch = sled::Batch::default();
            let last = i + 1 == chunks.len();
            if let Some(whole) = whole.filter(|_| !last) {
                undo.extend(self.stage_undo(&mut batch, chunk, indexed.as_ref(), (whole, meta.last_lsn))?);
            }
            let changed = stage_sessions(&mut batch, chunk, indexed.as_ref())?;
            if last {
                batch.insert(META_KEY, codec::encode(meta)?);
                if let Some(runs) = &runs {
                    batch.insert(RUNS_KEY, codec::encode(runs)?);
                }
                if chunked {
                    batch.remove(CHECKPOINT_IN_PROGRESS_KEY);
                }
            }
            self.guarded("saving a checkpoint", || self.db.apply_batch(batch))?;
            #[cfg(test)]
            if !last && tests::CUT_AFTER_BATCHES.get() == Some(i + 1) {
                return Err(super::store_error(&self.path, "saving a checkpoint", "cut short by a test"));
            }
            reclaim_sled_garbage(chunk.len());
            if let Some(ix) = indexed.as_mut() {
                ix.update(changed);
            }
        }
        drop(indexed);
        if let Some(runs) = runs {
            *self.runs() = runs;
        }
        // The checkpoint is whole: what would have rolled it back goes.
        self.drop_undo(undo)?;
        self.known.insert(sessions.iter().map(|s| s.id()));
        Ok(sessions.len())
    }
}

impl ProjectionStore {
    /// Records that a checkpoint of several batches is in progress, and
    /// that it keeps undo records (`undo.rs`); returns the LSN of the last
    /// whole checkpoint, which a roll-back returns to.
    fn start_chunked(&self, meta: &StoredMeta) -> Result<u64> {
        let whole = self.checkpoint_lsn()?;
        let mut record = meta.last_lsn.to_le_bytes().to_vec();
        record.push(IN_PROGRESS_WITH_UNDO);
        let mut start = sled::Batch::default();
        start.insert(CHECKPOINT_IN_PROGRESS_KEY, record);
        self.guarded("starting a checkpoint", || self.db.apply_batch(start))?;
        Ok(whole)
    }
}

/// Adds the records and index keys of `sessions` to `batch`; returns the
/// index changes to mirror in memory once the batch is applied.
fn stage_sessions<'a>(
    batch: &mut sled::Batch,
    sessions: &[&'a SessionState],
    indexed: Option<&Indexed>,
) -> Result<Vec<IndexChange<'a>>> {
    let mut changed = Vec::new();
    for s in sessions {
        let id = s.id();
        let (active, awaiting) = (s.active, s.awaits_finalization());
        let was = indexed.map(|ix| (ix.active.contains(id), ix.awaiting.contains(id)));
        if active {
            // A reopened session's entries in older runs stay: this shadows them.
            batch.insert(prefixed(ACTIVE_PREFIX, id), codec::encode(*s)?);
        } else if was.is_none_or(|w| w.0) {
            batch.remove(prefixed(ACTIVE_PREFIX, id));
        }
        if was.is_none_or(|w| w.1 != awaiting) {
            let key = prefixed(AWAITING_PREFIX, id);
            if awaiting { batch.insert(key, &[] as &[u8]) } else { batch.remove(key) }
        }
        if was.is_some_and(|w| w != (active, awaiting)) {
            changed.push((id, active, awaiting));
        }
    }
    Ok(changed)
}

impl Indexed {
    /// Mirrors index keys a checkpoint batch changed.
    fn update(&mut self, changed: Vec<IndexChange<'_>>) {
        for (id, active, awaiting) in changed {
            for (set, on) in [(&mut self.active, active), (&mut self.awaiting, awaiting)] {
                if !on {
                    set.remove(id);
                } else if !set.contains(id) {
                    set.insert(id.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    thread_local! {
        /// A chunked save on this thread stops with an error after this
        /// many batches, as a kill between them would leave the store.
        pub static CUT_AFTER_BATCHES: Cell<Option<usize>> = const { Cell::new(None) };
    }
}
