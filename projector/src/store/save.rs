//! Saving a checkpoint: changed sessions, their index keys and the meta
//! record in one sled batch.

use bookend_journal::codec;

use super::{
    ACTIVE_PREFIX, AWAITING_PREFIX, META_KEY, ProjectionStore, StoredMeta, prefixed, reclaim_sled_garbage,
    session_key,
};
use crate::error::Result;
use crate::session::SessionState;

impl ProjectionStore {
    /// Writes `sessions` (active ones under `a/`, the others under `s/`),
    /// the awaiting index keys and `meta` in one atomic batch.
    pub fn save<'a>(
        &self,
        meta: &StoredMeta,
        sessions: impl Iterator<Item = &'a SessionState>,
    ) -> Result<usize> {
        let mut indexed = self.indexed();
        let mut batch = sled::Batch::default();
        // (id, now active, now awaiting) for the index keys that change.
        let mut changed: Vec<(&str, bool, bool)> = Vec::new();
        let mut saved_ids: Vec<&str> = Vec::new();
        for s in sessions {
            let id = s.id();
            let record = codec::encode(s)?;
            saved_ids.push(id);
            let (active, awaiting) = (s.active, s.awaits_finalization());
            let was = indexed.as_ref().map(|ix| (ix.active.contains(id), ix.awaiting.contains(id)));
            if active {
                batch.insert(prefixed(ACTIVE_PREFIX, id), record);
                // Only a session that has ended before (a reopen) can have
                // a record under `s/`.
                if s.spans > 1 {
                    batch.remove(session_key(id));
                }
            } else {
                batch.insert(session_key(id), record);
                if was.is_none_or(|w| w.0) {
                    batch.remove(prefixed(ACTIVE_PREFIX, id));
                }
            }
            if was.is_none_or(|w| w.1 != awaiting) {
                let key = prefixed(AWAITING_PREFIX, id);
                if awaiting { batch.insert(key, &[] as &[u8]) } else { batch.remove(key) }
            }
            if was.is_some_and(|w| w != (active, awaiting)) {
                changed.push((s.id(), active, awaiting));
            }
        }
        batch.insert(META_KEY, codec::encode(meta)?);
        self.guarded("saving a checkpoint", || self.db.apply_batch(batch))?;
        let written = saved_ids.len();
        reclaim_sled_garbage(written);
        self.known.insert(saved_ids.into_iter());
        if let Some(ix) = indexed.as_mut() {
            for (id, active, awaiting) in changed {
                for (set, on) in [(&mut ix.active, active), (&mut ix.awaiting, awaiting)] {
                    if !on {
                        set.remove(id);
                    } else if !set.contains(id) {
                        set.insert(id.to_string());
                    }
                }
            }
        }
        Ok(written)
    }
}
