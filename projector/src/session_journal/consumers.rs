//! Named consumers of an open session journal: a subscription holds its
//! consumer's cursor (exclusively, across processes: its lock is released
//! when the subscription is dropped, or its process dies), and while it is
//! held, acknowledgements for that consumer from elsewhere in the process
//! (a server's ack endpoint) go through it. Nothing holds a cursor that no
//! reader uses, so descriptors stay bounded whatever names clients send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{SessionJournal, lock};
use crate::consumer::{ConsumerCursor, SharedCursor, Subscription};
use crate::error::{Error, Result};

/// The cursors live subscriptions of this process hold, by consumer name.
#[derive(Default)]
pub(super) struct LiveConsumers(Mutex<HashMap<String, Weak<Mutex<ConsumerCursor>>>>);

impl LiveConsumers {
    fn get(&self, name: &str) -> Option<SharedCursor> {
        let mut live = lock(&self.0);
        live.retain(|_, cursor| cursor.strong_count() > 0);
        live.get(name).and_then(Weak::upgrade)
    }

    fn insert(&self, name: &str, cursor: &SharedCursor) {
        lock(&self.0).insert(name.to_string(), Arc::downgrade(cursor));
    }
}

impl SessionJournal {
    /// Subscribes as the named consumer: events after its cursor, from
    /// disk then live, durable only. While the subscription lives it holds
    /// the cursor: another reader of the same name (here or in another
    /// process) gets `ConsumerBusy`.
    pub fn subscribe(&self, name: &str) -> Result<Subscription> {
        self.subscribe_after(name, None)
    }

    /// Like [`SessionJournal::subscribe`], first acknowledging everything up
    /// to `seen` (an SSE client's `Last-Event-ID`: it has those events).
    pub fn subscribe_after(&self, name: &str, seen: Option<u64>) -> Result<Subscription> {
        let cursor = self.open_cursor(name)?;
        let shared = Arc::new(Mutex::new(cursor));
        if let Some(seen) = seen {
            self.check_ack(name, seen)?;
            lock(&shared).ack(seen)?;
        }
        self.inner.consumers.insert(name, &shared);
        Subscription::with_cursor(&self.inner.journal, shared)
    }

    /// Acknowledges every event up to `lsn` for consumer `name`: through its
    /// live subscription in this process, or by opening its cursor for the
    /// moment. Returns the acknowledged LSN (acks never move back).
    pub fn ack_consumer(&self, name: &str, lsn: u64) -> Result<u64> {
        self.check_ack(name, lsn)?;
        if let Some(live) = self.inner.consumers.get(name) {
            let mut cursor = lock(&live);
            cursor.ack(lsn)?;
            return Ok(cursor.acked());
        }
        let mut cursor = self.open_cursor(name)?;
        cursor.ack(lsn)?;
        Ok(cursor.acked())
    }

    /// A consumer may only acknowledge what was delivered: durable events.
    fn check_ack(&self, name: &str, lsn: u64) -> Result<()> {
        let durable = self.inner.journal.durable_lsn();
        if lsn > durable {
            return Err(Error::AckAhead { name: name.to_string(), lsn, durable });
        }
        Ok(())
    }

    fn open_cursor(&self, name: &str) -> Result<ConsumerCursor> {
        let j = &self.inner.journal;
        ConsumerCursor::open(j.fs().clone(), j.dir(), name, Some(j.id()), Some(j.durable_lsn()))
    }
}
