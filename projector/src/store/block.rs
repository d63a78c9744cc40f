//! Ended sessions packed into blocks: the values of a run (see `runs.rs`).
//!
//! A block is a series of entries in id order, each an ended session's id
//! and its state's codec bytes without the id (the id is the state's first
//! field, so its encoding is a prefix of the state's; it is stored once).
//! Each id is written as the length of the prefix it shares with the
//! previous id in the block and the rest of it:
//!
//! ```text
//! entry := shared u16 | suffix_len u16 | suffix | state_len u32 | state
//! ```
//!
//! all little-endian. Anything that does not parse is a damaged store.

use bookend_journal::codec;

use crate::error::{Error, Result};
use crate::session::SessionState;

/// A block is closed once it holds this many bytes. sled reads and caches
/// a leaf of up to 16 values whole, so a lookup reads up to 16 blocks:
/// with 4 KiB blocks a 5M-session history took 36-48 us a lookup of an old
/// session and 360 MiB after 10 000 of them, with 1 KiB 19-25 us and 106
/// MiB, but a store 18% larger and 33 MiB after open instead of 19.
pub(crate) const BLOCK_BYTES_TARGET: usize = 2 * 1024;

/// What a block is given beyond its target at first: the entry that
/// closes it goes past the target by its own length.
const BLOCK_SLACK_BYTES: usize = 512;

/// One stored ended session: its id and its state's bytes without the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: String,
    pub rest: Vec<u8>,
}

impl Entry {
    /// The entry that stores `state`.
    ///
    /// Encodes through a buffer kept by the thread, so the entry costs two
    /// allocations of the right size (a growing `Vec` per state took seven).
    pub fn of(state: &SessionState) -> Result<Entry> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with_borrow_mut(|bytes| {
            bytes.clear();
            if !state.encode_without_id_into(bytes)? {
                return Err(damaged("a session's encoding does not start with its id"));
            }
            Ok(Entry { id: state.id().to_string(), rest: bytes.to_vec() })
        })
    }

    /// The state this entry stores.
    pub fn state(&self) -> Result<SessionState> {
        let mut bytes = codec::encode(self.id.as_str())?;
        bytes.extend_from_slice(&self.rest);
        codec::decode(&bytes).map_err(|e| damaged(&format!("session {:?}: {e}", self.id)))
    }
}

pub(super) fn damaged(reason: &str) -> Error {
    Error::Store { path: std::path::PathBuf::from("projection"), reason: format!("a packed block: {reason}") }
}

/// Builds blocks from entries given in id order.
#[derive(Default)]
pub(crate) struct BlockWriter {
    block: Vec<u8>,
    first: Option<String>,
    last: String,
}

impl BlockWriter {
    /// Adds `entry` (its id after every id added so far); returns the block
    /// it closed, with its first id, if it was full.
    pub fn push(&mut self, entry: &Entry) -> Result<Option<(String, Vec<u8>)>> {
        if self.first.is_some() && entry.id.as_str() <= self.last.as_str() {
            return Err(damaged(&format!("id {:?} does not come after {:?}", entry.id, self.last)));
        }
        let shared = common_prefix(&self.last, &entry.id);
        let suffix = &entry.id.as_bytes()[shared..];
        let too_long = |what| damaged(&format!("session {:?}: {what} too long for a block", entry.id));
        let shared16 = u16::try_from(shared).map_err(|_| too_long("id"))?;
        let suffix16 = u16::try_from(suffix.len()).map_err(|_| too_long("id"))?;
        let rest32 = u32::try_from(entry.rest.len()).map_err(|_| too_long("state"))?;
        if self.block.capacity() == 0 {
            // Room for a whole block, so it is not grown step by step.
            self.block.reserve(BLOCK_BYTES_TARGET + BLOCK_SLACK_BYTES);
        }
        self.block.extend_from_slice(&shared16.to_le_bytes());
        self.block.extend_from_slice(&suffix16.to_le_bytes());
        self.block.extend_from_slice(suffix);
        self.block.extend_from_slice(&rest32.to_le_bytes());
        self.block.extend_from_slice(&entry.rest);
        self.first.get_or_insert_with(|| entry.id.clone());
        self.last.clone_from(&entry.id);
        Ok(if self.block.len() >= BLOCK_BYTES_TARGET { self.finish() } else { None })
    }

    /// The block being built, if it holds anything.
    pub fn finish(&mut self) -> Option<(String, Vec<u8>)> {
        let first = self.first.take()?;
        self.last.clear();
        Some((first, std::mem::take(&mut self.block)))
    }
}

