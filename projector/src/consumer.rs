//! Durable consumers: named cursors stored as small files under the journal
//! directory, and subscriptions that deliver events after the cursor in LSN
//! order — first what is on disk, then live — with no gap and no duplicate.
//!
//! A subscription reads the journal files itself, so a slow or stalled
//! consumer holds no buffer in the writer's path: it only lags, and catches
//! up from disk. In-process subscriptions see only durable events and are
//! woken by the writer; subscriptions in other processes poll the files.
//!
//! Delivery is at-least-once across restarts: events after the last `ack`
//! are delivered again. A consumer that stores its effect and the acked LSN
//! together gets exactly-once.
//!
//! The cursor files themselves live in `cursor.rs`.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bookend_journal::fs::{Fs, StdFs};
use bookend_journal::{Follower, Journal};

pub use crate::cursor::ConsumerCursor;
use crate::error::{Error, Result};
use crate::event::{Event, EventBody};
use crate::event_codec::decode_event;

/// A consumer's cursor, shared between its subscription and whoever else
/// in the process acknowledges for it (the server's ack endpoint).
pub(crate) type SharedCursor = Arc<Mutex<ConsumerCursor>>;

fn locked(cursor: &SharedCursor) -> MutexGuard<'_, ConsumerCursor> {
    cursor.lock().unwrap_or_else(|p| p.into_inner())
}

/// Events after a position, in LSN order, from disk and then live.
pub struct Subscription {
    follower: Follower,
    cursor: Option<SharedCursor>,
    types: Option<BTreeSet<String>>,
    ready: VecDeque<Event>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("acked", &self.acked())
            .field("next_lsn", &self.next_lsn())
            .finish_non_exhaustive()
    }
}

/// ```
/// use bookend_projector::{SessionJournal, SessionJournalOptions, Start};
///
/// # fn main() -> Result<(), bookend_projector::Error> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let journal = SessionJournal::open(tmp.path().join("journal"), SessionJournalOptions::default())?;
/// journal.start(Start::new("s1"))?.wait()?;
///
/// // Everything from LSN 1, only the session events a dashboard draws.
/// let mut feed = journal.subscribe_from(1)?.with_types(&["session:start", "session:end"])?;
/// let first = feed.try_next()?.expect("the start is durable");
/// assert_eq!(first.body.session_id(), Some("s1"));
/// assert!(feed.try_next()?.is_none(), "caught up; next_blocking would wait");
/// # Ok(())
/// # }
/// ```
impl Subscription {
    fn new(follower: Follower, cursor: Option<ConsumerCursor>) -> Subscription {
        Subscription {
            follower,
            cursor: cursor.map(|c| Arc::new(Mutex::new(c))),
            types: None,
            ready: VecDeque::new(),
        }
    }

    /// A named consumer of an in-process journal: starts after its cursor.
    pub fn named(journal: &Journal, name: &str) -> Result<Subscription> {
        let end = journal.next_lsn() - 1;
        let cursor =
            ConsumerCursor::open(journal.fs().clone(), journal.dir(), name, Some(journal.id()), Some(end))?;
        Ok(Self::new(journal.follow(cursor.acked() + 1)?, Some(cursor)))
    }

    /// A named consumer of an in-process journal whose cursor is shared.
    pub(crate) fn with_cursor(journal: &Journal, cursor: SharedCursor) -> Result<Subscription> {
        let from = locked(&cursor).acked() + 1;
        Ok(Subscription {
            follower: journal.follow(from)?,
            cursor: Some(cursor),
            types: None,
            ready: VecDeque::new(),
        })
    }

    /// An anonymous reader of an in-process journal from `from_lsn`.
    pub fn from_lsn(journal: &Journal, from_lsn: u64) -> Result<Subscription> {
        Ok(Self::new(journal.follow(from_lsn)?, None))
    }

    /// A named consumer of a journal another process writes. A cursor past
    /// the journal's end is refused: the journal lost what the consumer saw.
    pub fn named_in_dir(dir: &Path, name: &str) -> Result<Subscription> {
        Self::named_in_dir_with_fs(Arc::new(StdFs), dir, name)
    }

    /// [`Subscription::named_in_dir`] through `fs`.
    pub fn named_in_dir_with_fs(fs: Arc<dyn Fs>, dir: &Path, name: &str) -> Result<Subscription> {
        let id = bookend_journal::journal_id(&*fs, dir)?;
        let end = bookend_journal::last_lsn(fs.clone(), dir)?;
        let cursor = ConsumerCursor::open(fs.clone(), dir, name, id, Some(end))?;
        Ok(Self::new(Follower::open_with_fs(fs, dir, cursor.acked() + 1), Some(cursor)))
    }

    /// An anonymous reader of a journal another process writes.
    pub fn from_lsn_in_dir(dir: &Path, from_lsn: u64) -> Subscription {
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
        Self::new(Follower::open_with_fs(fs, dir, from_lsn), None)
    }

    /// Only events of these `type` names are delivered (the cursor still
    /// moves past the others when later events are acked).
    pub fn with_types(mut self, types: &[&str]) -> Result<Subscription> {
        for t in types {
            if !EventBody::TYPE_NAMES.contains(t) {
                return Err(Error::UnknownEventType {
                    name: t.to_string(),
                    known: EventBody::TYPE_NAMES.join(", "),
                });
            }
        }
        self.types = Some(types.iter().map(|t| t.to_string()).collect());
        Ok(self)
    }

    /// How often files are polled when following another process.
    pub fn with_poll_interval(mut self, interval: Duration) -> Subscription {
        self.follower = self.follower.with_poll_interval(interval);
        self
    }

    fn take_frame(&mut self, frame: bookend_journal::OwnedFrame) -> Result<()> {
        for (lsn, bytes) in frame.events() {
            let event = decode_event(lsn, bytes)?;
            if self.types.as_ref().is_none_or(|t| t.contains(event.body.type_name())) {
                self.ready.push_back(event);
            }
        }
        Ok(())
    }

    /// The next event already available, without waiting.
    pub fn try_next(&mut self) -> Result<Option<Event>> {
        while self.ready.is_empty() {
            match self.follower.try_next()? {
                Some(frame) => self.take_frame(frame)?,
                None => return Ok(None),
            }
        }
        Ok(self.ready.pop_front())
    }

    /// Waits (async) for the next event.
    pub async fn next(&mut self) -> Result<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            let frame = self.follower.next().await?;
            self.take_frame(frame)?;
        }
    }

    /// Waits (blocking) up to `timeout` for the next event.
    pub fn next_blocking(&mut self, timeout: Duration) -> Result<Option<Event>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.follower.next_blocking(left)? {
                Some(frame) => self.take_frame(frame)?,
                None => return Ok(None),
            }
        }
    }

    /// Acknowledges every event up to `lsn`: a restarted consumer resumes
    /// after it. Does nothing for anonymous subscriptions.
    pub fn ack(&mut self, lsn: u64) -> Result<()> {
        match &self.cursor {
            Some(cursor) => locked(cursor).ack(lsn),
            None => Ok(()),
        }
    }

    /// The last acknowledged LSN of a named consumer.
    pub fn acked(&self) -> Option<u64> {
        self.cursor.as_ref().map(|c| locked(c).acked())
    }

    /// The LSN of the next event that will be read from the journal.
    pub fn next_lsn(&self) -> u64 {
        self.ready.front().map_or_else(|| self.follower.next_lsn(), |e| e.lsn)
    }
}
