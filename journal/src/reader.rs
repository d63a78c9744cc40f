//! Readers and followers.
//!
//! A [`Reader`] iterates frames from any LSN: it finds the segment by name,
//! then scans. It checks every frame it returns (CRC, LSN continuity) and
//! runs while a writer appends. At the head of the last segment, an
//! incomplete frame, or a bad one with nothing valid after it, is a write in
//! progress: the reader reports "nothing yet" and tries again next time.
//!
//! A reader made by [`crate::Journal::reader`] stops at the durable LSN, so
//! it never hands out an event a power cut could take back. A reader opened
//! on a directory (another process's journal) sees every complete frame.
//!
//! A [`Follower`] waits for more: in-process it is woken by the writer, for
//! another process's journal it polls the files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::format::EventSlices;
use crate::fs::{Fs, StdFs};
use crate::segment::{self, FrameRead, SegmentCursor, SegmentInfo};
use crate::writer::Shared;

/// Default pause between polls of another process's journal files.
pub const FOLLOW_POLL_INTERVAL_DEFAULT: Duration = Duration::from_millis(20);

/// A checked frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub first_lsn: u64,
    pub count: u32,
    payload: &'a [u8],
    /// Events below this LSN are before the reader's start and are skipped.
    skip_below: u64,
}

impl<'a> FrameView<'a> {
    pub fn last_lsn(&self) -> u64 {
        self.first_lsn + u64::from(self.count) - 1
    }

    /// The frame's events at or after the reader's start, with their LSNs.
    pub fn events(&self) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
        events_of(self.payload, self.first_lsn, self.count, self.skip_below)
    }

    pub fn to_owned_frame(&self) -> OwnedFrame {
        OwnedFrame {
            first_lsn: self.first_lsn,
            count: self.count,
            payload: self.payload.to_vec(),
            skip_below: self.skip_below,
        }
    }
}

/// A checked frame that owns its bytes (what followers hand out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    pub first_lsn: u64,
    pub count: u32,
    payload: Vec<u8>,
    skip_below: u64,
}

impl OwnedFrame {
    pub fn last_lsn(&self) -> u64 {
        self.first_lsn + u64::from(self.count) - 1
    }

    pub fn events(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        events_of(&self.payload, self.first_lsn, self.count, self.skip_below)
    }
}

fn events_of(
    payload: &[u8],
    first_lsn: u64,
    count: u32,
    skip_below: u64,
) -> impl Iterator<Item = (u64, &[u8])> {
    // The payload passed `check_frame_payload`, so every slice decodes.
    EventSlices::new(payload, count)
        .map_while(|e| e.ok())
        .zip(first_lsn..)
        .filter(move |(_, lsn)| *lsn >= skip_below)
        .map(|(bytes, lsn)| (lsn, bytes))
}

/// Reads frames in LSN order from a journal directory.
pub struct Reader {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// In-process readers stop at the writer's durable LSN.
    bound: Option<Arc<Shared>>,
    segments: Vec<SegmentInfo>,
    index: usize,
    cursor: Option<SegmentCursor>,
    from_lsn: u64,
    /// The LSN the next frame must start at, once one frame has been read.
    expected: Option<u64>,
    /// The frame `advance` accepted last: first LSN and count.
    current: (u64, u32),
}

/// What to do after the active segment reports its end or a damaged head.
enum AtHead {
    /// A later segment exists now: read the current one again, then move on.
    Retry,
    /// Nothing more yet.
    Wait,
}

