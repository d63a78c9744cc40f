//! The known-ids filter: which session ids the projection store may hold,
//! so that a start of a new id need not ask sled: the filter itself
//! (`filter.rs`), its file (`file.rs`), and how it is saved, loaded and
//! filled here.

mod file;
mod filter;

use bookend_journal::codec;
use serde::{Deserialize, Serialize};

use super::{ACTIVE_PREFIX, ProjectionStore};
use crate::error::{Error, Result};
use file::KNOWN_IDS_FORMAT;
use filter::IdFilter;
pub use filter::IdScan;
pub(in crate::store) use filter::KnownIds;

/// Ids the startup scan adds per lock of the filters.
const KNOWN_IDS_SCAN_CHUNK: usize = 4096;

/// A saved filter as loaded: its generations (each with its count of ids),
/// its seed, and its file's CRC if it still has the file's bits.
type LoadedIds = (Vec<(IdFilter, usize)>, u64, Option<u32>);

/// Reads the journal: the ids of the sessions started at LSNs `from..=to`
/// (only a start brings a new id into the store). A filter saved with an
/// older checkpoint (the process after its clean close was killed) is
/// caught up with them instead of scanning the store.
/// It stops early, returning `None`, once the flag it is given is set (the
/// store is closing).
pub type StartedIds =
    Box<dyn FnOnce(u64, u64, &std::sync::atomic::AtomicBool) -> Result<Option<Vec<String>>> + Send>;

/// A saved filter is caught up from the journal when that reads at most
/// this many events per stored session (or per 64 Ki, if fewer are
/// stored): reading and decoding an event costs about a third of what
/// scanning one id out of sled does.
const KNOWN_IDS_CATCH_UP_EVENTS_PER_ID: u64 = 2;

/// The filter itself, a file of a megabyte or more beside sled's own in
/// the store's directory, replaced atomically and only when its bits
/// change. Kept in sled it was a blob, and sled keeps replaced blobs (and
/// copies them when it relocates their pointers) for a long while: every
/// clean open and close grew the store by the filter's size.
pub(in crate::store) const KNOWN_IDS_FILE_NAME: &str = "known-ids";
/// In sled: which checkpoint the filter file belongs to, and its CRC;
/// rewritten at every clean close (a few bytes).
const KNOWN_IDS_AT_KEY: &[u8] = b"known-ids-at";
/// Where format 1 kept the filter, in sled: removed by the first save.
const KNOWN_IDS_FORMAT_1_KEY: &[u8] = b"known-ids";
/// The longest a clean close waits for a saved filter still being loaded.
const KNOWN_IDS_LOAD_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// Ids read back from the store to check a loaded filter against.
const KNOWN_IDS_PROBES: usize = 256;

// Format: { format u32 | lsn u64 | crc u32 } (codec-encoded): the filter
// record whose bytes have CRC `crc` holds every id of the checkpoint at `lsn`.
#[derive(Serialize, Deserialize)]
struct KnownIdsAt {
    format: u32,
    lsn: u64,
    crc: u32,
}

fn hash_probe(seed: u64) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(seed).hash_one("bookend known-ids probe")
}

impl ProjectionStore {
    /// Fills the known-ids filter on a thread of its own: with the filter
    /// the previous owner saved on a clean close, if it is whole and holds
    /// the stored ids it is checked against; it was saved with the
    /// checkpoint at `lsn`, or with an older one and is caught up with the
    /// ids `started` reads from the journal since. Else by a scan of every
    /// session id in the store (`stored` of them). Until it is done,
    /// lookups ask sled. Dropping the returned handle stops the scan and
    /// waits for the thread.
    pub fn start_id_scan(&self, stored: u64, lsn: u64, started: Option<StartedIds>) -> Result<IdScan> {
        *self.known.pending() = Some(Vec::new());
        let store = self.clone();
        std::thread::Builder::new()
            .name("bookend-id-scan".into())
            .spawn(move || {
                let began = std::time::Instant::now();
                match store.load_known_ids(lsn, stored, started) {
                    Ok(Some((filters, seed, crc))) => {
                        store.known.install(filters, seed, crc);
                        let ms = began.elapsed().as_millis() as u64;
                        tracing::debug!(ms, "known-ids filter loaded from the last clean close");
                        return;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "the saved known-ids filter is unusable; scanning the store"),
                }
                let expected = usize::try_from(stored).unwrap_or(usize::MAX / 2).saturating_mul(2);
                // The scan finds the ids saved meanwhile in the store itself.
                store.known.reset(expected, false);
                store.scan_into_filter(stored, began);
            })
            .map(|handle| IdScan { store: self.clone(), handle: Some(handle) })
            .map_err(|e| {
                // No load will take the ids kept aside for it.
                *self.known.pending() = None;
                Error::Io { op: "spawn the id scan for", path: self.path.clone(), source: e }
            })
    }

