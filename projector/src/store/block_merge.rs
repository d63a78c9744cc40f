//! A merge of runs that copies whole blocks where it can. A block is
//! copied as it is stored (not decompressed, decoded, encoded and
//! compressed again) when no other run has an id from its first up to the
//! next block's first (for a run's last block, up to the run's last id);
//! elsewhere the merge goes entry by entry, each id once, from the newest
//! run that holds it, as `merge.rs` does. A block less than half full (a
//! run's last, or one cut short by a copy after it) is repacked, not
//! copied, so small blocks do not pile up merge after merge; so is one
//! stored uncompressed (format 5's blocks), so merges still compress them.
//!
//! Runs of ids that grow with time (UUIDv7, dated ids) do not overlap, so
//! their merges copy nearly every block; runs of random ids overlap
//! everywhere, and their merges go entry by entry.

use std::collections::VecDeque;

use sled::IVec;

use super::block::{BLOCK_BYTES_TARGET, BlockReader, Entry, damaged};
use super::compressed::{compressed_block_len, unseal};
use crate::error::Result;

/// What a merge writes next.
pub(crate) enum Piece {
    /// One entry, to pack into the block being built.
    Entry(Entry),
    /// A whole block as it is stored, and the first id its key names.
    Block { first: String, stored: IVec },
}

/// A run's blocks in id order: each block's first id and stored bytes.
pub(crate) type Blocks<'a> = Box<dyn Iterator<Item = Result<(String, IVec)>> + 'a>;

/// One input run of the merge.
struct Cursor<'a> {
    blocks: Blocks<'a>,
    /// Up to two blocks read ahead and not opened: the second one's first
    /// id bounds the first one's ids.
    ahead: VecDeque<(String, IVec)>,
    /// The entries of the block opened last not taken yet.
    open: VecDeque<Entry>,
    /// The run's last id, which bounds its last block.
    last: String,
}

impl Cursor<'_> {
    fn fill(&mut self) -> Result<()> {
        while self.ahead.len() < 2 {
            match self.blocks.next() {
                Some(block) => self.ahead.push_back(block?),
                None => break,
            }
        }
        Ok(())
    }

    /// The next id of this run: the open block's next entry, or the next
    /// block's first id.
    fn head(&self) -> Option<&str> {
        match self.open.front() {
            Some(entry) => Some(entry.id.as_str()),
            None => self.ahead.front().map(|(first, _)| first.as_str()),
        }
    }

    /// Whether the next (unopened) block is compressed and at least half
    /// full. One stored as it is (by format 5, or where compression did not
    /// pay) is repacked, which compresses it where that pays.
    fn block_worth_copying(&self) -> bool {
        self.ahead
            .front()
            .and_then(|(_, stored)| compressed_block_len(stored))
            .is_some_and(|n| n >= BLOCK_BYTES_TARGET / 2)
    }

    /// Whether every id of the next (unopened) block is below `id`.
    fn block_below(&self, id: &str) -> bool {
        match self.ahead.get(1) {
            Some((next_first, _)) => next_first.as_str() <= id,
            None => self.last.as_str() < id,
        }
    }

    fn open_block(&mut self) -> Result<()> {
        if let Some((_, stored)) = self.ahead.pop_front() {
            let raw = unseal(&stored)?;
            for entry in BlockReader::new(&raw) {
                self.open.push_back(entry?);
            }
        }
        self.fill()
    }

    fn take_block(&mut self) -> Result<Option<Piece>> {
        let piece = self.ahead.pop_front().map(|(first, stored)| Piece::Block { first, stored });
        self.fill()?;
        Ok(piece)
    }
}

/// The merge of runs given newest first, as pieces in id order.
pub(crate) struct BlockMerge<'a> {
    runs: Vec<Cursor<'a>>,
    failed: bool,
}

