//! Ended sessions in runs: each checkpoint writes the sessions it saves
//! that have ended as one new run, their entries packed in id order into
//! blocks of about 2 KiB (`block.rs`), one sled value a block, under
//! `r/<run id><first id in the block>`. The manifest (`runs`) lists the
//! runs newest first; it is written in the checkpoint's last batch, with the
//! meta record, so a run exists only once its checkpoint does.
//!
//! A session stored in several runs (ended, changed again, saved again) is
//! read from the newest (runs whose first and last ids do not bracket an
//! id, or whose filter rules it out, are skipped: `run_filter.rs`); one
//! active again is read from its `a/` record, which shadows its runs. A
//! checkpoint's run is of level 0; four runs of one level are merged
//! (`merge_step`, between checkpoints) into one of the next, keeping each
//! session's newest entry, so the runs are in level order, newest first, a
//! history of N sessions has O(log N) runs, and each entry is rewritten
//! O(log N) times, as one sequential stream, never key by key. Where the
//! merged runs do not interleave, a merge copies whole blocks as they are
//! stored (`block_merge.rs`): ids that grow with time are rewritten, not
//! repacked.
//!
//! Run ids only grow. Blocks of a run the manifest does not name yet (a
//! checkpoint or merge cut short) have ids at or past `next_id` and are
//! removed at open; runs a merge replaced are listed as `garbage` until
//! their blocks are removed, which waits while anything reads blocks.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{MutexGuard, RwLockReadGuard};

use bookend_journal::codec;
use serde::{Deserialize, Serialize};

use super::block::{BlockReader, Entry};
use super::block_merge::{BlockMerge, Blocks, Piece};
use super::compressed::{unseal, unseal_recent};
use super::guard::Guarded;
use super::merge::{Merged, RunIter};
use super::run_filter::{FILTER_PREFIX, filter_key};
use super::run_keys::{Packed, RUN_PREFIX, block_key, run_prefix};
use super::sink::BlockSink;
use super::{ProjectionStore, reclaim_sled_garbage, store_error};
use crate::error::{Error, Result};
use crate::session::SessionState;

pub(super) const RUNS_KEY: &[u8] = b"runs";
/// Runs of one level merged at once.
const MERGE_FAN_IN: usize = 4;
/// A merge writes at most this many sessions: runs that would merge into a
/// larger one stay as they are. A merge runs on the checkpoint thread, and
/// one of a whole 5M-session history held commands up for 24 s; this one
/// takes a fraction of a second. Past it, runs grow in number with the
/// history (one per ~256 Ki sessions), and a lookup of an old id skips
/// those whose first and last ids do not bracket it.
const MERGE_SESSIONS_MAX: u64 = 256 * 1024;
/// Blocks of a replaced run removed in one sled batch.
const REMOVED_PER_BATCH: usize = 256;

// Format: { next_id u64 | runs [{ id u64 | level u32 | sessions u64
//           | first string | last string }] newest first | garbage [u64] }
//           (codec-encoded)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Runs {
    pub next_id: u64,
    pub runs: Vec<RunInfo>,
    /// Runs a merge replaced whose blocks are not removed yet.
    pub garbage: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunInfo {
    pub id: u64,
    /// 0 for a checkpoint's run, one more than its inputs' for a merge's.
    pub level: u32,
    /// Entries in the run.
    pub sessions: u64,
    /// Its first and last ids: a lookup outside them skips the run (ids
    /// that grow with time, UUIDv7 or dated ones, skip all but a few).
    pub first: String,
    pub last: String,
}

impl Runs {
    /// The runs to merge next (positions, newest first): the newest
    /// `MERGE_FAN_IN` of the lowest level that has that many (neighbours,
    /// since the runs are in level order), unless together they hold more
    /// than `MERGE_SESSIONS_MAX`.
    pub fn to_merge(&self) -> Option<Range<usize>> {
        let mut start = 0;
        while start < self.runs.len() {
            let level = self.runs[start].level;
            let same = self.runs[start..].iter().take_while(|r| r.level == level).count();
            let group = start..start + MERGE_FAN_IN;
            if same >= MERGE_FAN_IN
                && self.runs[group.clone()].iter().map(|r| r.sessions).sum::<u64>() <= MERGE_SESSIONS_MAX
            {
                return Some(group);
            }
            start += same;
        }
        None
    }

