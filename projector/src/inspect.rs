//! The read-only face of a journal: what `bookend sessions`, `stats`,
//! `verify` and `replay` show, for a journal another process may be writing.
//! It folds the journal in memory and never opens the projection store
//! (sled allows one process), except `replay`, which takes the journal's
//! lock to compare the store with a rebuild.

use std::path::Path;
use std::sync::Arc;

use bookend_journal::fs::{Fs, StdFs};
use bookend_journal::{JournalId, LockedDir, SegmentFile};

use crate::cursor::{ConsumerStatus, consumer_statuses};
use crate::error::Result;
use crate::fold;
use crate::page::{self, SessionPage};
use crate::rules::Lifecycle;
use crate::session::{Meta, SessionState};
use crate::store::{CACHE_CAPACITY_BYTES_DEFAULT, STORE_DIR_NAME};
use crate::verify::{ReplayReport, rebuild_and_compare};

/// A journal folded in memory, as of the moment it was read.
pub struct Inspection {
    fs: Arc<dyn Fs>,
    dir: std::path::PathBuf,
    life: Lifecycle,
    journal_id: Option<JournalId>,
}

impl std::fmt::Debug for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspection")
            .field("dir", &self.dir)
            .field("last_lsn", &self.life.meta.last_lsn)
            .finish()
    }
}

/// ```
/// use bookend_projector::{CloseReason, Inspection, SessionJournal, SessionJournalOptions, Sessions, Start};
///
/// # fn main() -> Result<(), bookend_projector::Error> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path().join("journal");
/// # let journal = SessionJournal::open(&dir, SessionJournalOptions::default())?;
/// # journal.start(Start::new("s1"))?.wait()?;
/// # journal.close(CloseReason::Shutdown, Sessions::Keep)?;
/// // Read-only, safe beside a running writer: what `bookend sessions` shows.
/// let view = Inspection::open(&dir)?;
/// let active = view.sessions_where(|s| s.active)?;
/// assert_eq!(active[0].id(), "s1");
/// # Ok(())
/// # }
/// ```
impl Inspection {
    /// Reads and folds the journal in `dir` on the real file system.
    pub fn open(dir: &Path) -> Result<Inspection> {
        Self::open_with_fs(Arc::new(StdFs), dir)
    }

    /// Reads and folds the journal in `dir`; `NoJournal` if it holds none.
    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: &Path) -> Result<Inspection> {
        Self::open_with_progress(fs, dir, |_| {})
    }

    /// [`Inspection::open_with_fs`], telling `progress` the last LSN folded
    /// after each frame (for a progress bar over a long history).
    pub fn open_with_progress(fs: Arc<dyn Fs>, dir: &Path, progress: impl FnMut(u64)) -> Result<Inspection> {
        if !bookend_journal::has_journal(&*fs, dir)? {
            return Err(bookend_journal::Error::NoJournal { dir: dir.to_path_buf() }.into());
        }
        let journal_id = bookend_journal::journal_id(&*fs, dir)?;
        let life = fold::fold_dir(fs.clone(), dir, progress)?;
        Ok(Inspection { fs, dir: dir.to_path_buf(), life, journal_id })
    }

    /// The journal's id (`None` before format version 2).
    pub fn journal_id(&self) -> Option<JournalId> {
        self.journal_id
    }

    /// The journal-wide state.
    pub fn meta(&self) -> &Meta {
        &self.life.meta
    }

    /// The epochs the journal leaves open, and the sessions each owns.
    pub fn open_epochs(&self) -> Vec<crate::rules::WriterEpoch> {
        self.life.writers.listing(self.life.meta.active.len())
    }

    /// The sessions `keep` accepts, in id order.
    pub fn sessions_where(&self, keep: impl Fn(&SessionState) -> bool) -> Result<Vec<SessionState>> {
        fold::sessions_where(&self.life, keep)
    }

    /// One page of the sessions `keep` accepts, in start order, after the
    /// start LSN `after`; at most `limit`.
    pub fn sessions_page(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(&SessionState) -> bool,
    ) -> Result<SessionPage> {
        let table = &self.life.table;
        page::select(table.packed(), table.hot(), |id| table.in_memory(id).is_some(), after, limit, keep)
    }

    /// Calls `each` with the first `limit` sessions `keep` accepts, in start
    /// order. Holds only each match's start LSN and id besides the fold, so
    /// printing a long history does not decode it all into memory at once.
    pub fn for_each_in_start_order(
        &self,
        keep: impl Fn(&SessionState) -> bool,
        limit: Option<usize>,
        mut each: impl FnMut(&SessionState) -> Result<()>,
    ) -> Result<()> {
        let table = &self.life.table;
        let mut order: Vec<(u64, String)> = Vec::new();
        for s in table.packed() {
            let s = s?;
            if table.in_memory(s.id()).is_none() && keep(&s) {
                order.push((s.start_lsn, s.id().to_string()));
            }
        }
        order.extend(table.hot().filter(|s| keep(s)).map(|s| (s.start_lsn, s.id().to_string())));
        order.sort_unstable();
        order.truncate(limit.unwrap_or(usize::MAX));
        for (_, id) in order {
            if let Some(s) = table.get(&id)? {
                each(&s)?;
            }
        }
        Ok(())
    }

    /// Every session, in id order.
    pub fn all_sessions(&self) -> Result<Vec<SessionState>> {
        fold::all_sessions(&self.life)
    }

    /// Every named consumer and its lag behind the last LSN read, or the
    /// error that makes its cursor unusable.
    pub fn consumers(&self) -> Result<Vec<ConsumerStatus>> {
        consumer_statuses(&*self.fs, &self.dir, self.journal_id, self.life.meta.last_lsn)
    }

    /// The segment files and their sizes.
    pub fn segments(&self) -> Result<Vec<SegmentFile>> {
        Ok(bookend_journal::segment_files(&*self.fs, &self.dir)?)
    }
}

/// Folds the journal in `dir` from LSN 1 and compares it, byte for byte,
/// with its projection store's checkpoint plus the tail. Takes the
/// journal's lock: it needs the store to itself, and a writer closing
/// meanwhile would look like a difference.
pub fn replay(dir: &Path) -> Result<ReplayReport> {
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    if !bookend_journal::has_journal(&*fs, dir)? {
        return Err(bookend_journal::Error::NoJournal { dir: dir.to_path_buf() }.into());
    }
    let _locked = LockedDir::lock(fs.clone(), dir)?;
    let store = dir.join(STORE_DIR_NAME);
    if !store.exists() {
        return Err(crate::error::Error::Store {
            path: store,
            reason:
                "there is no projection store to compare with (the first writer to open the journal makes it)"
                    .into(),
        });
    }
    rebuild_and_compare(fs, dir, &store, CACHE_CAPACITY_BYTES_DEFAULT)
}
