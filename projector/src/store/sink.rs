//! Writing a run: entries packed into blocks (or whole blocks a merge
//! copies) put in sled `BLOCKS_PER_BATCH` a batch, and the run's filter
//! written with the last of them.

use super::block::{BlockWriter, Entry};
use super::block_merge::{Piece, block_ids};
use super::compressed::seal;
use super::run_filter::{RunFilter, filter_key, new_filter};
use super::run_keys::{Packed, block_key};
use super::{ProjectionStore, reclaim_sled_garbage};
use crate::error::{Error, Result};

/// Blocks written in one sled batch.
const BLOCKS_PER_BATCH: usize = 64;

/// Blocks being written to sled and the run's filter.
pub(super) struct BlockSink<'a> {
    store: &'a ProjectionStore,
    run: u64,
    batch: sled::Batch,
    staged: usize,
    filter: RunFilter,
    /// Entries written so far, and the first and last ids among them.
    count: u64,
    first: Option<String>,
    last: String,
}

impl<'a> BlockSink<'a> {
    /// A sink for run `run` of about `expected` sessions.
    pub fn new(store: &'a ProjectionStore, run: u64, expected: u64) -> BlockSink<'a> {
        BlockSink {
            store,
            run,
            batch: sled::Batch::default(),
            staged: 0,
            filter: new_filter(expected),
            count: 0,
            first: None,
            last: String::new(),
        }
    }
}

impl BlockSink<'_> {
    fn put(&mut self, first: &str, stored: impl Into<sled::IVec>) -> Result<()> {
        self.batch.insert(block_key(self.run, first), stored);
        self.staged += 1;
        if self.staged == BLOCKS_PER_BATCH {
            let batch = std::mem::take(&mut self.batch);
            self.store.guarded("writing packed sessions", || self.store.db.apply_batch(batch))?;
            reclaim_sled_garbage(self.staged * 16);
            self.staged = 0;
        }
        Ok(())
    }

    fn put_new(&mut self, (first, block): (String, Vec<u8>)) -> Result<()> {
        let stored = self.store.packed(seal(block))?;
        self.put(&first, stored)
    }

    /// Counts `id`, the run's next, into the run's filter and bounds.
    fn note(&mut self, id: &str) -> Result<()> {
        if self.first.is_some() && id <= self.last.as_str() {
            return Err(damaged(&format!("id {id:?} does not come after {:?}", self.last)));
        }
        self.count += 1;
        self.filter.insert(id);
        self.first.get_or_insert_with(|| id.to_string());
        self.last.clear();
        self.last.push_str(id);
        Ok(())
    }

    /// Packs `pieces` (in id order, each id once) into blocks and writes
    /// them; returns what they hold. Nothing names them yet.
    pub fn pack(mut self, pieces: impl Iterator<Item = Result<Piece>>) -> Result<Packed> {
        let mut writer = BlockWriter::default();
        for piece in pieces {
            match piece? {
                Piece::Entry(entry) => self.pack_entry(&mut writer, &entry)?,
                Piece::Block { first, stored } => {
                    if let Some(block) = writer.finish() {
                        self.put_new(block)?;
                    }
                    let ids = block_ids(&first, &stored, |id| self.note(id));
                    self.store.packed(ids)?;
                    // A fresh copy: a value read from sled may be a slice
                    // of the whole node it was read with, which it would
                    // keep in memory for as long as it is cached.
                    self.put(&first, &*stored)?;
                }
            }
        }
        if let Some(block) = writer.finish() {
            self.put_new(block)?;
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.insert(filter_key(self.run), super::run_filter::encode(&self.filter)?);
        self.store.guarded("writing packed sessions", || self.store.db.apply_batch(batch))?;
        Ok((self.count, self.first.unwrap_or_default(), self.last))
    }

    fn pack_entry(&mut self, writer: &mut BlockWriter, entry: &Entry) -> Result<()> {
        let noted = self.note(&entry.id);
        self.store.packed(noted)?;
        if let Some(block) = self.store.packed(writer.push(entry))? {
            self.put_new(block)?;
        }
        Ok(())
    }
}

fn damaged(reason: &str) -> Error {
    Error::Store { path: std::path::PathBuf::from("projection"), reason: format!("a run: {reason}") }
}
