//! The write path and its group commit.
//!
//! The writer's state (the active segment, the group buffer, the appends
//! waiting for an fsync) sits behind one lock, and appenders use it
//! directly: `Journal::submit` numbers a batch and copies its frame into the
//! group buffer under that lock, so LSN order is file order. A buffered
//! append then writes the buffer itself (one `pwrite`) and is acknowledged
//! at once: no hand-off to another thread and back. When other appenders
//! are waiting for the lock, it leaves its frame for the next of them: the
//! last in line writes everything staged with one `write`, which
//! acknowledges them all. A durable append leaves
//! its frame in the buffer, joins the waiters and wakes a writer thread.
//!
//! A writer thread takes every waiting append in one go: it writes the
//! buffer with one `write`, registers the waiters at the group's last LSN,
//! lets go of the lock and calls fdatasync through its own handle; the
//! fsync completes every waiter it covers. Appends that arrive while it
//! sits in fdatasync collect in the buffer and ride the next one together.
//! Before it syncs, a writer thread waits (at most one fsync's time) for
//! as many appends as the last fsync released: callers that come straight
//! back ride one fsync together instead of splitting into two alternating
//! halves (`Pipeline::gather`).
//!
//! There are `JournalOptions::fsyncs_in_flight_max` such threads (1 by
//! default). With more than one, while one sits in fdatasync the next takes
//! the appends that arrived meanwhile and syncs them at once. Whether two
//! fsyncs at once beat one depends on the device
//! (docs/performance-log/2026-11-21.md, "Journal appends").
//!
//! Each thread syncs through its own handle on the segment because Linux
//! reports a failed writeback once per open file description: on a shared
//! handle one of two concurrent fdatasyncs could see success for pages whose
//! error the other consumed. With separate handles every fsync that covers a
//! failed page fails. A failed write or fsync poisons the journal: the
//! failing group and everything after it fail until the journal is reopened.

mod rotate;
mod shared;
mod sync;
mod turn;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::error::{Error, IoContext, Result};
use crate::fs::FsFile;
use crate::open::ActiveStart;
use crate::options::{Durability, JournalOptions};

pub(crate) use shared::Done;
pub(crate) use shared::Shared;
pub use shared::{FSYNC_BUCKETS_MICROS, GROUP_BUCKETS_EVENTS};
use shared::{Waiter, lock};
pub(crate) use sync::{Pipeline, spawn};
pub(crate) use turn::Turns;

/// Acknowledgement of an append: the LSNs its events got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    pub first_lsn: u64,
    pub last_lsn: u64,
}

/// The active segment as the writer sees it.
struct ActiveSegment {
    file: Box<dyn FsFile>,
    path: PathBuf,
    first_lsn: u64,
    /// Where the last frame handed to this segment starts (the header's
    /// end while it holds none).
    last_frame_offset: u64,
    /// CRC of the bytes written so far (header and frames): the seal
    /// record's checksum once the segment is sealed.
    crc: crc32fast::Hasher,
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

impl ActiveSegment {
    /// A segment holding only its `header`: the next frame goes right after it.
    fn starting(
        file: Box<dyn FsFile>,
        path: PathBuf,
        first_lsn: u64,
        header: &[u8],
        generation: u64,
    ) -> Self {
        let len = header.len() as u64;
        let mut crc = crc32fast::Hasher::new();
        crc.update(header);
        ActiveSegment {
            file,
            path,
            first_lsn,
            last_frame_offset: len,
            crc,
            generation,
            len,
            written: len,
            allocated: len,
        }
    }
}

/// The writer's state, behind the pipeline's lock: appenders stage and
/// write into it; a writer thread takes the waiters and syncs.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    options: JournalOptions,
    segment: ActiveSegment,
    /// Frames of the current group not yet written; reused across groups.
    buf: Vec<u8>,
    /// Events in `buf`.
    buf_events: u64,
    /// Highest LSN copied into `buf` or written: the next LSN is one more.
    last_lsn: u64,
    /// Written data nobody has asked to sync exists since this instant.
    unsynced_since: Option<Instant>,
    /// Durable appends and sync requests no writer thread has taken yet.
    pending: Vec<Done>,
    /// Durable appends staged by `Journal::submit_staged`: they join
    /// `pending` at `write_staged`, so no writer thread syncs half a batch.
    staged: Vec<Done>,
    /// Buffered appends whose frames sit in `buf`: acknowledged by the
    /// next write of the buffer, whoever makes it.
    unwritten: Vec<(AppendAck, oneshot::Sender<Result<AppendAck>>)>,

