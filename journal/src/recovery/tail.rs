//! Scanning a segment frame by frame, and settling the last segment: where
//! its valid frames end, and whether damage after them is a torn tail
//! (never acknowledged as durable: saved aside and truncated) or
//! corruption (evidence says acknowledged LSNs are in or after it).

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::SegmentHeader;
use crate::fs::Fs;
use crate::seek::SeekPoints;
use crate::segment::{self, FrameRead, SegmentCursor, SegmentInfo};

use super::{Apply, Broken, Evidence, Options, RecoveryReport, ScanMode, Tail, TornTail};

/// Where a segment's frames stop being valid, and what lies after.
#[derive(Debug, Clone)]
pub(super) struct Damage {
    pub offset: u64,
    pub reason: String,
    /// The first valid frame after the damage, if any.
    pub later_valid: Option<u64>,
    /// The highest durable watermark any valid frame after the damage carries.
    pub later_watermark: u64,
}

/// What a scan of one segment found.
#[derive(Debug, Clone)]
pub(super) struct Scan {
    pub header: SegmentHeader,
    /// Where its valid frames end.
    pub end: u64,
    pub last_lsn: u64,
    pub last_frame_offset: u64,
    /// CRC of bytes `0..end`.
    pub crc: u32,
    /// The highest durable watermark of its valid frames before the damage.
    pub max_watermark: u64,
    pub damage: Option<Damage>,
    /// Frames readers may start at (see `seek.rs`).
    pub seek: SeekPoints,
}

impl Scan {
    /// Counts one more valid frame, which must continue the LSNs.
    fn take(
        &mut self,
        seg: &SegmentInfo,
        offset: u64,
        h: &crate::format::FrameHeader,
        report: &mut RecoveryReport,
    ) -> Result<(), Broken> {
        if h.first_lsn != self.last_lsn + 1 {
            let reason = format!(
                "LSN gap: expected a frame starting at LSN {}, found {}",
                self.last_lsn + 1,
                h.first_lsn
            );
            let error = Error::corruption(&seg.path, offset, reason);
            return Err(Broken::Frame { segment: seg.clone(), offset, error });
        }
        self.seek.note(h.first_lsn, offset);
        self.last_lsn = h.last_lsn();
        self.last_frame_offset = offset;
        self.end = offset + h.frame_len() as u64;
        self.max_watermark = self.max_watermark.max(h.durable_lsn);
        report.frames_checked += 1;
        report.events_checked += u64::from(h.count);
        report.bytes_checked += u64::from(h.payload_len);
        Ok(())
    }
}

/// Reads every frame of `seg`, which must start at `expected_first`.
pub(super) fn scan(
    fs: &dyn Fs,
    seg: &SegmentInfo,
    expected_first: u64,
    _mode: ScanMode,
    report: &mut RecoveryReport,
) -> Result<Scan, Broken> {
    let mut cursor = match SegmentCursor::open(fs, seg) {
        Ok(c) => c,
        Err(error @ Error::Corruption { .. }) => return Err(Broken::Header { segment: seg.clone(), error }),
        Err(e) => return Err(Broken::Other(e)),
    };
    if seg.first_lsn != expected_first {
        let reason = format!(
            "LSN gap: the previous segment ends before LSN {expected_first} but this one starts at {}",
            seg.first_lsn
        );
        return Err(Broken::Chain {
            after: None,
            next: seg.clone(),
            error: Error::corruption(&seg.path, 0, reason),
        });
    }
    cursor.track_crc();
    let header = *cursor.header();
    let start = header.size() as u64;
    let mut out = Scan {
        header,
        end: start,
        last_lsn: seg.first_lsn - 1,
        last_frame_offset: start,
        crc: 0,
        max_watermark: 0,
        damage: None,
        seek: SeekPoints::new(seg.first_lsn),
    };
    let (offset, reason) = loop {
        match cursor.next_frame()? {
            FrameRead::Frame { offset, header } => out.take(seg, offset, &header, report)?,
            FrameRead::End { .. } => break (None, String::new()),
            FrameRead::Unwritten { offset } if cursor.zeros_from(offset)? => break (None, String::new()),
            FrameRead::Unwritten { offset } => {
                break (Some(offset), "a zeroed frame header with data after it".to_string());
            }
            FrameRead::Incomplete { offset, reason } | FrameRead::Bad { offset, reason } => {
                break (Some(offset), reason);
            }
        }
    };
    out.crc = cursor.crc().unwrap_or(0);
    if let Some(offset) = offset {
        cursor.stop_crc();
        let (later_valid, later_watermark) = explore_after(&mut cursor, offset)?;
        out.damage = Some(Damage { offset, reason, later_valid, later_watermark });
    }
    Ok(out)
}

/// The first valid frame after `from`, and the highest durable watermark
/// of all valid frames after it (past further damage too).
fn explore_after(cursor: &mut SegmentCursor, from: u64) -> Result<(Option<u64>, u64)> {
    let (mut first, mut watermark, mut at) = (None, 0, from);
    while let Some(valid) = cursor.valid_frame_after(at)? {
        first.get_or_insert(valid);
        cursor.seek(valid);
        at = valid;
        while let FrameRead::Frame { offset, header } = cursor.next_frame()? {
            watermark = watermark.max(header.durable_lsn);
            at = offset + header.frame_len() as u64;
        }
    }
    Ok((first, watermark))
}

