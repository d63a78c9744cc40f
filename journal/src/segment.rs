//! Segment files: listing them, creating them durably, and reading their
//! frames one at a time with large sequential reads.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::{
    self, EntryName, FRAME_HEADER_SIZE_V1, FrameHeader, JournalId, SEGMENT_TEMP_SUFFIX, SealRecord,
    SegmentHeader,
};
use crate::fs::{Fs, FsFile};

/// Bytes asked of the OS per read while scanning a segment.
pub const SCAN_READ_SIZE_BYTES: usize = 1024 * 1024;
/// Bytes asked per read once a cursor has reached the writer's head, where
/// it re-reads the same place until the writer fills it.
const HEAD_READ_SIZE_BYTES: usize = 64 * 1024;

/// A segment file found in the journal directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub first_lsn: u64,
}

/// Lists the segments of `dir` in LSN order. A `.wal` file whose name is not
/// a segment name is corruption: it may be a segment someone renamed.
pub fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<Vec<SegmentInfo>> {
    let mut segments = Vec::new();
    for path in fs.list_files(dir).ctx("list", dir)? {
        match format::classify_entry(&path) {
            EntryName::Segment(first_lsn) => segments.push(SegmentInfo { path, first_lsn }),
            EntryName::MisnamedSegment => {
                return Err(Error::corruption(
                    path,
                    0,
                    "file name is not a segment name (20 digits: the first LSN)",
                ));
            }
            EntryName::SegmentTemp | EntryName::Other => {}
        }
    }
    segments.sort_by_key(|s| s.first_lsn);
    Ok(segments)
}

/// Checks that `seg` starts where the previous segment ended (`expected`):
/// a gap means a segment is missing.
pub fn check_starts_at(seg: &SegmentInfo, expected: u64) -> Result<()> {
    if seg.first_lsn == expected {
        return Ok(());
    }
    Err(Error::corruption(
        &seg.path,
        0,
        format!(
            "LSN gap: the previous segment ends before LSN {expected} but this one starts at {}",
            seg.first_lsn
        ),
    ))
}

/// Leftover temporary segments from a crash during segment creation.
pub fn list_segment_temps(fs: &dyn Fs, dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(fs
        .list_files(dir)
        .ctx("list", dir)?
        .into_iter()
        .filter(|p| format::classify_entry(p) == EntryName::SegmentTemp)
        .collect())
}

/// Creates the segment starting at `first_lsn`, whose header carries the
/// journal's id and the seal record of the segment before it: the header
/// goes into a temporary file, which is synced, renamed into place, and the
/// directory is synced, so the segment is never visible with a partial header.
pub fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    first_lsn: u64,
    journal_id: JournalId,
    prev: Option<SealRecord>,
) -> Result<(Box<dyn FsFile>, PathBuf)> {
    let name = format::segment_file_name(first_lsn);
    let path = dir.join(&name);
    let temp = dir.join(format!("{}{SEGMENT_TEMP_SUFFIX}", first_lsn_stem(&name)));
    {
        let file = fs.create(&temp).ctx("create", &temp)?;
        let header = format::encode_segment_header(first_lsn, journal_id, prev);
        file.write_all_at(&header, 0).ctx("write", &temp)?;
        file.sync_data().ctx("fsync", &temp)?;
    }
    fs.rename(&temp, &path).ctx("rename", &temp)?;
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    let file = fs.open_write(&path).ctx("open", &path)?;
    Ok((file, path))
}

fn first_lsn_stem(name: &str) -> &str {
    name.strip_suffix(".wal").unwrap_or(name)
}

/// What the next position of a segment holds.
#[derive(Debug)]
pub enum FrameRead {
    /// A whole, checked frame; its payload is [`SegmentCursor::payload`].
    Frame { offset: u64, header: FrameHeader },
    /// The file ends exactly here.
    End { offset: u64 },
    /// A frame header of zero bytes starts here: space the writer
    /// preallocated and has not written yet (if the rest of the file is
    /// zeros too, which [`SegmentCursor::zeros_from`] tells).
    Unwritten { offset: u64 },
    /// The file ends inside a frame (or its header) that starts here.
    Incomplete { offset: u64, reason: String },
    /// A complete frame that fails its checks starts here.
    Bad { offset: u64, reason: String },
}

