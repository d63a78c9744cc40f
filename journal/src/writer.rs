//! The writer threads and their group commit.
//!
//! Appenders hand finished frames to the writer through a channel, in LSN
//! order. A writer thread takes the writer's state, drains every pending
//! request, copies their frames into one buffer and writes it with one
//! `write`. Buffered appends are acknowledged then. It then lets go of the
//! state and, if any of the group wants durability, calls fdatasync itself
//! and completes every waiter the fsync covers.
//!
//! There are `JournalOptions::fsyncs_in_flight_max` such threads (1 by
//! default). With more than one, while one sits in fdatasync the next takes
//! the state and writes and syncs the appends that arrived meanwhile, at
//! once. With a single thread those appends wait for the running fsync and
//! then ride a group of their own, so appenders that each keep one append in
//! flight settle into two cohorts taking turns, and each fsync carries about
//! half of them. Whether two fsyncs at once beat that depends on the device
//! (docs/performance.md has the figures for the disk measured). One append
//! alone takes one thread and one fsync either way, no hand-off more.
//!
//! Each thread syncs through its own handle on the segment because Linux
//! reports a failed writeback once per open file description: on a shared
//! handle one of two concurrent fdatasyncs could see success for pages whose
//! error the other consumed. With separate handles every fsync that covers a
//! failed page fails. A failed write or fsync poisons the journal: the
//! failing group and everything after it fail until the journal is reopened.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
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
    /// What the writer threads share about fsyncs.
    sync: Mutex<SyncState>,
}

/// Who waits for which LSN to become durable.
struct SyncState {
    /// Highest LSN covered by an fsync that has started.
    claimed: u64,
    /// Durable appends and sync requests not yet durable, in LSN order.
    waiters: VecDeque<Waiter>,
}

/// Someone waiting for `lsn` to be durable.
struct Waiter {
    lsn: u64,
    done: Done,
}

enum Done {
    Append(AppendAck, oneshot::Sender<Result<AppendAck>>),
    Sync(oneshot::Sender<Result<()>>),
}

impl Done {
    fn succeed(self) {
        match self {
            Done::Append(ack, tx) => {
                let _ = tx.send(Ok(ack));
            }
            Done::Sync(tx) => {
                let _ = tx.send(Ok(()));
            }
        }
    }

    fn fail(self, e: Error) {
        match self {
            Done::Append(_, tx) => {
                let _ = tx.send(Err(e));
            }
            Done::Sync(tx) => {
                let _ = tx.send(Err(e));
            }
        }
    }
}

impl From<Request> for Done {
    fn from(req: Request) -> Done {
        match req {
            Request::Append(a) => Done::Append(a.ack, a.done),
            Request::Sync(tx) => Done::Sync(tx),
        }
    }
}

