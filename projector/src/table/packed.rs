//! Ended sessions of a fold that has no checkpoint store (`verify`,
//! `replay`, read-only tools, a journal opened without a store), kept
//! encoded instead of as `SessionState`s.
//!
//! Such a fold must remember every session it has seen: a second start or
//! a second end may come at any distance. An ended session is rarely named
//! again, so it is stored as its codec bytes, with its id in front, back to
//! back in large blocks, and found through a hash table of 12-byte
//! locations. Naming it again decodes it. There is no allocation per
//! session: `bookend verify` of 10M events (5M sessions) peaked at 2.72 GB
//! with decoded records, 1.26 GB with one allocation per encoded session,
//! and less again this way (docs/performance-log/2026-11-21.md, "Replay and
//! verify").
//!
//! A session taken out to be changed leaves its old bytes behind; once
//! those outweigh the live ones, the blocks are rewritten without them.

use std::hash::BuildHasher;

use bookend_journal::codec;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::error::Result;
use crate::session::SessionState;

/// Bytes per block. An entry never spans two blocks; one larger than this
/// gets a block of its own.
const BLOCK_BYTES: usize = 1 << 20;
/// Each entry starts with the id's length and the state's length, u32
/// little endian each.
const HEADER_BYTES: usize = 8;
/// Dead bytes that must pile up (and outweigh the live ones) before the
/// blocks are rewritten.
const COMPACT_MIN_DEAD_BYTES: usize = 16 << 20;

/// Where an entry starts, and 32 bits of its id's hash: growing the table
/// rehashes every entry, and reading each id back from the blocks for that
/// was 7% of `verify`'s time at 1M sessions (cache misses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    block: u32,
    offset: u32,
    hash: u32,
}

/// The table's 64-bit hash from the kept 32 bits: multiplying by an odd
/// constant keeps the low bits (the bucket) uniform and mixes every bit
/// into the top ones (the tag hashbrown compares first).
fn table_hash(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn codec_error(reason: String) -> crate::error::Error {
    bookend_journal::Error::Codec { reason }.into()
}

/// Blocks of entries, each entry `[id len][state len][id][state]`.
#[derive(Debug, Default)]
struct Blocks {
    blocks: Vec<Vec<u8>>,
    block_bytes: usize,
}

impl Blocks {
    fn new(block_bytes: usize) -> Blocks {
        Blocks { blocks: Vec::new(), block_bytes }
    }

    fn header(&self, loc: Loc) -> (usize, usize, &[u8]) {
        let block = &self.blocks[loc.block as usize];
        let at = loc.offset as usize;
        let mut id_len = [0u8; 4];
        let mut state_len = [0u8; 4];
        id_len.copy_from_slice(&block[at..at + 4]);
        state_len.copy_from_slice(&block[at + 4..at + HEADER_BYTES]);
        (u32::from_le_bytes(id_len) as usize, u32::from_le_bytes(state_len) as usize, &block[at..])
    }

    /// The whole entry at `loc`.
    fn entry(&self, loc: Loc) -> &[u8] {
        let (id_len, state_len, rest) = self.header(loc);
        &rest[..HEADER_BYTES + id_len + state_len]
    }

    fn id(&self, loc: Loc) -> &[u8] {
        let (id_len, _, rest) = self.header(loc);
        &rest[HEADER_BYTES..HEADER_BYTES + id_len]
    }

    fn decode(&self, loc: Loc) -> Result<SessionState> {
        let (id_len, state_len, rest) = self.header(loc);
        let id = &rest[HEADER_BYTES..HEADER_BYTES + id_len];
        let state = &rest[HEADER_BYTES + id_len..HEADER_BYTES + id_len + state_len];
        let mut session: SessionState = codec::decode(state)?;
        // Just decoded, so not shared: no copy.
        std::sync::Arc::make_mut(&mut session.start).session_id = String::from_utf8(id.to_vec())
            .map_err(|e| codec_error(format!("a kept session id is not UTF-8: {e}")))?;
        Ok(session)
    }

    /// Appends an entry made of `parts` (header included) and says where.
    fn push(&mut self, parts: &[&[u8]], hash: u32) -> Result<Loc> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let fits = self.blocks.last().is_some_and(|b| b.capacity() - b.len() >= len);
        if !fits {
            self.blocks.push(Vec::with_capacity(self.block_bytes.max(len)));
        }
        let block = u32::try_from(self.blocks.len() - 1)
            .map_err(|_| codec_error("more kept sessions than 2^32 blocks hold".into()))?;
        let last = self.blocks.last_mut().ok_or_else(|| codec_error("no block to write to".into()))?;
        let offset = u32::try_from(last.len())
            .map_err(|_| codec_error(format!("a block of {} bytes is too large", last.len())))?;
        for part in parts {
            last.extend_from_slice(part);
        }
        Ok(Loc { block, offset, hash })
    }
}

