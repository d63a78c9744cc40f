//! The known-ids filter in memory: a Bloom filter per generation, the ids
//! kept aside while a saved one loads, and the scan's handle.

use std::sync::{Mutex, MutexGuard};

use crate::store::ProjectionStore;

/// False-positive rate of each known-ids filter.
const KNOWN_IDS_FALSE_POSITIVE: f64 = 0.01;
/// The smallest known-ids filter (about 1.2 MB at 1%).
const KNOWN_IDS_CAPACITY_MIN: usize = 1 << 20;

/// Seeded per store and saved with the filter, so a saved filter can be
/// loaded by the next process.
pub(super) type IdFilter = fastbloom::BloomFilter<foldhash::fast::FixedState>;

/// Which session ids the store may hold: a Bloom filter per generation
/// (each twice the size of the one before, so it never has to be rebuilt),
/// filled by a scan of the store after open and by every save since. Once
/// the scan is complete, a start of a new id is answered "not stored"
/// without asking sled, whose reads wait while a checkpoint batch is applied
/// (`apply_batch` holds sled's global write lock). A false positive only
/// costs the sled lookup it would have cost anyway.
#[derive(Default)]
pub(in crate::store) struct KnownIds {
    filters: Mutex<Vec<(IdFilter, usize)>>,
    pub(in crate::store) seed: std::sync::atomic::AtomicU64,
    /// Every id in the store is in `filters`.
    pub(in crate::store) complete: std::sync::atomic::AtomicBool,
    /// Asks the startup scan to stop (the store is closing).
    pub(in crate::store) stop: std::sync::atomic::AtomicBool,
    /// What the scan found wrong with the store, for its owner to act on.
    problem: Mutex<Option<String>>,
    /// The CRC of the saved filter file while `filters` still has exactly
    /// its bits (loaded or saved, and no bit set since): a close then only
    /// records the new LSN. Locked after `filters`.
    saved_crc: Mutex<Option<u32>>,
    /// While a saved filter is being loaded: the ids inserted meanwhile,
    /// added to it once it is in place. Locked after `filters`.
    pending: Mutex<Option<Vec<String>>>,
    /// The filter came from the file a clean close saved (not a scan).
    pub(in crate::store) loaded: std::sync::atomic::AtomicBool,
}

impl KnownIds {
    pub(in crate::store) fn problem(&self) -> MutexGuard<'_, Option<String>> {
        self.problem.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(in crate::store) fn filters(&self) -> MutexGuard<'_, Vec<(IdFilter, usize)>> {
        self.filters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(in crate::store) fn saved_crc(&self) -> MutexGuard<'_, Option<u32>> {
        self.saved_crc.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(in crate::store) fn pending(&self) -> MutexGuard<'_, Option<Vec<String>>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits (at most `limit`) while a saved filter is being loaded: a
    /// close right after an open must still save it, or the next open
    /// scans the whole store. A scan is not waited for.
    pub(super) fn wait_for_load(&self, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.pending().is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Puts a loaded filter in place, with the ids inserted while it was
    /// loaded (`crc` is its file's, if it still has the file's bits).
    /// Nothing, if the filter was reset meanwhile (the store was cleared).
    pub(in crate::store) fn install(&self, loaded: Vec<(IdFilter, usize)>, seed: u64, crc: Option<u32>) {
        let mut filters = self.filters();
        let Some(inserted) = self.pending().take() else { return };
        *filters = loaded;
        self.seed.store(seed, std::sync::atomic::Ordering::Relaxed);
        *self.saved_crc() = crc;
        self.loaded.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(filters);
        self.insert(inserted.iter().map(String::as_str));
        self.complete.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Starts over for a store that holds `expected` sessions.
    pub(in crate::store) fn reset(&self, expected: usize, complete: bool) {
        let mut filters = self.filters();
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        };
        self.seed.store(seed, std::sync::atomic::Ordering::Relaxed);
        filters.clear();
        filters.push((Self::filter(expected, seed), 0));
        *self.saved_crc() = None;
        *self.pending() = None;
        self.loaded.store(false, std::sync::atomic::Ordering::Relaxed);
        self.complete.store(complete, std::sync::atomic::Ordering::Release);
    }

    pub(in crate::store) fn filter(expected: usize, seed: u64) -> IdFilter {
        fastbloom::BloomFilter::with_false_pos(KNOWN_IDS_FALSE_POSITIVE)
            .hasher(foldhash::fast::FixedState::with_seed(seed))
            .expected_items(expected.max(KNOWN_IDS_CAPACITY_MIN))
    }

    pub(in crate::store) fn insert<'a>(&self, ids: impl Iterator<Item = &'a str>) {
        let mut filters = self.filters();
        let mut pending = self.pending();
        let seed = self.seed.load(std::sync::atomic::Ordering::Relaxed);
        let kept_aside = ids.inspect(|id| {
            if let Some(pending) = pending.as_mut() {
                pending.push(id.to_string());
            }
        });
        if add_ids(&mut filters, seed, kept_aside) {
            *self.saved_crc() = None;
        }
    }

    /// Whether `id` is surely not in the store.
    pub(in crate::store) fn surely_absent(&self, id: &str) -> bool {
        self.complete.load(std::sync::atomic::Ordering::Acquire)
            && !self.filters().iter().any(|(f, _)| f.contains(id))
    }
}

/// Adds `ids` to the newest of `filters` (seeded with `seed`), first adding
/// a generation twice the size of the last when it is full; true if a bit
/// changed.
pub(super) fn add_ids<'a>(
    filters: &mut Vec<(IdFilter, usize)>,
    seed: u64,
    ids: impl Iterator<Item = &'a str>,
) -> bool {
    let mut changed = false;
    for id in ids {
        let needs_more = filters.last().is_none_or(|(f, n)| *n >= capacity(f));
        if needs_more {
            let next = filters.last().map_or(0, |(f, _)| 2 * capacity(f));
            filters.push((KnownIds::filter(next, seed), 0));
            changed = true;
        }
        if let Some((filter, n)) = filters.last_mut() {
            // `insert` is true when every bit was set already.
            changed |= !filter.insert(id);
            *n += 1;
        }
    }
    changed
}

/// The items a filter was sized for (bits per item at the target rate).
fn capacity(filter: &IdFilter) -> usize {
    let bits_per_item = -KNOWN_IDS_FALSE_POSITIVE.ln() / std::f64::consts::LN_2.powi(2);
    (filter.num_bits() as f64 / bits_per_item) as usize
}

/// The running scan that fills the known-ids filter; dropping it stops the
/// scan and waits for its thread, so the store is never left scanned by a
/// thread nobody owns.
pub struct IdScan {
    pub(super) store: ProjectionStore,
    pub(super) handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for IdScan {
    fn drop(&mut self) {
        self.store.known.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::warn!(store = %self.store.path().display(), "the known-ids scan panicked");
        }
    }
}
