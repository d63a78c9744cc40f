//! The sled-backed checkpoint store: a rebuildable cache of folded state,
//! never the source of truth.
//!
//! One sled tree holds `meta` (the folded journal-wide state and the last
//! LSN folded), one record per session (`a/<session id>` while active,
//! `s/<session id>` once ended), `f/<session id>` index keys for sessions
//! awaiting finalization, `p/<name>` blobs for gateway-defined projections,
//! and `known-ids` (the Bloom filter of stored session ids, saved on a clean
//! close). A checkpoint writes the changed sessions and the meta record in
//! one sled batch, so the state and its LSN
//! never disagree. It is only written for LSNs that are already durable in
//! the journal. If the store is missing, corrupt, of another format, or
//! ahead of the journal, the owner rebuilds it from the journal.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bookend_journal::codec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::{Meta, SessionState};

/// Bump when the stored state changes shape: older stores are rebuilt.
pub const CHECKPOINT_FORMAT: u32 = 3;
/// Default sled page cache: the store is a cache, so keep it small.
pub const CACHE_CAPACITY_BYTES_DEFAULT: u64 = 8 * 1024 * 1024;

/// How long opening waits for another owner of the store to let go.
const LOCK_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

const META_KEY: &[u8] = b"meta";
const SESSION_PREFIX: &[u8] = b"s/";
/// `a/<id>`: an active session's record. Ended sessions are under `s/`, so
/// a session that starts and stays active costs one key, and the active set
/// is a prefix scan.
const ACTIVE_PREFIX: &[u8] = b"a/";
// `Checkpoint::id_of` strips any of these by the same length.
const _: () =
    assert!(ACTIVE_PREFIX.len() == SESSION_PREFIX.len() && AWAITING_PREFIX.len() == SESSION_PREFIX.len());
/// `f/<id>`: the session awaits finalization.
const AWAITING_PREFIX: &[u8] = b"f/";
const BLOB_PREFIX: &[u8] = b"p/";

// Format: { format u32 | last_lsn u64 | epoch u64 | epoch_open bool | sessions_total u64
//           | spans_total u64 | ends_by_reason map<string, u64> } (codec-encoded)
// The active and awaiting-finalization sets are not in it: they are index
// keys written with each session, so a checkpoint never copies them whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMeta {
    format: u32,
    last_lsn: u64,
    epoch: u64,
    epoch_open: bool,
    sessions_total: u64,
    spans_total: u64,
    ends_by_reason: std::collections::BTreeMap<String, u64>,
}

impl StoredMeta {
    /// The part of `meta` stored as the meta record.
    pub fn of(meta: &Meta) -> StoredMeta {
        StoredMeta {
            format: CHECKPOINT_FORMAT,
            last_lsn: meta.last_lsn,
            epoch: meta.epoch,
            epoch_open: meta.epoch_open,
            sessions_total: meta.sessions_total,
            spans_total: meta.spans_total,
            ends_by_reason: meta.ends_by_reason.clone(),
        }
    }
}

// Format: { lsn u64 | state bytes } (codec-encoded)
#[derive(Serialize, Deserialize)]
struct BlobRecord {
    lsn: u64,
    state: Vec<u8>,
}

/// The ids that have an index key in the store, once known (read by
/// `load_meta`, or empty after `clear`). With them a checkpoint writes only
/// the index keys that change: most sessions start and end between two
/// checkpoints and never have one, and a remove of an absent key still costs
/// sled a tree walk.
#[derive(Debug, Default)]
struct Indexed {
    active: HashSet<String>,
    awaiting: HashSet<String>,
}

/// False-positive rate of each known-ids filter.
const KNOWN_IDS_FALSE_POSITIVE: f64 = 0.01;
/// The smallest known-ids filter (about 1.2 MB at 1%).
const KNOWN_IDS_CAPACITY_MIN: usize = 1 << 20;
/// Ids the startup scan adds per lock of the filters.
const KNOWN_IDS_SCAN_CHUNK: usize = 4096;