/// The ended sessions of a fold without a store.
#[derive(Debug)]
pub struct Packed {
    blocks: Blocks,
    index: HashTable<Loc>,
    hasher: foldhash::fast::RandomState,
    /// Reused to encode each state.
    scratch: Vec<u8>,
    live_bytes: usize,
    dead_bytes: usize,
    compact_min_dead_bytes: usize,
}

impl Default for Packed {
    fn default() -> Packed {
        Packed::with_sizes(BLOCK_BYTES, COMPACT_MIN_DEAD_BYTES)
    }
}

impl Packed {
    fn with_sizes(block_bytes: usize, compact_min_dead_bytes: usize) -> Packed {
        Packed {
            blocks: Blocks::new(block_bytes),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            scratch: Vec::new(),
            live_bytes: 0,
            dead_bytes: 0,
            compact_min_dead_bytes,
        }
    }

    /// Encodes `session` into the scratch buffer as if its id were empty:
    /// the id is stored once, in front of the state. The state is not
    /// changed (its start fields may be shared with a start event).
    fn encode_without_id(&mut self, session: &SessionState) -> Result<()> {
        self.scratch.clear();
        codec::encode_into("", &mut self.scratch)?;
        if !session.encode_without_id_into(&mut self.scratch)? {
            return Err(codec_error("a session's encoding does not start with its id".to_string()));
        }
        Ok(())
    }

    /// Keeps an ended session, replacing any earlier entry for its id. On
    /// an error nothing is kept and `session` is as it was.
    pub fn insert(&mut self, session: &mut SessionState) -> Result<()> {
        self.encode_without_id(session)?;
        let id = session.id();
        let too_long = |what: &str, len: usize| {
            codec_error(format!("a session {what} of {len} bytes is too long to keep"))
        };
        let id_len = u32::try_from(id.len()).map_err(|_| too_long("id", id.len()))?;
        let state_len =
            u32::try_from(self.scratch.len()).map_err(|_| too_long("state", self.scratch.len()))?;
        let hash = self.id_hash(id.as_bytes());
        let loc = self
            .blocks
            .push(&[&id_len.to_le_bytes(), &state_len.to_le_bytes(), id.as_bytes(), &self.scratch], hash)?;
        let len = HEADER_BYTES + id.len() + self.scratch.len();
        self.live_bytes += len;
        let blocks = &self.blocks;
        let same_id = |l: &Loc| l.hash == hash && blocks.id(*l) == id.as_bytes();
        match self.index.entry(table_hash(hash), same_id, |l| table_hash(l.hash)) {
            Entry::Occupied(mut old) => {
                let old_len = blocks.entry(*old.get()).len();
                *old.get_mut() = loc;
                self.live_bytes -= old_len;
                self.dead_bytes += old_len;
            }
            Entry::Vacant(vacant) => {
                vacant.insert(loc);
            }
        }
        self.compact_if_wasteful()
    }

    fn id_hash(&self, id: &[u8]) -> u32 {
        // The low half of a 64-bit hash; `table_hash` spreads it again.
        self.hasher.hash_one(id) as u32
    }

    pub fn get(&self, id: &str) -> Result<Option<SessionState>> {
        let hash = self.id_hash(id.as_bytes());
        let blocks = &self.blocks;
        let same_id = |l: &Loc| l.hash == hash && blocks.id(*l) == id.as_bytes();
        self.index.find(table_hash(hash), same_id).map(|&l| blocks.decode(l)).transpose()
    }

    /// Removes a session to change it.
    pub fn take(&mut self, id: &str) -> Result<Option<SessionState>> {
        let hash = self.id_hash(id.as_bytes());
        let blocks = &self.blocks;
        let same_id = |l: &Loc| l.hash == hash && blocks.id(*l) == id.as_bytes();
        let Ok(found) = self.index.find_entry(table_hash(hash), same_id) else {
            return Ok(None);
        };
        let (loc, _) = found.remove();
        let session = blocks.decode(loc)?;
        let len = blocks.entry(loc).len();
        self.live_bytes -= len;
        self.dead_bytes += len;
        self.compact_if_wasteful()?;
        Ok(Some(session))
    }

