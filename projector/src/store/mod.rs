//! The projection store: the sled-backed, rebuildable cache of folded
//! state (`projection/` in the journal directory), never the source of
//! truth.
//!
//! One sled tree holds `meta` (the folded journal-wide state and the last
//! LSN folded), `journal-id` (the journal it belongs to), one record per
//! active session (`a/<session id>`), the ended sessions packed in runs of
//! blocks (`r/...`, listed by `runs`: see `runs.rs`), `f/<session id>`
//! index keys for sessions awaiting finalization, `p/<name>` blobs for
//! gateway-defined projections, and `known-ids-at` (the LSN of the Bloom
//! filter of stored session ids in `projection/known-ids`, saved on a clean
//! close). A checkpoint ends with one sled batch holding the meta record
//! and the run manifest, so the state and its LSN never disagree. It is
//! only written for LSNs that are already durable in the journal.
//!
//! sled never takes the process down: its errors and panics become
//! `Error::Store` at this boundary (`guard`), and the owner then moves the
//! store aside (never deleting it) and rebuilds it from the journal. A
//! store of another journal, or of another format, is moved aside too.

mod block;
mod block_merge;
mod compressed;
mod guard;
mod known_ids;
mod merge;
mod meta;
mod run_filter;
mod run_keys;
mod runs;
mod sink;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bookend_journal::{JournalId, codec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::session::SessionState;
pub(crate) use guard::move_aside;
use guard::{DbGuard, Guarded, guarded, reclaim_sled_garbage, store_error, sync_tree};
use known_ids::KnownIds;
pub use known_ids::{IdScan, StartedIds};
pub use meta::StoredMeta;

/// Bump when the stored state changes shape: older stores are rebuilt,
/// except those `meta::upgrade_in_place` can take as they are.
pub const STORE_FORMAT: u32 = 6;
/// Default sled page cache: the store is a cache, so keep it small.
pub const CACHE_CAPACITY_BYTES_DEFAULT: u64 = 8 * 1024 * 1024;
/// The store's directory inside the journal directory.
pub const STORE_DIR_NAME: &str = "projection";

/// How long opening waits for another owner of the store to let go.
const LOCK_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

const META_KEY: &[u8] = b"meta";
/// Present while a checkpoint larger than one batch is being written (its
/// value is the LSN it saves); see `save.rs`.
const CHECKPOINT_IN_PROGRESS_KEY: &[u8] = b"checkpoint-in-progress";
const JOURNAL_ID_KEY: &[u8] = b"journal-id";
/// `a/<id>`: an active session's record. Ended sessions are in runs, so a
/// session that starts and stays active costs one key, one that ends
/// between two checkpoints costs none, and the active set is a prefix scan.
const ACTIVE_PREFIX: &[u8] = b"a/";
/// The length of the index prefixes, which `id_of` strips.
const INDEX_PREFIX_LEN: usize = 2;
const _: () = assert!(ACTIVE_PREFIX.len() == INDEX_PREFIX_LEN && AWAITING_PREFIX.len() == INDEX_PREFIX_LEN);
/// `f/<id>`: the session awaits finalization.
const AWAITING_PREFIX: &[u8] = b"f/";
const BLOB_PREFIX: &[u8] = b"p/";

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

/// An open projection store.
#[derive(Clone)]
pub struct ProjectionStore {
    // Declared before `failed`, so that it is dropped first (see `DbGuard`).
    db: sled::Db,
    /// The last handle on the database, and whether it has failed.
    failed: Arc<DbGuard>,
    path: PathBuf,
    cache_capacity_bytes: u64,
    /// `None` until known: then every index key is written or removed.
    indexed: Arc<Mutex<Option<Indexed>>>,
    known: Arc<KnownIds>,
    /// Lookups answered without sled, for stats and tests.
    lookups_skipped: Arc<std::sync::atomic::AtomicU64>,
    /// The run manifest as last written (see `runs.rs`).
    runs: Arc<Mutex<runs::Runs>>,
    /// Held for reading while blocks are read, for writing while the
    /// blocks of merged runs are removed.
    blocks: Arc<RwLock<()>>,
    /// Held by a checkpoint's save and the merges after it.
    writing: Arc<Mutex<()>>,
    /// Runs' Bloom filters read so far (see `run_filter.rs`).
    filters: Arc<Mutex<run_filter::Filters>>,
    /// What sled changed at open is not fsynced yet (see `sync_opened`);
    /// held while it is being fsynced, so that no write overtakes it.
    unsynced: Arc<Mutex<bool>>,
}

impl std::fmt::Debug for ProjectionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// sled 0.34 reports a held lock as `ErrorKind::Other` with this message
/// (config.rs), not as `WouldBlock`; match both.
fn is_lock_conflict(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock"))
}

/// `prefix` then run id `run` (big-endian, so keys sort by run).
fn run_key(prefix: &[u8], run: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&run.to_be_bytes());
    key
}

