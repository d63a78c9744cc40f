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

/// The older format this bookend reads as it is: format 6 only added
/// compressed blocks, tagged so that format 5's read as they are.
const FORMAT_UPGRADED_IN_PLACE: u32 = 5;

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

    /// The last LSN the state reflects.
    pub fn last_lsn(&self) -> u64 {
        self.last_lsn
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
        let Ok(mut stored) = codec::decode::<StoredMeta>(&bytes) else { return Ok(None) };
        if stored.format == FORMAT_UPGRADED_IN_PLACE {
            self.upgrade_in_place(&mut stored)?;
        }
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

    /// Marks a format-5 store as format 6 before anything writes a
    /// compressed block to it: its blocks read as they are
    /// (`compressed.rs`), and a bookend that knows only format 5 then
    /// rebuilds the store instead of finding blocks it cannot read.
    fn upgrade_in_place(&self, stored: &mut StoredMeta) -> Result<()> {
        stored.format = STORE_FORMAT;
        let bytes = codec::encode(&*stored)?;
        self.guarded("upgrading the store's format", || self.db.insert(META_KEY, bytes))?;
        tracing::info!(store = %self.path.display(), "the projection store was upgraded in place to format {STORE_FORMAT} (ended sessions are compressed from now on)");
        Ok(())
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

    /// The LSN of the stored checkpoint (0 if there is none of a format
    /// this bookend reads).
    pub fn checkpoint_lsn(&self) -> Result<u64> {
        let Some(bytes) = self.guarded("reading the meta record", || self.db.get(META_KEY))? else {
            return Ok(0);
        };
        Ok(codec::decode::<StoredMeta>(&bytes)
            .ok()
            .filter(|m| [STORE_FORMAT, FORMAT_UPGRADED_IN_PLACE].contains(&m.format))
            .map_or(0, |m| m.last_lsn))
    }
}

/// The LSN an in-progress record names (its first 8 bytes).
fn in_progress_lsn(record: &[u8]) -> Option<u64> {
    record.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionState;
    use crate::store::compressed::unseal;
    use crate::store::run_keys::RUN_PREFIX;
    use crate::store::tests::ended;

    /// What format 5 wrote: every block as it is, and format 5 in `meta`.
    fn as_format_5(store: &ProjectionStore) -> usize {
        let mut rewritten = 0;
        for kv in store.db.scan_prefix(RUN_PREFIX) {
            let (key, stored) = kv.unwrap();
            if stored[0] != 0 {
                store.db.insert(key, unseal(&stored).unwrap().to_vec()).unwrap();
                rewritten += 1;
            }
        }
        let mut meta: StoredMeta = codec::decode(&store.db.get(META_KEY).unwrap().unwrap()).unwrap();
        meta.format = 5;
        store.db.insert(META_KEY, codec::encode(&meta).unwrap()).unwrap();
        rewritten
    }

    /// A store of format 5 (blocks not compressed) is read as it is, not
    /// rebuilt, and is marked format 6 at once; what is written from then
    /// on is compressed, and both kinds of block read back.
    #[test]
    fn a_format_5_store_is_read_as_it_is_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projection");
        let old: Vec<SessionState> = (0..3000).map(ended).collect();
        let meta = StoredMeta::of(&Meta { last_lsn: 9, ..Meta::default() });
        {
            let store = ProjectionStore::open(&path, 1 << 20).unwrap();
            store.clear().unwrap();
            store.save(&meta, old.iter()).unwrap();
            assert!(as_format_5(&store) > 10, "blocks were compressed");
            store.flush().unwrap();
        }
        let store = ProjectionStore::open(&path, 1 << 20).unwrap();
        assert_eq!(store.checkpoint_lsn().unwrap(), 9);
        assert_eq!(store.load_meta().unwrap().map(|m| m.last_lsn), Some(9));
        let upgraded: StoredMeta = codec::decode(&store.db.get(META_KEY).unwrap().unwrap()).unwrap();
        assert_eq!(upgraded.format, STORE_FORMAT);
        let new: Vec<SessionState> = (3000..6000).map(ended).collect();
        store.save(&meta, new.iter()).unwrap();
        let tags: std::collections::BTreeSet<u8> =
            store.db.scan_prefix(RUN_PREFIX).values().map(|v| v.unwrap()[0]).collect();
        assert_eq!(tags, [0, 1].into(), "old blocks as they are, new ones compressed");
        for s in old.iter().chain(&new).step_by(7) {
            assert_eq!(store.session(s.id()).unwrap().as_ref(), Some(s));
        }
    }
}