impl Reader {
    /// A reader of the journal in `dir`, from `from_lsn` on.
    pub fn open(dir: impl AsRef<Path>, from_lsn: u64) -> Result<Reader> {
        Ok(Self::open_with_fs(Arc::new(StdFs), dir, from_lsn))
    }

    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, from_lsn: u64) -> Reader {
        Reader {
            fs,
            dir: dir.as_ref().to_path_buf(),
            bound: None,
            segments: Vec::new(),
            index: 0,
            cursor: None,
            from_lsn: from_lsn.max(1),
            expected: None,
            current: (0, 0),
        }
    }

    pub(crate) fn open_bounded(shared: Arc<Shared>, from_lsn: u64) -> Result<Reader> {
        let mut reader = Self::open_with_fs(shared.fs.clone(), &shared.dir, from_lsn);
        reader.bound = Some(shared);
        Ok(reader)
    }

    /// The LSN of the next event this reader will return.
    pub fn next_lsn(&self) -> u64 {
        self.expected.unwrap_or(self.from_lsn).max(self.from_lsn)
    }

    /// The next frame holding events at or after the start LSN, or `None` if
    /// there is nothing more yet.
    pub fn next_frame(&mut self) -> Result<Option<FrameView<'_>>> {
        if !self.advance()? {
            return Ok(None);
        }
        let (first_lsn, count) = self.current;
        let payload = match &self.cursor {
            Some(cursor) => cursor.payload(),
            None => return Ok(None),
        };
        Ok(Some(FrameView { first_lsn, count, payload, skip_below: self.from_lsn }))
    }

    /// Moves to the next frame to hand out; false if there is none yet.
    fn advance(&mut self) -> Result<bool> {
        loop {
            if self.cursor.is_none() && !self.position()? {
                return Ok(false);
            }
            let Some(cursor) = self.cursor.as_mut() else { return Ok(false) };
            let sealed = self.index + 1 < self.segments.len();
            let (offset, problem) = match cursor.next_frame()? {
                FrameRead::Frame { offset, header } => {
                    if let Some(bound) = &self.bound
                        && header.last_lsn() > bound.durable_lsn()
                    {
                        cursor.seek(offset);
                        return Ok(false);
                    }
                    if let Some(expected) = self.expected
                        && header.first_lsn != expected
                    {
                        return Err(Error::corruption(
                            cursor.path(),
                            offset,
                            format!(
                                "LSN gap: expected a frame starting at LSN {expected}, found {}",
                                header.first_lsn
                            ),
                        ));
                    }
                    self.expected = Some(header.last_lsn() + 1);
                    if header.last_lsn() < self.from_lsn {
                        continue;
                    }
                    self.current = (header.first_lsn, header.count);
                    return Ok(true);
                }
                FrameRead::End { .. } if sealed => {
                    self.open_segment(self.index + 1)?;
                    continue;
                }
                FrameRead::End { offset } => (offset, None),
                // Preallocated space the writer has not reached: like the end.
                FrameRead::Unwritten { offset } if !sealed => (offset, None),
                FrameRead::Unwritten { offset } => {
                    return Err(Error::corruption(
                        cursor.path(),
                        offset,
                        "a zeroed frame header in a sealed segment".to_string(),
                    ));
                }
                FrameRead::Incomplete { offset, reason } | FrameRead::Bad { offset, reason } => {
                    if sealed {
                        return Err(Error::corruption(
                            cursor.path(),
                            offset,
                            format!("{reason} in a sealed segment"),
                        ));
                    }
                    (offset, Some(reason))
                }
            };
            match self.at_head(offset, problem)? {
                AtHead::Retry => continue,
                AtHead::Wait => return Ok(false),
            }
        }
    }

    /// The active segment ended, or its head frame is not whole: either the
    /// writer has moved to a new segment, or it is still writing.
    fn at_head(&mut self, offset: u64, problem: Option<String>) -> Result<AtHead> {
        let known = self.segments.len();
        self.segments = segment::list_segments(&*self.fs, &self.dir)?;
        if self.segments.len() > known {
            // A newer segment exists, so this one was complete before it was
            // created: read it once more, now as a sealed segment.
            return Ok(AtHead::Retry);
        }
        let Some(reason) = problem else { return Ok(AtHead::Wait) };
        let Some(cursor) = self.cursor.as_mut() else { return Ok(AtHead::Wait) };
        match cursor.valid_frame_after(offset)? {
            Some(valid) => {
                // The writer may have finished the frame between our read of
                // it and our look past it: a write lands front to back, so if
                // it is still not whole now, it never will be. (The cursor
                // is still at `offset` and reads it from the file afresh.)
                if let FrameRead::Frame { .. } = cursor.next_frame()? {
                    cursor.seek(offset);
                    return Ok(AtHead::Retry);
                }
                Err(Error::corruption(
                    cursor.path(),
                    offset,
                    format!("{reason}, followed by a valid frame at offset {valid}"),
                ))
            }
            None => Ok(AtHead::Wait),
        }
    }

    /// Opens the segment holding the next LSN to read; false if the journal
    /// has no segment yet.
    fn position(&mut self) -> Result<bool> {
        self.segments = segment::list_segments(&*self.fs, &self.dir)?;
        if self.segments.is_empty() {
            return Ok(false);
        }
        let target = self.next_lsn();
        let index = self.segments.iter().rposition(|s| s.first_lsn <= target).unwrap_or(0);
        self.open_segment(index)?;
        Ok(true)
    }

    fn open_segment(&mut self, index: usize) -> Result<()> {
        let seg = &self.segments[index];
        if let Some(expected) = self.expected {
            segment::check_starts_at(seg, expected)?;
        }
        self.cursor = Some(SegmentCursor::open(&*self.fs, seg)?);
        self.index = index;
        Ok(())
    }
}

