//! Rolling back a checkpoint cut short.
//!
//! A checkpoint of more than [`super::save::SAVE_CHUNK_SESSIONS`] sessions
//! is written in several sled batches (see `save.rs`). A kill between them
//! left some `a/` and `f/` keys at the new checkpoint and the meta record at
//! the old one, and the whole store was thrown away and rebuilt from the
//! journal: 31–35 s at 10M events. Now each of those batches also holds,
//! for every session it changes that existed at the last whole checkpoint,
//! what its `a/` record and `f/` key were (`u/<lsn><id>`). The next open
//! puts them back, removes the `a/` records of sessions started after that
//! checkpoint, and the store is the last whole checkpoint again: the
//! journal's tail is replayed over it as after any other stop.
//!
//! Sessions started after the last whole checkpoint need no undo record
//! unless their `f/` key changes: their `start_lsn` says they are new, so a
//! checkpoint of new sessions (a burst of starts) writes no more than before.
//! Undo records are removed once the checkpoint is whole; any left by a
//! kill just after it are removed at the next open.

use bookend_journal::codec;
use serde::{Deserialize, Serialize};

use super::{ACTIVE_PREFIX, AWAITING_PREFIX, CHECKPOINT_IN_PROGRESS_KEY, Indexed, ProjectionStore, prefixed};
use crate::error::Result;
use crate::session::SessionState;

/// `u/<checkpoint lsn, 8 bytes big-endian><id>`: what a session's index
/// keys were before the checkpoint to that LSN changed them.
const UNDO_PREFIX: &[u8] = b"u/";
/// The in-progress record of a checkpoint that keeps undo records: its
/// LSN, then this byte. An older bookend wrote the LSN alone; such a store
/// cannot be rolled back and is rebuilt.
pub(super) const IN_PROGRESS_WITH_UNDO: u8 = 1;
/// Keys one batch of the roll-back or the clean-up changes, at most.
const UNDO_BATCH_KEYS: usize = 2000;

// Format: { active option<bytes> | awaiting bool } (codec-encoded): the
// session's `a/` record (absent: `None`) and whether it had an `f/` key.
#[derive(Serialize, Deserialize)]
struct Undo {
    active: Option<Vec<u8>>,
    awaiting: bool,
}

