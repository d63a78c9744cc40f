//! One Bloom filter per run, so that a lookup of an old session reads the
//! blocks of the runs that may hold its id, not those of every run whose
//! first and last ids bracket it (every run, when ids are random or a
//! gateway reuses old ones).
//!
//! A run's filter is written with its blocks under `b/<run id u64 BE>`:
//! `{ hashes u32 | bits [u64] }` (codec-encoded, fixed hash seed), and read
//! on the run's first lookup. A run without one is simply read.

use std::collections::HashMap;
use std::sync::Arc;

use bookend_journal::codec;
use serde::{Deserialize, Serialize};

use super::ProjectionStore;
use crate::error::Result;

pub(super) const FILTER_PREFIX: &[u8] = b"b/";
/// Fixed, since filters are stored and read back by other processes.
const SEED: u64 = 0x626f_6f6b_656e_6421;
const FALSE_POSITIVE: f64 = 0.01;

pub(super) type RunFilter = fastbloom::BloomFilter<foldhash::fast::FixedState>;

/// The filters read so far, by run (`None`: the run has none stored).
pub(super) type Filters = HashMap<u64, Option<Arc<RunFilter>>>;

// Format: { hashes u32 | bits [u64] } (codec-encoded)
#[derive(Serialize, Deserialize)]
struct StoredFilter {
    hashes: u32,
    bits: Vec<u64>,
}

pub(super) fn filter_key(run: u64) -> Vec<u8> {
    super::run_key(FILTER_PREFIX, run)
}

/// An empty filter for about `expected` ids.
pub(super) fn new_filter(expected: u64) -> RunFilter {
    fastbloom::BloomFilter::with_false_pos(FALSE_POSITIVE)
        .hasher(foldhash::fast::FixedState::with_seed(SEED))
        .expected_items(usize::try_from(expected.max(16)).unwrap_or(usize::MAX))
}

/// A filter's stored bytes.
pub(super) fn encode(filter: &RunFilter) -> Result<Vec<u8>> {
    Ok(codec::encode(&StoredFilter { hashes: filter.num_hashes(), bits: filter.as_slice().to_vec() })?)
}

impl ProjectionStore {
    /// Whether run `run` may hold `id` (its filter, read on first use, says
    /// so, or it has none).
    pub(super) fn may_hold(&self, run: u64, id: &str) -> Result<bool> {
        let cached = self.filters().get(&run).cloned();
        let filter = match cached {
            Some(filter) => filter,
            None => {
                let bytes = self.guarded("reading a run's filter", || self.db.get(filter_key(run)))?;
                let filter = match bytes {
                    None => None,
                    Some(bytes) => {
                        let stored: StoredFilter = codec::decode(&bytes).map_err(|e| self.store_err(e))?;
                        let filter = fastbloom::BloomFilter::from_vec(stored.bits)
                            .hasher(foldhash::fast::FixedState::with_seed(SEED))
                            .hashes(stored.hashes);
                        Some(Arc::new(filter))
                    }
                };
                self.filters().insert(run, filter.clone());
                filter
            }
        };
        Ok(filter.is_none_or(|f| f.contains(id)))
    }

    pub(super) fn filters(&self) -> std::sync::MutexGuard<'_, Filters> {
        self.filters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