/// Reads one segment's frames in order through a reusable buffer.
pub struct SegmentCursor {
    file: Box<dyn FsFile>,
    path: PathBuf,
    header: SegmentHeader,
    /// CRC of every byte consumed so far (header and returned frames), when
    /// asked for: the seal record of a segment being scanned in order.
    crc: Option<crc32fast::Hasher>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    buf: Vec<u8>,
    /// File offset of the next frame.
    offset: u64,
    /// Where the payload of the frame returned last sits in `buf`.
    payload_at: std::ops::Range<usize>,
    /// Bytes asked per read: large while scanning history, small at the head.
    read_size: usize,
}

impl SegmentCursor {
    /// Opens a segment and checks its header against the LSN in its name.
    pub fn open(fs: &dyn Fs, segment: &SegmentInfo) -> Result<Self> {
        Self::open_with_buffer(fs, segment, Vec::new())
    }

    /// [`SegmentCursor::open`], reading into `buf` (emptied first). A buffer
    /// handed from one cursor to the next ([`SegmentCursor::into_buffer`])
    /// is allocated, and its pages touched, once: recovery reads the last
    /// frame of every sealed segment, and a fresh buffer for each was a
    /// tenth of an open at 10M events.
    pub fn open_with_buffer(fs: &dyn Fs, segment: &SegmentInfo, mut buf: Vec<u8>) -> Result<Self> {
        buf.clear();
        let file = fs.open_read(&segment.path).ctx("open", &segment.path)?;
        let mut cursor = SegmentCursor {
            file,
            path: segment.path.clone(),
            header: SegmentHeader { version: 0, first_lsn: 0, journal_id: None, prev: None },
            crc: None,
            buf_start: 0,
            // Unless handed one, allocated on the first read, exactly as
            // large as it needs.
            buf,
            offset: 0,
            payload_at: 0..0,
            // The header alone: recovery opens every segment for its header
            // (and the last frame of each sealed one), and a 1 MiB read per
            // segment was a tenth of an open at 10M events.
            read_size: format::SEGMENT_HEADER_SIZE,
        };
        let available = cursor.fill(format::SEGMENT_HEADER_SIZE)?;
        cursor.read_size = SCAN_READ_SIZE_BYTES;
        let header = format::decode_segment_header(&cursor.buf[..available])
            .map_err(|reason| Error::corruption(&segment.path, 0, reason))?;
        if header.first_lsn != segment.first_lsn {
            return Err(Error::corruption(
                &segment.path,
                0,
                format!(
                    "segment header says first LSN {} but the file name says {}",
                    header.first_lsn, segment.first_lsn
                ),
            ));
        }
        cursor.header = header;
        cursor.offset = header.size() as u64;
        Ok(cursor)
    }

    /// The read buffer, for the next cursor.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// From now on, keeps the CRC of the header and of every frame returned
    /// (call right after `open`, before any frame is read).
    pub fn track_crc(&mut self) {
        let mut hasher = crc32fast::Hasher::new();
        let size = self.header.size().min(self.buf.len());
        hasher.update(&self.buf[..size]);
        self.crc = Some(hasher);
    }

    /// Stops keeping the CRC (before seeking around).
    pub fn stop_crc(&mut self) {
        self.crc = None;
    }

