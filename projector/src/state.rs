//! The folded session state: one record per session, the journal-wide
//! meta state, and the table that holds sessions in memory (active ones and
//! those changed since the last checkpoint) with the rest in the sled cache.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A fast hasher with a random per-process seed: session ids come from
/// gateways (often from users), so they must not be able to force collisions.
type Hasher = foldhash::fast::RandomState;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::event::EndReason;
use crate::packed::Packed;
use crate::store::ProjectionStore;

/// Everything bookend knows about one session, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub session_id: String,
    pub key: Option<String>,
    pub platform: Option<String>,
    pub user_id: Option<String>,
    pub source: Option<String>,
    pub parent_id: Option<String>,
    pub attrs: BTreeMap<String, String>,
    pub start_lsn: u64,
    pub started_at: u64,
    /// Whether the current span is open.
    pub active: bool,
    /// Spans opened so far (the start and every reopen).
    pub spans: u32,
    /// Time of the last start, reopen or recorded activity.
    pub last_activity_at: u64,
    /// The last end: when, at which LSN, why, and the session that replaced it.
    pub ended_at: Option<u64>,
    pub end_lsn: Option<u64>,
    pub end_reason: Option<EndReason>,
    pub next_id: Option<String>,
    /// Flush markers recorded, with the LSN that recorded each.
    pub flush_markers: BTreeMap<String, u64>,
    /// LSN of `session:expiry_finalized`, once recorded.
    pub expiry_finalized_lsn: Option<u64>,
    pub finalize_attempts: u32,
    pub last_finalize_error: Option<String>,
}

impl SessionState {
    /// The JSON row consumers, `bookend sessions --json` and `GET /v1/sessions` show.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "session_id": self.session_id,
            "key": self.key,
            "platform": self.platform,
            "user_id": self.user_id,
            "source": self.source,
            "parent_id": self.parent_id,
            "attrs": self.attrs,
            "active": self.active,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason.as_ref().map(|r| r.as_str()),
            "next_id": self.next_id,
            "last_activity_at": self.last_activity_at,
            "expiry_finalized": self.expiry_finalized_lsn.is_some(),
            "finalize_attempts": self.finalize_attempts,
            "flush_markers": self.flush_markers.keys().collect::<Vec<_>>(),
            "spans": self.spans,
            "start_lsn": self.start_lsn,
            "end_lsn": self.end_lsn,
        })
    }

    /// Ended by expiry (idle or daily) and not finalized: the one definition
    /// of "awaiting finalization", used by the fold and the checkpoint index.
    pub fn awaits_finalization(&self) -> bool {
        !self.active
            && matches!(self.end_reason, Some(EndReason::IdleExpiry | EndReason::DailyReset))
            && self.expiry_finalized_lsn.is_none()
    }
}

/// Journal-wide state folded alongside the sessions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    /// The last LSN folded into this state.
    pub last_lsn: u64,
    /// The epoch of the last `journal:open`.
    pub epoch: u64,
    /// A `journal:open` with no `journal:close` after it.
    pub epoch_open: bool,
    /// Ids of active sessions.
    pub active: BTreeSet<String>,
    /// Ended by expiry (idle or daily) and not yet finalized or reopened.
    pub awaiting_finalization: BTreeSet<String>,
    pub sessions_total: u64,
    pub spans_total: u64,
    /// Ends by reason name.
    pub ends_by_reason: BTreeMap<String, u64>,
}

/// The sessions. Active sessions and every session changed since the last
/// checkpoint live in memory; the rest are read from the checkpoint store on
/// demand, so history does not have to fit in RAM. Without a store, ended
/// sessions are kept encoded in memory instead (`Packed`).
///
/// Hash maps, not ordered ones: ids often share long prefixes, and every
/// command touches these maps several times. Where order matters (active
/// sessions), it comes from `Meta::active`.
#[derive(Debug, Default)]
pub struct SessionTable {
    /// Shared so a background checkpoint can hold a snapshot without a copy.
    hot: HashMap<String, Arc<SessionState>, Hasher>,
    dirty: HashSet<String, Hasher>,
    /// Active session id by key.
    by_key: HashMap<String, String, Hasher>,
    /// Whether changes are remembered for a checkpoint; an in-memory fold
    /// (verify, read-only tools) has no store to write them to.
    untracked: bool,
    /// Ended sessions of a table without a checkpoint store.
    packed: Packed,
}