/// Seeded per store and saved with the filter, so a saved filter can be
/// loaded by the next process.
type IdFilter = fastbloom::BloomFilter<foldhash::fast::FixedState>;

/// Bump when the saved known-ids record changes shape.
const KNOWN_IDS_FORMAT: u32 = 1;
const KNOWN_IDS_KEY: &[u8] = b"known-ids";
/// Ids read back from the store to check a loaded filter against.
const KNOWN_IDS_PROBES: usize = 256;

// Format: { format u32 | lsn u64 | seed u64 | probe u64 | filters seq<(hashes u32,
//           count u64, bits seq<u64>)> } (codec-encoded). `probe` is the hash of a
// fixed string under `seed`: if the hash function ever changes, the record is
// not trusted.
#[derive(Serialize, Deserialize)]
struct KnownIdsRecord {
    format: u32,
    lsn: u64,
    seed: u64,
    probe: u64,
    filters: Vec<(u32, u64, Vec<u64>)>,
}

fn hash_probe(seed: u64) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(seed).hash_one("bookend known-ids probe")
}

/// Which session ids the store may hold: a Bloom filter per generation
/// (each twice the size of the one before, so it never has to be rebuilt),
/// filled by a scan of the store after open and by every save since. Once
/// the scan is complete, a start of a new id is answered "not stored"
/// without asking sled, whose reads wait while a checkpoint batch is applied
/// (`apply_batch` holds sled's global write lock). A false positive only
/// costs the sled lookup it would have cost anyway.
#[derive(Default)]
struct KnownIds {
    filters: Mutex<Vec<(IdFilter, usize)>>,
    seed: std::sync::atomic::AtomicU64,
    /// Every id in the store is in `filters`.
    complete: std::sync::atomic::AtomicBool,
    /// Asks the startup scan to stop (the store is closing).
    stop: std::sync::atomic::AtomicBool,
}

impl KnownIds {
    fn filters(&self) -> MutexGuard<'_, Vec<(IdFilter, usize)>> {
        self.filters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts over for a store that holds `expected` sessions.
    fn reset(&self, expected: usize, complete: bool) {
        let mut filters = self.filters();
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        };
        self.seed.store(seed, std::sync::atomic::Ordering::Relaxed);
        filters.clear();
        filters.push((Self::filter(expected, seed), 0));
        self.complete.store(complete, std::sync::atomic::Ordering::Release);
    }

    fn filter(expected: usize, seed: u64) -> IdFilter {
        fastbloom::BloomFilter::with_false_pos(KNOWN_IDS_FALSE_POSITIVE)
            .hasher(foldhash::fast::FixedState::with_seed(seed))
            .expected_items(expected.max(KNOWN_IDS_CAPACITY_MIN))
    }

    fn insert<'a>(&self, ids: impl Iterator<Item = &'a str>) {
        let mut filters = self.filters();
        for id in ids {
            let needs_more = filters.last().is_none_or(|(f, n)| *n >= Self::capacity(f));
            if needs_more {
                let next = filters.last().map_or(0, |(f, _)| 2 * Self::capacity(f));
                let seed = self.seed.load(std::sync::atomic::Ordering::Relaxed);
                filters.push((Self::filter(next, seed), 0));
            }
            if let Some((filter, n)) = filters.last_mut() {
                filter.insert(id);
                *n += 1;
            }
        }
    }

    /// The items a filter was sized for (bits per item at the target rate).
    fn capacity(filter: &IdFilter) -> usize {
        let bits_per_item = -KNOWN_IDS_FALSE_POSITIVE.ln() / std::f64::consts::LN_2.powi(2);
        (filter.num_bits() as f64 / bits_per_item) as usize
    }

    /// Whether `id` is surely not in the store.
    fn surely_absent(&self, id: &str) -> bool {
        self.complete.load(std::sync::atomic::Ordering::Acquire)
            && !self.filters().iter().any(|(f, _)| f.contains(id))
    }
}

