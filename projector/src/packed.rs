//! Ended sessions of a fold that has no checkpoint store (`verify`,
//! `replay`, read-only tools, a journal opened without a store), kept
//! encoded instead of as `SessionState`s.
//!
//! Such a fold must remember every session it has seen: a second start or
//! a second end may come at any distance. An ended session is rarely named
//! again, so it is stored as its codec bytes, with its id in front, in one
//! allocation per session; naming it again decodes it. `bookend verify`
//! of 10M events (5M sessions) peaked at 1.26 GB this way, against 2.72 GB
//! with decoded records.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use bookend_journal::codec;

use crate::error::Result;
use crate::state::SessionState;

/// Bytes of the id length in front of each entry.
const ID_LEN_BYTES: usize = 4;

/// One ended session: the id's length (u32 little endian), the id, then
/// the codec bytes of its state with an empty id.
#[derive(Debug)]
struct Entry(Box<[u8]>);

impl Entry {
    fn encode(mut session: SessionState) -> Result<Entry> {
        let id = std::mem::take(&mut session.session_id);
        let id_len = u32::try_from(id.len()).map_err(|_| bookend_journal::Error::Codec {
            reason: format!("a session id of {} bytes is too long to keep", id.len()),
        })?;
        let mut bytes = Vec::with_capacity(ID_LEN_BYTES + id.len() + 64);
        bytes.extend_from_slice(&id_len.to_le_bytes());
        bytes.extend_from_slice(id.as_bytes());
        codec::encode_into(&session, &mut bytes)?;
        Ok(Entry(bytes.into_boxed_slice()))
    }

    fn id_end(&self) -> usize {
        let mut len = [0u8; ID_LEN_BYTES];
        len.copy_from_slice(&self.0[..ID_LEN_BYTES]);
        ID_LEN_BYTES + u32::from_le_bytes(len) as usize
    }

    fn id(&self) -> &[u8] {
        &self.0[ID_LEN_BYTES..self.id_end()]
    }

    fn decode(&self) -> Result<SessionState> {
        let mut session: SessionState = codec::decode(&self.0[self.id_end()..])?;
        session.session_id = String::from_utf8(self.id().to_vec()).map_err(|e| {
            bookend_journal::Error::Codec { reason: format!("a kept session id is not UTF-8: {e}") }
        })?;
        Ok(session)
    }
}

// An entry is found by its id: hashing and equality look at the id only,
// exactly as they do for the borrowed `[u8]`.
impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Entry {}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.id()
    }
}

/// The ended sessions of a fold without a store.
#[derive(Debug, Default)]
pub struct Packed {
    entries: HashSet<Entry, foldhash::fast::RandomState>,
}

impl Packed {
    /// Keeps an ended session, replacing any earlier entry for its id.
    pub fn insert(&mut self, session: SessionState) -> Result<()> {
        self.entries.replace(Entry::encode(session)?);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<SessionState>> {
        self.entries.get(id.as_bytes()).map(Entry::decode).transpose()
    }

    /// Removes a session to change it.
    pub fn take(&mut self, id: &str) -> Result<Option<SessionState>> {
        self.entries.take(id.as_bytes()).map(|e| e.decode()).transpose()
    }

    /// Every kept session, in no particular order.
    pub fn sessions(&self) -> impl Iterator<Item = Result<SessionState>> + '_ {
        self.entries.iter().map(Entry::decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ended(id: &str) -> SessionState {
        SessionState {
            session_id: id.to_string(),
            key: Some("agent:main:telegram:dm:42".into()),
            platform: Some("telegram".into()),
            user_id: None,
            source: None,
            parent_id: None,
            attrs: BTreeMap::from([("model".to_string(), "m".to_string())]),
            start_lsn: 7,
            started_at: 1_763_700_000_000,
            active: false,
            spans: 2,
            last_activity_at: 1_763_700_100_000,
            ended_at: Some(1_763_700_200_000),
            end_lsn: Some(99),
            end_reason: Some(crate::EndReason::IdleExpiry),
            next_id: None,
            flush_markers: BTreeMap::from([("compaction-1".to_string(), 50)]),
            expiry_finalized_lsn: None,
            finalize_attempts: 1,
            last_finalize_error: Some("hook timed out".into()),
        }
    }

    #[test]
    fn a_kept_session_decodes_to_what_was_kept() {
        let mut packed = Packed::default();
        for id in ["a", "b", "", "é-unicode-id"] {
            packed.insert(ended(id)).unwrap();
        }
        assert_eq!(packed.entries.len(), 4);
        assert_eq!(packed.get("b").unwrap(), Some(ended("b")));
        assert_eq!(packed.get("é-unicode-id").unwrap(), Some(ended("é-unicode-id")));
        assert_eq!(packed.get("c").unwrap(), None);
        let mut all: Vec<String> = packed.sessions().map(|s| s.unwrap().session_id).collect();
        all.sort();
        assert_eq!(all, ["", "a", "b", "é-unicode-id"]);
    }

    #[test]
    fn insert_replaces_and_take_removes() {
        let mut packed = Packed::default();
        packed.insert(ended("a")).unwrap();
        let mut changed = ended("a");
        changed.finalize_attempts = 3;
        packed.insert(changed.clone()).unwrap();
        assert_eq!(packed.entries.len(), 1);
        assert_eq!(packed.take("a").unwrap(), Some(changed));
        assert!(packed.entries.is_empty());
        assert_eq!(packed.take("a").unwrap(), None);
    }
}