/// The first key after every key under `prefix` (which ends below 0xff).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

fn prefixed(prefix: &[u8], id: &str) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

impl ProjectionStore {
    /// Opens (creating) the store at `path` with a page cache of
    /// `cache_capacity_bytes`, and makes durable what sled left unsynced.
    pub fn open(path: &Path, cache_capacity_bytes: u64) -> Result<ProjectionStore> {
        let store = Self::open_unsynced(path, cache_capacity_bytes)?;
        store.sync_opened()?;
        Ok(store)
    }

    /// Opens the store, leaving what sled changed at open to be fsynced by
    /// `sync_opened`, which every write calls first.
    fn open_unsynced(path: &Path, cache_capacity_bytes: u64) -> Result<ProjectionStore> {
        // sled releases its file lock when its background threads finish,
        // a moment after the previous owner in this process dropped it.
        let deadline = std::time::Instant::now() + LOCK_WAIT_MAX;
        let config = sled::Config::new().path(path).cache_capacity(cache_capacity_bytes);
        let db = loop {
            match guard::catch_open(path, || config.open()) {
                Ok(Ok(db)) => break db,
                Ok(Err(e)) if is_lock_conflict(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(Err(e)) if is_lock_conflict(&e) => {
                    return Err(Error::StoreLocked { path: path.to_path_buf() });
                }
                Ok(Err(e)) => return Err(store_error(path, "opening", &e.to_string())),
                Err(panic) => return Err(panic),
            }
        };
        let store = ProjectionStore {
            failed: Arc::new(DbGuard {
                db: Some(db.clone()),
                broken: std::sync::atomic::AtomicBool::new(false),
            }),
            db,
            path: path.to_path_buf(),
            cache_capacity_bytes,
            indexed: Arc::default(),
            known: Arc::default(),
            lookups_skipped: Arc::default(),
            runs: Arc::default(),
            blocks: Arc::default(),
            writing: Arc::default(),
            filters: Arc::default(),
            unsynced: Arc::new(Mutex::new(true)),
        };
        store.load_runs()?;
        Ok(store)
    }

    /// Opens the store of journal `id` at `path`. A store that cannot be
    /// opened or read, or that belongs to another journal, is moved aside
    /// (never deleted) with a WARN naming the cause, and an empty one takes
    /// its place: it is only a cache, rebuilt from the journal.
    pub fn open_for(
        path: &Path,
        cache_capacity_bytes: u64,
        id: Option<JournalId>,
    ) -> Result<ProjectionStore> {
        rewrite::recover_interrupted(path)?;
        let problem = match Self::open_unsynced(path, cache_capacity_bytes) {
            Err(e @ Error::StoreLocked { .. }) => return Err(e),
            Err(e) => ("broken", e.to_string()),
            Ok(store) => match store.check_owner(id) {
                Ok(()) => return Ok(store),
                Err(why) => {
                    drop(store);
                    why
                }
            },
        };
        Self::replace(path, cache_capacity_bytes, problem)
    }

    /// Moves the store at `path` aside for `why` and opens an empty one.
    pub(crate) fn replace(path: &Path, cache: u64, (why, cause): (&str, String)) -> Result<ProjectionStore> {
        let aside = if path.exists() { Some(move_aside(path, why)?) } else { None };
        tracing::warn!(
            store = %path.display(),
            moved_to = ?aside,
            cause = %cause,
            "the projection store cannot be trusted; it was moved aside and is rebuilt from the journal"
        );
        Self::open(path, cache)
    }

    /// Moves this store aside because `problem` makes it untrustworthy, and
    /// opens an empty one for the same journal in its place. It must be the
    /// last handle on the store (sled allows one per process).
    pub(crate) fn replace_untrusted(self, problem: String) -> Result<ProjectionStore> {
        let (path, cache, id) =
            (self.path.clone(), self.cache_capacity_bytes, self.journal_id().ok().flatten());
        drop(self);
        let store = Self::replace(&path, cache, ("broken", problem))?;
        if let Some(id) = id {
            store.adopt(id)?;
        }
        Ok(store)
    }

    /// Whether the store belongs to journal `id` (adopting it if the store
    /// names none yet); the error says why not, for `open_for`.
    fn check_owner(&self, id: Option<JournalId>) -> std::result::Result<(), (&'static str, String)> {
        let stored = self.journal_id().map_err(|e| ("broken", e.to_string()))?;
        match (stored, id) {
            (Some(stored), Some(id)) if stored != id => {
                Err(("foreign", format!("it belongs to journal {stored}, not to journal {id}")))
            }
            (Some(stored), None) => {
                Err(("foreign", format!("it belongs to journal {stored}, and this journal has no history")))
            }
            (None, Some(id)) => self.adopt(id).map_err(|e| ("broken", e.to_string())),
            _ => Ok(()),
        }
    }

    /// The journal this store belongs to, once it has recorded one.
    pub fn journal_id(&self) -> Result<Option<JournalId>> {
        let bytes = self.guarded("reading the journal id", || self.db.get(JOURNAL_ID_KEY))?;
        Ok(bytes.and_then(|b| <[u8; 16]>::try_from(&b[..]).ok()).map(JournalId))
    }

    /// Records that this store belongs to journal `id`.
    pub fn adopt(&self, id: JournalId) -> Result<()> {
        self.guarded("recording the journal id", || self.db.insert(JOURNAL_ID_KEY, &id.as_bytes()[..]))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs one sled operation through the guard; a failure marks the
    /// database as failed (see `DbHandle`).
    fn guarded<T>(&self, what: &str, op: impl FnOnce() -> sled::Result<T>) -> Result<T> {
        let result = guarded(&self.path, what, op);
        if result.is_err() {
            self.failed.broken.store(true, std::sync::atomic::Ordering::Release);
        }
        result
    }

    /// A block's error, named with this store.
    fn packed<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| match e {
            Error::Store { reason, .. } => store_error(&self.path, "reading packed sessions", &reason),
            other => other,
        })
    }