    /// Every kept session, in no particular order.
    pub fn sessions(&self) -> impl Iterator<Item = Result<SessionState>> + '_ {
        self.index.iter().map(|&l| self.blocks.decode(l))
    }

    /// Rewrites the blocks without dead entries once those outweigh the
    /// live ones. Locations change; hashes do not, so the index stays.
    fn compact_if_wasteful(&mut self) -> Result<()> {
        if self.dead_bytes < self.compact_min_dead_bytes || self.dead_bytes < self.live_bytes {
            return Ok(());
        }
        let mut fresh = Blocks::new(self.blocks.block_bytes);
        for loc in self.index.iter_mut() {
            *loc = fresh.push(&[self.blocks.entry(*loc)], loc.hash)?;
        }
        self.blocks = fresh;
        self.dead_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn ended(id: &str) -> SessionState {
        let base = SessionState::for_tests(id, Some(crate::EndReason::IdleExpiry));
        let start = crate::event::StartFields {
            key: Some("agent:main:telegram:dm:42".into()),
            platform: Some("telegram".into()),
            attrs: BTreeMap::from([("model".to_string(), "m".to_string())]),
            ..(*base.start).clone()
        };
        SessionState {
            start: start.into(),
            started_at: 1_763_700_000_000,
            spans: 2,
            end_lsn: Some(99),
            flush_markers: BTreeMap::from([("compaction-1".to_string(), 50)]),
            finalize_attempts: 1,
            last_finalize_error: Some("hook timed out".into()),
            ..base
        }
    }

    #[test]
    fn a_kept_session_decodes_to_what_was_kept() {
        let mut packed = Packed::default();
        for id in ["a", "b", "", "é-unicode-id"] {
            packed.insert(&mut ended(id)).unwrap();
        }
        assert_eq!(packed.index.len(), 4);
        assert_eq!(packed.get("b").unwrap(), Some(ended("b")));
        assert_eq!(packed.get("é-unicode-id").unwrap(), Some(ended("é-unicode-id")));
        assert_eq!(packed.get("c").unwrap(), None);
        let mut all: Vec<String> = packed.sessions().map(|s| s.unwrap().start.session_id.clone()).collect();
        all.sort();
        assert_eq!(all, ["", "a", "b", "é-unicode-id"]);
    }

    #[test]
    fn insert_replaces_and_take_removes() {
        let mut packed = Packed::default();
        packed.insert(&mut ended("a")).unwrap();
        let mut changed = ended("a");
        changed.finalize_attempts = 3;
        packed.insert(&mut changed.clone()).unwrap();
        assert_eq!(packed.index.len(), 1);
        assert_eq!(packed.take("a").unwrap(), Some(changed));
        assert!(packed.index.is_empty());
        assert_eq!(packed.take("a").unwrap(), None);
    }

    #[test]
    fn a_session_too_large_to_encode_is_refused_and_left_as_it_was() {
        let mut packed = Packed::default();
        let mut huge = ended("huge");
        huge.last_finalize_error = Some("x".repeat(codec::EVENT_SIZE_MAX_BYTES + 1));
        let before = huge.clone();
        assert!(packed.insert(&mut huge).is_err());
        assert_eq!(huge, before);
        assert_eq!(packed.get("huge").unwrap(), None);
        assert_eq!((packed.live_bytes, packed.blocks.blocks.len()), (0, 0));
    }

    /// Inserts, replacements and takes in a fixed pseudo-random order, with
    /// tiny blocks (entries larger than a block too) and compaction at the
    /// first dead byte: the kept sessions always match a plain map.
    #[test]
    fn matches_a_map_through_replacements_takes_and_compactions() {
        let mut packed = Packed::with_sizes(300, 1);
        let mut model: HashMap<String, SessionState> = HashMap::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for step in 0..5_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = format!("session-{}", x % 200);
            let mut s = ended(&id);
            s.finalize_attempts = step;
            if x.is_multiple_of(7) {
                s.last_finalize_error = Some("e".repeat((x % 700) as usize));
            }
            if x.is_multiple_of(3) {
                assert_eq!(packed.take(&id).unwrap(), model.remove(&id), "step {step}");
            } else {
                packed.insert(&mut s.clone()).unwrap();
                model.insert(id.clone(), s);
            }
            assert_eq!(packed.get(&id).unwrap().as_ref(), model.get(&id), "step {step}");
        }
        let mut all: Vec<SessionState> = packed.sessions().map(Result::unwrap).collect();
        all.sort_by(|a, b| a.start.session_id.cmp(&b.start.session_id));
        let mut expected: Vec<SessionState> = model.into_values().collect();
        expected.sort_by(|a, b| a.start.session_id.cmp(&b.start.session_id));
        assert_eq!(all, expected);
        assert!(packed.dead_bytes <= packed.live_bytes.max(1), "compaction keeps dead bytes bounded");
        // Without compaction, 5 000 writes of ~150 bytes fill over 2 000 blocks.
        let held: usize = packed.blocks.blocks.iter().map(Vec::len).sum();
        assert!(held <= 2 * packed.live_bytes.max(1), "{held} bytes held for {} live", packed.live_bytes);
    }
}
