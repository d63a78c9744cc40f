//! The projection store's part of an open. The store opens on its own
//! thread while the journal recovers: sled's start and the journal's checks
//! of its segments were each about a third of an open at 10M events, and
//! the store's checkpoint (evidence of what was durable) is needed only once
//! the recovery has checked the segments and asks for it.

use std::path::Path;
use std::sync::Arc;
use std::thread::ScopedJoinHandle;
use std::time::Instant;

use bookend_journal::fs::Fs;
use bookend_journal::{Evidence, Journal, JournalId, LockedDir};

use super::options::{SessionJournalOptions, StoreLocation};
use crate::error::{Error, Result};
use crate::store::{ProjectionStore, STORE_DIR_NAME};

/// What recovering beside the store gave: the journal, the store as it
/// opened, and the milliseconds the store's open took.
pub(super) type Recovered = (Journal, Option<ProjectionStore>, u64);

/// Recovers the journal in `locked` while its projection store opens on
/// another thread, and hands the recovery the store's and the consumer
/// cursors' evidence of durability when it asks. A store that fails to open
/// stops the recovery before it changes anything that evidence decides, and
/// its error is returned.
pub(super) fn recover_beside_store(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    locked: LockedDir,
    options: &SessionJournalOptions,
) -> Result<Recovered> {
    let known_id = locked.journal_id()?;
    let Some(path) = store_path(dir, options) else {
        let evidence = gather_evidence(&**fs, dir, known_id, None)?;
        return Ok((locked.open(options.journal.clone(), evidence)?, None, 0));
    };
    let open = || timed_open(&path, options.cache_capacity_bytes, known_id);
    std::thread::scope(|scope| {
        let mut opening = match std::thread::Builder::new()
            .name("bookend-store-open".into())
            .spawn_scoped(scope, open)
        {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::debug!(error = %e, "could not start a thread to open the projection store; opening it first");
                None
            }
        };
        let mut opened: Option<(ProjectionStore, u64)> = None;
        let mut failure: Option<Error> = None;
        let journal = locked.open_with_evidence_from(options.journal.clone(), || {
            let evidence = finish(opening.take(), open, &path).and_then(|(store, ms)| {
                let evidence = gather_evidence(&**fs, dir, known_id, Some(&store));
                opened = Some((store, ms));
                evidence
            });
            evidence.map_err(|e| {
                let reason = e.to_string();
                failure = Some(e);
                bookend_journal::Error::EvidenceUnavailable { dir: dir.to_path_buf(), reason }
            })
        });
        // The recovery failed before it asked: the store is not needed.
        if let Some(handle) = opening {
            drop(join(handle, &path));
        }
        let journal = journal.map_err(|e| failure.unwrap_or(e.into()))?;
        let (store, ms) = opened.map_or((None, 0), |(store, ms)| (Some(store), ms));
        Ok((journal, store, ms))
    })
}

/// Opens the store at `path` for journal `id`, timed.
fn timed_open(path: &Path, cache_bytes: u64, id: Option<JournalId>) -> Result<(ProjectionStore, u64)> {
    let started = Instant::now();
    let store = ProjectionStore::open_for(path, cache_bytes, id)?;
    Ok((store, started.elapsed().as_millis() as u64))
}

/// The store the thread opened, or, without a thread, one opened here.
fn finish(
    handle: Option<ScopedJoinHandle<'_, Result<(ProjectionStore, u64)>>>,
    open: impl FnOnce() -> Result<(ProjectionStore, u64)>,
    path: &Path,
) -> Result<(ProjectionStore, u64)> {
    match handle {
        Some(handle) => join(handle, path),
        None => open(),
    }
}

fn join<T>(handle: ScopedJoinHandle<'_, Result<T>>, path: &Path) -> Result<T> {
    // `ProjectionStore::open_for` turns sled's panics into a replaced store;
    // a panic that still gets here is reported, not passed on.
    handle.join().unwrap_or_else(|_| {
        Err(Error::Store { path: path.to_path_buf(), reason: "opening it panicked".into() })
    })
}

pub(super) fn store_path(dir: &Path, options: &SessionJournalOptions) -> Option<std::path::PathBuf> {
    match &options.store {
        StoreLocation::InJournalDir => Some(dir.join(STORE_DIR_NAME)),
        StoreLocation::At(path) => Some(path.clone()),
        StoreLocation::Disabled => None,
    }
}

/// What the projection store and the consumer cursors know was durable.
fn gather_evidence(
    fs: &dyn Fs,
    dir: &Path,
    id: Option<JournalId>,
    store: Option<&ProjectionStore>,
) -> Result<Evidence> {
    let mut evidence = Evidence::default();
    if let Some(store) = store {
        match store.checkpoint_lsn() {
            Ok(lsn) => {
                evidence.raise(lsn, || format!("the checkpoint in {} is at that LSN", store.path().display()))
            }
            // The store is rebuilt after open anyway; it proves nothing.
            Err(e) => tracing::warn!(error = %e, "could not read the projection store's checkpoint"),
        }
    }
    let (lsn, whose) = crate::cursor::cursor_evidence(fs, dir, id)?;
    evidence.raise(lsn, || whose);
    Ok(evidence)
}

/// The store once the journal is open: it adopts the journal's id, and
/// after an accepted loss it is set aside (its checkpoint may hold state
/// the journal no longer has) and rebuilt.
pub(super) fn settle_store(
    store: Option<ProjectionStore>,
    journal: &Journal,
    dir: &Path,
    options: &SessionJournalOptions,
) -> Result<Option<ProjectionStore>> {
    let Some(store) = store else { return Ok(None) };
    let path = store.path().to_path_buf();
    let stored = store.journal_id();
    if !journal.recovery_report().accepted_now.is_empty() {
        drop(store);
        let why =
            ("stale", "a loss of acknowledged LSNs was accepted; its checkpoint may hold lost state".into());
        return ProjectionStore::replace(&path, options.cache_capacity_bytes, why).map(Some);
    }
    match stored {
        Ok(Some(id)) if id == journal.id() => Ok(Some(store)),
        Ok(None) => {
            store.adopt(journal.id())?;
            Ok(Some(store))
        }
        other => {
            drop(store);
            let cause = match other {
                Ok(Some(id)) => format!("it belongs to journal {id}, not to journal {}", journal.id()),
                Err(e) => e.to_string(),
                Ok(None) => String::new(),
            };
            tracing::debug!(dir = %dir.display(), "replacing the projection store");
            ProjectionStore::replace(&path, options.cache_capacity_bytes, ("foreign", cause)).map(Some)
        }
    }
}