/// Fails every one of `dones`: the first with `e`, the rest as poisoned by it.
fn fail_all(dones: impl IntoIterator<Item = Done>, e: Error) {
    let message = e.to_string();
    let mut first = Some(e);
    for done in dones {
        done.fail(first.take().unwrap_or_else(|| Error::Poisoned { cause: message.clone() }));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Our critical sections never panic while holding these locks; if one
    // did, the data (a number or a message) is still consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(dir: PathBuf, fs: Arc<dyn Fs>, durable_lsn: u64) -> Self {
        Shared {
            sync: Mutex::new(SyncState { claimed: durable_lsn, waiters: VecDeque::new() }),
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

    /// Poisons the journal with `e` and fails every waiter; the first
    /// waiter gets `e` itself.
    fn fail(&self, e: Error) {
        self.fail_with(e, Vec::new());
    }

    /// Like [`Shared::fail`], failing `first` before the waiters.
    fn fail_with(&self, e: Error, mut first: Vec<Done>) {
        self.poison(&e);
        first.extend(lock(&self.sync).waiters.drain(..).map(|w| w.done));
        fail_all(first, e);
    }

    /// Records `lsn` as durable and completes the waiters it covers.
    fn durable_up_to(&self, lsn: u64) {
        self.publish_durable(lsn);
        let durable = self.durable_lsn();
        let mut done = Vec::new();
        {
            let mut sync = lock(&self.sync);
            while sync.waiters.front().is_some_and(|w| w.lsn <= durable) {
                done.extend(sync.waiters.pop_front().map(|w| w.done));
            }
        }
        done.into_iter().for_each(Done::succeed);
    }

    /// fdatasync through `file`, counted and timed.
    fn sync_file(&self, file: &dyn FsFile, path: &std::path::Path) -> Result<()> {
        let started = Instant::now();
        let result = file.sync_data().ctx("fsync", path);
        let nanos = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.counters.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.counters.fsync_micros.observe(&FSYNC_BUCKETS_MICROS, nanos / 1_000);
        result
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
    /// Changes with every new segment, so each thread knows when to open
    /// its own handle on the new one.
    generation: u64,
    /// Bytes in the file, including what sits in the group buffer.
    len: u64,
    /// Bytes already handed to the OS.
    written: u64,
    /// The file's size: `written` plus the zeros preallocated after it.
    allocated: u64,
}

/// The writer's state: one writer thread at a time holds it to collect
/// and write a group.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    options: JournalOptions,
    rx: Receiver<Request>,
    segment: ActiveSegment,
    /// Frames of the current group not yet written; reused across groups.
    buf: Vec<u8>,
    /// Highest LSN copied into `buf` or written.
    last_lsn: u64,
    /// Written data nobody has asked to sync exists since this instant.
    unsynced_since: Option<Instant>,
    /// Every sender is gone: the threads make what is written durable and stop.
    closed: bool,
}

/// What a writer thread does after letting go of the writer's state.
enum Next {
    /// Make the target durable.
    Sync(SyncTarget),
    /// The same, then stop: every sender is gone.
    Stop(SyncTarget),
    Continue,
}

/// Everything up to `lsn`, written to the segment at `path`.
struct SyncTarget {
    lsn: u64,
    generation: u64,
    path: PathBuf,
}

/// Starts the writer threads; returns a handle that finishes when all of
/// them have stopped (after the channel's senders are gone).
pub(crate) fn spawn(writer: Writer) -> std::io::Result<JoinHandle<()>> {
    let threads = writer.options.fsyncs_in_flight_max;
    let shared = writer.shared.clone();
    let writer = Arc::new(Mutex::new(writer));
    let mut others = Vec::with_capacity(threads.saturating_sub(1));
    for i in 1..threads {
        let (shared, writer) = (shared.clone(), writer.clone());
        // On failure the caller drops the channel's sender, which stops the
        // threads already started.
        let handle = std::thread::Builder::new()
            .name(format!("bookend-writer-{i}"))
            .spawn(move || run(&shared, &writer))?;
        others.push(handle);
    }
    std::thread::Builder::new().name("bookend-writer-0".into()).spawn(move || {
        run(&shared, &writer);
        for handle in others {
            if handle.join().is_err() {
                tracing::error!(dir = %shared.dir.display(), "a journal writer thread panicked");
            }
        }
    })
}

/// One writer thread: take the state, collect and write a group, let go,
/// sync it through this thread's own handle.
fn run(shared: &Shared, writer: &Mutex<Writer>) {
    let mut own: Option<(u64, Box<dyn FsFile>)> = None;
    loop {
        let (SyncTarget { lsn, generation, path }, stop) = match lock(writer).next_group() {
            Next::Continue => continue,
            Next::Sync(target) => (target, false),
            Next::Stop(target) => (target, true),
        };
        if shared.poisoned().is_none() && claim(shared, lsn) {
            if own.as_ref().is_some_and(|(g, _)| *g != generation) {
                own = None;
            }
            let result = match &own {
                Some((_, file)) => shared.sync_file(&**file, &path),
                None => shared.fs.open_write(&path).ctx("open for fsync", &path).and_then(|file| {
                    let result = shared.sync_file(&*file, &path);
                    own = Some((generation, file));
                    result
                }),
            };
            match result {
                Ok(()) => shared.durable_up_to(lsn),
                Err(e) => {
                    if stop {
                        tracing::error!(error = %e, "final fsync on close failed");
                    }
                    shared.fail(e);
                }
            }
        }
        if stop {
            return;
        }
    }
}

/// Claims the fsync that makes `lsn` durable; false if one that covers it
/// has already started.
fn claim(shared: &Shared, lsn: u64) -> bool {
    let mut sync = lock(&shared.sync);
    if lsn <= sync.claimed {
        return false;
    }
    sync.claimed = lsn;
    true
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        options: JournalOptions,
        rx: Receiver<Request>,
        file: Box<dyn FsFile>,
        path: PathBuf,
        (len, allocated): (u64, u64),
        last_lsn: u64,
    ) -> Self {
        Writer {
            shared,
            rx,
            segment: ActiveSegment {
                file,
                path,
                generation: 0,
                len,
                written: len,
                allocated: allocated.max(len),
            },
            buf: Vec::with_capacity(options.group_bytes_max.min(1 << 20)),
            options,
            last_lsn,
            unsynced_since: None,
            closed: false,
        }
    }

    /// Waits for requests and writes them as one group (or, when buffered
    /// data has waited long enough, asks for a sync).
    fn next_group(&mut self) -> Next {
        if self.closed {
            return Next::Stop(self.target());
        }
        let first = match self.unsynced_since {
            Some(since) => {
                let wait = self.options.buffered_sync_interval.saturating_sub(since.elapsed());
                match self.rx.recv_timeout(wait) {
                    Ok(req) => req,
                    Err(RecvTimeoutError::Timeout) => {
                        self.unsynced_since = None;
                        return Next::Sync(self.target());
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        self.closed = true;
                        return Next::Stop(self.target());
                    }
                }
            }
            None => match self.rx.recv() {
                Ok(req) => req,
                Err(_) => {
                    self.closed = true;
                    return Next::Stop(self.target());
                }
            },
        };
        let mut group = vec![first];
        let mut bytes = 0usize;
        while bytes < self.options.group_bytes_max {
            match self.rx.try_recv() {
                Ok(req) => {
                    if let Request::Append(a) = &req {
                        bytes += a.frame.len();
                    }
                    group.push(req);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        self.commit(group)
    }

    /// Everything written so far, as a sync target.
    fn target(&self) -> SyncTarget {
        SyncTarget {
            lsn: self.last_lsn,
            generation: self.segment.generation,
            path: self.segment.path.clone(),
        }
    }

    /// Writes one group; acknowledges its buffered appends and queues the
    /// rest to be completed by the fsync that covers them.
    fn commit(&mut self, mut group: Vec<Request>) -> Next {
        self.shared.counters.groups.fetch_add(1, Ordering::Relaxed);
        if let Some(cause) = self.shared.poisoned() {
            for req in group {
                Done::from(req).fail(Error::Poisoned { cause: cause.clone() });
            }
            return Next::Continue;
        }
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
        let mut result = Ok(());
        for req in group.iter() {
            if let Request::Append(a) = req
                && result.is_ok()
            {
                result = self.stage(&a.frame, a.ack);
            }
        }
        if let Err(e) = result.and_then(|()| self.flush_buf()) {
            self.shared.fail_with(e, group.drain(..).map(Done::from).collect());
            return Next::Continue;
        }
        let mut waiters = Vec::new();
        for req in group {
            match req {
                Request::Append(a) if a.durability == Durability::Buffered => {
                    let _ = a.done.send(Ok(a.ack));
                }
                req => waiters.push(Done::from(req)),
            }
        }
        let interval_due =
            self.unsynced_since.is_some_and(|since| since.elapsed() >= self.options.buffered_sync_interval);
        if waiters.is_empty() && !interval_due {
            return Next::Continue;
        }
        self.unsynced_since = None;
        let lsn = self.last_lsn;
        if lsn <= self.shared.durable_lsn() {
            waiters.into_iter().for_each(Done::succeed);
            return Next::Continue;
        }
        lock(&self.shared.sync).waiters.extend(waiters.into_iter().map(|done| Waiter { lsn, done }));
        Next::Sync(self.target())
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
        self.segment.allocated = self.segment.allocated.max(self.segment.written);
        self.preallocate()?;
        self.shared.counters.bytes_written.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        self.shared.written_lsn.store(self.last_lsn, Ordering::Release);
        Ok(())
    }

    /// Keeps `preallocate_bytes` of zeros ahead of the data once less than
    /// half of them is left, so the next fdatasyncs need no size change.
    fn preallocate(&mut self) -> Result<()> {
        let ahead = self.options.preallocate_bytes;
        let segment = &mut self.segment;
        let limit = self.options.segment_size_max_bytes;
        if ahead == 0 || segment.allocated >= limit || segment.allocated - segment.written >= ahead / 2 {
            return Ok(());
        }
        let target = (segment.written + ahead).min(limit);
        let zeros = vec![0u8; (target - segment.allocated) as usize];
        segment.file.write_all_at(&zeros, segment.allocated).ctx("preallocate", &segment.path)?;
        segment.allocated = target;
        Ok(())
    }

    /// Seals the active segment (everything in it written and synced) and
    /// starts a new one at `first_lsn`.
    fn rotate(&mut self, first_lsn: u64) -> Result<()> {
        self.flush_buf()?;
        if self.segment.allocated > self.segment.written {
            // A sealed segment holds its frames and nothing after them.
            self.segment
                .file
                .set_len(self.segment.written)
                .ctx("trim preallocated space of", &self.segment.path)?;
            self.segment.allocated = self.segment.written;
        }
        {
            let mut sync = lock(&self.shared.sync);
            sync.claimed = sync.claimed.max(first_lsn - 1);
        }
        self.shared.sync_file(&*self.segment.file, &self.segment.path)?;
        self.shared.durable_up_to(first_lsn - 1);
        let (file, path) = segment::create_segment(&*self.shared.fs, &self.shared.dir, first_lsn)?;
        tracing::debug!(segment = %path.display(), "started a new segment");
        self.shared.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        let len = SEGMENT_HEADER_SIZE as u64;
        let generation = self.segment.generation + 1;
        self.segment = ActiveSegment { file, path, generation, len, written: len, allocated: len };
        Ok(())
    }
}
