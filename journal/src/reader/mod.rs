//! Readers and followers.
//!
//! A [`Reader`] iterates frames from any LSN: it finds the segment by name,
//! then scans. It checks every frame it returns (CRC, LSN continuity) and
//! runs while a writer appends. At the head of the last segment, an
//! incomplete frame, or a bad one with nothing valid after it, is a write in
//! progress: the reader reports "nothing yet" and tries again next time.
//!
//! A reader made by [`crate::Journal::reader`] stops at the durable LSN, so
//! it never hands out an event a power cut could take back; so does a
//! reader of another process's journal made [`Reader::durable_only`] (every
//! follower is), bounded by the durable hint the writer updates after each
//! fsync. A plain reader of a directory (`verify`, read-only tools) sees
//! every complete frame.
//!
//! Where a person accepted a loss (`--accept-data-loss`), the manifest
//! records the gap; the reader crosses it and marks the first frame after
//! it ([`FrameView::follows_gap`]). Any other gap is corruption.
//!
//! A [`Follower`] waits for more: in-process it is woken by the writer, for
//! another process's journal it polls the files.

mod follower;
mod frame;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use follower::Follower;
pub use frame::{FrameView, OwnedFrame};

use crate::error::{Error, Result};
use crate::format::{JournalId, Manifest};
use crate::fs::{Fs, StdFs};
use crate::manifest;
use crate::segment::{self, FrameRead, SegmentCursor, SegmentInfo};
use crate::writer::Shared;

/// Default pause between polls of another process's journal files.
pub const FOLLOW_POLL_INTERVAL_DEFAULT: Duration = Duration::from_millis(20);

/// How far a reader may go.
enum Bound {
    /// Every complete frame.
    None,
    /// In-process: the writer's durable LSN.
    Writer(Arc<Shared>),
    /// Another process's journal: the durable hint (once the manifest names
    /// the journal; before format version 2 there is no hint to go by).
    Hint { id: Option<JournalId>, durable: u64 },
}

