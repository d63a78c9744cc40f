//! The session table: active sessions and every session changed since the
//! last checkpoint in memory, the rest in the projection store (or, for a
//! fold without a store, kept encoded in memory: `packed`). The rules ask it
//! for sessions and never see where they come from.

mod packed;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::Result;
use crate::session::{Meta, SessionState};
use crate::store::ProjectionStore;
use packed::Packed;

/// A fast hash with a random per-process seed: session ids come from
/// gateways (often from users), so they must not be able to force collisions.
type IdHash = foldhash::fast::RandomState;

/// The sessions. Active sessions and every session changed since the last
/// checkpoint live in memory; the rest are read from the checkpoint store on
/// demand, so history does not have to fit in RAM. Without a store, ended
/// sessions are kept encoded in memory instead (`Packed`).
///
/// Hash maps, not ordered ones: ids often share long prefixes, and every
/// command touches these maps several times. Where order matters (active
/// sessions), it comes from `Meta::active`.
#[derive(Debug, Default)]
pub(crate) struct SessionTable {
    /// Shared so a background checkpoint can hold a snapshot without a copy.
    hot: HashMap<String, Arc<SessionState>, IdHash>,
    dirty: HashSet<String, IdHash>,
    /// Active session id by key.
    by_key: HashMap<String, String, IdHash>,
    /// Whether changes are remembered for a checkpoint; an in-memory fold
    /// (verify, read-only tools) has no store to write them to.
    untracked: bool,
    /// Ended sessions of a table without a projection store.
    packed: Packed,
    /// Where the sessions not in memory live (the writer's projection
    /// store); `None` for in-memory folds.
    store: Option<ProjectionStore>,
}

impl SessionTable {
    /// A table whose sessions leave memory for `store` at each checkpoint
    /// (or, without one, are kept encoded in memory).
    pub fn with_store(store: Option<ProjectionStore>) -> SessionTable {
        SessionTable { store, ..SessionTable::default() }
    }

    /// A table for an in-memory fold: nothing is tracked for checkpoints.
    pub fn untracked() -> SessionTable {
        SessionTable { untracked: true, ..SessionTable::default() }
    }

    /// The projection store behind the table, if there is one.
    pub fn store(&self) -> Option<&ProjectionStore> {
        self.store.as_ref()
    }

    /// Takes the store out (to replace it); the table then has none.
    pub fn take_store(&mut self) -> Option<ProjectionStore> {
        self.store.take()
    }

    /// Gives the table `store` (one taken out by `take_store` and replaced).
    pub fn put_store(&mut self, store: ProjectionStore) {
        self.store = Some(store);
    }

