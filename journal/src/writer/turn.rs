//! Several writer processes on one journal (`JournalOptions::shared_writers`).
//!
//! Every append happens in a turn: under an exclusive flock on
//! `bookend.append`, this process first takes in the frames the others
//! appended since its last turn (their LSNs, the offsets, the running CRC
//! the segment's seal record must cover, a segment another process started),
//! then numbers and writes its own, then lets go. fsyncs happen outside the
//! turn, through this process's own handle: an fsync of the file makes the
//! others' earlier frames durable too. What is past the last valid frame
//! while the lock is held can only be a dead writer's unfinished write
//! (a live one never leaves a turn in the middle of a frame): it is moved
//! aside to `.torn`, as recovery does, never acknowledged by anyone.

use std::path::PathBuf;

use crate::error::{Error, IoContext, Result};
use crate::format::{self, FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE};
use crate::fs::{LockGuard, LockMode};
use crate::segment::{SegmentInfo, read_full};

use super::{ActiveSegment, Writer};

/// The append lock of a journal opened with `shared_writers`.
pub(crate) struct Turns {
    path: PathBuf,
    held: Option<LockGuard>,
    /// A caller holds the turn across several appends (`Journal::hold_turn`):
    /// the appends inside it do not let go of the lock.
    outer: bool,
}

impl Turns {
    pub fn new(dir: &std::path::Path) -> Turns {
        Turns { path: dir.join(format::APPEND_LOCK_FILE_NAME), held: None, outer: false }
    }
}

impl Writer {
    /// Starts a turn (no-op for a single writer): waits for the append
    /// lock, then takes in what the other processes appended.
    pub fn begin_turn(&mut self) -> Result<()> {
        let Some(turns) = self.turns.as_mut() else { return Ok(()) };
        if turns.outer {
            // Caught up when the caller took the turn, and nobody else has
            // appended since: the lock has been ours all along.
            return Ok(());
        }
        if turns.held.is_none() {
            let guard = self.shared.fs.lock(&turns.path, LockMode::Exclusive).ctx("lock", &turns.path)?;
            turns.held = Some(guard);
        }
        let caught_up = self.catch_up();
        if caught_up.is_err() {
            self.end_turn();
        }
        caught_up
    }

    /// Keeps the turn begun last until `release_turn` (`Journal::hold_turn`).
    pub fn hold_turn(&mut self) {
        if let Some(turns) = self.turns.as_mut() {
            turns.outer = turns.held.is_some();
        }
    }

    /// Ends a turn kept by `hold_turn`.
    pub fn release_turn(&mut self) {
        if let Some(turns) = self.turns.as_mut() {
            turns.outer = false;
        }
        self.end_turn();
    }

    /// Ends a turn (unless a caller holds it): everything staged in it is
    /// written before the lock is released, so no frame of this process is
    /// ever written outside one.
    pub fn end_turn(&mut self) {
        if self.turns.as_ref().is_none_or(|t| t.held.is_none() || t.outer) {
            return;
        }
        if self.shared.poisoned().is_none() {
            self.flush_or_fail();
        }
        if let Some(turns) = self.turns.as_mut() {
            turns.held = None;
        }
    }

    fn catch_up(&mut self) -> Result<()> {
        let before = self.last_lsn;
        while self.take_foreign_frame()? || self.follow_next_segment()? {}
        let size = self.segment.file.size().ctx("stat", &self.segment.path)?;
        self.segment.allocated = size.max(self.segment.written);
        if self.last_lsn > before {
            self.shared.written_lsn.fetch_max(self.last_lsn, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(())
    }

    /// Takes in the frame another process wrote at the end of what this
    /// one knows; false at the end of the data.
    fn take_foreign_frame(&mut self) -> Result<bool> {
        let (at, path) = (self.segment.written, self.segment.path.clone());
        let mut head = [0u8; FRAME_HEADER_SIZE];
        let n = read_full(&*self.segment.file, &path, &mut head, at)?;
        if head[..n].iter().all(|b| *b == 0) {
            return Ok(false);
        }
        let header = match format::decode_frame_header(&head[..n], format::FORMAT_VERSION) {
            Ok(h) if h.first_lsn == self.last_lsn + 1 => h,
            Ok(h) => {
                return self.cut_torn(
                    at,
                    format!("a frame at LSN {} where {} was due", h.first_lsn, self.last_lsn + 1),
                );
            }
            Err(reason) => return self.cut_torn(at, reason),
        };
        let mut frame = vec![0u8; header.frame_len()];
        let n = read_full(&*self.segment.file, &path, &mut frame, at)?;
        if n < frame.len() {
            return self.cut_torn(at, format!("a frame of {} bytes cut off after {n}", frame.len()));
        }
        if let Err(reason) = format::check_frame_payload(&header, &frame[header.header_len()..]) {
            return self.cut_torn(at, reason);
        }
        self.segment.crc.update(&frame);
        self.segment.last_frame_offset = at;
        self.segment.written += frame.len() as u64;
        self.segment.len = self.segment.written;
        self.last_lsn = header.last_lsn();
        Ok(true)
    }

    /// A dead writer's unfinished frame at `at`: saved to `.torn` and cut
    /// off, as recovery does on open. Returns false (the data ends here).
    fn cut_torn(&mut self, at: u64, reason: String) -> Result<bool> {
        let seg = SegmentInfo { path: self.segment.path.clone(), first_lsn: self.segment.first_lsn };
        let reason = format!("{reason} (left by a writer process that died in its turn)");
        crate::recovery::save_torn(&*self.shared.fs, &seg, at, reason)?;
        self.segment.allocated = at;
        Ok(false)
    }

    /// Moves to the segment another process started after this one's, if
    /// there is one.
    fn follow_next_segment(&mut self) -> Result<bool> {
        let first_lsn = self.last_lsn + 1;
        let path = self.shared.dir.join(format::segment_file_name(first_lsn));
        if first_lsn == self.segment.first_lsn || !self.shared.fs.exists(&path) {
            return Ok(false);
        }
        let file = self.shared.fs.open_write(&path).ctx("open", &path)?;
        let mut head = [0u8; SEGMENT_HEADER_SIZE];
        let n = read_full(&*file, &path, &mut head, 0)?;
        let header = format::decode_segment_header(&head[..n]).map_err(|r| Error::corruption(&path, 0, r))?;
        if header.first_lsn != first_lsn {
            let reason =
                format!("segment header says first LSN {} where {first_lsn} was due", header.first_lsn);
            return Err(Error::corruption(&path, 0, reason));
        }
        let generation = self.segment.generation + 1;
        self.segment = ActiveSegment::starting(file, path, first_lsn, &head[..header.size()], generation);
        Ok(true)
    }
}
