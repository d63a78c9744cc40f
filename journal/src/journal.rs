//! The journal handle: open (with lock and recovery), append, sync, close.

use std::future::{Future, IntoFuture};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::batch::Batch;
use crate::durable_wait::{self, DurableWaiter};
use crate::error::{Error, IoContext, Result};
use crate::format::JournalId;
use crate::fs::{Fs, LockGuard, StdFs};
use crate::open::{self, LockedDir};
use crate::options::{Durability, JournalOptions};
use crate::reader::{Follower, Reader};
use crate::recovery::{Evidence, RecoveryReport};
use crate::writer::{self, AppendAck, Hold, Pipeline, Shared, Writer};

/// An open journal: the only writer of its directory.
///
/// Appends may come from any number of threads or tasks at once; they are
/// numbered in the order they are submitted and committed in groups that
/// share one write and one fsync.
pub struct Journal {
    shared: Arc<Shared>,
    pub(crate) options: JournalOptions,
    pub(crate) pipeline: Arc<Pipeline>,
    thread: Mutex<Option<JoinHandle<()>>>,
    recovery: RecoveryReport,
    /// Released when the journal is dropped, after the writer has stopped.
    _lock: LockGuard,
}

/// Figures the writer has counted since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    pub appends: u64,
    pub events: u64,
    /// Group commits that wrote events (sync-only groups are not counted).
    pub groups: u64,
    pub fsyncs: u64,
    pub fsync_nanos_total: u64,
    pub bytes_written: u64,
    pub segments_created: u64,
    pub durable_lsn: u64,
    pub written_lsn: u64,
    /// fsync latency: counts per bucket of `FSYNC_BUCKETS_MICROS` (+ one
    /// above the last bound), and the sum in µs.
    pub fsync_micros_buckets: [u64; 11],
    pub fsync_micros_sum: u64,
    /// Events per group commit: counts per bucket of `GROUP_BUCKETS_EVENTS`.
    pub group_events_buckets: [u64; 11],
    pub group_events_sum: u64,
    /// Times an appender or a sync request woke a writer thread: about one
    /// per group under load, not one per append.
    pub writer_wakes: u64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("durable_lsn", &self.shared.durable_lsn())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>, options: JournalOptions) -> Result<Journal> {
        Self::open_with_fs(Arc::new(StdFs), dir, options)
    }

    /// Opens the journal in `dir` through `fs`: takes the writer lock, runs
    /// recovery (truncating a torn tail), and starts the writer thread.
    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, options: JournalOptions) -> Result<Journal> {
        let locked =
            if options.shared_writers { LockedDir::lock_shared(fs, dir)? } else { LockedDir::lock(fs, dir)? };
        locked.open(options, Evidence::default())
    }

    /// Recovers the journal in a locked directory with the caller's own
    /// evidence of durability (see [`LockedDir`]), asked for once the
    /// segments are checked, and starts the writer.
    pub(crate) fn start(
        locked: LockedDir,
        options: JournalOptions,
        evidence: crate::recovery::LateEvidence,
    ) -> Result<Journal> {
        options.validate()?;
        let LockedDir { fs, dir, guard } = locked;
        let start = {
            // Several writers: nobody appends while this one recovers.
            let _turn = append_lock(options.shared_writers, &*fs, &dir)?;
            open::prepare(&*fs, &dir, &options, evidence)?
        };
        let turns = options.shared_writers.then(|| writer::Turns::new(&dir));
        let report = start.report;
        let last_lsn = start.segment.last_lsn;
        let mut shared = Shared::new(dir, fs, start.manifest, last_lsn, options.shared_writers)?;
        shared.seek = start.seek;
        let shared = Arc::new(shared);
        let pipeline =
            Arc::new(Pipeline::new(Writer::new(shared.clone(), options.clone(), start.segment, turns)));
        let thread = match writer::spawn(pipeline.clone(), shared.clone(), options.fsyncs_in_flight_max) {
            Ok(thread) => thread,
            Err(e) => {
                pipeline.close();
                return Err(Error::io("spawn writer threads for", &shared.dir, e));
            }
        };
        tracing::info!(
            dir = %shared.dir.display(),
            journal_id = %shared.id,
            next_lsn = report.next_lsn,
            segments = report.segments,
            torn_tail = report.torn_tail.is_some(),
            "journal opened"
        );
        Ok(Journal {
            shared,
            options,
            pipeline,
            thread: Mutex::new(Some(thread)),
            recovery: report,
            _lock: guard,
        })
    }

    /// The journal's identity.
    pub fn id(&self) -> JournalId {
        self.shared.id
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.shared.fs
    }

    /// What recovery found when this journal was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The LSN the next append will get. With `shared_writers` it is the
    /// next LSN as of this process's last turn: another process may take it
    /// first (an append's ticket names the LSNs it really got).
    pub fn next_lsn(&self) -> u64 {
        self.pipeline.lock().next_lsn()
    }

    /// Every event up to this LSN is on disk and fsynced. With
    /// `shared_writers`, another process's fsync counts too (its durable
    /// hint), so a consumer here may acknowledge what it made durable.
    pub fn durable_lsn(&self) -> u64 {
        let own = self.shared.durable_lsn();
        if !self.options.shared_writers {
            return own;
        }
        own.max(crate::manifest::read_durable_hint(&*self.shared.fs, &self.shared.dir, self.shared.id))
    }

    /// Numbers `batch` and hands it to the writer; returns at once. The
    /// ticket completes when the batch is acknowledged under `durability`.
    /// Tickets complete in LSN order.
    pub fn submit(&self, batch: Batch, durability: Durability) -> Result<AppendTicket> {
        self.submit_inner(batch, durability, false)
    }

    /// Like [`Journal::submit`], but leaves the frame staged: it is written
    /// and synced only after [`Journal::commit_staged`] (or another
    /// append's group). A caller with many batches at hand stages them all
    /// and commits once: one `write` and one fsync for the lot, and one
    /// wake-up of the writer thread instead of one per batch.
    pub fn submit_staged(&self, batch: Batch, durability: Durability) -> Result<AppendTicket> {
        self.submit_inner(batch, durability, true)
    }

    /// Writes what [`Journal::submit_staged`] left staged (acknowledging
    /// its buffered batches) and wakes a writer thread to sync the durable
    /// ones. Always call it after staging, even if a later submit failed.
    pub fn commit_staged(&self) {
        let mut writer = self.pipeline.lock();
        writer.write_staged();
        drop(writer);
        self.wake_writer();
    }

    fn submit_inner(&self, batch: Batch, durability: Durability, staged: bool) -> Result<AppendTicket> {
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if batch.frame_len() > self.options.record_size_max_bytes {
            return Err(Error::RecordTooLarge {
                size: batch.frame_len(),
                max: self.options.record_size_max_bytes,
            });
        }
        let count = batch.len() as u64;
        let payload_hasher = batch.payload_hasher();
        let (done, rx) = oneshot::channel();
        let (mut writer, contended) = self.pipeline.lock_with_room();
        if self.shared.poisoned().is_some() || writer.closed() {
            // An appender before us may have left its frame for us to write.
            let wake = writer.has_unwritten();
            drop(writer);
            if wake {
                self.wake_writer();
            }
            return Err(self.shared.poisoned().map_or(Error::Closed, |cause| Error::Poisoned { cause }));
        }
        // Several writers: take the append lock and what the others wrote.
        writer.begin_turn()?;
        let first_lsn = writer.next_lsn();
        let ack = AppendAck { first_lsn, last_lsn: first_lsn + count - 1 };
        let frame = batch.seal(first_lsn, self.shared.durable_lsn_fast(), payload_hasher.as_ref());
        let hold = match (staged, contended) {
            (true, _) => Hold::Staged,
            (false, true) => Hold::Contended,
            (false, false) => Hold::No,
        };
        let wake = writer.append(&frame, ack, durability, done, hold);
        writer.end_turn();
        drop(writer);
        if wake && !staged {
            self.wake_writer();
        }
        Ok(AppendTicket { rx, ack })
    }

    /// Appends and waits, blocking the calling thread. Do not call from an
    /// async task: use [`Journal::append`] there.
    pub fn append_blocking(&self, batch: Batch, durability: Durability) -> Result<AppendAck> {
        self.submit(batch, durability)?.wait()
    }

    /// Appends and waits without blocking the runtime thread.
    pub async fn append(&self, batch: Batch, durability: Durability) -> Result<AppendAck> {
        self.submit(batch, durability)?.await
    }

    /// Makes everything written so far durable (blocking).
    pub fn sync_blocking(&self) -> Result<()> {
        self.request_sync()?.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// Makes everything written so far durable.
    pub async fn sync(&self) -> Result<()> {
        self.request_sync()?.await.map_err(|_| Error::Closed)?
    }

    fn request_sync(&self) -> Result<oneshot::Receiver<Result<()>>> {
        durable_wait::request_sync(&self.shared, &self.pipeline)
    }

    /// Blocks until every LSN up to `lsn` is durable (asking the writer to
    /// sync now rather than at its next timer), or until `timeout`. Uses no
    /// async machinery, so it is safe (if blocking) inside a runtime.
    pub fn wait_durable_blocking(&self, lsn: u64, timeout: std::time::Duration) -> Result<bool> {
        durable_wait::wait_durable(&self.shared, &self.pipeline, lsn, timeout)
    }

    /// What waits for this journal's durable LSN from another thread,
    /// without the handle.
    pub fn durable_waiter(&self) -> DurableWaiter {
        DurableWaiter::new(self.shared.clone(), self.pipeline.clone())
    }

    /// A reader from `from_lsn` that sees only durable events.
    pub fn reader(&self, from_lsn: u64) -> Result<Reader> {
        Reader::open_bounded(self.shared.clone(), from_lsn)
    }

    /// A follower from `from_lsn` that waits for new durable events. With
    /// `shared_writers` it follows the files and the durable hint, as a
    /// reader in another process does: other processes append and fsync
    /// without this one's writer knowing.
    pub fn follow(&self, from_lsn: u64) -> Result<Follower> {
        if self.options.shared_writers {
            return Ok(Follower::open_with_fs(self.shared.fs.clone(), &self.shared.dir, from_lsn));
        }
        Ok(Follower::new(self.reader(from_lsn)?, Some(self.shared.clone())))
    }

    /// Wakes a writer thread, counting it.
    fn wake_writer(&self) {
        durable_wait::wake_writer(&self.shared, &self.pipeline);
    }

    pub fn stats(&self) -> JournalStats {
        let c = &self.shared.counters;
        JournalStats {
            appends: c.appends.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            fsync_nanos_total: c.fsync_nanos.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            durable_lsn: self.shared.durable_lsn(),
            written_lsn: self.shared.written_lsn.load(Ordering::Acquire),
            fsync_micros_buckets: c.fsync_micros.snapshot(),
            fsync_micros_sum: c.fsync_micros.sum.load(Ordering::Relaxed),
            group_events_buckets: c.group_events.snapshot(),
            group_events_sum: c.group_events.sum.load(Ordering::Relaxed),
            writer_wakes: c.writer_wakes.load(Ordering::Relaxed),
        }
    }

    /// The failure that poisoned the journal, if one did.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poisoned()
    }

    /// Syncs everything and stops the writer. Appends after this fail with
    /// `Error::Closed`.
    pub fn close(&self) -> Result<()> {
        let synced = match self.request_sync() {
            Ok(rx) => rx.blocking_recv().map_err(|_| Error::Closed).and_then(|r| r),
            Err(Error::Closed) => Ok(()),
            Err(e) => Err(e),
        };
        self.stop_writer();
        synced?;
        // A later open that finds the journal ending before this knows that
        // acknowledged data was lost.
        if self.shared.poisoned().is_none() {
            // Several writers: merge with the manifest the others stored,
            // and store it, in one turn.
            let turn = append_lock(self.options.shared_writers, &**self.fs(), self.dir())?;
            if turn.is_some() {
                self.shared.reload_manifest()?;
            }
            self.shared.store_floor(self.shared.durable_lsn())?;
        }
        Ok(())
    }

    fn stop_writer(&self) {
        self.pipeline.close();
        if let Some(thread) = lock(&self.thread).take()
            && thread.join().is_err()
        {
            tracing::error!(dir = %self.shared.dir.display(), "the journal writer thread panicked");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // The writer threads sync what is written when the pipeline closes.
        self.stop_writer();
    }
}

/// The append lock of a journal several processes write (`None`, taking
/// nothing, for a single writer).
fn append_lock(shared_writers: bool, fs: &dyn Fs, dir: &Path) -> Result<Option<LockGuard>> {
    if !shared_writers {
        return Ok(None);
    }
    let path = dir.join(crate::format::APPEND_LOCK_FILE_NAME);
    fs.lock(&path, crate::fs::LockMode::Exclusive).ctx("lock", &path).map(Some)
}

/// A submitted append: await it (async) or [`AppendTicket::wait`] (blocking).
#[derive(Debug)]
pub struct AppendTicket {
    rx: oneshot::Receiver<Result<AppendAck>>,
    ack: AppendAck,
}

impl AppendTicket {
    /// The LSNs the batch will have once acknowledged.
    pub fn lsns(&self) -> AppendAck {
        self.ack
    }

    /// Blocks until the append is acknowledged. Not for async tasks.
    pub fn wait(self) -> Result<AppendAck> {
        self.rx.blocking_recv().map_err(|_| Error::Closed)?
    }
}

impl IntoFuture for AppendTicket {
    type Output = Result<AppendAck>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<AppendAck>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.rx.await.map_err(|_| Error::Closed)? })
    }
}
