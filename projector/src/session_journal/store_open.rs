//! The projection store opens on its own thread while the journal
//! recovers: both read files and check checksums, so on two cores they
//! overlap instead of adding up. The store's checkpoint is evidence of
//! durability; recovery asks for it (joining the thread) before it acts on
//! any evidence, so a torn tail is never cut where the checkpoint says
//! events were durable.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bookend_journal::{Evidence, Journal, JournalId, LaterEvidence, LockedDir};

use super::options::{SessionJournalOptions, StoreLocation};
use crate::error::{Error, Result};
use crate::store::{ProjectionStore, STORE_DIR_NAME};

/// The journal and its store, open, and how long each took.
pub(super) struct Opened {
    pub journal: Journal,
    pub store: Option<ProjectionStore>,
    /// The store's own open, on its thread.
    pub store_ms: u64,
    /// The journal's recovery, including any wait for the store.
    pub recovery_ms: u64,
}

/// Opens the store (if the options keep one) beside the journal's
/// recovery; `up_front` is evidence known before either (consumer cursors).
pub(super) fn open_beside_recovery(
    locked: LockedDir,
    dir: &Path,
    options: &SessionJournalOptions,
    known_id: Option<JournalId>,
    up_front: Evidence,
) -> Result<Opened> {
    let started = Instant::now();
    let Some(path) = store_path(dir, options) else {
        let journal = locked.open(options.journal.clone(), up_front)?;
        return Ok(Opened { journal, store: None, store_ms: 0, recovery_ms: millis(started.elapsed()) });
    };
    let cache = options.cache_capacity_bytes;
    let open_store = || {
        let started = Instant::now();
        (ProjectionStore::open_for(&path, cache, known_id), started.elapsed())
    };
    std::thread::scope(|scope| {
        let thread =
            std::thread::Builder::new().name("bookend-store-open".into()).spawn_scoped(scope, open_store);
        let mut store = match thread {
            Ok(thread) => StoreThread { thread: Some(thread), opened: None, path: &path },
            Err(e) => {
                tracing::debug!(error = %e, "could not start a thread to open the projection store; opening it first");
                let (store, took) = open_store();
                return open_after_store(locked, options, up_front, store?, took);
            }
        };
        let later = LaterEvidence::new(|| match &store.opened().0 {
            Ok(store) => Ok(store_evidence(store)),
            Err(e) => Err(bookend_journal::Error::EvidenceUnavailable { reason: e.to_string() }),
        });
        let journal = locked.open_awaiting(options.journal.clone(), up_front, later);
        let recovery_ms = millis(started.elapsed());
        let (opened, took) = store.take();
        let journal = match (journal, opened) {
            (Err(bookend_journal::Error::EvidenceUnavailable { .. }), Err(e)) => return Err(e),
            (journal, opened) => (journal?, opened?),
        };
        Ok(Opened { journal: journal.0, store: Some(journal.1), store_ms: millis(took), recovery_ms })
    })
}

type StoreOpened = (Result<ProjectionStore>, Duration);

/// The thread opening the store, joined the first time its result is
/// needed.
struct StoreThread<'scope, 'env> {
    thread: Option<std::thread::ScopedJoinHandle<'scope, StoreOpened>>,
    opened: Option<StoreOpened>,
    path: &'env Path,
}

impl StoreThread<'_, '_> {
    fn opened(&mut self) -> &StoreOpened {
        self.opened.get_or_insert_with(|| {
            let thread = self.thread.take();
            let joined = thread.map(|t| t.join());
            match joined {
                Some(Ok(opened)) => opened,
                _ => (Err(panicked(self.path)), Duration::ZERO),
            }
        })
    }

    fn take(mut self) -> StoreOpened {
        self.opened();
        self.opened.unwrap_or_else(|| (Err(panicked(self.path)), Duration::ZERO))
    }
}

/// The open without a thread for the store: the store first, then
/// recovery with its evidence.
fn open_after_store(
    locked: LockedDir,
    options: &SessionJournalOptions,
    mut evidence: Evidence,
    store: ProjectionStore,
    store_took: Duration,
) -> Result<Opened> {
    let theirs = store_evidence(&store);
    evidence.raise(theirs.lsn, || theirs.source);
    let recovering = Instant::now();
    let journal = locked.open(options.journal.clone(), evidence)?;
    let recovery_ms = millis(recovering.elapsed());
    Ok(Opened { journal, store: Some(store), store_ms: millis(store_took), recovery_ms })
}

/// What the store's checkpoint says was durable.
fn store_evidence(store: &ProjectionStore) -> Evidence {
    let mut evidence = Evidence::default();
    match store.checkpoint_lsn() {
        Ok(lsn) => {
            evidence.raise(lsn, || format!("the checkpoint in {} is at that LSN", store.path().display()))
        }
        // The store is rebuilt after open anyway; it proves nothing.
        Err(e) => tracing::warn!(error = %e, "could not read the projection store's checkpoint"),
    }
    evidence
}

fn panicked(path: &Path) -> Error {
    Error::Store { path: path.to_path_buf(), reason: "the thread opening it panicked".into() }
}

fn store_path(dir: &Path, options: &SessionJournalOptions) -> Option<PathBuf> {
    match &options.store {
        StoreLocation::InJournalDir => Some(dir.join(STORE_DIR_NAME)),
        StoreLocation::At(path) => Some(path.clone()),
        StoreLocation::Disabled => None,
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}