impl SessionTable {
    /// Looks a session up in memory, then in `store`.
    pub fn get<'a>(
        &'a self,
        id: &str,
        store: Option<&ProjectionStore>,
    ) -> Result<Option<Cow<'a, SessionState>>> {
        if let Some(s) = self.hot.get(id) {
            return Ok(Some(Cow::Borrowed(&**s)));
        }
        match store {
            Some(store) => Ok(store.session(id)?.map(Cow::Owned)),
            None => Ok(self.packed.get(id)?.map(Cow::Owned)),
        }
    }

    /// A table for an in-memory fold: nothing is tracked for checkpoints.
    pub fn untracked() -> SessionTable {
        SessionTable { untracked: true, ..SessionTable::default() }
    }

    fn mark_dirty(&mut self, id: &str) {
        if !self.untracked && !self.dirty.contains(id) {
            self.dirty.insert(id.to_string());
        }
    }

    /// A session to change, brought into memory and marked dirty.
    pub fn get_mut(
        &mut self,
        id: &str,
        store: Option<&ProjectionStore>,
    ) -> Result<Option<&mut SessionState>> {
        if !self.hot.contains_key(id) {
            let found = match store {
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
        self.mark_dirty(&session.session_id);
        self.hot.insert(session.session_id.clone(), Arc::new(session));
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
    pub fn hot_snapshot(&self) -> HashMap<String, Arc<SessionState>, Hasher> {
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
        for (id, s) in ended {
            let mut state = Arc::unwrap_or_clone(s);
            match self.packed.insert(&mut state) {
                Ok(()) => packed += 1,
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "an ended session cannot be packed; it stays in memory as it is");
                    self.hot.insert(id, Arc::new(state));
                }
            }
        }
        packed
    }

    /// Sessions changed since the last checkpoint.
    pub fn dirty(&self) -> impl Iterator<Item = &SessionState> {
        self.dirty.iter().filter_map(|id| self.hot.get(id).map(|s| &**s))
    }

    /// Copies of the sessions changed since the last checkpoint; from now on
    /// they count as unchanged until they change again.
    pub fn take_dirty(&mut self) -> Vec<Arc<SessionState>> {
        let ids = std::mem::take(&mut self.dirty);
        ids.iter().filter_map(|id| self.hot.get(id).cloned()).collect()
    }

    /// A background checkpoint of `ids` reached the store: those that are
    /// neither active nor changed since may leave memory.
    pub fn evict_written(&mut self, ids: &[String]) {
        for id in ids {
            if !self.dirty.contains(id) && self.hot.get(id).is_some_and(|s| !s.active) {
                self.hot.remove(id);
            }
        }
    }

    /// A background checkpoint of `ids` failed: they must be written again.
    pub fn redirty(&mut self, ids: Vec<String>) {
        self.dirty.extend(ids.into_iter().filter(|id| self.hot.contains_key(id)));
    }

    /// After a checkpoint: nothing is dirty, and ended sessions leave memory.
    /// A session that is in memory (active sessions always are).
    pub fn in_memory(&self, id: &str) -> Option<&SessionState> {
        self.hot.get(id).map(|s| &**s)
    }

    pub fn checkpointed(&mut self) {
        self.dirty.clear();
        self.hot.retain(|_, s| s.active);
    }

    /// Loads the active sessions (and the key index) after a checkpoint load.
    /// Every session the meta record calls active must be read back: a
    /// store that silently lost one (sled skips records whose blob file is
    /// gone) is an error, never a smaller active set.
    pub fn load_active(&mut self, meta: &Meta, store: &ProjectionStore) -> Result<()> {
        for s in store.active_sessions() {
            let s = s?;
            if !meta.active.contains(&s.session_id) {
                continue;
            }
            if let Some(key) = &s.key {
                self.by_key.insert(key.clone(), s.session_id.clone());
            }
            self.hot.insert(s.session_id.clone(), Arc::new(s));
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
impl SessionState {
    /// A minimal session for unit tests: active, or ended for `end_reason`.
    pub(crate) fn for_tests(id: &str, end_reason: Option<EndReason>) -> SessionState {
        SessionState {
            session_id: id.to_string(),
            key: None,
            platform: None,
            user_id: None,
            source: None,
            parent_id: None,
            attrs: BTreeMap::new(),
            start_lsn: 1,
            started_at: 1,
            active: end_reason.is_none(),
            spans: 1,
            last_activity_at: 1,
            ended_at: end_reason.as_ref().map(|_| 2),
            end_lsn: end_reason.as_ref().map(|_| 2),
            end_reason,
            next_id: None,
            flush_markers: BTreeMap::new(),
            expiry_finalized_lsn: None,
            finalize_attempts: 0,
            last_finalize_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(table.get("small", None).unwrap().map(Cow::into_owned), Some(ended("small", 10)));
        assert_eq!(table.get("huge", None).unwrap().map(Cow::into_owned), Some(huge));
    }
}
