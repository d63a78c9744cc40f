//! Gateway-defined projections with the same checkpoint machinery as the
//! session table: fold events into your own view, save it with the LSN it
//! reflects in one write, resume from there on restart.

use bookend_journal::Journal;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::store::ProjectionStore;

/// A view folded from the journal.
pub trait Projection: Send {
    /// Names its checkpoint slot; must be stable across restarts.
    fn name(&self) -> &str;
    /// Folds one event (called in LSN order, each event once per state).
    fn apply(&mut self, event: &Event);
    /// The whole state as bytes (for example with `bookend_journal::codec`).
    fn encode_state(&self) -> Result<Vec<u8>>;
    /// Restores the state saved by `encode_state`.
    fn decode_state(&mut self, bytes: &[u8]) -> Result<()>;
}

/// Keeps a [`Projection`] up to date with a journal and checkpointed.
pub struct ProjectionRunner<P> {
    projection: P,
    lsn: u64,
    store: ProjectionStore,
}

impl<P: Projection> ProjectionRunner<P> {
    /// Loads the projection's last checkpoint from `store`, if it has one.
    pub fn open(mut projection: P, store: ProjectionStore) -> Result<Self> {
        let lsn = match store.load_blob(projection.name())? {
            Some((lsn, bytes)) => match projection.decode_state(&bytes) {
                Ok(()) => lsn,
                Err(e) => {
                    tracing::warn!(projection = projection.name(), error = %e, "checkpoint unreadable; folding from LSN 1");
                    0
                }
            },
            None => 0,
        };
        Ok(ProjectionRunner { projection, lsn, store })
    }

    /// Folds every durable event after the projection's LSN.
    pub fn catch_up(&mut self, journal: &Journal) -> Result<u64> {
        if self.lsn >= journal.next_lsn() {
            return Err(Error::Store {
                path: self.store.path().to_path_buf(),
                reason: format!(
                    "projection {} is at LSN {}, ahead of the journal",
                    self.projection.name(),
                    self.lsn
                ),
            });
        }
        let reader = journal.reader(self.lsn + 1)?;
        let (projection, lsn) = (&mut self.projection, &mut self.lsn);
        let each = |event: Event, _gap| {
            *lsn = event.lsn;
            projection.apply(&event);
            Ok(())
        };
        crate::fold::for_each_event(reader, each, || Ok(()))
    }

    /// Saves the state and its LSN in one write.
    pub fn checkpoint(&self) -> Result<()> {
        self.store.save_blob(self.projection.name(), self.lsn, self.projection.encode_state()?)
    }

    pub fn state(&self) -> &P {
        &self.projection
    }

    /// The last LSN folded.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }
}
