//! The single writer thread and its group commit.
//!
//! Appenders hand finished frames to the thread through a channel, in LSN
//! order. The thread drains every pending request, copies their frames into
//! one buffer, writes it with one `write`, calls one fdatasync if any of them
//! asked for durability, and only then completes them. A failed write or
//! fsync poisons the journal: the failing group and everything after it fail
//! until the journal is reopened.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::error::{Error, IoContext, Result};
use crate::format::SEGMENT_HEADER_SIZE;
use crate::fs::{Fs, FsFile};
use crate::options::{Durability, JournalOptions};
use crate::segment;

/// Acknowledgement of an append: the LSNs its events got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    pub first_lsn: u64,
    pub last_lsn: u64,
}

pub(crate) struct AppendRequest {
    pub frame: Vec<u8>,
    pub ack: AppendAck,
    pub durability: Durability,
    pub done: oneshot::Sender<Result<AppendAck>>,
}

pub(crate) enum Request {
    Append(AppendRequest),
    /// Make everything written so far durable.
    Sync(oneshot::Sender<Result<()>>),
}

/// Upper bounds (µs) of the fsync latency histogram buckets; the last
/// bucket is everything above.
pub const FSYNC_BUCKETS_MICROS: [u64; 10] = [50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 250_000];
/// Upper bounds of the events-per-group histogram buckets.
pub const GROUP_BUCKETS_EVENTS: [u64; 10] = [1, 2, 4, 8, 16, 64, 256, 1_024, 4_096, 16_384];

/// A fixed-bucket histogram: counts per bucket (the extra last bucket is
/// "above every bound") and the sum of observed values.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    pub buckets: [AtomicU64; 11],
    pub sum: AtomicU64,
}

impl Histogram {
    fn observe(&self, bounds: &[u64; 10], value: u64) {
        let i = bounds.iter().position(|b| value <= *b).unwrap_or(bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> [u64; 11] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }
}

/// Counters the writer keeps; read by `Journal::stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub fsync_micros: Histogram,
    pub group_events: Histogram,
    pub appends: AtomicU64,
    pub events: AtomicU64,
    pub groups: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_nanos: AtomicU64,
    pub bytes_written: AtomicU64,
    pub segments_created: AtomicU64,
}

/// State shared by the journal handle, the writer thread and in-process
/// readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub fs: Arc<dyn Fs>,
    /// Set once, by the first failed write or fsync.
    poison: Mutex<Option<String>>,
    /// Highest LSN known durable, for blocking waiters.
    durable: Mutex<u64>,
    durable_changed: Condvar,
    /// The same, for async waiters.
    pub durable_watch: watch::Sender<u64>,
    /// Highest LSN written to the OS (durable or not).
    pub written_lsn: AtomicU64,
    pub counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Our critical sections never panic while holding these locks; if one
    // did, the data (a number or a message) is still consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(dir: PathBuf, fs: Arc<dyn Fs>, durable_lsn: u64) -> Self {
        Shared {
            dir,
            fs,
            poison: Mutex::new(None),
            durable: Mutex::new(durable_lsn),
            durable_changed: Condvar::new(),
            durable_watch: watch::Sender::new(durable_lsn),
            written_lsn: AtomicU64::new(durable_lsn),
            counters: Counters::default(),
        }
    }

    pub fn poisoned(&self) -> Option<String> {
        lock(&self.poison).clone()
    }

    fn poison(&self, cause: &Error) {
        let mut poison = lock(&self.poison);
        if poison.is_none() {
            tracing::error!(error = %cause, "journal I/O failed; refusing further appends until it is reopened");
            *poison = Some(cause.to_string());
        }
        drop(poison);
        // Wake blocking waiters so they see the poison instead of timing out.
        let _durable = lock(&self.durable);
        self.durable_changed.notify_all();
    }

    pub fn durable_lsn(&self) -> u64 {
        *lock(&self.durable)
    }

    fn publish_durable(&self, lsn: u64) {
        let mut durable = lock(&self.durable);
        if lsn > *durable {
            *durable = lsn;
            self.durable_watch.send_replace(lsn);
            self.durable_changed.notify_all();
        }
    }

    /// Blocks until the durable LSN passes `seen` or `timeout` elapses;
    /// returns the durable LSN.
    pub fn wait_durable_past(&self, seen: u64, timeout: Duration) -> u64 {
        let durable = lock(&self.durable);
        let (durable, _) = self
            .durable_changed
            .wait_timeout_while(durable, timeout, |d| *d <= seen && lock(&self.poison).is_none())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *durable
    }
}