    fn store_err(&self, e: impl std::fmt::Display) -> Error {
        store_error(&self.path, "decoding", &e.to_string())
    }

    /// The keys under `prefix`, every step guarded.
    fn keys(&self, prefix: &[u8]) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        Guarded::new(self.db.scan_prefix(prefix).keys(), &self.path, &self.failed.broken)
    }

    /// The keys and values under `prefix`, every step guarded.
    fn entries(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec)>> + '_ {
        Guarded::new(self.db.scan_prefix(prefix), &self.path, &self.failed.broken)
    }

    /// The values under `prefix`, every step guarded.
    fn values(&self, prefix: &[u8]) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        Guarded::new(self.db.scan_prefix(prefix).values(), &self.path, &self.failed.broken)
    }

    fn indexed(&self) -> MutexGuard<'_, Option<Indexed>> {
        self.indexed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session id of a key under one of the two-byte prefixes.
    fn id_of<'k>(&self, key: &'k [u8]) -> Result<&'k str> {
        std::str::from_utf8(key.get(INDEX_PREFIX_LEN..).unwrap_or_default()).map_err(|e| self.store_err(e))
    }

    fn index(&self, prefix: &[u8]) -> Result<BTreeSet<String>> {
        let mut ids = BTreeSet::new();
        for key in self.keys(prefix) {
            ids.insert(self.id_of(&key?)?.to_string());
        }
        Ok(ids)
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionState>> {
        if self.known.surely_absent(id) {
            self.lookups_skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(None);
        }
        // An `a/` record shadows the runs: the session is active again. Once
        // the index keys are known, only an id among them can have one (not
        // waited for while a checkpoint holds them: then sled is asked).
        let maybe_active = match self.indexed.try_lock() {
            Ok(indexed) => indexed.as_ref().is_none_or(|ix| ix.active.contains(id)),
            Err(_) => true,
        };
        if maybe_active
            && let Some(bytes) =
                self.guarded("reading a session", || self.db.get(prefixed(ACTIVE_PREFIX, id)))?
        {
            return codec::decode(&bytes).map(Some).map_err(|e| self.store_err(e));
        }
        self.find_ended(id)
    }

    /// The stored active sessions, in id order.
    pub fn active_sessions(&self) -> impl Iterator<Item = Result<SessionState>> + '_ {
        self.values(ACTIVE_PREFIX).map(move |bytes| codec::decode(&bytes?).map_err(|e| self.store_err(e)))
    }

    /// Every stored session: the active ones, then the others, each in id order.
    pub fn sessions(&self) -> impl Iterator<Item = Result<SessionState>> + '_ {
        let (active, failed) = match self.index(ACTIVE_PREFIX) {
            Ok(active) => (active, None),
            Err(e) => (BTreeSet::new(), Some(Err(e))),
        };
        let ended = self.ended_unshadowed(active).map(move |entry| self.packed(entry?.state()));
        failed.into_iter().chain(self.active_sessions()).chain(ended)
    }

    /// Removes every record, for a rebuild from LSN 1 (the journal id stays).
    pub fn clear(&self) -> Result<()> {
        self.sync_opened()?;
        let id = self.journal_id()?;
        let mut indexed = self.indexed();
        *indexed = None;
        self.known.reset(0, false);
        self.guarded("clearing", || self.db.clear())?;
        *self.runs() = runs::Runs::default();
        self.filters().clear();
        if let Some(id) = id {
            self.adopt(id)?;
        }
        *indexed = Some(Indexed::default());
        self.known.reset(0, true);
        Ok(())
    }

    /// Makes what was saved durable (on close; otherwise sled flushes on its
    /// own, and losing a checkpoint only costs a replay), including what
    /// sled itself leaves unsynced.
    pub fn flush(&self) -> Result<()> {
        self.guarded("flushing", || self.db.flush())?;
        let mut unsynced = self.unsynced.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sync_tree(&self.path)?;
        *unsynced = false;
        Ok(())
    }

    /// Stores a gateway projection's state and the LSN it reflects, in one write.
    pub fn save_blob(&self, name: &str, lsn: u64, state: Vec<u8>) -> Result<()> {
        self.sync_opened()?;
        let record = codec::encode(&BlobRecord { lsn, state })?;
        self.guarded("saving a projection", || self.db.insert(prefixed(BLOB_PREFIX, name), record))?;
        Ok(())
    }

    /// A gateway projection's stored state and LSN.
    pub fn load_blob(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let key = prefixed(BLOB_PREFIX, name);
        let Some(bytes) = self.guarded("reading a projection", || self.db.get(key))? else {
            return Ok(None);
        };
        let record: BlobRecord = codec::decode(&bytes).map_err(|e| self.store_err(e))?;
        Ok(Some((record.lsn, record.state)))
    }
}

mod rewrite;
mod save;
pub(crate) use save::SAVE_CHUNK_SESSIONS;
#[cfg(test)]
mod tests;
mod undo;