/// Frees what sled retired while writing `sessions` sessions. sled frees
/// replaced pages through crossbeam-epoch, which reclaims a few bags of them
/// (8 bags of 64) each time some thread pins, and `apply_batch` pins once per
/// batch: with no other thread reading sled (starts of new ids no longer do),
/// retired pages piled up (RSS grew to 360 MiB in 4 s of 64-task starts).
/// Each pin and flush here reclaims up to 512 of them (one per 4 sessions
/// written kept RSS near where it was); a pin with nothing to
/// reclaim costs tens of nanoseconds.
fn reclaim_sled_garbage(sessions: usize) {
    for _ in 0..sessions.div_ceil(4) + 16 {
        crossbeam_epoch::pin().flush();
    }
}

/// An open checkpoint store.
#[derive(Clone)]
pub struct Checkpoint {
    db: sled::Db,
    path: PathBuf,
    /// `None` until known: then every index key is written or removed.
    indexed: Arc<Mutex<Option<Indexed>>>,
    known: Arc<KnownIds>,
    /// Lookups answered without sled, for stats and tests.
    lookups_skipped: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("path", &self.path).finish_non_exhaustive()
    }
}

/// sled 0.34 reports a held lock as `ErrorKind::Other` with this message
/// (config.rs), not as `WouldBlock`; match both.
fn is_lock_conflict(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock"))
}

fn prefixed(prefix: &[u8], id: &str) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

fn session_key(id: &str) -> Vec<u8> {
    prefixed(SESSION_PREFIX, id)
}

impl Checkpoint {
    /// Opens (creating) the store at `path` with a page cache of
    /// `cache_capacity_bytes`.
    pub fn open(path: &Path, cache_capacity_bytes: u64) -> Result<Checkpoint> {
        // sled releases its file lock when its background threads finish,
        // a moment after the previous owner in this process dropped it.
        let deadline = std::time::Instant::now() + LOCK_WAIT_MAX;
        loop {
            match sled::Config::new().path(path).cache_capacity(cache_capacity_bytes).open() {
                Ok(db) => {
                    return Ok(Checkpoint {
                        db,
                        path: path.to_path_buf(),
                        indexed: Arc::default(),
                        known: Arc::default(),
                        lookups_skipped: Arc::default(),
                    });
                }
                Err(e) if is_lock_conflict(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) if is_lock_conflict(&e) => {
                    return Err(Error::CacheLocked { path: path.to_path_buf() });
                }
                Err(e) => return Err(Error::Cache { path: path.to_path_buf(), reason: e.to_string() }),
            }
        }
    }

