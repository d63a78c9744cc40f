//! The boundary between bookend and sled: every call into sled goes through
//! [`guarded`], which turns sled's errors *and its panics* (sled 0.34 panics
//! on some damaged files, "tried to serialize Uninitialized") into
//! `Error::Store`, so that a damaged store never takes the process down;
//! [`move_aside`] sets a damaged store aside without deleting a byte; and
//! [`sync_tree`] makes durable what sled leaves unsynced (its `conf` file,
//! its snapshot renames, the directories it creates), so that a power cut
//! after a checkpoint does not cost a rebuild from LSN 1.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Runs one sled operation; its error or panic becomes `Error::Store`
/// naming the store and what was being done.
pub(crate) fn guarded<T>(path: &Path, what: &str, op: impl FnOnce() -> sled::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(op)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(store_error(path, what, &e.to_string())),
        Err(panic) => Err(store_error(path, what, &format!("sled panicked: {}", panic_message(&panic)))),
    }
}

/// Runs sled's open, turning a panic into `Error::Store` and leaving sled's
/// own errors to the caller (a held lock is waited for, not a failure).
pub(crate) fn catch_open<T>(path: &Path, op: impl FnOnce() -> sled::Result<T>) -> Result<sled::Result<T>> {
    catch_unwind(AssertUnwindSafe(op))
        .map_err(|panic| store_error(path, "opening", &format!("sled panicked: {}", panic_message(&panic))))
}

pub(crate) fn store_error(path: &Path, what: &str, reason: &str) -> Error {
    Error::Store { path: path.to_path_buf(), reason: format!("{what}: {reason}") }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// An iterator over sled items whose every step is guarded; it stops after
/// the first error.
pub(crate) struct Guarded<'a, I> {
    inner: I,
    path: PathBuf,
    failed: bool,
    /// Set on the first error: the database has failed.
    broken: &'a std::sync::atomic::AtomicBool,
}

impl<'a, I> Guarded<'a, I> {
    pub fn new(inner: I, path: &Path, broken: &'a std::sync::atomic::AtomicBool) -> Guarded<'a, I> {
        Guarded { inner, path: path.to_path_buf(), failed: false, broken }
    }
}

impl<I: Iterator<Item = sled::Result<T>>, T> Iterator for Guarded<'_, I> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        let inner = &mut self.inner;
        let step = match catch_unwind(AssertUnwindSafe(|| inner.next())) {
            Ok(None) => return None,
            Ok(Some(item)) => item.map_err(|e| store_error(&self.path, "reading", &e.to_string())),
            Err(panic) => {
                Err(store_error(&self.path, "reading", &format!("sled panicked: {}", panic_message(&panic))))
            }
        };
        self.failed = step.is_err();
        if self.failed {
            self.broken.store(true, std::sync::atomic::Ordering::Release);
        }
        Some(step)
    }
}

/// Renames the store at `path` to `<path>.<why>-<n>` (the first free n), so
/// that a person can inspect it; nothing is deleted. Returns the new name.
pub(crate) fn move_aside(path: &Path, why: &str) -> Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut n = 1u32;
    let aside = loop {
        let candidate = path.with_file_name(format!("{name}.{why}-{n}"));
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    std::fs::rename(path, &aside).map_err(|e| Error::Io {
        op: "move aside",
        path: path.to_path_buf(),
        source: e,
    })?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(aside)
}

/// fsyncs every file and directory under `root`, and `root`'s parent.
pub(crate) fn sync_tree(root: &Path) -> Result<()> {
    let io = |op: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
            let entry = entry.map_err(io("list", &dir))?;
            let kind = entry.file_type().map_err(io("stat", &entry.path()))?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                let file = std::fs::File::open(entry.path()).map_err(io("open", &entry.path()))?;
                file.sync_all().map_err(io("fsync", &entry.path()))?;
            }
        }
        sync_dir(&dir)?;
    }
    match root.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Io {
        op: "fsync directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// Frees what sled retired while writing `sessions` sessions. sled frees
/// replaced pages through crossbeam-epoch, which reclaims a few bags of them
/// (8 bags of 64) each time some thread pins, and `apply_batch` pins once per
/// batch: with no other thread reading sled (starts of new ids no longer do),
/// retired pages piled up (RSS grew to 360 MiB in 4 s of 64-task starts).
/// Each pin and flush here reclaims up to 512 of them (one per 4 sessions
/// written kept RSS near where it was); a pin with nothing to
/// reclaim costs tens of nanoseconds.
pub(crate) fn reclaim_sled_garbage(sessions: usize) {
    for _ in 0..sessions.div_ceil(4) + 16 {
        crossbeam_epoch::pin().flush();
    }
}

/// Whether the sled database has failed, and its last handle. sled flushes
/// when its last handle is dropped, and after an I/O failure inside it that
/// flush can wait forever: the last handle of a failed database is dropped
/// on a thread of its own, so that nothing of bookend waits for it. Every
/// store handle drops its own sled handle before its share of this guard,
/// so the guard's is the last one.
pub(crate) struct DbGuard {
    pub db: Option<sled::Db>,
    pub broken: std::sync::atomic::AtomicBool,
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else { return };
        if self.broken.load(std::sync::atomic::Ordering::Acquire) {
            let spawned =
                std::thread::Builder::new().name("bookend-drop-store".into()).spawn(move || drop(db));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not drop a failed projection store on its own thread");
            }
        }
    }
}

impl super::ProjectionStore {
    /// Makes durable what sled changed when the store was opened (its
    /// `conf` file, snapshot renames, new directories), once. The session
    /// journal's open leaves it to the checkpoint thread, off the open's
    /// path (an fsync of every file of the store: ~20 ms at 10M events);
    /// every write calls it first, so nothing is saved on top of an open
    /// that a power cut could still undo.
    pub fn sync_opened(&self) -> Result<()> {
        let mut unsynced = self.unsynced.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *unsynced {
            sync_tree(&self.path)?;
            *unsynced = false;
        }
        Ok(())
    }
}