    /// Records checkpoint run `id` (reserved), the newest.
    fn add(&mut self, id: u64, (sessions, first, last): Packed) {
        self.runs.insert(0, RunInfo { id, level: 0, sessions, first, last });
    }

    /// Records merged run `id` (reserved) in place of the runs at `range`,
    /// which become garbage.
    fn replace(&mut self, range: Range<usize>, id: u64, (sessions, first, last): Packed) {
        let level = self.runs[range.clone()].iter().map(|r| r.level).max().unwrap_or(0) + 1;
        let run = RunInfo { id, level, sessions, first, last };
        let merged: Vec<RunInfo> = self.runs.splice(range, [run]).collect();
        self.garbage.extend(merged.iter().map(|r| r.id));
    }
}

/// A merge of runs that keeps their blocks from being removed until dropped.
struct Reading<'a> {
    _reading: RwLockReadGuard<'a, ()>,
    merged: Merged<'a>,
}

impl Iterator for Reading<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        self.merged.next()
    }
}

impl ProjectionStore {
    pub(super) fn runs(&self) -> MutexGuard<'_, Runs> {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reading_blocks(&self) -> RwLockReadGuard<'_, ()> {
        self.blocks.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn packed_error(&self, key: &[u8]) -> Error {
        store_error(&self.path, "reading packed sessions", &format!("a block's key {key:?} names no id"))
    }

    /// Reads the manifest (at open) and removes blocks no run owns.
    pub(super) fn load_runs(&self) -> Result<()> {
        let runs = match self.guarded("reading the runs", || self.db.get(RUNS_KEY))? {
            None => Runs::default(),
            Some(bytes) => codec::decode(&bytes).map_err(|e| self.store_err(e))?,
        };
        let mut batch = sled::Batch::default();
        for (from, prefix) in
            [(run_prefix(runs.next_id), RUN_PREFIX), (filter_key(runs.next_id), FILTER_PREFIX)]
        {
            let end = super::prefix_end(prefix);
            let orphans = self.db.range(from.as_slice()..end.as_slice()).keys();
            for key in Guarded::new(orphans, &self.path, &self.failed.broken) {
                batch.remove(key?);
            }
        }
        self.guarded("removing blocks of an unfinished run", || self.db.apply_batch(batch))?;
        *self.runs() = runs;
        self.collect_garbage()
    }

    /// Writes the ended sessions among `sessions` as a new run; returns the
    /// manifest naming it, for the checkpoint's last batch.
    pub(super) fn stage_run(&self, sessions: &[&SessionState]) -> Result<Option<Runs>> {
        // Sized up front: a filtered collect grows step by step, and each
        // step's table of a few hundred KiB is given back when freed.
        let mut ended: Vec<Entry> = Vec::with_capacity(sessions.len());
        for s in sessions.iter().filter(|s| !s.active) {
            ended.push(Entry::of(s)?);
        }
        if ended.is_empty() {
            return Ok(None);
        }
        ended.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        ended.dedup_by(|later, earlier| later.id == earlier.id);
        let run = self.reserve_run_id();
        let packed =
            self.write_run(run, ended.len() as u64, ended.into_iter().map(|e| Ok(Piece::Entry(e))))?;
        let mut runs = self.runs().clone();
        runs.add(run, packed);
        Ok(Some(runs))
    }

    /// A run id no run of this store has had: ids are taken in memory
    /// first, so a write cut short by an error leaves its blocks under an id
    /// never used again. `write_run` then removes them; if that fails too,
    /// they are never read, and the next open removes them unless a
    /// manifest written since has moved `next_id` past them (then they stay
    /// until the store is rebuilt).
    fn reserve_run_id(&self) -> u64 {
        let mut runs = self.runs();
        runs.next_id += 1;
        runs.next_id - 1
    }

    /// Writes run `run` of about `expected` entries (or whole blocks a
    /// merge copies); on an error, tries to remove what it wrote.
    fn write_run(
        &self,
        run: u64,
        expected: u64,
        pieces: impl Iterator<Item = Result<Piece>>,
    ) -> Result<Packed> {
        let written = BlockSink::new(self, run, expected).pack(pieces);
        if written.is_err() {
            let _ = self.remove_run(run);
        }
        written
    }

    /// Removes the blocks and the filter of run `run`.
    ///
    /// The blocks go `REMOVED_PER_BATCH` a batch, each followed by freeing
    /// the pages sled retired: a merge of 256 Ki sessions leaves about
    /// 13 000 blocks to remove, and in one batch their pages piled up (peak
    /// RSS 10 MiB higher). A removal cut short leaves the run in `garbage`,
    /// for the next call or open to finish.
    fn remove_run(&self, run: u64) -> Result<()> {
        let keys = Guarded::new(self.db.scan_prefix(run_prefix(run)).keys(), &self.path, &self.failed.broken);
        let mut batch = sled::Batch::default();
        let mut staged = 0;
        for key in keys {
            batch.remove(key?);
            staged += 1;
            if staged == REMOVED_PER_BATCH {
                let full = std::mem::take(&mut batch);
                self.guarded("removing a run", || self.db.apply_batch(full))?;
                reclaim_sled_garbage(staged * 4);
                staged = 0;
            }
        }
        batch.remove(filter_key(run));
        self.guarded("removing a run", || self.db.apply_batch(batch))?;
        reclaim_sled_garbage(staged * 4);
        self.filters().remove(&run);
        Ok(())
    }

    /// The newest stored entry of the ended session `id`, from the runs.
    pub(super) fn find_ended(&self, id: &str) -> Result<Option<SessionState>> {
        let _reading = self.reading_blocks();
        let runs: Vec<u64> = self
            .runs()
            .runs
            .iter()
            .filter(|r| r.first.as_str() <= id && id <= r.last.as_str())
            .map(|r| r.id)
            .collect();
        for run in runs {
            if !self.may_hold(run, id)? {
                continue;
            }
            let (from, to) = (run_prefix(run), block_key(run, id));
            let found = self.guarded("reading packed sessions", || {
                self.db.range(from.as_slice()..=to.as_slice()).next_back().transpose()
            })?;
            let Some((_, block)) = found else { continue };
            let block = self.packed(unseal_recent(&block))?;
            if let Some(rest) = self.packed(BlockReader::new(&block).find(id))? {
                return self.packed(Entry { id: id.to_string(), rest }.state()).map(Some);
            }
        }
        Ok(None)
    }

    /// The entries of run `run`, in id order.
    fn run_entries(&self, run: u64) -> RunIter<'_> {
        let blocks =
            Guarded::new(self.db.scan_prefix(run_prefix(run)).values(), &self.path, &self.failed.broken);
        Box::new(blocks.flat_map(move |block| match block {
            Ok(block) => match self.packed(unseal(&block)) {
                Ok(block) => BlockReader::new(&block).map(|e| self.packed(e)).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            },
            Err(e) => vec![Err(e)],
        }))
    }