/// Decides what the damage at the end of the last segment is, and leaves
/// the segment where its acknowledged frames end.
pub(super) fn settle(
    fs: &dyn Fs,
    seg: &SegmentInfo,
    scan: Scan,
    evidence: &Evidence,
    opts: &Options,
    report: &mut RecoveryReport,
) -> Result<Tail, Broken> {
    let tail = |end: u64| Tail {
        seg: seg.clone(),
        header: scan.header,
        end,
        last_frame_offset: scan.last_frame_offset,
        crc: scan.crc,
        last_lsn: scan.last_lsn,
        seek: scan.seek.clone().end_at(scan.last_lsn + 1, end),
    };
    let Some(damage) = scan.damage.clone() else { return Ok(tail(scan.end)) };
    let before = scan.last_lsn;
    let vouched = evidence.lsn.max(damage.later_watermark);
    let mut reason = damage.reason.clone();
    if let Some(valid) = damage.later_valid {
        reason = format!("{reason}, followed by a valid frame at offset {valid}");
    }
    if vouched > before && !opts.accept_data_loss {
        let source = if damage.later_watermark > before {
            format!("a later valid frame says LSN {} was durable", damage.later_watermark)
        } else {
            evidence.source.clone()
        };
        let reason = format!("{reason}; LSNs up to {vouched} were acknowledged as durable ({source})");
        let error = Error::corruption(&seg.path, damage.offset, reason);
        return Err(Broken::Frame { segment: seg.clone(), offset: damage.offset, error });
    }
    if damage.later_valid.is_some() {
        reason = format!(
            "{reason}, but no frame vouches for an LSN after {before}: a write the disk reordered or tore in a power cut"
        );
    }
    report.torn_tail = Some(torn_tail(fs, seg, damage.offset, reason, opts.apply)?);
    Ok(tail(damage.offset))
}

/// Saves the bytes from `offset` on to `<segment>.<offset>.torn` and
/// truncates the segment there (the same as a torn tail on open).
pub(crate) fn save_torn(fs: &dyn Fs, seg: &SegmentInfo, offset: u64, reason: String) -> Result<TornTail> {
    torn_tail(fs, seg, offset, reason, Apply::Truncate)
}

fn torn_tail(fs: &dyn Fs, seg: &SegmentInfo, offset: u64, reason: String, apply: Apply) -> Result<TornTail> {
    let file = fs.open_read(&seg.path).ctx("open", &seg.path)?;
    // The torn bytes end where the writer's preallocated zeros begin, or
    // where the frame says it ends if that is further (a frame may end in
    // zero bytes of its own).
    let len = file.size().ctx("stat", &seg.path)?;
    let mut end = segment::end_of_nonzero(&*file, &seg.path, offset)?;
    let version = SegmentCursor::open(fs, seg).map(|c| c.header().version).unwrap_or(2);
    let mut header = [0u8; crate::format::FRAME_HEADER_SIZE];
    let read = file.read_at(&mut header, offset).ctx("read", &seg.path)?;
    if let Ok(h) = crate::format::decode_frame_header(&header[..read], version) {
        end = end.max((offset + h.frame_len() as u64).min(len));
    }
    let mut torn =
        TornTail { segment: seg.path.clone(), offset, bytes: end - offset, reason, saved_to: None };
    if apply == Apply::ReadOnly {
        return Ok(torn);
    }
    let saved = sibling_path(fs, &seg.path, &format!("{offset}.torn"));
    move_suffix(fs, &seg.path, (offset, end), &saved)?;
    tracing::warn!(
        segment = %seg.path.display(),
        offset,
        bytes = torn.bytes,
        saved_to = %saved.display(),
        "truncated a torn tail left by an interrupted write; nothing acknowledged as durable was in it"
    );
    torn.saved_to = Some(saved);
    Ok(torn)
}

/// `<file name>.<suffix>` beside `path`, with a counter added if that name
/// is taken: saved bytes are never overwritten.
pub(super) fn sibling_path(fs: &dyn Fs, path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut candidate = path.with_file_name(format!("{name}.{suffix}"));
    let mut n = 1u32;
    while fs.exists(&candidate) {
        n += 1;
        candidate = path.with_file_name(format!("{name}.{suffix}.{n}"));
    }
    candidate
}

/// Copies `path[offset..end]` to `dest` durably, then truncates `path` at
/// `offset` durably (bytes past `end` are preallocated zeros). The bytes
/// exist in `dest` before they leave `path`.
pub(crate) fn move_suffix(fs: &dyn Fs, path: &Path, (offset, end): (u64, u64), dest: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let src = fs.open_write(path).ctx("open", path)?;
    let out = fs.create(dest).ctx("create", dest)?;
    let mut buf = vec![0u8; segment::SCAN_READ_SIZE_BYTES];
    let mut at = offset;
    while at < end {
        let want = buf.len().min((end - at) as usize);
        let n = src.read_at(&mut buf[..want], at).ctx("read", path)?;
        if n == 0 {
            break;
        }
        out.write_all_at(&buf[..n], at - offset).ctx("write", dest)?;
        at += n as u64;
    }
    out.sync_data().ctx("fsync", dest)?;
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    src.set_len(offset).ctx("truncate", path)?;
    src.sync_data().ctx("fsync", path)?;
    Ok(())
}