/// Reads frames in LSN order from a journal directory.
pub struct Reader {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    bound: Bound,
    /// The manifest, read when the reader first meets an LSN gap.
    manifest: Option<Manifest>,
    /// An accepted gap crossed just now, for the next frame handed out.
    pending_gap: Option<(u64, u64)>,
    segments: Vec<SegmentInfo>,
    index: usize,
    cursor: Option<SegmentCursor>,
    from_lsn: u64,
    /// The LSN the next frame must start at, once one frame has been read.
    expected: Option<u64>,
    /// The frame `advance` accepted last: first LSN and count.
    current: (u64, u32),
    /// Where to start in the segment holding `from_lsn`, if recovery
    /// checked it at open: (segment's first LSN, a frame's first LSN, its
    /// offset). Used by the first `position` only.
    start_at: Option<(u64, u64, u64)>,
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
            bound: Bound::None,
            manifest: None,
            pending_gap: None,
            segments: Vec::new(),
            index: 0,
            cursor: None,
            from_lsn: from_lsn.max(1),
            expected: None,
            current: (0, 0),
            start_at: None,
        }
    }

    pub(crate) fn open_bounded(shared: Arc<Shared>, from_lsn: u64) -> Result<Reader> {
        let mut reader = Self::open_with_fs(shared.fs.clone(), &shared.dir, from_lsn);
        reader.start_at = shared.seek.as_ref().and_then(|points| {
            let (lsn, offset) = points.before(reader.from_lsn)?;
            Some((points.segment_first_lsn, lsn, offset))
        });
        reader.bound = Bound::Writer(shared);
        Ok(reader)
    }

    /// Hands out only frames the journal's durable hint says were fsynced,
    /// so that a consumer in another process never sees (and acknowledges)
    /// an event a power cut could take back.
    pub fn durable_only(mut self) -> Reader {
        self.bound = Bound::Hint { id: None, durable: 0 };
        self
    }

    /// Whether the frame ending at `last_lsn` may be handed out now.
    fn within_bound(&mut self, last_lsn: u64) -> bool {
        match &mut self.bound {
            Bound::None => true,
            Bound::Writer(shared) => last_lsn <= shared.durable_lsn(),
            Bound::Hint { id, durable } => {
                if last_lsn <= *durable {
                    return true;
                }
                if id.is_none() {
                    match manifest::load_manifest(&*self.fs, &self.dir) {
                        Ok(Some(m)) => *id = Some(m.journal_id),
                        // A journal from before the hint existed.
                        Ok(None) => return true,
                        Err(_) => return false,
                    }
                }
                if let Some(id) = *id {
                    *durable = (*durable).max(manifest::read_durable_hint(&*self.fs, &self.dir, id));
                }
                last_lsn <= *durable
            }
        }
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
        let follows_gap = self.pending_gap.take();
        Ok(Some(FrameView { first_lsn, count, payload, skip_below: self.from_lsn, follows_gap }))
    }

    /// Moves to the next frame to hand out; false if there is none yet.
    fn advance(&mut self) -> Result<bool> {
        loop {
            if self.cursor.is_none() && !self.position()? {
                return Ok(false);
            }
            let Some(cursor) = self.cursor.as_mut() else { return Ok(false) };
            let sealed = self.index + 1 < self.segments.len();
            let read = cursor.next_frame()?;
            let (offset, problem) = match read {
                FrameRead::Frame { offset, header } => match self.accept_frame(offset, header)? {
                    Some(handed_out) => return Ok(handed_out),
                    None => continue,
                },
                FrameRead::End { .. } if sealed => {
                    self.open_segment(self.index + 1)?;
                    continue;
                }
                FrameRead::End { offset } => (offset, None),
                // Preallocated space the writer has not reached: like the end.
                FrameRead::Unwritten { offset } if !sealed => (offset, None),
                FrameRead::Unwritten { offset } => {
                    return Err(self.corruption(offset, "a zeroed frame header in a sealed segment".into()));
                }
                FrameRead::Incomplete { offset, reason } | FrameRead::Bad { offset, reason } => {
                    if sealed {
                        return Err(self.corruption(offset, format!("{reason} in a sealed segment")));
                    }
                    (offset, Some(reason))
                }
            };
            match self.at_head(offset, problem)? {
                AtHead::Retry => continue,
                AtHead::Wait => {
                    if let Some(cursor) = self.cursor.as_mut() {
                        cursor.idle();
                    }
                    return Ok(false);
                }
            }
        }
    }

    /// A whole frame read at `offset`: `Some(true)` to hand it out,
    /// `Some(false)` if it is past the bound (read again next time), `None`
    /// if it is before the reader's start.
    fn accept_frame(&mut self, offset: u64, header: crate::format::FrameHeader) -> Result<Option<bool>> {
        if !self.within_bound(header.last_lsn()) {
            if let Some(cursor) = self.cursor.as_mut() {
                cursor.seek(offset);
            }
            return Ok(Some(false));
        }
        if let Some(expected) = self.expected
            && header.first_lsn != expected
        {
            let reason =
                format!("LSN gap: expected a frame starting at LSN {expected}, found {}", header.first_lsn);
            return Err(self.corruption(offset, reason));
        }
        self.expected = Some(header.last_lsn() + 1);
        if header.last_lsn() < self.from_lsn {
            // A gap before a frame the reader skips is not news to it.
            self.pending_gap = None;
            return Ok(None);
        }
        self.current = (header.first_lsn, header.count);
        Ok(Some(true))
    }

    fn corruption(&self, offset: u64, reason: String) -> Error {
        let path = self.cursor.as_ref().map_or_else(|| self.dir.clone(), |c| c.path().to_path_buf());
        Error::corruption(path, offset, reason)
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
        if let Some((segment_first_lsn, lsn, offset)) = self.start_at.take()
            && self.expected.is_none()
            && self.segments[index].first_lsn == segment_first_lsn
            && let Some(cursor) = self.cursor.as_mut()
        {
            // Recovery checked every frame before it at open.
            cursor.seek(offset);
            self.expected = Some(lsn);
        }
        Ok(true)
    }

    fn open_segment(&mut self, index: usize) -> Result<()> {
        let seg = self.segments[index].clone();
        if let Some(expected) = self.expected
            && seg.first_lsn != expected
        {
            let after = index.checked_sub(1).map_or(0, |i| self.segments[i].first_lsn);
            match self.accepted_gap(after, &seg)? {
                Some(gap) => {
                    self.pending_gap = Some(gap);
                    self.expected = Some(seg.first_lsn);
                }
                None => segment::check_starts_at(&seg, expected)?,
            }
        }
        self.cursor = Some(SegmentCursor::open(&*self.fs, &seg)?);
        self.index = index;
        Ok(())
    }

    /// The LSNs accepted as lost between the segment starting at `after`
    /// and `seg`, if a person accepted them.
    fn accepted_gap(&mut self, after: u64, seg: &SegmentInfo) -> Result<Option<(u64, u64)>> {
        if self.manifest.as_ref().is_none_or(|m| m.gap_between(after, seg.first_lsn).is_none()) {
            self.manifest = manifest::load_manifest(&*self.fs, &self.dir)?;
        }
        let gap = self.manifest.as_ref().and_then(|m| m.gap_between(after, seg.first_lsn));
        Ok(gap.map(|g| (g.lost_from, g.lost_to)))
    }
}
