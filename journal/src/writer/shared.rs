//! What the journal handle, the writer threads and in-process readers
//! share: the durable LSN and its waiters, the poison, the counters, the
//! manifest and the durable hint.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::error::{Error, IoContext, Result};
use crate::format::{JournalId, Manifest};
use crate::fs::{Fs, FsFile};
use crate::manifest::{DurableHint, store_manifest};

use super::AppendAck;

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
    pub(super) fn observe(&self, bounds: &[u64; 10], value: u64) {
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
    pub writer_wakes: AtomicU64,
}

/// State shared by the journal handle, the writer thread and in-process
/// readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub fs: Arc<dyn Fs>,
    pub id: JournalId,
    /// The manifest as last stored; the writer updates it when it seals a
    /// segment, the journal when it closes.
    pub manifest: Mutex<Manifest>,
    /// Overwritten with the durable LSN after every fsync.
    hint: DurableHint,
    /// The durable LSN without a lock, for the watermark every frame carries.
    durable_fast: AtomicU64,
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
    pub(super) sync: Mutex<SyncState>,
    /// Durable appends the last fsync completed, and how long it took:
    /// how many callers are likely to come straight back, and how long
    /// waiting for them may cost (see `Pipeline::gather`).
    last_cohort: AtomicUsize,
    last_fsync_nanos: AtomicU64,
    /// Frames of the segment recovered at open that readers may start at.
    pub seek: Option<crate::seek::SeekPoints>,
}

/// Who waits for which LSN to become durable.
pub(super) struct SyncState {
    /// Highest LSN covered by an fsync that has started.
    pub claimed: u64,
    /// Durable appends and sync requests not yet durable, in LSN order.
    pub waiters: VecDeque<Waiter>,
}

/// Someone waiting for `lsn` to be durable.
pub(super) struct Waiter {
    pub lsn: u64,
    pub done: Done,
}

pub(crate) enum Done {
    Append(AppendAck, oneshot::Sender<Result<AppendAck>>),
    Sync(oneshot::Sender<Result<()>>),
}

impl Done {
    pub fn succeed(self) {
        match self {
            Done::Append(ack, tx) => {
                let _ = tx.send(Ok(ack));
            }
            Done::Sync(tx) => {
                let _ = tx.send(Ok(()));
            }
        }
    }