fn undo_key(lsn: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(UNDO_PREFIX.len() + 8 + id.len());
    key.extend_from_slice(UNDO_PREFIX);
    key.extend_from_slice(&lsn.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

impl ProjectionStore {
    /// Adds to `batch`, which changes the index keys of `sessions` for the
    /// checkpoint to `lsn`, what they were at the last whole checkpoint
    /// (`whole_lsn`); `indexed` mirrors the index keys, if known. Returns
    /// the undo keys written.
    pub(super) fn stage_undo(
        &self,
        batch: &mut sled::Batch,
        sessions: &[&SessionState],
        indexed: Option<&Indexed>,
        (whole_lsn, lsn): (u64, u64),
    ) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        for s in sessions {
            let id = s.id();
            let awaiting = match indexed {
                Some(ix) => ix.awaiting.contains(id),
                None => self.guarded("reading an index key", || {
                    self.db.contains_key(prefixed(AWAITING_PREFIX, id))
                })?,
            };
            if s.start_lsn > whole_lsn && awaiting == s.awaits_finalization() {
                // New since the last whole checkpoint: a roll-back removes
                // its `a/` record by its `start_lsn`.
                continue;
            }
            let maybe_active = indexed.is_none_or(|ix| ix.active.contains(id));
            let active = if maybe_active {
                let key = prefixed(ACTIVE_PREFIX, id);
                self.guarded("reading an active session", || self.db.get(&key))?.map(|v| v.to_vec())
            } else {
                None
            };
            let key = undo_key(lsn, id);
            batch.insert(key.clone(), codec::encode(&Undo { active, awaiting })?);
            keys.push(key);
        }
        Ok(keys)
    }

    /// Removes undo records once their checkpoint is whole (a few batches).
    pub(super) fn drop_undo(&self, keys: Vec<Vec<u8>>) -> Result<()> {
        let mut staged = Staged::new(self, "removing undo records");
        for key in keys {
            staged.remove(key)?;
        }
        staged.apply()
    }

    /// Puts back what the checkpoint to `lsn`, cut short, changed, so the
    /// store is its checkpoint at `whole_lsn` again, then records that no
    /// checkpoint is in progress. Repeating it (a kill meanwhile) does the
    /// same again.
    pub(super) fn roll_back_cut_checkpoint(&self, whole_lsn: u64, lsn: u64) -> Result<()> {
        self.sync_opened()?;
        let mut prefix = UNDO_PREFIX.to_vec();
        prefix.extend_from_slice(&lsn.to_be_bytes());
        let mut staged = Staged::new(self, "rolling back a checkpoint");
        for entry in self.entries(&prefix) {
            let (key, value) = entry?;
            let id = std::str::from_utf8(&key[prefix.len()..]).map_err(|e| self.store_err(e))?;
            let undo: Undo = codec::decode(&value).map_err(|e| self.store_err(e))?;
            match undo.active {
                Some(record) => staged.insert(prefixed(ACTIVE_PREFIX, id), record)?,
                None => staged.remove(prefixed(ACTIVE_PREFIX, id))?,
            }
            let awaiting = prefixed(AWAITING_PREFIX, id);
            if undo.awaiting { staged.insert(awaiting, Vec::new())? } else { staged.remove(awaiting)? }
        }
        // Sessions started after the last whole checkpoint kept no undo
        // record; their `start_lsn` says they were not there.
        for value in self.values(ACTIVE_PREFIX) {
            let state: SessionState = codec::decode(&value?).map_err(|e| self.store_err(e))?;
            if state.start_lsn > whole_lsn {
                staged.remove(prefixed(ACTIVE_PREFIX, state.id()))?;
            }
        }
        staged.apply()?;
        self.guarded("ending a roll-back", || self.db.remove(CHECKPOINT_IN_PROGRESS_KEY))?;
        self.remove_stale_undo()
    }

    /// Removes undo records no checkpoint in progress needs.
    pub(super) fn remove_stale_undo(&self) -> Result<()> {
        let keys: Vec<Vec<u8>> =
            self.keys(UNDO_PREFIX).map(|k| k.map(|k| k.to_vec())).collect::<Result<_>>()?;
        if keys.is_empty() {
            return Ok(());
        }
        self.sync_opened()?;
        self.drop_undo(keys)
    }
}

/// Changes to the store, applied in sled batches of at most
/// `UNDO_BATCH_KEYS` keys as they fill.
struct Staged<'a> {
    store: &'a ProjectionStore,
    batch: sled::Batch,
    keys: usize,
    what: &'static str,
}