    /// The CRC of what was consumed so far, if tracked.
    pub fn crc(&self) -> Option<u32> {
        self.crc.clone().map(crc32fast::Hasher::finalize)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives back the read buffer of a cursor that has caught up with the
    /// writer and will wait, and reads in small chunks from now on: an idle
    /// follower (an open event stream) then holds kilobytes, not a megabyte.
    pub fn idle(&mut self) {
        self.buf = Vec::new();
        self.buf_start = self.offset;
        self.read_size = HEAD_READ_SIZE_BYTES;
    }

    /// Moves to `offset`, which must be a frame boundary found earlier.
    pub fn seek(&mut self, offset: u64) {
        self.offset = offset;
    }

    /// Makes at least `want` bytes from `self.offset` available in `buf`,
    /// reading more if needed. Returns how many are available (fewer only at
    /// the end of the file).
    fn fill(&mut self, want: usize) -> Result<usize> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.offset < self.buf_start || self.offset > buf_end {
            self.buf.clear();
            self.buf_start = self.offset;
        }
        let rel = (self.offset - self.buf_start) as usize;
        if self.buf.len() - rel >= want {
            return Ok(self.buf.len() - rel);
        }
        if rel > 0 {
            // Drop consumed bytes so the buffer only grows for big frames.
            self.buf.drain(..rel);
            self.buf_start = self.offset;
        }
        let want = self.within_file(want)?;
        while self.buf.len() < want {
            let have = self.buf.len();
            // Fill to the read size (or to `want`, for a frame bigger than
            // it), growing the buffer exactly rather than by doubling.
            let chunk = want.max(self.read_size) - have;
            self.buf.reserve_exact(chunk);
            self.buf.resize(have + chunk, 0);
            let n = self
                .file
                .read_at(&mut self.buf[have..], self.buf_start + have as u64)
                .ctx("read", &self.path);
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(e);
                }
            };
            self.buf.truncate(have + n);
            if n == 0 {
                break;
            }
        }
        Ok(self.buf.len())
    }

    /// `want`, or less if the file does not hold that many bytes past the
    /// buffer's start. Only a frame longer than the read size asks: its
    /// length came from disk and may be anything up to the frame limit, and
    /// must not size an allocation past the file's end.
    fn within_file(&self, want: usize) -> Result<usize> {
        if want <= self.read_size {
            return Ok(want);
        }
        let size = self.file.size().ctx("read the size of", &self.path)?;
        let held = usize::try_from(size.saturating_sub(self.buf_start)).unwrap_or(usize::MAX);
        Ok(want.min(held.max(self.buf.len())))
    }

    /// Reads the frame at the current offset. A returned frame is consumed
    /// (the cursor moves past it); anything else leaves the offset in place.
    pub fn next_frame(&mut self) -> Result<FrameRead> {
        let read = self.read_frame()?;
        if !matches!(read, FrameRead::Frame { .. }) {
            // The writer may still be filling these bytes (or the zeros it
            // preallocated): read them from the file again next time.
            let rel = self.offset.saturating_sub(self.buf_start) as usize;
            self.buf.truncate(rel.min(self.buf.len()));
            self.read_size = HEAD_READ_SIZE_BYTES;
        }
        Ok(read)
    }

    fn read_frame(&mut self) -> Result<FrameRead> {
        let offset = self.offset;
        let header_len = self.frame_header_len();
        let available = self.fill(header_len)?;
        if available == 0 {
            return Ok(FrameRead::End { offset });
        }
        let rel = (offset - self.buf_start) as usize;
        if available < header_len {
            let zeros = self.buf[rel..rel + available].iter().all(|b| *b == 0);
            if zeros {
                return Ok(FrameRead::Unwritten { offset });
            }
            return Ok(FrameRead::Incomplete { offset, reason: "frame header is incomplete".into() });
        }
        if self.buf[rel..rel + header_len].iter().all(|b| *b == 0) {
            return Ok(FrameRead::Unwritten { offset });
        }
        let header = match format::decode_frame_header(&self.buf[rel..rel + header_len], self.header.version)
        {
            Ok(h) => h,
            Err(reason) => return Ok(FrameRead::Bad { offset, reason }),
        };
        let frame_len = header.frame_len();
        let available = self.fill(frame_len)?;
        if available < frame_len {
            return Ok(FrameRead::Incomplete {
                offset,
                reason: format!("frame of {frame_len} bytes is cut off after {available} bytes"),
            });
        }
        let rel = (offset - self.buf_start) as usize;
        let payload = &self.buf[rel + header_len..rel + frame_len];
        if let Err(reason) = format::check_frame_payload(&header, payload) {
            return Ok(FrameRead::Bad { offset, reason });
        }
        if let Some(crc) = self.crc.as_mut() {
            crc.update(&self.buf[rel..rel + frame_len]);
        }
        self.payload_at = rel + header_len..rel + frame_len;
        self.offset = offset + frame_len as u64;
        Ok(FrameRead::Frame { offset, header })
    }

    fn frame_header_len(&self) -> usize {
        if self.header.version == 1 { FRAME_HEADER_SIZE_V1 } else { format::FRAME_HEADER_SIZE }
    }

    /// The frame starting at `offset`, if a whole, valid one does.
    pub fn frame_at(&mut self, offset: u64) -> Result<Option<FrameHeader>> {
        // One frame, not a scan: read in small chunks.
        self.read_size = HEAD_READ_SIZE_BYTES;
        self.seek(offset);
        match self.next_frame()? {
            FrameRead::Frame { header, .. } => Ok(Some(header)),
            _ => Ok(None),
        }
    }

    /// The payload of the frame `next_frame` returned last.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.payload_at.clone()]
    }

    /// Whether every byte from `from` to the end of the file is zero (the
    /// writer's preallocated, unwritten space).
    pub fn zeros_from(&mut self, from: u64) -> Result<bool> {
        Ok(end_of_nonzero(&*self.file, &self.path, from)? == from)
    }

    /// Whether a valid frame starts anywhere after `from` in this file. Used
    /// to tell a torn tail (nothing valid after the damage) from corruption
    /// in the middle (valid frames follow the damage). Reads the file in
    /// windows, so memory stays bounded whatever the segment's size.
    pub fn valid_frame_after(&mut self, from: u64) -> Result<Option<u64>> {
        // Preallocated space is zeros: no frame can start in it (though a
        // frame may end in zeros, so it may extend up to the file's length).
        let end = end_of_nonzero(&*self.file, &self.path, from)?;
        let len = self.file.size().ctx("stat", &self.path)?;
        let mut window = vec![0u8; SCAN_READ_SIZE_BYTES + format::FRAME_HEADER_SIZE];
        let mut at = from + 1;
        while at < end {
            let n = read_full(&*self.file, &self.path, &mut window, at)?;
            let starts = n.min(SCAN_READ_SIZE_BYTES).min((end - at) as usize);
            if starts == 0 {
                break;
            }
            for i in 0..starts {
                if self.frame_checks_out(&window[i..n], at + i as u64, len)? {
                    return Ok(Some(at + i as u64));
                }
            }
            at += starts as u64;
        }
        Ok(None)
    }

    /// Whether a whole valid frame starts at `offset`, whose first bytes are
    /// `bytes`; reads the rest of a frame longer than `bytes` from the file.
    fn frame_checks_out(&self, bytes: &[u8], offset: u64, len: u64) -> Result<bool> {
        let Ok(header) = format::decode_frame_header(bytes, self.header.version) else { return Ok(false) };
        if offset + header.frame_len() as u64 > len {
            return Ok(false);
        }
        if bytes.len() >= header.frame_len() {
            let payload = &bytes[header.header_len()..header.frame_len()];
            return Ok(format::check_frame_payload(&header, payload).is_ok());
        }
        // Bounded by the frame size limit decode_frame_header enforces.
        let mut frame = vec![0u8; header.frame_len()];
        let n = read_full(&*self.file, &self.path, &mut frame, offset)?;
        Ok(n == frame.len() && format::check_frame_payload(&header, &frame[header.header_len()..]).is_ok())
    }
}

/// Reads into `buf` from `at` until it is full or the file ends; returns
/// how many bytes were read.
pub(crate) fn read_full(file: &dyn FsFile, path: &Path, buf: &mut [u8], at: u64) -> Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        let n = file.read_at(&mut buf[read..], at + read as u64).ctx("read", path)?;
        if n == 0 {
            break;
        }
        read += n;
    }
    Ok(read)
}

/// The offset just past the last non-zero byte at or after `from` (`from`
/// if there is none): where data ends and preallocated zeros begin.
pub(crate) fn end_of_nonzero(file: &dyn FsFile, path: &Path, from: u64) -> Result<u64> {
    let len = file.size().ctx("stat", path)?;
    let mut buf = vec![0u8; SCAN_READ_SIZE_BYTES];
    let (mut at, mut end) = (from, from);
    while at < len {
        let n = file.read_at(&mut buf, at).ctx("read", path)?;
        if n == 0 {
            break;
        }
        if let Some(last) = buf[..n].iter().rposition(|b| *b != 0) {
            end = at + last as u64 + 1;
        }
        at += n as u64;
    }
    Ok(end)
}