    pub fn fail(self, e: Error) {
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

/// Fails every one of `dones`: the first with `e`, the rest as poisoned by it.
pub(super) fn fail_all(dones: impl IntoIterator<Item = Done>, e: Error) {
    let message = e.to_string();
    let mut first = Some(e);
    for done in dones {
        done.fail(first.take().unwrap_or_else(|| Error::Poisoned { cause: message.clone() }));
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Our critical sections never panic while holding these locks; if one
    // did, the data (a number or a message) is still consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(
        dir: PathBuf,
        fs: Arc<dyn Fs>,
        manifest: Manifest,
        durable_lsn: u64,
        shared_writers: bool,
    ) -> Result<Self> {
        let hint = DurableHint::open(&fs, &dir, manifest.journal_id, durable_lsn, shared_writers)?;
        Ok(Shared {
            id: manifest.journal_id,
            manifest: Mutex::new(manifest),
            hint,
            durable_fast: AtomicU64::new(durable_lsn),
            sync: Mutex::new(SyncState { claimed: durable_lsn, waiters: VecDeque::new() }),
            dir,
            fs,
            poison: Mutex::new(None),
            durable: Mutex::new(durable_lsn),
            durable_changed: Condvar::new(),
            durable_watch: watch::Sender::new(durable_lsn),
            written_lsn: AtomicU64::new(durable_lsn),
            counters: Counters::default(),
            last_cohort: AtomicUsize::new(0),
            last_fsync_nanos: AtomicU64::new(0),
            seek: None,
        })
    }

    /// The durable LSN, read without a lock (it may lag by a moment).
    pub fn durable_lsn_fast(&self) -> u64 {
        self.durable_fast.load(Ordering::Acquire)
    }

    /// Records `floor` as durable in the manifest (on close): a later open
    /// that finds the journal ending before it knows data was lost.
    pub fn store_floor(&self, floor: u64) -> Result<()> {
        let mut manifest = lock(&self.manifest);
        if manifest.durable_floor_lsn >= floor {
            return Ok(());
        }
        let mut updated = manifest.clone();
        updated.durable_floor_lsn = floor;
        store_manifest(&*self.fs, &self.dir, &updated)?;
        *manifest = updated;
        Ok(())
    }

    /// Takes in the manifest another writer process stored (several
    /// writers, under the append lock): its segment and floor, or ours if
    /// they are further on.
    pub fn reload_manifest(&self) -> Result<()> {
        let Some(stored) = crate::manifest::load_manifest(&*self.fs, &self.dir)? else { return Ok(()) };
        if stored.journal_id != self.id {
            return Ok(());
        }
        let mut manifest = lock(&self.manifest);
        let mut merged = stored;
        merged.durable_floor_lsn = merged.durable_floor_lsn.max(manifest.durable_floor_lsn);
        merged.last_segment_first_lsn = merged.last_segment_first_lsn.max(manifest.last_segment_first_lsn);
        *manifest = merged;
        Ok(())
    }

    pub fn poisoned(&self) -> Option<String> {
        lock(&self.poison).clone()
    }

    pub(super) fn poison(&self, cause: &Error) {
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
    pub(super) fn fail(&self, e: Error) {
        self.fail_with(e, Vec::new());
    }

    /// Like [`Shared::fail`], failing `first` before the waiters.
    pub(super) fn fail_with(&self, e: Error, mut first: Vec<Done>) {
        self.poison(&e);
        first.extend(lock(&self.sync).waiters.drain(..).map(|w| w.done));
        fail_all(first, e);
    }

    /// Records `lsn` as durable (in the durable hint first) and completes
    /// the waiters it covers. A failed hint write fails like an fsync.
    pub(super) fn durable_up_to(&self, lsn: u64) -> Result<()> {
        self.hint.publish(lsn)?;
        self.publish_durable(lsn);
        let durable = self.durable_lsn();
        let mut done = Vec::new();
        {
            let mut sync = lock(&self.sync);
            while sync.waiters.front().is_some_and(|w| w.lsn <= durable) {
                done.extend(sync.waiters.pop_front().map(|w| w.done));
            }
        }
        let appends = done.iter().filter(|d| matches!(d, Done::Append(..))).count();
        if appends > 0 {
            self.last_cohort.store(appends, Ordering::Relaxed);
        }
        done.into_iter().for_each(Done::succeed);
        Ok(())
    }

    /// Durable appends the last fsync that completed any acknowledged, and
    /// that fsync's duration.
    pub(super) fn last_cohort(&self) -> (usize, Duration) {
        let nanos = self.last_fsync_nanos.load(Ordering::Relaxed);
        (self.last_cohort.load(Ordering::Relaxed), Duration::from_nanos(nanos))
    }

    /// fdatasync through `file`, counted and timed.
    pub(super) fn sync_file(&self, file: &dyn FsFile, path: &std::path::Path) -> Result<()> {
        let started = Instant::now();
        let result = file.sync_data().ctx("fsync", path);
        let nanos = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.counters.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.counters.fsync_micros.observe(&FSYNC_BUCKETS_MICROS, nanos / 1_000);
        self.last_fsync_nanos.store(nanos, Ordering::Relaxed);
        result
    }

    pub fn durable_lsn(&self) -> u64 {
        *lock(&self.durable)
    }

    fn publish_durable(&self, lsn: u64) {
        let mut durable = lock(&self.durable);
        if lsn > *durable {
            *durable = lsn;
            self.durable_fast.store(lsn, Ordering::Release);
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