/// The active segment as the writer sees it.
struct ActiveSegment {
    file: Box<dyn FsFile>,
    path: PathBuf,
    /// Bytes in the file, including what sits in the group buffer.
    len: u64,
    /// Bytes already handed to the OS.
    written: u64,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    options: JournalOptions,
    segment: ActiveSegment,
    /// Frames of the current group not yet written; reused across groups.
    buf: Vec<u8>,
    /// Highest LSN copied into `buf` or written.
    last_lsn: u64,
    /// Written but not yet fsynced data exists since this instant.
    unsynced_since: Option<Instant>,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        options: JournalOptions,
        file: Box<dyn FsFile>,
        path: PathBuf,
        len: u64,
        last_lsn: u64,
    ) -> Self {
        Writer {
            shared,
            segment: ActiveSegment { file, path, len, written: len },
            buf: Vec::with_capacity(options.group_bytes_max.min(1 << 20)),
            options,
            last_lsn,
            unsynced_since: None,
        }
    }

    /// Runs until every sender is gone, then syncs what is left.
    pub fn run(mut self, rx: Receiver<Request>) {
        let mut group: Vec<Request> = Vec::new();
        loop {
            let first = match self.unsynced_since {
                Some(since) => {
                    let wait = self.options.buffered_sync_interval.saturating_sub(since.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(req) => req,
                        Err(RecvTimeoutError::Timeout) => {
                            let _ = self.sync();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(req) => req,
                    Err(_) => break,
                },
            };
            group.push(first);
            let mut bytes = 0usize;
            while bytes < self.options.group_bytes_max {
                match rx.try_recv() {
                    Ok(req) => {
                        if let Request::Append(a) = &req {
                            bytes += a.frame.len();
                        }
                        group.push(req);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.commit(&mut group);
        }
        if self.unsynced_since.is_some()
            && self.shared.poisoned().is_none()
            && let Err(e) = self.sync()
        {
            tracing::error!(error = %e, "final fsync on close failed");
        }
    }

    /// Writes, syncs and completes one group.
    fn commit(&mut self, group: &mut Vec<Request>) {
        self.shared.counters.groups.fetch_add(1, Ordering::Relaxed);
        if let Some(cause) = self.shared.poisoned() {
            fail_all(group.drain(..), || Error::Poisoned { cause: cause.clone() });
            return;
        }
        let mut needs_sync = false;
        let mut result = Ok(());
        let group_events: u64 = group
            .iter()
            .map(|r| match r {
                Request::Append(a) => a.ack.last_lsn - a.ack.first_lsn + 1,
                Request::Sync(_) => 0,
            })
            .sum();
        if group_events > 0 {
            self.shared.counters.group_events.observe(&GROUP_BUCKETS_EVENTS, group_events);
        }
        for req in group.iter() {
            match req {
                Request::Append(a) => {
                    needs_sync |= a.durability == Durability::Durable;
                    if result.is_ok() {
                        result = self.stage(&a.frame, a.ack);
                    }
                }
                Request::Sync(_) => needs_sync = true,
            }
        }
        let result = result.and_then(|()| self.flush_buf());
        if let Err(e) = result {
            self.fail_group(group, e);
            return;
        }
        self.complete_buffered(group);
        let interval_due =
            self.unsynced_since.is_some_and(|since| since.elapsed() >= self.options.buffered_sync_interval);
        if (needs_sync || interval_due)
            && let Err(e) = self.sync()
        {
            self.fail_group(group, e);
            return;
        }
        for req in group.drain(..) {
            match req {
                Request::Append(a) => {
                    let _ = a.done.send(Ok(a.ack));
                }
                Request::Sync(done) => {
                    let _ = done.send(Ok(()));
                }
            }
        }
    }

    /// Buffered appends are acknowledged once their bytes reach the OS.
    fn complete_buffered(&mut self, group: &mut Vec<Request>) {
        group.retain_mut(|req| match req {
            Request::Append(a) if a.durability == Durability::Buffered => {
                let (tx, _) = oneshot::channel();
                let done = std::mem::replace(&mut a.done, tx);
                let _ = done.send(Ok(a.ack));
                false
            }
            _ => true,
        });
        self.shared.written_lsn.store(self.last_lsn, Ordering::Release);
    }

    fn fail_group(&self, group: &mut Vec<Request>, e: Error) {
        self.shared.poison(&e);
        let message = e.to_string();
        let mut first = Some(e);
        fail_all(group.drain(..), || match first.take() {
            Some(e) => e,
            None => Error::Poisoned { cause: message.clone() },
        });
    }

    /// Copies one frame into the group buffer, rotating first if the frame
    /// would take a non-empty segment past its size limit.
    fn stage(&mut self, frame: &[u8], ack: AppendAck) -> Result<()> {
        assert_eq!(ack.first_lsn, self.last_lsn + 1, "frames must reach the writer in LSN order");
        let has_frames = self.segment.len > SEGMENT_HEADER_SIZE as u64;
        if has_frames && self.segment.len + frame.len() as u64 > self.options.segment_size_max_bytes {
            self.rotate(ack.first_lsn)?;
        }
        self.buf.extend_from_slice(frame);
        self.segment.len += frame.len() as u64;
        self.last_lsn = ack.last_lsn;
        self.shared.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.shared.counters.events.fetch_add(ack.last_lsn - ack.first_lsn + 1, Ordering::Relaxed);
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result =
            self.segment.file.write_all_at(&self.buf, self.segment.written).ctx("write", &self.segment.path);
        self.unsynced_since.get_or_insert_with(Instant::now);
        result?;
        self.segment.written += self.buf.len() as u64;
        self.shared.counters.bytes_written.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        Ok(())
    }

    /// fdatasync, then tell waiters what is durable.
    fn sync(&mut self) -> Result<()> {
        let started = Instant::now();
        let result = self.segment.file.sync_data().ctx("fsync", &self.segment.path);
        let nanos = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.shared.counters.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.shared.counters.fsync_micros.observe(&FSYNC_BUCKETS_MICROS, nanos / 1_000);
        if let Err(e) = result {
            self.shared.poison(&e);
            return Err(e);
        }
        self.unsynced_since = None;
        let written = self.shared.written_lsn.load(Ordering::Acquire);
        self.shared.publish_durable(written);
        Ok(())
    }

    /// Seals the active segment (everything in it written and synced) and
    /// starts a new one at `first_lsn`.
    fn rotate(&mut self, first_lsn: u64) -> Result<()> {
        self.flush_buf()?;
        self.shared.written_lsn.store(first_lsn - 1, Ordering::Release);
        self.sync()?;
        let (file, path) = segment::create_segment(&*self.shared.fs, &self.shared.dir, first_lsn)?;
        tracing::debug!(segment = %path.display(), "started a new segment");
        self.shared.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        let len = SEGMENT_HEADER_SIZE as u64;
        self.segment = ActiveSegment { file, path, len, written: len };
        Ok(())
    }
}

fn fail_all(requests: impl Iterator<Item = Request>, mut error: impl FnMut() -> Error) {
    for req in requests {
        match req {
            Request::Append(a) => {
                let _ = a.done.send(Err(error()));
            }
            Request::Sync(done) => {
                let _ = done.send(Err(error()));
            }
        }
    }
}