    /// Scans the store's ids into the filter and marks it complete, unless
    /// the store holds fewer than the `stored` its checkpoint counted.
    fn scan_into_filter(&self, stored: u64, started: std::time::Instant) {
        match self.scan_ids() {
            Ok(Some(ids)) if ids < stored => {
                // Saves since open only add ids: fewer than the checkpoint
                // counted means sled lost records.
                let problem = format!("it holds {ids} sessions but its checkpoint counted {stored}");
                *self.known.problem() = Some(problem);
            }
            Ok(Some(ids)) => {
                self.known.complete.store(true, std::sync::atomic::Ordering::Release);
                tracing::debug!(
                    sessions = ids,
                    ms = started.elapsed().as_millis() as u64,
                    "known-ids filter ready: starts of new ids no longer read the checkpoint store"
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "could not list the checkpoint store's sessions; every start will look its id up there"
            ),
        }
    }

    /// Saves the known-ids filter for the checkpoint at `lsn` (on a clean
    /// close, after the last checkpoint), if every stored id is in it.
    pub fn save_known_ids(&self, lsn: u64) -> Result<()> {
        self.known.wait_for_load(KNOWN_IDS_LOAD_WAIT_MAX);
        if !self.ids_known() {
            return Ok(());
        }
        self.sync_opened()?;
        let crc = self.write_known_ids_file()?;
        let at = codec::encode(&KnownIdsAt { format: KNOWN_IDS_FORMAT, lsn, crc })?;
        self.guarded("saving the known-ids filter's LSN", || self.db.insert(KNOWN_IDS_AT_KEY, at))?;
        if self
            .guarded("reading the old known-ids filter", || self.db.contains_key(KNOWN_IDS_FORMAT_1_KEY))?
        {
            self.guarded("removing the old known-ids filter", || self.db.remove(KNOWN_IDS_FORMAT_1_KEY))?;
        }
        Ok(())
    }

    /// Writes the filter file unless it already holds these bits; returns
    /// the file's CRC.
    fn write_known_ids_file(&self) -> Result<u32> {
        let filters = self.known.filters();
        let mut saved = self.known.saved_crc();
        if let Some(crc) = *saved {
            return Ok(crc);
        }
        let seed = self.known.seed.load(std::sync::atomic::Ordering::Relaxed);
        let path = self.path.join(KNOWN_IDS_FILE_NAME);
        let crc = file::write(&path, seed, hash_probe(seed), &filters).map_err(|source| Error::Io {
            op: "write the known-ids filter",
            path,
            source,
        })?;
        *saved = Some(crc);
        Ok(crc)
    }

    /// The saved filter file, if it was saved for the checkpoint at `lsn`
    /// and is whole, with the LSN it was saved at.
    fn saved_known_ids(&self, lsn: u64) -> Result<Option<(file::Read, u64)>> {
        let Some(at) =
            self.guarded("reading the known-ids filter's LSN", || self.db.get(KNOWN_IDS_AT_KEY))?
        else {
            return Ok(None);
        };
        let at: KnownIdsAt = codec::decode(&at).map_err(|e| self.store_err(e))?;
        if at.format != KNOWN_IDS_FORMAT || at.lsn > lsn {
            return Ok(None);
        }
        // A file that cannot be read only costs the next open a scan.
        let path = self.path.join(KNOWN_IDS_FILE_NAME);
        let read = file::read(&path).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "could not read the saved known-ids filter; scanning the store instead");
            None
        });
        Ok(read.filter(|(_, _, crc)| *crc == at.crc).map(|read| (read, at.lsn)))
    }

    /// A saved filter, if its hash function is unchanged, it was saved at
    /// `lsn` or caught up to it with the ids `started` reads from the
    /// journal, and it holds the first stored ids: its filters, seed and
    /// the CRC of its file (if its bits are still the file's).
    fn load_known_ids(
        &self,
        lsn: u64,
        stored: u64,
        started: Option<StartedIds>,
    ) -> Result<Option<LoadedIds>> {
        let Some(((header, words, file_crc), saved_at)) = self.saved_known_ids(lsn)? else { return Ok(None) };
        if header.probe != hash_probe(header.seed) {
            return Ok(None);
        }
        let mut filters: Vec<(IdFilter, usize)> = header
            .filters
            .iter()
            .zip(words)
            .map(|(&(hashes, n, _), bits)| {
                let filter = fastbloom::BloomFilter::from_vec(bits)
                    .hasher(foldhash::fast::FixedState::with_seed(header.seed))
                    .hashes(hashes);
                (filter, usize::try_from(n).unwrap_or(usize::MAX))
            })
            .collect();
        let mut crc = Some(file_crc);
        if saved_at < lsn {
            let Some(ids) = self.catch_up(saved_at, lsn, stored, started)? else { return Ok(None) };
            if filter::add_ids(&mut filters, header.seed, ids.iter().map(String::as_str)) {
                crc = None;
            }
        }
        // Ids this process saved since the load began are kept aside to be
        // added; the store may already hold them.
        let kept: std::collections::HashSet<String> =
            self.known.pending().iter().flatten().cloned().collect();
        let ended = self.ended_entries().take(KNOWN_IDS_PROBES / 2).map(|e| e.map(|e| e.id));
        let active = self.keys(ACTIVE_PREFIX).take(KNOWN_IDS_PROBES / 2);
        for id in ended.chain(active.map(|key| Ok(self.id_of(&key?)?.to_string()))) {
            let id = id?;
            if !filters.iter().any(|(f, _)| f.contains(&id)) && !kept.contains(&id) {
                return Ok(None);
            }
        }
        Ok(Some((filters, header.seed, crc)))
    }

    /// The ids started after `saved_at` up to `lsn`, read from the journal,
    /// if that reads fewer events than a scan of the store (`stored` ids)
    /// costs; `None` to scan the store instead.
    fn catch_up(
        &self,
        saved_at: u64,
        lsn: u64,
        stored: u64,
        started: Option<StartedIds>,
    ) -> Result<Option<Vec<String>>> {
        let Some(started) = started else { return Ok(None) };
        let events = lsn - saved_at;
        if events > stored.max(1 << 16).saturating_mul(KNOWN_IDS_CATCH_UP_EVENTS_PER_ID) {
            return Ok(None);
        }
        let began = std::time::Instant::now();
        let ids = started(saved_at + 1, lsn, &self.known.stop)?;
        if let Some(ids) = &ids {
            let ms = began.elapsed().as_millis() as u64;
            tracing::debug!(events, ids = ids.len(), ms, "known-ids filter caught up from the journal");
        }
        Ok(ids)
    }

    /// Adds every stored session id (active, then ended and not active
    /// again) to the filter, and counts them; `None` if stopped.
    fn scan_ids(&self) -> Result<Option<u64>> {
        let mut chunk: Vec<String> = Vec::with_capacity(KNOWN_IDS_SCAN_CHUNK);
        let mut count = 0u64;
        // An id that cannot be read fails the scan (the filter then never
        // claims completeness) rather than being left out of it.
        let mut flush = |chunk: &mut Vec<String>| {
            self.known.insert(chunk.iter().map(String::as_str));
            count += chunk.len() as u64;
            chunk.clear();
            for _ in 0..64 {
                crossbeam_epoch::pin().flush();
            }
        };
        let (active_ids, ended) = self.stored_ids()?;
        for id in active_ids.into_iter().map(Ok).chain(ended) {
            if self.known.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(None);
            }
            chunk.push(id?);
            if chunk.len() == KNOWN_IDS_SCAN_CHUNK {
                flush(&mut chunk);
            }
        }
        flush(&mut chunk);
        Ok(Some(count))
    }

    /// The active ids and an iterator of the other stored ids, as of one
    /// moment: no save or merge runs between reading the active keys and
    /// taking the list of runs. A save that ended a session in between (its
    /// `a/` record gone, the run holding it not yet in the list) used to
    /// hide it from the scan, which then counted fewer sessions than the
    /// checkpoint and had a sound store rebuilt.
    fn stored_ids(&self) -> Result<(Vec<String>, impl Iterator<Item = Result<String>> + '_)> {
        let _writing = self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let active = self.index(ACTIVE_PREFIX)?;
        let active_ids: Vec<String> = active.iter().cloned().collect();
        // Blocks stay while the iterator reads them, merged or not.
        let ended = self.ended_unshadowed(active).map(|e| e.map(|e| e.id));
        Ok((active_ids, ended))
    }

    /// Whether every stored id is in the known-ids filter.
    pub fn ids_known(&self) -> bool {
        self.known.complete.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the known-ids filter was loaded from the file the last clean
    /// close saved, rather than filled by a scan of the store.
    pub fn ids_loaded_from_file(&self) -> bool {
        self.known.loaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the startup scan found wrong with the store (it lost records),
    /// once: the owner then rebuilds it.
    pub fn take_problem(&self) -> Option<String> {
        self.known.problem().take()
    }

    /// Lookups the known-ids filter answered without reading sled.
    pub fn lookups_skipped(&self) -> u64 {
        self.lookups_skipped.load(std::sync::atomic::Ordering::Relaxed)
    }
}