    /// The journal is closing: the threads make what is written durable and stop.
    closed: bool,
    /// The append lock, when several processes write the journal.
    turns: Option<Turns>,
    /// Writer threads waiting for work, and what ends their wait.
    pub(super) waiters: Waiters,
}

/// Writer threads waiting on the pipeline's `work` condition, kept under
/// the writer's lock so an appender wakes one only when its append ends a
/// wait. Every notify is a futex call, and a thread gathering a cohort of
/// 64 was woken by each of the 63 appends before the one it waited for.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    /// Threads waiting for anything to do (`Writer::due` said no).
    pub idle: usize,
    /// Threads gathering a returning cohort (`Pipeline::gather`)…
    pub gathering: usize,
    /// …until this many appends are pending: the cohort of the last one to
    /// start gathering. With several writer threads, another one's wait
    /// may end at its timeout instead (at most `GATHER_WAIT_MAX`).
    pub gather_until: usize,
}

/// Whether an append may leave its frame in the group buffer for later.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Hold {
    /// Written now (buffered) or handed to a writer thread (durable).
    No,
    /// Other appenders wait for the lock: a buffered frame is left for the
    /// next of them to write with theirs.
    Contended,
    /// `Journal::submit_staged`: left until `Journal::commit_staged`.
    Staged,
}

/// What a writer thread does after letting go of the writer's state.
pub(crate) enum Next {
    /// Make the target durable.
    Sync(SyncTarget),
    /// The same, then stop: every sender is gone.
    Stop(SyncTarget),
    Continue,
}