    /// The blocks of run `run`, in id order, each with the first id its key
    /// names.
    fn run_blocks(&self, run: u64) -> Blocks<'_> {
        let prefix = run_prefix(run);
        let skip = prefix.len();
        let blocks = Guarded::new(self.db.scan_prefix(prefix), &self.path, &self.failed.broken);
        Box::new(blocks.map(move |block| {
            let (key, stored) = block?;
            let first = key.get(skip..).and_then(|id| std::str::from_utf8(id).ok());
            let first = first.ok_or_else(|| self.packed_error(&key))?;
            Ok((first.to_string(), stored))
        }))
    }

    /// Every ended session's newest entry, in id order, including those
    /// active again (callers skip them). Blocks are not removed meanwhile.
    pub(super) fn ended_entries(&self) -> impl Iterator<Item = Result<Entry>> + '_ {
        let reading = self.reading_blocks();
        let runs: Vec<u64> = self.runs().runs.iter().map(|r| r.id).collect();
        let merged = Merged::new(runs.into_iter().map(|run| self.run_entries(run)).collect());
        Reading { _reading: reading, merged }
    }

    /// `ended_entries` without the sessions in `active`, whose `a/` records
    /// shadow their runs.
    pub(super) fn ended_unshadowed(
        &self,
        active: BTreeSet<String>,
    ) -> impl Iterator<Item = Result<Entry>> + '_ {
        self.ended_entries()
            .filter(move |entry| !entry.as_ref().is_ok_and(|entry| active.contains(&entry.id)))
    }

    /// Merges runs while some are due (see `Runs::to_merge`), then removes
    /// the blocks of the runs replaced.
    pub fn compact(&self) -> Result<()> {
        while self.merge_step()? {}
        Ok(())
    }

    /// One merge of runs, if one is due (`true`); else removes the blocks
    /// of runs merged before, if nothing reads them (`false`). A merge
    /// writes at most `MERGE_SESSIONS_MAX` sessions, so the checkpoint
    /// thread runs these between checkpoints without holding one up long.
    pub fn merge_step(&self) -> Result<bool> {
        self.sync_opened()?;
        let _writing = self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = self.runs().to_merge();
        match due {
            Some(range) => self.merge(range).map(|()| true),
            None => self.collect_garbage().map(|()| false),
        }
    }

    fn merge(&self, range: Range<usize>) -> Result<()> {
        let inputs: Vec<RunInfo> = self.runs().runs[range.clone()].to_vec();
        let run = self.reserve_run_id();
        let merged =
            BlockMerge::new(inputs.iter().map(|r| (self.run_blocks(r.id), r.last.clone())).collect())?;
        let packed = self.write_run(run, inputs.iter().map(|r| r.sessions).sum(), merged)?;
        let mut runs = self.runs().clone();
        let sessions = packed.0;
        runs.replace(range, run, packed);
        let manifest = codec::encode(&runs)?;
        self.guarded("recording merged sessions", || self.db.insert(RUNS_KEY, manifest))?;
        tracing::debug!(runs = inputs.len(), sessions, "merged runs of ended sessions");
        *self.runs() = runs;
        Ok(())
    }

    /// Removes the blocks of runs a merge replaced, unless something is
    /// reading blocks (then a later call does).
    fn collect_garbage(&self) -> Result<()> {
        let garbage = self.runs().garbage.clone();
        if garbage.is_empty() {
            return Ok(());
        }
        let Ok(_alone) = self.blocks.try_write() else { return Ok(()) };
        for &run in &garbage {
            self.remove_run(run)?;
        }
        let mut runs = self.runs().clone();
        runs.garbage.retain(|g| !garbage.contains(g));
        let manifest = codec::encode(&runs)?;
        self.guarded("recording merged runs removed", || self.db.insert(RUNS_KEY, manifest))?;
        *self.runs() = runs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(levels: &[u32]) -> Runs {
        let runs = levels
            .iter()
            .enumerate()
            .map(|(i, &level)| RunInfo {
                id: i as u64,
                level,
                sessions: 1000,
                first: "a".into(),
                last: "z".into(),
            })
            .collect();
        Runs { next_id: levels.len() as u64, runs, garbage: Vec::new() }
    }

    /// The newest four of the lowest level with four runs merge; fewer
    /// wait; runs that would merge past the size bound stay.
    #[test]
    fn four_runs_of_one_level_merge() {
        assert_eq!(runs(&[0, 0, 0, 1, 1, 1]).to_merge(), None);
        assert_eq!(runs(&[0, 0, 0, 0, 1, 2]).to_merge(), Some(0..4));
        assert_eq!(runs(&[0, 1, 1, 1, 1, 1, 2, 2, 2, 2]).to_merge(), Some(1..5));
        let mut big = runs(&[0, 0, 0, 5, 5, 5, 5, 5]);
        for r in &mut big.runs[3..] {
            r.sessions = MERGE_SESSIONS_MAX / 2;
        }
        assert_eq!(big.to_merge(), None);
        big.add(8, (10, "a".into(), "b".into()));
        assert_eq!(big.to_merge(), Some(0..4));
    }

    /// After any number of checkpoints the runs stay in level order, few
    /// below the size bound, and none past it.
    #[test]
    fn checkpoints_leave_few_runs_in_level_order() {
        let mut all = Runs::default();
        for n in 1..=5000u64 {
            all.next_id += 1;
            all.add(all.next_id - 1, (1000, "a".into(), "z".into()));
            while let Some(range) = all.to_merge() {
                let sessions = all.runs[range.clone()].iter().map(|r| r.sessions).sum();
                all.next_id += 1;
                all.replace(range, all.next_id - 1, (sessions, "a".into(), "z".into()));
            }
            assert!(all.runs.windows(2).all(|w| w[0].level <= w[1].level), "after {n}");
            // Three a level below the size bound, then one per quarter of it.
            let bound = 3 * 6 + (n * 1000).div_ceil(MERGE_SESSIONS_MAX / 4) as usize;
            assert!(all.runs.len() <= bound, "{} runs after {n}", all.runs.len());
            assert!(all.runs.iter().all(|r| r.sessions <= MERGE_SESSIONS_MAX));
        }
    }
}