    /// Looks a session up in memory, then in the store (or the packed ones).
    pub fn get(&self, id: &str) -> Result<Option<Cow<'_, SessionState>>> {
        self.lookup(id, true)
    }

    /// Looks a session up in memory, then — if `stored` — in the store. A
    /// caller that knows the id is new (a start that `decide` just looked
    /// up) passes false and saves a store lookup.
    pub fn lookup(&self, id: &str, stored: bool) -> Result<Option<Cow<'_, SessionState>>> {
        if let Some(s) = self.hot.get(id) {
            return Ok(Some(Cow::Borrowed(&**s)));
        }
        match (&self.store, stored) {
            (Some(store), true) => Ok(store.session(id)?.map(Cow::Owned)),
            (Some(_), false) => Ok(None),
            (None, _) => Ok(self.packed.get(id)?.map(Cow::Owned)),
        }
    }

    fn mark_dirty(&mut self, id: &str) {
        if !self.untracked && !self.dirty.contains(id) {
            self.dirty.insert(id.to_string());
        }
    }

    /// A session to change, brought into memory and marked dirty.
    pub fn get_mut(&mut self, id: &str) -> Result<Option<&mut SessionState>> {
        if !self.hot.contains_key(id) {
            let found = match &self.store {
                Some(store) => store.session(id)?,
                None => self.packed.take(id)?,
            };
            let Some(s) = found else { return Ok(None) };
            self.hot.insert(id.to_string(), Arc::new(s));
        }
        self.mark_dirty(id);
        Ok(self.hot.get_mut(id).map(Arc::make_mut))
    }

    pub fn insert(&mut self, session: SessionState) {
        self.mark_dirty(session.id());
        self.hot.insert(session.id().to_string(), Arc::new(session));
    }

    /// The active session on `key`, if any.
    pub fn active_on_key(&self, key: &str) -> Option<&str> {
        self.by_key.get(key).map(String::as_str)
    }

    pub fn set_key_owner(&mut self, key: &str, id: &str) {
        self.by_key.insert(key.to_string(), id.to_string());
    }

    pub fn release_key(&mut self, key: &str, id: &str) {
        if self.by_key.get(key).is_some_and(|owner| owner == id) {
            self.by_key.remove(key);
        }
    }

    /// Sessions in memory and not encoded, in no particular order.
    pub fn hot(&self) -> impl Iterator<Item = &SessionState> {
        self.hot.values().map(|s| &**s)
    }

    /// The sessions in memory, shared: what a reader overlays on the
    /// checkpoint store once the table's lock is released.
    pub fn hot_snapshot(&self) -> HashMap<String, Arc<SessionState>, IdHash> {
        self.hot.clone()
    }

    /// Ended sessions kept encoded (only without a checkpoint store), in no
    /// particular order.
    pub fn packed(&self) -> impl Iterator<Item = Result<SessionState>> + '_ {
        self.packed.sessions()
    }

    /// For a table without a checkpoint store, what a checkpoint is for a
    /// table with one: ended sessions leave the hot map, here to be kept
    /// encoded. Returns how many were packed. One that cannot be encoded
    /// (larger than the codec's limit) stays here, decoded.
    pub fn pack_ended(&mut self) -> usize {
        self.dirty.clear();
        let ended: Vec<(String, Arc<SessionState>)> = self.hot.extract_if(|_, s| !s.active).collect();
        let mut packed = 0;
        for (id, mut s) in ended {
            // Packed in place: moving a state out of its Arc copies it whole.
            let inserted = match Arc::get_mut(&mut s) {
                Some(state) => self.packed.insert(state),
                None => self.packed.insert(&mut SessionState::clone(&s)),
            };
            match inserted {
                Ok(()) => packed += 1,
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "an ended session cannot be packed; it stays in memory as it is");
                    self.hot.insert(id, s);
                }
            }
        }
        packed
    }

    /// Sessions changed since the last checkpoint.
    pub fn dirty(&self) -> impl Iterator<Item = &SessionState> {
        self.dirty.iter().filter_map(|id| self.hot.get(id).map(|s| &**s))
    }

    /// How many sessions changed since the last checkpoint.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// Copies of the sessions changed since the last checkpoint; from now on
    /// they count as unchanged until they change again.
    pub fn take_dirty(&mut self) -> Vec<Arc<SessionState>> {
        // Sized up front: a filtered collect grows its Vec step by step.
        let mut sessions = Vec::with_capacity(self.dirty.len());
        // Drained, not taken: the set keeps its room for the next
        // checkpoint's ids instead of growing again from nothing, which
        // allocated (and, freed, gave back) tables of hundreds of KiB at
        // every checkpoint.
        sessions.extend(self.dirty.drain().filter_map(|id| self.hot.get(&id).cloned()));
        sessions
    }

    /// A background checkpoint of `written` reached the store: those that
    /// are neither active nor changed since may leave memory.
    pub fn evict_written(&mut self, written: &[Arc<SessionState>]) {
        for id in written.iter().map(|s| s.id()) {
            if !self.dirty.contains(id) && self.hot.get(id).is_some_and(|s| !s.active) {
                self.hot.remove(id);
            }
        }
    }

    /// A background checkpoint of `written` was not saved (the store
    /// failed, or the journal did not make it durable): they must be
    /// written again.
    pub fn redirty(&mut self, written: &[Arc<SessionState>]) {
        for id in written.iter().map(|s| s.id()) {
            if self.hot.contains_key(id) {
                self.dirty.insert(id.to_string());
            }
        }
    }

    /// A session that is in memory (active sessions always are).
    pub fn in_memory(&self, id: &str) -> Option<&SessionState> {
        self.hot.get(id).map(|s| &**s)
    }

    /// After a checkpoint: nothing is dirty, and ended sessions leave memory.
    fn checkpointed(&mut self) {
        self.dirty.clear();
        self.hot.retain(|_, s| s.active);
    }

    /// Writes every session changed since the last checkpoint, and `meta`,
    /// to the store in one batch; ended sessions then leave memory. The
    /// caller makes sure every folded LSN is durable. Returns the number of
    /// sessions written. Without a store, ended sessions are packed in
    /// memory instead, and 0 is returned.
    pub fn save(&mut self, meta: &Meta) -> Result<usize> {
        let Some(store) = self.store.clone() else {
            self.pack_ended();
            return Ok(0);
        };
        let written = store.save(&crate::store::StoredMeta::of(meta), self.dirty())?;
        self.checkpointed();
        // On this path (a fold, or checkpoints without their own thread)
        // the merges that are due run now.
        store.compact()?;
        Ok(written)
    }

    /// Loads the active sessions (and the key index) after a checkpoint load.
    /// Every session the meta record calls active must be read back: a
    /// store that silently lost one (sled skips records whose blob file is
    /// gone) is an error, never a smaller active set.
    pub fn load_active(&mut self, meta: &Meta) -> Result<()> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        for s in store.active_sessions() {
            let s = s?;
            if !meta.active.contains(s.id()) {
                continue;
            }
            if let Some(key) = s.key() {
                self.by_key.insert(key.to_string(), s.id().to_string());
            }
            self.hot.insert(s.id().to_string(), Arc::new(s));
        }
        if let Some(missing) = meta.active.iter().find(|id| !self.hot.contains_key(*id)) {
            return Err(crate::error::Error::Store {
                path: store.path().to_path_buf(),
                reason: format!("active session {missing:?} is in the index but its record cannot be read"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EndReason;

    fn ended(id: &str, error_len: usize) -> SessionState {
        SessionState {
            last_finalize_error: Some("x".repeat(error_len)),
            ..SessionState::for_tests(id, Some(EndReason::Completed))
        }
    }

    #[test]
    fn an_ended_session_too_large_to_pack_stays_in_memory() {
        let mut table = SessionTable::untracked();
        let huge = ended("huge", bookend_journal::codec::EVENT_SIZE_MAX_BYTES + 1);
        table.insert(huge.clone());
        table.insert(ended("small", 10));
        assert_eq!(table.pack_ended(), 1);
        assert_eq!(table.in_memory("huge"), Some(&huge));
        assert_eq!(table.in_memory("small"), None);
        assert_eq!(table.get("small").unwrap().map(Cow::into_owned), Some(ended("small", 10)));
        assert_eq!(table.get("huge").unwrap().map(Cow::into_owned), Some(huge));
    }
}