/// Waits for and hands out new frames, in order, without gaps.
pub struct Follower {
    reader: Reader,
    /// In-process: the writer's durable LSN, watched.
    durable: Option<(Arc<Shared>, watch::Receiver<u64>)>,
    poll_interval: Duration,
}

impl Follower {
    pub(crate) fn new(reader: Reader, shared: Option<Arc<Shared>>) -> Follower {
        let durable = shared.map(|s| {
            let rx = s.durable_watch.subscribe();
            (s, rx)
        });
        Follower { reader, durable, poll_interval: FOLLOW_POLL_INTERVAL_DEFAULT }
    }

    /// Follows the journal in `dir` (possibly written by another process),
    /// polling its files for growth.
    pub fn open(dir: impl AsRef<Path>, from_lsn: u64) -> Result<Follower> {
        Ok(Self::new(Reader::open(dir, from_lsn)?, None))
    }

    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, from_lsn: u64) -> Follower {
        Self::new(Reader::open_with_fs(fs, dir, from_lsn), None)
    }

    /// Sets how often another process's files are polled.
    pub fn with_poll_interval(mut self, interval: Duration) -> Follower {
        self.poll_interval = interval;
        self
    }

    /// The LSN of the next event this follower will return.
    pub fn next_lsn(&self) -> u64 {
        self.reader.next_lsn()
    }

    /// The next frame that is already available, without waiting.
    pub fn try_next(&mut self) -> Result<Option<OwnedFrame>> {
        if let Some((_, rx)) = &mut self.durable {
            // Mark the current value seen before reading, so a change after
            // the read wakes the next wait.
            rx.borrow_and_update();
        }
        Ok(self.reader.next_frame()?.map(|f| f.to_owned_frame()))
    }

    /// Waits (async) for the next frame.
    pub async fn next(&mut self) -> Result<OwnedFrame> {
        loop {
            if let Some(frame) = self.try_next()? {
                return Ok(frame);
            }
            let poll = self.poll_interval;
            match &mut self.durable {
                Some((_, rx)) => {
                    // A closed journal stops notifying; fall back to polling.
                    if tokio::time::timeout(poll * 10, rx.changed()).await.is_ok_and(|r| r.is_err()) {
                        tokio::time::sleep(poll).await;
                    }
                }
                None => tokio::time::sleep(poll).await,
            }
        }
    }

    /// Waits (blocking) up to `timeout` for the next frame.
    pub fn next_blocking(&mut self, timeout: Duration) -> Result<Option<OwnedFrame>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.try_next()? {
                return Ok(Some(frame));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match &self.durable {
                Some((shared, _)) => {
                    let seen = self.reader.next_lsn().saturating_sub(1);
                    shared.wait_durable_past(seen, left.min(self.poll_interval * 10));
                }
                None => std::thread::sleep(left.min(self.poll_interval)),
            }
        }
    }
}