/// The length of the longest common prefix of `a` and `b` that ends on a
/// character boundary of `b`.
fn common_prefix(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (0..=n).rev().find(|&i| b.is_char_boundary(i)).unwrap_or(0)
}

/// The entries of one block, in id order.
pub(crate) struct BlockReader<'a> {
    bytes: &'a [u8],
    at: usize,
    id: Vec<u8>,
    failed: bool,
}

impl<'a> BlockReader<'a> {
    pub fn new(bytes: &'a [u8]) -> BlockReader<'a> {
        BlockReader { bytes, at: 0, id: Vec::new(), failed: false }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let bytes = self.at.checked_add(n).and_then(|end| self.bytes.get(self.at..end));
        let bytes = bytes.ok_or_else(|| damaged(&format!("cut short at byte {}", self.at)))?;
        self.at += n;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<usize> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    /// The next entry's id (in the reader) and its state bytes.
    fn next_raw(&mut self) -> Result<&'a [u8]> {
        let shared = self.u16()?;
        let suffix_len = self.u16()?;
        if shared > self.id.len() {
            return Err(damaged(&format!("an id shares {shared} bytes with a shorter one")));
        }
        let suffix = self.take(suffix_len)?;
        self.id.truncate(shared);
        self.id.extend_from_slice(suffix);
        let len = self.take(4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        self.take(usize::try_from(len).map_err(|_| damaged("a state too long"))?)
    }

    fn id(&self) -> Result<&str> {
        std::str::from_utf8(&self.id).map_err(|e| damaged(&e.to_string()))
    }

    /// The next entry's id, its state skipped; `None` after the last.
    pub fn next_id(&mut self) -> Result<Option<&str>> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        self.next_raw()?;
        self.id().map(Some)
    }

    /// The state bytes of `id`, if this block holds it.
    pub fn find(mut self, id: &str) -> Result<Option<Vec<u8>>> {
        while self.at < self.bytes.len() {
            let rest = self.next_raw()?;
            // Bytes compare as the strings do; no need to check UTF-8 here.
            match self.id.as_slice().cmp(id.as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Ok(Some(rest.to_vec())),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }
}

impl Iterator for BlockReader<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.failed || self.at >= self.bytes.len() {
            return None;
        }
        let entry =
            self.next_raw().and_then(|rest| Ok(Entry { id: self.id()?.to_string(), rest: rest.to_vec() }));
        self.failed = entry.is_err();
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EndReason;

    fn entry(id: &str) -> Entry {
        Entry::of(&SessionState::for_tests(id, Some(EndReason::Completed))).unwrap()
    }

    /// Entries come back as they went in, across blocks, ids included, and
    /// each is found in its block by id.
    #[test]
    fn entries_round_trip_through_blocks() {
        let ids: Vec<String> = (0..2000).map(|i| format!("0190f5c2-7a1b-7c3d-9e8f-{i:012x}é")).collect();
        let mut writer = BlockWriter::default();
        let mut blocks = Vec::new();
        for id in &ids {
            blocks.extend(writer.push(&entry(id)).unwrap());
        }
        blocks.extend(writer.finish());
        assert!(blocks.len() > 1, "{} blocks", blocks.len());
        let back: Vec<Entry> =
            blocks.iter().flat_map(|(_, b)| BlockReader::new(b)).map(Result::unwrap).collect();
        assert_eq!(back.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
        assert_eq!(back[7].state().unwrap(), SessionState::for_tests(&ids[7], Some(EndReason::Completed)));
        let (first, block) = &blocks[1];
        assert_eq!(BlockReader::new(block).find(first).unwrap(), Some(entry(first).rest));
        assert_eq!(BlockReader::new(block).find("0").unwrap(), None);
    }

    /// A block cut short or naming an impossible prefix is an error, not a panic.
    #[test]
    fn damaged_blocks_are_errors() {
        let mut writer = BlockWriter::default();
        writer.push(&entry("a")).unwrap();
        writer.push(&entry("ab")).unwrap();
        let (_, block) = writer.finish().unwrap();
        for cut in 0..block.len() {
            let entries: Vec<Result<Entry>> = BlockReader::new(&block[..cut]).collect();
            // A cut between two entries leaves a shorter, valid block.
            assert!(entries.len() < 2 || entries.iter().any(Result::is_err), "cut at {cut}");
        }
        let mut bad = block.clone();
        bad[0] = 9;
        assert!(BlockReader::new(&bad).next().unwrap().is_err());
        assert!(writer.push(&entry("b")).is_ok());
        assert!(writer.push(&entry("a")).is_err(), "out of order");
    }
}
