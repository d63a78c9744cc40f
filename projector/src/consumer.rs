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

use std::collections::{BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bookend_journal::fs::{Fs, StdFs};
use bookend_journal::{Follower, Journal};

use crate::error::{Error, Result};
use crate::event::{Event, EventBody};
use crate::session_journal::decode_event;

/// Sub-directory of the journal holding cursor files.
pub const CONSUMERS_DIR: &str = "consumers";
/// Longest consumer name, in bytes.
pub const CONSUMER_NAME_LEN_MAX: usize = 64;

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Checks a consumer name: 1–64 bytes of letters, digits, `-`, `_` and `.`,
/// not starting with a dot. Names become file names, so nothing else passes.
pub fn validate_consumer_name(name: &str) -> Result<()> {
    let invalid =
        |reason: &str| Err(Error::InvalidConsumer { name: name.to_string(), reason: reason.to_string() });
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > CONSUMER_NAME_LEN_MAX {
        return invalid("it is longer than 64 bytes");
    }
    if name.starts_with('.') {
        return invalid("it starts with a dot");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return invalid("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

/// A named consumer's position: the last LSN it acknowledged. Held
/// exclusively (a lock file) so two processes cannot move one cursor.
#[derive(Debug)]
pub struct ConsumerCursor {
    name: String,
    dir: PathBuf,
    acked: u64,
    _lock: File,
}

impl ConsumerCursor {
    /// Opens (creating at 0) the cursor `name` of the journal in `journal_dir`.
    pub fn open(journal_dir: &Path, name: &str) -> Result<ConsumerCursor> {
        validate_consumer_name(name)?;
        let dir = journal_dir.join(CONSUMERS_DIR);
        std::fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::InvalidConsumer {
                    name: name.to_string(),
                    reason: "another process is reading as this consumer".into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
        }
        let acked = read_cursor(&dir, name)?;
        Ok(ConsumerCursor { name: name.to_string(), dir, acked, _lock: lock })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last acknowledged LSN (0: nothing yet).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Moves the cursor to `lsn` durably: write a temporary file, fsync it,
    /// rename it over the cursor, fsync the directory. Acks never move back.
    pub fn ack(&mut self, lsn: u64) -> Result<()> {
        if lsn <= self.acked {
            return Ok(());
        }
        let path = cursor_path(&self.dir, &self.name);
        let temp = self.dir.join(format!("{}.cursor.tmp", self.name));
        {
            let mut file = File::create(&temp).map_err(io("create", &temp))?;
            writeln!(file, "{lsn}").map_err(io("write", &temp))?;
            file.sync_data().map_err(io("fsync", &temp))?;
        }
        std::fs::rename(&temp, &path).map_err(io("rename", &temp))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("fsync directory", &self.dir))?;
        self.acked = lsn;
        Ok(())
    }
}

fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.cursor"))
}

fn read_cursor(dir: &Path, name: &str) -> Result<u64> {
    let path = cursor_path(dir, name);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| Error::InvalidConsumer {
            name: name.to_string(),
            reason: format!("cursor file {} does not hold an LSN", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io("read", &path)(e)),
    }
}

/// Every consumer of the journal in `journal_dir` and its acknowledged LSN
/// (read without taking the consumers' locks).
pub fn list_consumers(journal_dir: &Path) -> Result<Vec<(String, u64)>> {
    let dir = journal_dir.join(CONSUMERS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", &dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry.map_err(io("list", &dir))?.file_name().to_string_lossy().into_owned();
        if let Some(consumer) = name.strip_suffix(".cursor") {
            out.push((consumer.to_string(), read_cursor(&dir, consumer)?));
        }
    }
    out.sort();
    Ok(out)
}

/// Events after a position, in LSN order, from disk and then live.
pub struct Subscription {
    follower: Follower,
    cursor: Option<ConsumerCursor>,
    types: Option<BTreeSet<String>>,
    ready: VecDeque<Event>,
}

impl Subscription {
    fn new(follower: Follower, cursor: Option<ConsumerCursor>) -> Subscription {
        Subscription { follower, cursor, types: None, ready: VecDeque::new() }
    }

    /// A named consumer of an in-process journal: starts after its cursor.
    pub fn named(journal: &Journal, name: &str) -> Result<Subscription> {
        let cursor = ConsumerCursor::open(journal.dir(), name)?;
        Ok(Self::new(journal.follow(cursor.acked() + 1)?, Some(cursor)))
    }

    /// An anonymous reader of an in-process journal from `from_lsn`.
    pub fn from_lsn(journal: &Journal, from_lsn: u64) -> Result<Subscription> {
        Ok(Self::new(journal.follow(from_lsn)?, None))
    }

    /// A named consumer of a journal another process writes.
    pub fn named_in_dir(dir: &Path, name: &str) -> Result<Subscription> {
        let cursor = ConsumerCursor::open(dir, name)?;
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
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
                return Err(Error::InvalidConsumer {
                    name: self.cursor.as_ref().map_or("", |c| c.name()).to_string(),
                    reason: format!(
                        "unknown event type {t:?}; known types: {}",
                        EventBody::TYPE_NAMES.join(", ")
                    ),
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
        match &mut self.cursor {
            Some(cursor) => cursor.ack(lsn),
            None => Ok(()),
        }
    }

    /// The last acknowledged LSN of a named consumer.
    pub fn acked(&self) -> Option<u64> {
        self.cursor.as_ref().map(ConsumerCursor::acked)
    }

    /// The LSN of the next event that will be read from the journal.
    pub fn next_lsn(&self) -> u64 {
        self.ready.front().map_or_else(|| self.follower.next_lsn(), |e| e.lsn)
    }
}
