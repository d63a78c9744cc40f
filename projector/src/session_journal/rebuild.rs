//! When the projection store fails while the journal is open (a read or a
//! checkpoint that sled refuses, or a sled panic), it is moved aside and
//! rebuilt from the journal in place, and the command that met the failure
//! is decided again. The store is only a cache: nothing the journal holds
//! is lost, and commands never fail because of it for long.

use super::checkpointer::BackgroundCheckpoints;
use super::pending::wait_durable;
use super::{Core, SessionJournal};
use crate::error::{Error, Result};
use crate::fold;
use crate::rules::Lifecycle;
use crate::store::ProjectionStore;
use crate::table::SessionTable;

impl SessionJournal {
    /// Runs `op` on the state; if it fails because of the projection store,
    /// rebuilds the store and runs it once more.
    pub(super) fn with_store_retry<T>(
        &self,
        core: &mut Core,
        mut op: impl FnMut(&mut Core) -> Result<T>,
    ) -> Result<T> {
        match op(core) {
            Err(e @ Error::Store { .. }) => {
                self.rebuild_store(core, &e)?;
                op(core)
            }
            other => other,
        }
    }

    /// Rebuilds the store now if a checkpoint failed since the last look.
    pub(super) fn rebuild_if_store_failed(&self) -> Result<()> {
        let mut core = super::lock(&self.inner.core);
        match core.store_failure.take() {
            Some(reason) => self.rebuild_store(&mut core, &Error::Store { path: Default::default(), reason }),
            None => Ok(()),
        }
    }

    /// Moves the failed store aside and folds the whole journal into a new
    /// one; `cause` is the failure, named in the WARN.
    pub(super) fn rebuild_store(&self, core: &mut Core, cause: &Error) -> Result<()> {
        let Some(old) = core.life.table.take_store() else { return Err(clone_store_error(cause)) };
        // The background writer and the id scan hold the old store.
        core.background = None;
        let path = old.path().to_path_buf();
        drop(old);
        let journal = &self.inner.journal;
        let last = core.life.meta.last_lsn;
        wait_durable(journal, last, "a rebuild's fsync")?;
        let cache = self.inner.options.cache_capacity_bytes;
        let store = ProjectionStore::replace(&path, cache, ("broken", cause.to_string()))?;
        store.adopt(journal.id())?;
        let mut life = Lifecycle::with_table(SessionTable::with_store(Some(store)));
        fold::fold_journal(&mut life, journal.reader(1)?, |_| {})?;
        assert_eq!(life.meta.last_lsn, last, "a rebuild must fold exactly what was folded before");
        life.save_checkpoint()?;
        let waiter = journal.durable_waiter();
        core.background =
            life.table.store().cloned().map(|s| BackgroundCheckpoints::start(s, None, waiter)).transpose()?;
        core.life = life;
        core.events_since_checkpoint = 0;
        tracing::warn!(store = %path.display(), lsn = last, "the projection store was rebuilt from the journal");
        Ok(())
    }
}

fn clone_store_error(e: &Error) -> Error {
    match e {
        Error::Store { path, reason } => Error::Store { path: path.clone(), reason: reason.clone() },
        other => Error::Store { path: Default::default(), reason: other.to_string() },
    }
}
