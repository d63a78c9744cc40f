//! `Pending`: a command accepted, on its way to disk.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use bookend_journal::{AppendTicket, Journal};

use super::{OPEN_SYNC_TIMEOUT, SessionJournal};
use crate::error::{Error, Result};

/// Blocks until `lsn` is durable; a wait longer than `OPEN_SYNC_TIMEOUT`
/// is `Timeout`, naming `what` was waited for.
pub(super) fn wait_durable(journal: &Journal, lsn: u64, what: &'static str) -> Result<()> {
    if journal.wait_durable_blocking(lsn, OPEN_SYNC_TIMEOUT)? {
        return Ok(());
    }
    let millis = OPEN_SYNC_TIMEOUT.as_millis() as u64;
    Err(Error::Journal(bookend_journal::Error::Timeout { what, millis }))
}

pub(super) enum Wait {
    Ready,
    Ticket(AppendTicket),
    /// A duplicate: wait until the original LSN is durable.
    Durable(u64),
}

/// A command accepted, on its way to disk. `.await` it, or `.wait()` from
/// sync code (not from inside an async task).
pub struct Pending<T> {
    pub(super) value: T,
    pub(super) wait: Wait,
    pub(super) owner: SessionJournal,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("value", &self.value).finish_non_exhaustive()
    }
}

impl<T> Pending<T> {
    /// The answer, before it is durable (for pipelining: do not report it
    /// to anyone until `wait` or `.await` returns).
    pub fn peek(&self) -> &T {
        &self.value
    }

    /// Whether `wait` would return at once: the command needed no append,
    /// or the journal has made its events durable. (A buffered append may
    /// be acknowledged before this says so.)
    pub fn is_durable(&self) -> bool {
        let durable = self.owner.inner.journal.durable_lsn();
        match &self.wait {
            Wait::Ready => true,
            Wait::Ticket(ticket) => durable >= ticket.lsns().last_lsn,
            Wait::Durable(lsn) => durable >= *lsn,
        }
    }

    /// Blocks until the command is durable.
    pub fn wait(self) -> Result<T> {
        match self.wait {
            Wait::Ready => {}
            Wait::Ticket(ticket) => {
                ticket.wait().map_err(|e| self.owner.poison_on(e.into()))?;
            }
            Wait::Durable(lsn) => {
                wait_durable(&self.owner.inner.journal, lsn, "the fsync of an earlier answer")?
            }
        }
        Ok(self.value)
    }
}

impl<T: Send + 'static> IntoFuture for Pending<T> {
    type Output = Result<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.wait {
                Wait::Ready => {}
                Wait::Ticket(ticket) => {
                    ticket.await.map_err(|e| self.owner.poison_on(e.into()))?;
                }
                Wait::Durable(lsn) => {
                    if self.owner.inner.journal.durable_lsn() < lsn {
                        self.owner.inner.journal.sync().await?;
                    }
                }
            }
            Ok(self.value)
        })
    }
}