impl<'a> BlockMerge<'a> {
    /// A merge of `newest_first`: each run's blocks and its last id.
    pub fn new(newest_first: Vec<(Blocks<'a>, String)>) -> Result<BlockMerge<'a>> {
        let mut runs = Vec::with_capacity(newest_first.len());
        for (blocks, last) in newest_first {
            let mut cursor = Cursor { blocks, ahead: VecDeque::new(), open: VecDeque::new(), last };
            cursor.fill()?;
            runs.push(cursor);
        }
        Ok(BlockMerge { runs, failed: false })
    }

    /// The newest run whose head has the smallest id.
    fn pick(&self) -> Option<usize> {
        let mut best: Option<(usize, &str)> = None;
        for (i, run) in self.runs.iter().enumerate() {
            if let Some(id) = run.head()
                && best.is_none_or(|(_, smallest)| id < smallest)
            {
                best = Some((i, id));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Whether run `w`'s next block is worth copying and holds no id that
    /// another run holds or that falls between two of its own.
    fn copyable(&self, w: usize) -> bool {
        let run = &self.runs[w];
        run.block_worth_copying()
            && self
                .runs
                .iter()
                .enumerate()
                .all(|(j, other)| j == w || other.head().is_none_or(|h| run.block_below(h)))
    }

    /// Takes `id` out of the runs older than `w` that hold it: their
    /// entries are older versions of the one run `w` gave.
    fn skip_older(&mut self, w: usize, id: &str) -> Result<()> {
        for run in &mut self.runs[w + 1..] {
            if run.open.is_empty() && run.head() == Some(id) {
                run.open_block()?;
            }
            if run.open.front().is_some_and(|e| e.id == id) {
                run.open.pop_front();
                if run.open.is_empty() {
                    run.fill()?;
                }
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Piece>> {
        loop {
            let Some(w) = self.pick() else { return Ok(None) };
            if self.runs[w].open.is_empty() {
                if self.copyable(w) {
                    return self.runs[w].take_block();
                }
                self.runs[w].open_block()?;
                continue;
            }
            let Some(entry) = self.runs[w].open.pop_front() else { continue };
            self.skip_older(w, &entry.id)?;
            return Ok(Some(Piece::Entry(entry)));
        }
    }
}

impl Iterator for BlockMerge<'_> {
    type Item = Result<Piece>;

    fn next(&mut self) -> Option<Result<Piece>> {
        if self.failed {
            return None;
        }
        let step = self.step();
        self.failed = step.is_err();
        step.transpose()
    }
}

/// The ids of a copied block, checked against what its key and its
/// neighbours say: in order, starting with `first`.
pub(crate) fn block_ids(first: &str, stored: &[u8], mut each: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let raw = unseal(stored)?;
    let mut reader = BlockReader::new(&raw);
    let mut seen = false;
    while let Some(id) = reader.next_id()? {
        if !seen && id != first {
            return Err(damaged(&format!("a block keyed {first:?} starts with {id:?}")));
        }
        seen = true;
        each(id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::block::BlockWriter;
    use crate::store::compressed::seal;
    use crate::store::merge::{Merged, RunIter};

    /// Run `version`'s entry of `id`: 300 bytes, so a block holds about seven.
    fn entry(id: &str, version: u8) -> Entry {
        Entry { id: id.to_string(), rest: vec![version; 300] }
    }

    /// `ids` (sorted, unique) packed and sealed as a run's blocks are.
    fn blocks(ids: &[String], version: u8) -> Vec<(String, IVec)> {
        let mut writer = BlockWriter::default();
        let mut out = Vec::new();
        for id in ids {
            out.extend(writer.push(&entry(id, version)).unwrap());
        }
        out.extend(writer.finish());
        out.into_iter().map(|(first, block)| (first, IVec::from(seal(block).unwrap()))).collect()
    }

    fn as_blocks(blocks: Vec<(String, IVec)>) -> Blocks<'static> {
        Box::new(blocks.into_iter().map(Ok))
    }

    /// The entries a block merge gives, copied blocks opened, and how many
    /// blocks it copied.
    fn merged_by_blocks(runs: &[Vec<String>]) -> (Vec<Entry>, usize) {
        let inputs = runs
            .iter()
            .enumerate()
            .map(|(v, ids)| (as_blocks(blocks(ids, v as u8)), ids.last().cloned().unwrap_or_default()))
            .collect();
        let (mut entries, mut copied) = (Vec::new(), 0);
        for piece in BlockMerge::new(inputs).unwrap() {
            match piece.unwrap() {
                Piece::Entry(e) => entries.push(e),
                Piece::Block { first, stored } => {
                    copied += 1;
                    let raw = unseal(&stored).unwrap();
                    let inside: Vec<Entry> = BlockReader::new(&raw).map(Result::unwrap).collect();
                    assert_eq!(inside[0].id, first);
                    entries.extend(inside);
                }
            }
        }
        (entries, copied)
    }

    /// What the entry-by-entry merge gives for the same runs.
    fn merged_by_entries(runs: &[Vec<String>]) -> Vec<Entry> {
        let inputs = runs
            .iter()
            .enumerate()
            .map(|(v, ids)| {
                let entries: Vec<Result<Entry>> = ids.iter().map(|id| Ok(entry(id, v as u8))).collect();
                Box::new(entries.into_iter()) as RunIter<'static>
            })
            .collect();
        Merged::new(inputs).map(Result::unwrap).collect()
    }

    /// Up to five runs, newest first: each a sorted set of ids, either
    /// drawn from one small space (runs overlap, ids repeat across runs)
    /// or from a span of its own (runs touch at most at their ends).
    fn runs() -> impl Strategy<Value = Vec<Vec<String>>> {
        let overlapping = prop::collection::vec(prop::collection::btree_set(0u32..300, 0..60), 1..5)
            .prop_map(|runs| {
                runs.into_iter().map(|ids| ids.into_iter().collect::<Vec<_>>()).collect::<Vec<_>>()
            });
        let spans = prop::collection::vec((0u32..40, 1u32..80), 1..5).prop_map(|runs| {
            runs.into_iter().map(|(start, len)| (start * 50..start * 50 + len).collect::<Vec<_>>()).collect()
        });
        prop_oneof![overlapping, spans].prop_map(|runs: Vec<Vec<u32>>| {
            runs.into_iter().map(|ids| ids.into_iter().map(|n| format!("s-{n:05}")).collect()).collect()
        })
    }

    proptest! {
        /// Copying blocks changes nothing: each id once, in order, from the
        /// newest run that holds it, exactly as the entry merge gives.
        #[test]
        fn copying_blocks_gives_what_merging_entries_gives(runs in runs()) {
            let (by_blocks, _) = merged_by_blocks(&runs);
            prop_assert_eq!(by_blocks, merged_by_entries(&runs));
        }
    }

    /// Runs that do not overlap are copied block by block, all but their
    /// last (partly full) blocks; runs that interleave are merged entry by
    /// entry.
    #[test]
    fn runs_apart_are_copied_and_runs_interleaved_are_not() {
        let ids = |from: u32, n: u32, step: u32| -> Vec<String> {
            (0..n).map(|i| format!("s-{:05}", from + i * step)).collect()
        };
        let apart = [ids(1000, 50, 1), ids(0, 50, 1)];
        let (entries, copied) = merged_by_blocks(&apart);
        assert_eq!(entries.len(), 100);
        let full_blocks = 2 * (blocks(&apart[0], 0).len() - 1);
        assert!(copied >= full_blocks, "{copied} blocks copied of {full_blocks} full ones");
        let interleaved = [ids(0, 50, 2), ids(1, 50, 2)];
        let (entries, copied) = merged_by_blocks(&interleaved);
        assert_eq!((entries.len(), copied), (100, 0));
    }

    /// A copied block whose first entry is not the id its key names is a
    /// damaged store, not a silently wrong run.
    #[test]
    fn a_block_keyed_wrong_is_an_error() {
        let (first, stored) = blocks(&["b".to_string(), "c".to_string()], 0).remove(0);
        assert_eq!(first, "b");
        let mut ids = Vec::new();
        block_ids("b", &stored, |id| {
            ids.push(id.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(ids, ["b", "c"]);
        let wrong = block_ids("a", &stored, |_| Ok(())).unwrap_err();
        assert!(wrong.to_string().contains("starts with \"b\""), "{wrong}");
    }
}
