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

mod shared;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::error::{Error, IoContext, Result};
use crate::format::SealRecord;
use crate::fs::FsFile;
use crate::manifest::store_manifest;
use crate::open::ActiveStart;
use crate::options::{Durability, JournalOptions};
use crate::segment;

pub(crate) use shared::Shared;
use shared::{Done, Waiter, lock};
pub use shared::{FSYNC_BUCKETS_MICROS, GROUP_BUCKETS_EVENTS};
pub(crate) use sync::spawn;

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
        rx: Receiver<Request>,
        start: ActiveStart,
    ) -> Self {
        let last_lsn = start.last_lsn;
        Writer {
            shared,
            rx,
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
            options,
            last_lsn,
            unsynced_since: None,
            closed: false,
        }
    }

    /// Waits for requests and writes them as one group (or, when buffered
    /// data has waited long enough, asks for a sync).
    pub(crate) fn next_group(&mut self) -> Next {
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
            // Counted with the histogram: a group is a write of events.
            self.shared.counters.groups.fetch_add(1, Ordering::Relaxed);
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
        let has_frames = ack.first_lsn > self.segment.first_lsn;
        if has_frames && self.segment.len + frame.len() as u64 > self.options.segment_size_max_bytes {
            self.rotate(ack.first_lsn)?;
        }
        self.segment.last_frame_offset = self.segment.len;
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
        self.segment.crc.update(&self.buf);
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
    /// starts a new one at `first_lsn`, whose header carries the seal record;
    /// then the manifest records the new segment and the durable floor.
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
        self.shared.durable_up_to(first_lsn - 1)?;
        let seal = SealRecord {
            first_lsn: self.segment.first_lsn,
            last_lsn: first_lsn - 1,
            len: self.segment.written,
            last_frame_offset: self.segment.last_frame_offset,
            crc: self.segment.crc.clone().finalize(),
        };
        let (file, path) = segment::create_segment(
            &*self.shared.fs,
            &self.shared.dir,
            first_lsn,
            self.shared.id,
            Some(seal),
        )?;
        tracing::debug!(segment = %path.display(), "started a new segment");
        self.shared.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        let header = crate::format::encode_segment_header(first_lsn, self.shared.id, Some(seal));
        let len = header.len() as u64;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        let generation = self.segment.generation + 1;
        self.segment = ActiveSegment {
            file,
            path,
            first_lsn,
            last_frame_offset: len,
            crc,
            generation,
            len,
            written: len,
            allocated: len,
        };
        self.record_segment(first_lsn)
    }

    fn record_segment(&self, first_lsn: u64) -> Result<()> {
        let mut manifest = lock(&self.shared.manifest);
        let mut updated = manifest.clone();
        updated.last_segment_first_lsn = first_lsn;
        updated.durable_floor_lsn = updated.durable_floor_lsn.max(first_lsn - 1);
        store_manifest(&*self.shared.fs, &self.shared.dir, &updated)?;
        *manifest = updated;
        Ok(())
    }
}