/// Everything up to `lsn`, written to the segment at `path`.
pub(crate) struct SyncTarget {
    pub lsn: u64,
    pub generation: u64,
    pub path: PathBuf,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        options: JournalOptions,
        start: ActiveStart,
        turns: Option<Turns>,
    ) -> Self {
        let last_lsn = start.last_lsn;
        Writer {
            shared,
            segment: ActiveSegment {
                file: start.file,
                path: start.path,
                first_lsn: start.first_lsn,
                last_frame_offset: start.last_frame_offset,
                crc: start.crc,
                generation: 0,
                len: start.len,
                written: start.len,
                allocated: start.allocated.max(start.len),
            },
            buf: Vec::with_capacity(options.group_bytes_max.min(1 << 20)),
            buf_events: 0,
            options,
            last_lsn,
            unsynced_since: None,
            pending: Vec::new(),
            staged: Vec::new(),
            unwritten: Vec::new(),
            closed: false,
            turns,
            waiters: Waiters::default(),
        }
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> u64 {
        self.last_lsn + 1
    }

    pub fn closed(&self) -> bool {
        self.closed
    }

    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Appends and sync requests waiting for a writer thread.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Durable appends waiting for a writer thread.
    fn pending_appends(&self) -> usize {
        self.pending.iter().filter(|d| matches!(d, Done::Append(..))).count()
    }

    /// One numbered frame from `Journal::submit`: staged, then written at
    /// once when buffered (and acknowledged), or left for the next group
    /// when durable. A buffered append made while other appenders wait for
    /// the lock (`contended`) leaves its frame for the next of them to write
    /// with theirs: one `write` for the lot instead of one each. Returns
    /// whether a writer thread should wake: for a durable append, or when
    /// buffered data starts waiting for its sync. A failure poisons the
    /// journal and fails `done` with it.
    pub fn append(
        &mut self,
        frame: &[u8],
        ack: AppendAck,
        durability: Durability,
        done: oneshot::Sender<Result<AppendAck>>,
        hold: Hold,
    ) -> bool {
        let was_synced = self.unsynced_since.is_none();
        let staged = self.stage(frame, ack);
        let defer = hold != Hold::No && self.buf.len() < self.options.group_bytes_max;
        if durability == Durability::Buffered && defer && staged.is_ok() {
            self.unwritten.push((ack, done));
            return false;
        }
        let result = match durability {
            Durability::Buffered => staged.and_then(|()| self.flush_buf()),
            Durability::Durable if self.buf.len() >= self.options.group_bytes_max => {
                staged.and_then(|()| self.flush_buf())
            }
            Durability::Durable => staged,
        };
        match (result, durability) {
            (Err(e), _) => {
                let mut failed = std::mem::take(&mut self.pending);
                failed.append(&mut self.staged);
                failed.insert(0, Done::Append(ack, done));
                self.shared.fail_with(e, failed);
                true
            }
            (Ok(()), Durability::Buffered) => {
                let _ = done.send(Ok(ack));
                // A busy writer thread checks `due` before it waits again.
                was_synced && self.unsynced_since.is_some() && self.waiters.idle > 0
            }
            (Ok(()), Durability::Durable) if hold == Hold::Staged => {
                self.staged.push(Done::Append(ack, done));
                false
            }
            (Ok(()), Durability::Durable) => {
                self.pending.push(Done::Append(ack, done));
                self.wakes_a_writer_thread()
            }
        }
    }

    /// Whether a durable append just made ends a writer thread's wait: an
    /// idle one has work now; a gathering one has its cohort. A busy one
    /// checks `due` before it waits again, so it needs no wake.
    fn wakes_a_writer_thread(&self) -> bool {
        let Waiters { idle, gathering, gather_until } = self.waiters;
        idle > 0 || (gathering > 0 && self.pending_appends() >= gather_until)
    }

    /// Writes the group buffer now (`Journal::commit_staged`): buffered
    /// appends left in it are acknowledged; durable ones wait for a writer
    /// thread's fsync. A failed write poisons the journal.
    pub fn write_staged(&mut self) {
        self.pending.append(&mut self.staged);
        if self.shared.poisoned().is_some() || self.closed {
            // The writer thread fails (or, closing, syncs) them.
            return;
        }
        self.flush_or_fail();
    }

    /// Writes the group buffer; a failed write poisons the journal and
    /// fails every append waiting for a writer thread.
    fn flush_or_fail(&mut self) {
        if let Err(e) = self.flush_buf() {
            let failed = std::mem::take(&mut self.pending);
            self.shared.fail_with(e, failed);
        }
    }

    /// Whether an fsync that makes `lsn` durable is already on its way: a
    /// durable append at or past it waits for a writer thread, or a writer
    /// thread has taken (or started syncing) a group that covers it.
    pub fn sync_coming(&self, lsn: u64) -> bool {
        let pending = self.pending.iter().any(|d| matches!(d, Done::Append(ack, _) if ack.last_lsn >= lsn));
        pending || {
            let sync = lock(&self.shared.sync);
            sync.claimed >= lsn || sync.waiters.back().is_some_and(|w| w.lsn >= lsn)
        }
    }

    /// Buffered appends wait for the buffer to be written.
    pub fn has_unwritten(&self) -> bool {
        !self.unwritten.is_empty()
    }

    /// A request to make everything written so far durable.
    pub fn request_sync(&mut self, done: oneshot::Sender<Result<()>>) {
        self.pending.push(Done::Sync(done));
    }

    /// Whether a writer thread has work, and if not, how long it may sleep
    /// (`None`: until woken).
    pub(crate) fn due(&self) -> Result<(), Option<std::time::Duration>> {
        if self.closed || !self.pending.is_empty() || !self.unwritten.is_empty() {
            return Ok(());
        }
        match self.unsynced_since {
            None => Err(None),
            Some(since) => match self.options.buffered_sync_interval.checked_sub(since.elapsed()) {
                Some(left) if !left.is_zero() => Err(Some(left)),
                _ => Ok(()),
            },
        }
    }

    /// Everything written so far, as a sync target.
    fn target(&self) -> SyncTarget {
        SyncTarget {
            lsn: self.last_lsn,
            generation: self.segment.generation,
            path: self.segment.path.clone(),
        }
    }

    /// A writer thread's turn (it has checked `due`): writes the group
    /// buffer, registers every pending waiter at the group's last LSN and
    /// says what to sync.
    pub(crate) fn take_group(&mut self) -> Next {
        let waiters = std::mem::take(&mut self.pending);
        if let Some(cause) = self.shared.poisoned() {
            let unwritten = std::mem::take(&mut self.unwritten).into_iter().map(|(a, d)| Done::Append(a, d));
            waiters
                .into_iter()
                .chain(unwritten)
                .for_each(|d| d.fail(Error::Poisoned { cause: cause.clone() }));
            return if self.closed { Next::Stop(self.target()) } else { Next::Continue };
        }
        if let Err(e) = self.flush_buf() {
            self.shared.fail_with(e, waiters);
            return if self.closed { Next::Stop(self.target()) } else { Next::Continue };
        }
        self.unsynced_since = None;
        let lsn = self.last_lsn;
        if lsn <= self.shared.durable_lsn() {
            waiters.into_iter().for_each(Done::succeed);
        } else {
            lock(&self.shared.sync).waiters.extend(waiters.into_iter().map(|done| Waiter { lsn, done }));
        }
        match (self.closed, lsn <= self.shared.durable_lsn()) {
            (true, _) => Next::Stop(self.target()),
            (false, true) => Next::Continue,
            (false, false) => Next::Sync(self.target()),
        }
    }

    /// Copies one frame into the group buffer, rotating first if the frame
    /// would take a non-empty segment past its size limit.
    fn stage(&mut self, frame: &[u8], ack: AppendAck) -> Result<()> {
        assert_eq!(ack.first_lsn, self.last_lsn + 1, "frames must reach the writer in LSN order");
        let has_frames = ack.first_lsn > self.segment.first_lsn;
        if has_frames && self.segment.len + frame.len() as u64 > self.options.segment_size_max_bytes {
            self.rotate(ack.first_lsn)?;
        }
        self.segment.last_frame_offset = self.segment.len;
        self.buf.extend_from_slice(frame);
        self.segment.len += frame.len() as u64;
        self.last_lsn = ack.last_lsn;
        self.buf_events += ack.last_lsn - ack.first_lsn + 1;
        self.shared.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.shared.counters.events.fetch_add(ack.last_lsn - ack.first_lsn + 1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the group buffer; acknowledges the buffered appends whose
    /// frames were in it (or fails them, unacknowledged, if the write did).
    fn flush_buf(&mut self) -> Result<()> {
        let result = self.write_buf();
        let unwritten = std::mem::take(&mut self.unwritten);
        match &result {
            Ok(()) => unwritten.into_iter().for_each(|(ack, done)| drop(done.send(Ok(ack)))),
            Err(e) => {
                let cause = e.to_string();
                let failed = unwritten.into_iter().map(|(ack, done)| Done::Append(ack, done));
                failed.for_each(|d| d.fail(Error::Poisoned { cause: cause.clone() }));
            }
        }
        result
    }

    fn write_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result =
            self.segment.file.write_all_at(&self.buf, self.segment.written).ctx("write", &self.segment.path);
        self.unsynced_since.get_or_insert_with(Instant::now);
        result?;
        self.segment.crc.update(&self.buf);
        self.segment.written += self.buf.len() as u64;
        self.segment.allocated = self.segment.allocated.max(self.segment.written);
        self.preallocate()?;
        self.shared.counters.bytes_written.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        if self.buf_events > 0 {
            // A group is one write of events.
            self.shared.counters.groups.fetch_add(1, Ordering::Relaxed);
            self.shared.counters.group_events.observe(&GROUP_BUCKETS_EVENTS, self.buf_events);
        }
        self.buf_events = 0;
        self.buf.clear();
        self.shared.written_lsn.store(self.last_lsn, Ordering::Release);
        Ok(())
    }
}