impl<'a> Staged<'a> {
    fn new(store: &'a ProjectionStore, what: &'static str) -> Staged<'a> {
        Staged { store, batch: sled::Batch::default(), keys: 0, what }
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.batch.insert(key, value);
        self.counted()
    }

    fn remove(&mut self, key: Vec<u8>) -> Result<()> {
        self.batch.remove(key);
        self.counted()
    }

    fn counted(&mut self) -> Result<()> {
        self.keys += 1;
        if self.keys >= UNDO_BATCH_KEYS { self.apply() } else { Ok(()) }
    }

    /// Applies what is staged.
    fn apply(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.keys = 0;
        self.store.guarded(self.what, || self.store.db.apply_batch(batch))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::save::tests::CUT_AFTER_BATCHES;
    use super::super::{ProjectionStore, StoredMeta};
    use crate::event::EndReason;
    use crate::session::{Meta, SessionState};

    fn state(id: &str, start_lsn: u64, end: Option<EndReason>) -> SessionState {
        let mut s = SessionState::for_tests(id, end);
        s.start_lsn = start_lsn;
        s
    }

    fn meta(lsn: u64, sessions: &BTreeMap<String, SessionState>) -> StoredMeta {
        let active = sessions.values().filter(|s| s.active).map(|s| s.id().to_string()).collect();
        let awaiting =
            sessions.values().filter(|s| s.awaits_finalization()).map(|s| s.id().to_string()).collect();
        let count = sessions.len() as u64;
        StoredMeta::of(&Meta {
            last_lsn: lsn,
            active,
            awaiting_finalization: awaiting,
            sessions_total: count,
            ..Meta::default()
        })
    }

    /// Every session as the store reads it back.
    fn read_back(store: &ProjectionStore) -> BTreeMap<String, SessionState> {
        store.sessions().map(|s| s.unwrap()).map(|s| (s.id().to_string(), s)).collect()
    }

    /// A checkpoint of 2 400 sessions (three batches) that updates, ends,
    /// reopens, expires and starts sessions, cut after its first batch (the
    /// changed sessions) or its second (new ones too): the next open reads
    /// back exactly the checkpoint before it, and then takes the same
    /// checkpoint whole.
    #[test]
    fn a_checkpoint_cut_short_is_rolled_back_to_the_one_before() {
        for cut in [1, 2] {
            cut_after(cut);
        }
    }

    fn cut_after(batches: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projection");
        let mut first = BTreeMap::new();
        for i in 0..1600 {
            let end = (i % 2 == 0).then_some(EndReason::Completed);
            first.insert(format!("s{i:05}"), state(&format!("s{i:05}"), 10, end));
        }
        let mut second: BTreeMap<String, SessionState> = BTreeMap::new();
        for (i, (id, s)) in first.iter().enumerate().take(1600) {
            let mut s = s.clone();
            match (i % 4, s.active) {
                (1, true) => s.last_activity_at = 99,
                (3, true) => {
                    (s.active, s.end_reason, s.end_lsn) = (false, Some(EndReason::IdleExpiry), Some(150))
                }
                (0, false) => (s.active, s.spans) = (true, 2),
                _ => continue,
            }
            second.insert(id.clone(), s);
        }
        for i in 0..1600 {
            let end = (i % 3 == 0).then_some(EndReason::DailyReset);
            second.insert(format!("t{i:05}"), state(&format!("t{i:05}"), 120, end));
        }
        assert!(second.len() > 2000, "{} sessions: three batches", second.len());
        {
            let store = ProjectionStore::open(&path, 1 << 20).unwrap();
            store.save(&meta(100, &first), first.values()).unwrap();
            let mut after = first.clone();
            after.extend(second.clone());
            CUT_AFTER_BATCHES.set(Some(batches));
            assert!(store.save(&meta(200, &after), second.values()).is_err());
            CUT_AFTER_BATCHES.set(None);
            store.flush().unwrap();
        }
        let store = ProjectionStore::open(&path, 1 << 20).unwrap();
        let loaded = store.load_meta().unwrap().expect("the checkpoint before the cut");
        assert_eq!(loaded.last_lsn, 100);
        assert_eq!(read_back(&store), first, "the store is not the checkpoint before the cut");
        assert_eq!(store.keys(super::UNDO_PREFIX).count(), 0, "undo records left behind");

        let mut after = first.clone();
        after.extend(second.clone());
        store.save(&meta(200, &after), second.values()).unwrap();
        assert_eq!(read_back(&store), after);
        assert_eq!(store.keys(super::UNDO_PREFIX).count(), 0, "undo records left behind");
        drop(store);
        let store = ProjectionStore::open(&path, 1 << 20).unwrap();
        assert_eq!(store.load_meta().unwrap().map(|m| m.last_lsn), Some(200));
        assert_eq!(read_back(&store), after);
    }
}