    /// Opens the store, and if sled cannot open it (corrupt files, another
    /// format), moves it aside and starts an empty one. It is only a cache.
    pub fn open_or_reset(path: &Path, cache_capacity_bytes: u64) -> Result<Checkpoint> {
        match Self::open(path, cache_capacity_bytes) {
            Ok(store) => Ok(store),
            Err(e @ Error::CacheLocked { .. }) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "the projection cache cannot be opened; rebuilding it from the journal");
                let aside = path.with_extension("broken");
                let _ = std::fs::remove_dir_all(&aside);
                std::fs::rename(path, &aside).map_err(|e| Error::Io {
                    op: "move aside",
                    path: path.to_path_buf(),
                    source: e,
                })?;
                Self::open(path, cache_capacity_bytes)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cache_err(&self, e: impl std::fmt::Display) -> Error {
        Error::Cache { path: self.path.clone(), reason: e.to_string() }
    }

    /// The stored meta state (with the active and awaiting sets read from
    /// their index keys), or `None` if there is none of this format.
    pub fn load_meta(&self) -> Result<Option<Meta>> {
        let Some(bytes) = self.db.get(META_KEY).map_err(|e| self.cache_err(e))? else { return Ok(None) };
        let Ok(stored) = codec::decode::<StoredMeta>(&bytes) else { return Ok(None) };
        if stored.format != CHECKPOINT_FORMAT {
            return Ok(None);
        }
        let active = self.index(ACTIVE_PREFIX)?;
        let awaiting_finalization = self.index(AWAITING_PREFIX)?;
        *self.indexed() = Some(Indexed {
            active: active.iter().cloned().collect(),
            awaiting: awaiting_finalization.iter().cloned().collect(),
        });
        Ok(Some(Meta {
            last_lsn: stored.last_lsn,
            epoch: stored.epoch,
            epoch_open: stored.epoch_open,
            active,
            awaiting_finalization,
            sessions_total: stored.sessions_total,
            spans_total: stored.spans_total,
            ends_by_reason: stored.ends_by_reason,
        }))
    }

    fn indexed(&self) -> MutexGuard<'_, Option<Indexed>> {
        self.indexed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session id of a key under one of the two-byte prefixes.
    fn id_of<'k>(&self, key: &'k [u8]) -> Result<&'k str> {
        std::str::from_utf8(key.get(SESSION_PREFIX.len()..).unwrap_or_default())
            .map_err(|e| self.cache_err(e))
    }

    fn index(&self, prefix: &[u8]) -> Result<BTreeSet<String>> {
        let mut ids = BTreeSet::new();
        for item in self.db.scan_prefix(prefix) {
            let (key, _) = item.map_err(|e| self.cache_err(e))?;
            ids.insert(self.id_of(&key)?.to_string());
        }
        Ok(ids)
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionState>> {
        if self.known.surely_absent(id) {
            self.lookups_skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(None);
        }
        // Ended sessions first: the owner keeps every active one in memory,
        // so a lookup that reaches the store is almost always for an ended one.
        for key in [session_key(id), prefixed(ACTIVE_PREFIX, id)] {
            if let Some(bytes) = self.db.get(key).map_err(|e| self.cache_err(e))? {
                return codec::decode(&bytes).map(Some).map_err(|e| self.cache_err(e));
            }
        }
        Ok(None)
    }

    /// The stored active sessions, in id order.
    pub fn active_sessions(&self) -> impl Iterator<Item = Result<SessionState>> + '_ {
        self.db.scan_prefix(ACTIVE_PREFIX).map(move |item| {
            let (_, bytes) = item.map_err(|e| self.cache_err(e))?;
            codec::decode(&bytes).map_err(|e| self.cache_err(e))
        })
    }

    /// Every stored session: the active ones, then the others, each in id order.
    pub fn sessions(&self) -> impl Iterator<Item = Result<SessionState>> + '_ {
        self.active_sessions().chain(self.db.scan_prefix(SESSION_PREFIX).map(move |item| {
            let (_, bytes) = item.map_err(|e| self.cache_err(e))?;
            codec::decode(&bytes).map_err(|e| self.cache_err(e))
        }))
    }

    /// Writes `sessions` (active ones under `a/`, the others under `s/`),
    /// the awaiting index keys and `meta` in one atomic batch.
    pub fn save<'a>(
        &self,
        meta: &StoredMeta,
        sessions: impl Iterator<Item = &'a SessionState>,
    ) -> Result<usize> {
        let mut indexed = self.indexed();
        let mut batch = sled::Batch::default();
        // (id, now active, now awaiting) for the index keys that change.
        let mut changed: Vec<(&str, bool, bool)> = Vec::new();
        let mut saved_ids: Vec<&str> = Vec::new();
        for s in sessions {
            let id = s.session_id.as_str();
            let record = codec::encode(s)?;
            saved_ids.push(id);
            let (active, awaiting) = (s.active, s.awaits_finalization());
            let was = indexed.as_ref().map(|ix| (ix.active.contains(id), ix.awaiting.contains(id)));
            if active {
                batch.insert(prefixed(ACTIVE_PREFIX, id), record);
                // Only a session that has ended before (a reopen) can have
                // a record under `s/`.
                if s.spans > 1 {
                    batch.remove(session_key(id));
                }
            } else {
                batch.insert(session_key(id), record);
                if was.is_none_or(|w| w.0) {
                    batch.remove(prefixed(ACTIVE_PREFIX, id));
                }
            }
            if was.is_none_or(|w| w.1 != awaiting) {
                let key = prefixed(AWAITING_PREFIX, id);
                if awaiting { batch.insert(key, &[] as &[u8]) } else { batch.remove(key) }
            }
            if was.is_some_and(|w| w != (active, awaiting)) {
                changed.push((&s.session_id, active, awaiting));
            }
        }
        batch.insert(META_KEY, codec::encode(meta)?);
        self.db.apply_batch(batch).map_err(|e| self.cache_err(e))?;
        let written = saved_ids.len();
        reclaim_sled_garbage(written);
        self.known.insert(saved_ids.into_iter());
        if let Some(ix) = indexed.as_mut() {
            for (id, active, awaiting) in changed {
                for (set, on) in [(&mut ix.active, active), (&mut ix.awaiting, awaiting)] {
                    if !on {
                        set.remove(id);
                    } else if !set.contains(id) {
                        set.insert(id.to_string());
                    }
                }
            }
        }
        Ok(written)
    }

    /// Removes every record, for a rebuild from LSN 1.
    pub fn clear(&self) -> Result<()> {
        let mut indexed = self.indexed();
        *indexed = None;
        self.known.reset(0, false);
        self.db.clear().map_err(|e| self.cache_err(e))?;
        *indexed = Some(Indexed::default());
        self.known.reset(0, true);
        Ok(())
    }

    /// Starts the scan that fills the known-ids filter with every session id
    /// already in the store (`expected` of them), on its own thread; until it
    /// completes, lookups ask sled. Call [`Checkpoint::stop_id_scan`] and
    /// join the handle before dropping the store.
    ///
    /// If the previous owner saved the filter with the checkpoint at `lsn`
    /// (on a clean close), it is loaded instead and no scan runs (`None`).
    pub fn start_id_scan(&self, expected: u64, lsn: u64) -> Result<Option<std::thread::JoinHandle<()>>> {
        match self.load_known_ids(lsn) {
            Ok(true) => return Ok(None),
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "the saved known-ids filter is unusable; scanning the store")
            }
        }
        let expected = usize::try_from(expected).unwrap_or(usize::MAX / 2).saturating_mul(2);
        self.known.reset(expected, false);
        let store = self.clone();
        std::thread::Builder::new()
            .name("bookend-id-scan".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                match store.scan_ids() {
                    Ok(Some(ids)) => {
                        store.known.complete.store(true, std::sync::atomic::Ordering::Release);
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
            })
            .map(Some)
            .map_err(|e| Error::Io { op: "spawn the id scan for", path: self.path.clone(), source: e })
    }

    /// Saves the known-ids filter for the checkpoint at `lsn` (on a clean
    /// close, after the last checkpoint), if every stored id is in it.
    pub fn save_known_ids(&self, lsn: u64) -> Result<()> {
        if !self.ids_known() {
            return Ok(());
        }
        let seed = self.known.seed.load(std::sync::atomic::Ordering::Relaxed);
        let filters = self
            .known
            .filters()
            .iter()
            .map(|(f, n)| (f.num_hashes(), *n as u64, f.as_slice().to_vec()))
            .collect();
        let record = KnownIdsRecord { format: KNOWN_IDS_FORMAT, lsn, seed, probe: hash_probe(seed), filters };
        self.db.insert(KNOWN_IDS_KEY, codec::encode(&record)?).map_err(|e| self.cache_err(e))?;
        Ok(())
    }

    /// Loads a saved filter if it was saved at `lsn`, its hash function is
    /// unchanged, and it holds the first stored ids; else `false`.
    fn load_known_ids(&self, lsn: u64) -> Result<bool> {
        let Some(bytes) = self.db.get(KNOWN_IDS_KEY).map_err(|e| self.cache_err(e))? else {
            return Ok(false);
        };
        let record: KnownIdsRecord = codec::decode(&bytes).map_err(|e| self.cache_err(e))?;
        if record.format != KNOWN_IDS_FORMAT || record.lsn != lsn || record.probe != hash_probe(record.seed) {
            return Ok(false);
        }
        let filters: Vec<(IdFilter, usize)> = record
            .filters
            .into_iter()
            .map(|(hashes, n, bits)| {
                let filter = fastbloom::BloomFilter::from_vec(bits)
                    .hasher(foldhash::fast::FixedState::with_seed(record.seed))
                    .hashes(hashes);
                (filter, usize::try_from(n).unwrap_or(usize::MAX))
            })
            .collect();
        let probes = self.db.scan_prefix(SESSION_PREFIX).keys().take(KNOWN_IDS_PROBES / 2);
        for key in probes.chain(self.db.scan_prefix(ACTIVE_PREFIX).keys().take(KNOWN_IDS_PROBES / 2)) {
            let key = key.map_err(|e| self.cache_err(e))?;
            let id = self.id_of(&key)?;
            if !filters.iter().any(|(f, _)| f.contains(id)) {
                return Ok(false);
            }
        }
        *self.known.filters() = filters;
        self.known.seed.store(record.seed, std::sync::atomic::Ordering::Relaxed);
        self.known.complete.store(true, std::sync::atomic::Ordering::Release);
        Ok(true)
    }

    /// Adds every stored session id (active and ended; both prefixes are
    /// two bytes long) to the filter; `None` if stopped.
    fn scan_ids(&self) -> Result<Option<u64>> {
        let mut chunk: Vec<sled::IVec> = Vec::with_capacity(KNOWN_IDS_SCAN_CHUNK);
        let mut count = 0u64;
        // An id that cannot be read fails the scan (the filter then never
        // claims completeness) rather than being left out of it.
        let mut flush = |chunk: &mut Vec<sled::IVec>| -> Result<()> {
            let ids = chunk.iter().map(|k| self.id_of(k)).collect::<Result<Vec<&str>>>()?;
            self.known.insert(ids.into_iter());
            count += chunk.len() as u64;
            chunk.clear();
            for _ in 0..64 {
                crossbeam_epoch::pin().flush();
            }
            Ok(())
        };
        let active = self.db.scan_prefix(ACTIVE_PREFIX).keys();
        for key in active.chain(self.db.scan_prefix(SESSION_PREFIX).keys()) {
            if self.known.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(None);
            }
            chunk.push(key.map_err(|e| self.cache_err(e))?);
            if chunk.len() == KNOWN_IDS_SCAN_CHUNK {
                flush(&mut chunk)?;
            }
        }
        flush(&mut chunk)?;
        Ok(Some(count))
    }

    /// Asks a running id scan to stop soon.
    pub fn stop_id_scan(&self) {
        self.known.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether every stored id is in the known-ids filter.
    pub fn ids_known(&self) -> bool {
        self.known.complete.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Lookups the known-ids filter answered without reading sled.
    pub fn lookups_skipped(&self) -> u64 {
        self.lookups_skipped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes what was saved durable in sled (on close; otherwise sled
    /// flushes on its own, and losing a checkpoint only costs a replay).
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.cache_err(e))
    }

    /// Stores a gateway projection's state and the LSN it reflects, in one write.
    pub fn save_blob(&self, name: &str, lsn: u64, state: Vec<u8>) -> Result<()> {
        let mut key = BLOB_PREFIX.to_vec();
        key.extend_from_slice(name.as_bytes());
        let record = codec::encode(&BlobRecord { lsn, state })?;
        self.db.insert(key, record).map(|_| ()).map_err(|e| self.cache_err(e))
    }

    /// A gateway projection's stored state and LSN.
    pub fn load_blob(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let mut key = BLOB_PREFIX.to_vec();
        key.extend_from_slice(name.as_bytes());
        let Some(bytes) = self.db.get(key).map_err(|e| self.cache_err(e))? else { return Ok(None) };
        let record: BlobRecord = codec::decode(&bytes).map_err(|e| self.cache_err(e))?;
        Ok(Some((record.lsn, record.state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EndReason;

    fn session(id: &str, active: bool, end_reason: Option<EndReason>) -> SessionState {
        assert_eq!(active, end_reason.is_none(), "an ended session has a reason");
        SessionState::for_tests(id, end_reason)
    }

    fn index_keys(store: &Checkpoint) -> (BTreeSet<String>, BTreeSet<String>) {
        (store.index(ACTIVE_PREFIX).unwrap(), store.index(AWAITING_PREFIX).unwrap())
    }

    fn ids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Index keys follow each session's state whether or not the handle
    /// knows what the store holds (fresh handle: it removes blindly; after
    /// `load_meta` or `clear`: it writes only what changes).
    #[test]
    fn index_keys_follow_the_sessions_with_or_without_knowing_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projection");
        let meta = StoredMeta::of(&Meta { last_lsn: 1, ..Meta::default() });
        {
            let store = Checkpoint::open(&path, 1 << 20).unwrap();
            store.clear().unwrap();
            let sessions = [
                session("a", true, None),
                session("b", true, None),
                session("c", false, Some(EndReason::Completed)),
            ];
            store.save(&meta, sessions.iter()).unwrap();
            assert_eq!(index_keys(&store), (ids(&["a", "b"]), ids(&[])));
            let sessions = [session("a", false, Some(EndReason::IdleExpiry)), session("d", true, None)];
            store.save(&meta, sessions.iter()).unwrap();
            assert_eq!(index_keys(&store), (ids(&["b", "d"]), ids(&["a"])));
            store.flush().unwrap();
        }
        let blind = Checkpoint::open(&path, 1 << 20).unwrap();
        let mut finalized = session("a", false, Some(EndReason::IdleExpiry));
        finalized.expiry_finalized_lsn = Some(3);
        blind
            .save(&meta, [finalized.clone(), session("b", false, Some(EndReason::Completed))].iter())
            .unwrap();
        assert_eq!(index_keys(&blind), (ids(&["d"]), ids(&[])));
        blind.flush().unwrap();
        drop(blind);

        let known = Checkpoint::open(&path, 1 << 20).unwrap();
        let loaded = known.load_meta().unwrap().unwrap();
        assert_eq!(loaded.active, ids(&["d"]));
        let sessions = [session("d", false, Some(EndReason::DailyReset)), session("e", true, None)];
        known.save(&meta, sessions.iter()).unwrap();
        assert_eq!(index_keys(&known), (ids(&["e"]), ids(&["d"])));

        // A reopened session moves back under `a/`; every session is stored
        // exactly once, with its latest record.
        let mut reopened = session("c", true, None);
        reopened.spans = 2;
        known.save(&meta, [reopened.clone()].iter()).unwrap();
        assert_eq!(known.session("c").unwrap(), Some(reopened));
        let stored: Vec<(String, bool)> =
            known.sessions().map(|s| s.map(|s| (s.session_id, s.active)).unwrap()).collect();
        let expected = [("c", true), ("e", true), ("a", false), ("b", false), ("d", false)];
        assert_eq!(stored, expected.map(|(id, active)| (id.to_string(), active)));
        assert_eq!(known.active_sessions().count(), 2);
    }

    /// Regression: sled reports a held lock as `Other`, and the store used
    /// to be moved aside (losing the checkpoint) instead of waited for.
    #[test]
    fn a_store_held_by_another_handle_is_waited_for_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projection");
        let first = Checkpoint::open(&path, 1 << 20).unwrap();
        let meta = Meta { last_lsn: 42, ..Meta::default() };
        first.save(&StoredMeta::of(&meta), std::iter::empty()).unwrap();
        first.flush().unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        let second = Checkpoint::open_or_reset(&path, 1 << 20).unwrap();
        holder.join().unwrap();
        assert_eq!(second.load_meta().unwrap().map(|m| m.last_lsn), Some(42));
        assert!(!path.with_extension("broken").exists());
    }
}
