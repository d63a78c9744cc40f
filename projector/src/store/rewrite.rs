//! Rewriting a store into a fresh sled tree, to give back the space its
//! history of writes left behind.
//!
//! sled never shrinks its file: it reuses a segment once half of it is
//! dead, so a store keeps up to twice its live bytes, and more after a fast
//! burst of writes. A rebuild from the journal is such a burst: every
//! ended session is written again at each level of merges. After the
//! rebuild of `history 5000000` the file was 430 MB for 113 MB of keys and
//! values; copied into a fresh tree, 186 MB (docs/performance-log/
//! 2026-12-05-evening.md, "ended sessions compressed, rebuilt stores
//! rewritten").
//!
//! The copy is made beside the store (`<store>.rewrite`), flushed and
//! closed; then the store is renamed to `<store>.rewritten`, the copy to
//! the store's name, and the old one removed. A stop at any point leaves
//! either the old store or the copy under the store's name, or neither and
//! `<store>.rewritten` whole: `recover_interrupted` puts that back at the
//! next open, and removes a copy that was not finished.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

use super::guard::{Guarded, guarded, sync_dir};
use super::known_ids::KNOWN_IDS_FILE_NAME;
use super::{LOCK_WAIT_MAX, ProjectionStore, sync_tree};

/// Keys written to the copy in one sled batch.
const KEYS_PER_BATCH: usize = 1000;

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}.{suffix}"))
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Waits until no sled in this process holds the store at `dir`: sled's
/// threads let go of its files (and its lock on `db`) a moment after the
/// last handle is dropped, and the directory must not move before.
fn wait_released(dir: &Path) -> Result<()> {
    let db = dir.join("db");
    let file = std::fs::File::open(&db).map_err(io("open", &db))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT_MAX;
    loop {
        match file.try_lock() {
            Ok(()) => return file.unlock().map_err(io("unlock", &db)),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::StoreLocked { path: dir.to_path_buf() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &db)(e)),
        }
    }
}

/// The size of sled's file in the store at `dir` (0 if unknown: only logged).
fn db_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("db")).map_or(0, |m| m.len())
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Finishes or undoes a rewrite of the store at `path` that a stop cut
/// short. Call before opening the store.
pub(crate) fn recover_interrupted(path: &Path) -> Result<()> {
    let (copy, old) = (sibling(path, "rewrite"), sibling(path, "rewritten"));
    if old.exists() {
        if path.exists() {
            // The copy took the store's name: the old one is not needed.
            remove_leftover(&old);
        } else {
            std::fs::rename(&old, path).map_err(io("rename", &old))?;
            tracing::info!(store = %path.display(), "a rewrite of the projection store was cut short; the store as it was before it is back in place");
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
    }
    remove_leftover(&copy);
    Ok(())
}

/// Removes what a rewrite left beside the store. Failing to is no reason to
/// refuse the store: a WARN says what to delete.
fn remove_leftover(path: &Path) {
    if let Err(e) = remove_if_there(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove what a rewrite of the projection store left behind; delete it by hand");
    }
}

impl ProjectionStore {
    /// This store rewritten into a fresh sled tree, which takes its place.
    /// It must be the last handle on the store. If the copy cannot be made,
    /// the store is kept as it is, with a WARN; an error while the two are
    /// swapped is returned (the next open finishes or undoes the swap).
    pub fn rewritten(self) -> Result<ProjectionStore> {
        if Arc::strong_count(&self.failed) > 1 {
            tracing::debug!(store = %self.path.display(), "the projection store is not rewritten: another handle holds it");
            return Ok(self);
        }
        let (started, before) = (std::time::Instant::now(), db_bytes(&self.path));
        let copy = sibling(&self.path, "rewrite");
        if let Err(e) = self.copy_into(&copy) {
            tracing::warn!(store = %self.path.display(), error = %e, "could not rewrite the projection store to give back space; it is kept as it is");
            let _ = remove_if_there(&copy);
            return Ok(self);
        }
        let (path, cache) = (self.path.clone(), self.cache_capacity_bytes);
        let (known, indexed) = (self.known.clone(), self.indexed.clone());
        drop(self);
        wait_released(&path)?;
        let old = sibling(&path, "rewritten");
        std::fs::rename(&path, &old).map_err(io("rename", &path))?;
        std::fs::rename(&copy, &path).map_err(io("rename", &copy))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        remove_leftover(&old);
        let mut store = ProjectionStore::open(&path, cache)?;
        // The copy holds exactly what this handle knew about.
        (store.known, store.indexed) = (known, indexed);
        tracing::info!(
            store = %path.display(),
            before_bytes = before,
            after_bytes = db_bytes(&path),
            rewrite_ms = started.elapsed().as_millis() as u64,
            "the projection store was rewritten into a fresh file, to give back the space its rebuild left behind"
        );
        Ok(store)
    }

    /// Copies every key and the known-ids file into a new store at `copy`,
    /// made durable and closed.
    fn copy_into(&self, copy: &Path) -> Result<()> {
        self.flush()?;
        remove_if_there(copy)?;
        let config = sled::Config::new().path(copy).cache_capacity(self.cache_capacity_bytes);
        let db = guarded(copy, "opening a copy", || config.open())?;
        let mut batch = sled::Batch::default();
        let mut staged = 0;
        for kv in Guarded::new(self.db.iter(), &self.path, &self.failed.broken) {
            let (key, value) = kv?;
            batch.insert(key, value);
            staged += 1;
            if staged == KEYS_PER_BATCH {
                let full = std::mem::take(&mut batch);
                guarded(copy, "writing a copy", || db.apply_batch(full))?;
                staged = 0;
            }
        }
        guarded(copy, "writing a copy", || db.apply_batch(batch))?;
        guarded(copy, "flushing a copy", || db.flush())?;
        drop(db);
        wait_released(copy)?;
        let known_ids = self.path.join(KNOWN_IDS_FILE_NAME);
        if known_ids.exists() {
            std::fs::copy(&known_ids, copy.join(KNOWN_IDS_FILE_NAME)).map_err(io("copy", &known_ids))?;
        }
        sync_tree(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Meta, SessionState};
    use crate::store::StoredMeta;
    use crate::store::tests::ended;

    /// A store written in many small checkpoints, whose merges leave dead
    /// space behind in sled's file.
    fn written_store(path: &Path, sessions: &[SessionState]) -> ProjectionStore {
        let store = ProjectionStore::open(path, 1 << 20).unwrap();
        store.clear().unwrap();
        for (n, chunk) in sessions.chunks(500).enumerate() {
            let meta = StoredMeta::of(&Meta { last_lsn: n as u64 + 1, ..Meta::default() });
            store.save(&meta, chunk.iter()).unwrap();
            store.compact().unwrap();
        }
        store
    }

    /// The rewritten store holds every key it held, in a smaller file, under
    /// the same name, with nothing left beside it; what the handle knew
    /// (the ids it holds) carries over.
    #[test]
    fn a_rewritten_store_holds_the_same_in_less_space() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projection");
        let sessions: Vec<SessionState> = (0..40_000).map(ended).collect();
        let store = written_store(&path, &sessions);
        let before: Vec<(sled::IVec, sled::IVec)> = store.db.iter().map(Result::unwrap).collect();
        let (lsn, known) = (store.checkpoint_lsn().unwrap(), store.ids_known());
        store.flush().unwrap();
        let bytes_before = db_bytes(&path);
        let store = store.rewritten().unwrap();
        let after: Vec<(sled::IVec, sled::IVec)> = store.db.iter().map(Result::unwrap).collect();
        assert!(before == after, "{} keys before, {} after", before.len(), after.len());
        assert!(db_bytes(&path) < bytes_before, "{} bytes, {bytes_before} before", db_bytes(&path));
        assert_eq!((store.checkpoint_lsn().unwrap(), store.ids_known()), (lsn, known));
        for s in sessions.iter().step_by(997) {
            assert_eq!(store.session(s.id()).unwrap().as_ref(), Some(s));
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["projection"]);
    }

    /// A second handle on the store (a reader in this process) means the
    /// store cannot move: it is kept as it is.
    #[test]
    fn a_store_with_another_handle_is_kept_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projection");
        let store = written_store(&path, &(0..2_000).map(ended).collect::<Vec<_>>());
        let other = store.clone();
        let kept = store.rewritten().unwrap();
        assert!(Arc::ptr_eq(&kept.failed, &other.failed));
        assert!(!sibling(&path, "rewrite").exists());
    }

    /// Each state a stop can leave a rewrite in is put right at the next
    /// open: an unfinished copy is removed; a store moved aside before the
    /// copy took its name is put back; one the copy replaced is removed.
    #[test]
    fn a_rewrite_cut_short_is_finished_or_undone_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projection");
        let sessions: Vec<SessionState> = (0..3_000).map(ended).collect();
        written_store(&path, &sessions).flush().unwrap();
        let (copy, old) = (sibling(&path, "rewrite"), sibling(&path, "rewritten"));
        let reads_back = || {
            recover_interrupted(&path).unwrap();
            assert!(!copy.exists() && !old.exists());
            let store = ProjectionStore::open(&path, 1 << 20).unwrap();
            assert_eq!(store.session(sessions[1234].id()).unwrap().as_ref(), Some(&sessions[1234]));
        };
        // Stopped while copying: the copy is half-made.
        std::fs::create_dir(&copy).unwrap();
        std::fs::write(copy.join("db"), b"half").unwrap();
        reads_back();
        // Stopped between the two renames: no store under its own name.
        std::fs::create_dir(&copy).unwrap();
        std::fs::rename(&path, &old).unwrap();
        reads_back();
        // Stopped before the old store was removed.
        copy_dir(&path, &old);
        reads_back();
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }
}
