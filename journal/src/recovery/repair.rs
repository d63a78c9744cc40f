//! `repair`: the smallest change that makes the damage readable again,
//! with an exact account of it.
//!
//! * A segment header that does not check, while the frames after it do, is
//!   rewritten from what the journal knows (the file name, the manifest's
//!   identity, the previous segment's seal record); the old bytes are saved
//!   aside and no frame moves.
//! * A damaged frame moves the rest of *its* segment into a `.quarantine`
//!   file; later segments stay where they are.
//! * A torn tail is truncated as on open.
//! * What repair cannot mend by moving bytes (a missing segment, acknowledged
//!   LSNs that are gone) is reported with what to do next; repair never
//!   accepts a loss on its own.
//!
//! It never deletes a byte, and it says for every byte range it moved which
//! LSNs it held and whether any of them had been acknowledged.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::{self, LOCK_FILE_NAME, Manifest, SealRecord};
use crate::fs::{Fs, LockMode};
use crate::manifest;
use crate::segment::{self, FrameRead, SegmentCursor, SegmentInfo};

use super::tail::{self, move_suffix, sibling_path};
use super::{
    Apply, Broken, Evidence, Options, RecoveryReport, ScanMode, TornTail, no_late_evidence, recover_into,
};

/// Bytes `repair` moved into a quarantine file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub from: PathBuf,
    /// The byte range of `from` that moved.
    pub bytes: (u64, u64),
    /// The LSNs those bytes held, as far as they can be read.
    pub lsns: Option<(u64, u64)>,
    pub to: PathBuf,
    /// Some of those LSNs had been acknowledged as durable.
    pub acknowledged: bool,
    pub reason: String,
}

/// A segment header `repair` rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRewrite {
    pub segment: PathBuf,
    /// Offsets of the bytes that differed from the rebuilt header.
    pub changed_bytes: Vec<usize>,
    pub saved_to: PathBuf,
    pub reason: String,
}

/// What [`repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub moved: Vec<Moved>,
    pub headers_rewritten: Vec<HeaderRewrite>,
    /// The torn tail truncated on the way, if any.
    pub torn_tail: Option<TornTail>,
    /// The LSN the next append will get, once the journal opens.
    pub next_lsn: u64,
    /// What is still wrong and what to do about it (the journal does not
    /// open until it is done).
    pub unresolved: Option<String>,
    /// The highest LSN known to have been acknowledged as durable.
    pub evidence: Evidence,
}

impl RepairReport {
    /// Whether acknowledged data was moved aside or is missing.
    pub fn lost_acknowledged(&self) -> bool {
        self.moved.iter().any(|m| m.acknowledged) || self.unresolved.is_some()
    }
}

/// Makes the journal in `dir` readable again with the smallest change (see
/// the module docs). Takes the journal's lock, so it refuses to run while
/// a writer is open.
pub fn repair(fs: &dyn Fs, dir: &Path) -> Result<RepairReport> {
    let Some(_lock) = fs.try_lock(dir, LockMode::Exclusive).ctx("lock", dir)? else {
        return Err(Error::Locked { dir: dir.to_path_buf(), pid: read_holder(fs, dir) });
    };
    let opts = Options {
        mode: ScanMode::Full,
        apply: Apply::Truncate,
        evidence: Evidence::default(),
        accept_data_loss: false,
    };
    let mut report = RepairReport::default();
    // Each round moves or rewrites something, so the number of rounds is
    // bounded by the number of files.
    let rounds_max = fs.list_files(dir).ctx("list", dir)?.len() * 2 + 2;
    for _ in 0..rounds_max {
        let mut progress = RecoveryReport::default();
        let outcome = recover_into(fs, dir, &opts, &mut progress, &mut no_late_evidence);
        report.evidence = progress.evidence.clone();
        match outcome {
            Ok(recovered) => {
                report.torn_tail = recovered.report.torn_tail;
                report.next_lsn = recovered.report.next_lsn;
                return Ok(report);
            }
            Err(broken) => {
                if !mend(fs, dir, broken, &mut report)? {
                    return Ok(report);
                }
            }
        }
    }
    Err(Error::corruption(dir, 0, "repair did not converge; inspect the directory by hand"))
}

/// The pid the lock file names, for the `Locked` error.
pub(crate) fn read_holder(fs: &dyn Fs, dir: &Path) -> Option<u32> {
    let bytes = crate::fs::read_small_file(fs, &dir.join(LOCK_FILE_NAME), 64).ok()??;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

/// Mends one problem; false when nothing more can be done by moving bytes.
fn mend(fs: &dyn Fs, dir: &Path, broken: Broken, report: &mut RepairReport) -> Result<bool> {
    let evidence = report.evidence.lsn;
    match broken {
        Broken::Header { segment, error } => {
            if let Some(rewrite) = rewrite_header(fs, dir, &segment, &error.to_string())? {
                tracing::warn!(segment = %segment.path.display(), "rewrote a damaged segment header");
                report.headers_rewritten.push(rewrite);
            } else {
                let len = fs.open_read(&segment.path).and_then(|f| f.size()).ctx("stat", &segment.path)?;
                let to = sibling_path(fs, &segment.path, "quarantine");
                fs.rename(&segment.path, &to).ctx("rename", &segment.path)?;
                fs.sync_dir(dir).ctx("fsync directory", dir)?;
                let lsns = Some((segment.first_lsn, next_first(fs, dir, &segment)?.saturating_sub(1)));
                let acknowledged = evidence >= segment.first_lsn;
                let reason = error.to_string();
                report.moved.push(Moved {
                    from: segment.path,
                    bytes: (0, len),
                    lsns,
                    to,
                    acknowledged,
                    reason,
                });
            }
            Ok(true)
        }
        Broken::Frame { segment, offset, error } => {
            quarantine_suffix(fs, dir, &segment, offset, error.to_string(), report)?;
            Ok(true)
        }
        Broken::Chain { after: Some(a), next, error: Error::Corruption { segment, offset, reason } }
            if segment == a.path && grown_past(fs, &a, offset)? =>
        {
            quarantine_suffix(fs, dir, &a, offset, format!("{reason} ({})", next.path.display()), report)?;
            Ok(true)
        }
        Broken::Chain { error, .. } | Broken::Other(error @ Error::DataLoss { .. }) => {
            report.unresolved = Some(format!(
                "{error}. Nothing more can be moved aside: restore the missing segments from a backup, or open the journal with --accept-data-loss to record the loss"
            ));
            Ok(false)
        }
        Broken::Other(error) => Err(error),
    }
}

fn grown_past(fs: &dyn Fs, seg: &SegmentInfo, offset: u64) -> Result<bool> {
    Ok(fs.open_read(&seg.path).and_then(|f| f.size()).ctx("stat", &seg.path)? > offset)
}

/// The first LSN of the segment after `seg`, or one past `seg`'s own last
/// valid frame when it is the last.
fn next_first(fs: &dyn Fs, dir: &Path, seg: &SegmentInfo) -> Result<u64> {
    let segments = segment::list_segments(fs, dir)?;
    Ok(segments.iter().map(|s| s.first_lsn).filter(|f| *f > seg.first_lsn).min().unwrap_or(seg.first_lsn))
}

/// Moves `seg[offset..]` into `<seg>.<offset>.quarantine` and reports the
/// LSNs it held.
fn quarantine_suffix(
    fs: &dyn Fs,
    dir: &Path,
    seg: &SegmentInfo,
    offset: u64,
    reason: String,
    report: &mut RepairReport,
) -> Result<()> {
    let len = fs.open_read(&seg.path).and_then(|f| f.size()).ctx("stat", &seg.path)?;
    let lsns = lsns_after(fs, dir, seg, offset)?;
    let to = sibling_path(fs, &seg.path, &format!("{offset}.quarantine"));
    // Everything from the damage on, zeros included: repair never decides
    // which of those bytes matter.
    move_suffix(fs, &seg.path, (offset, len), &to)?;
    tracing::warn!(segment = %seg.path.display(), offset, "moved a damaged suffix into quarantine");
    let acknowledged = lsns.is_some_and(|(from, _)| report.evidence.lsn >= from);
    report.moved.push(Moved { from: seg.path.clone(), bytes: (offset, len), lsns, to, acknowledged, reason });
    Ok(())
}

/// The LSNs held from `offset` to the end of `seg`: from the one after the
/// last valid frame before it, to the one before the next segment (or the
/// last valid frame found after the damage).
fn lsns_after(fs: &dyn Fs, dir: &Path, seg: &SegmentInfo, offset: u64) -> Result<Option<(u64, u64)>> {
    let mut cursor = SegmentCursor::open(fs, seg)?;
    let mut from = seg.first_lsn;
    let mut last_seen = None;
    while let FrameRead::Frame { offset: at, header } = cursor.next_frame()? {
        if at >= offset {
            break;
        }
        from = header.last_lsn() + 1;
    }
    let mut at = offset;
    while let Some(valid) = cursor.valid_frame_after(at)? {
        cursor.seek(valid);
        at = valid;
        while let FrameRead::Frame { offset: o, header } = cursor.next_frame()? {
            last_seen = Some(header.last_lsn());
            at = o + header.frame_len() as u64;
        }
    }
    let next = next_first(fs, dir, seg)?;
    let to = if next > seg.first_lsn { Some(next - 1) } else { last_seen };
    Ok(to.filter(|to| *to >= from).map(|to| (from, to)))
}

/// Rebuilds the header of `seg` from what the journal knows, if the frames
/// after it agree; writes it in place after saving the old bytes aside.
fn rewrite_header(fs: &dyn Fs, dir: &Path, seg: &SegmentInfo, reason: &str) -> Result<Option<HeaderRewrite>> {
    let file = fs.open_read(&seg.path).ctx("open", &seg.path)?;
    let mut raw = vec![0u8; format::SEGMENT_HEADER_SIZE];
    let read = file.read_at(&mut raw, 0).ctx("read", &seg.path)?;
    raw.truncate(read);
    let manifest = manifest::load_manifest(fs, dir)?;
    for candidate in candidates(fs, dir, seg, &raw, manifest.as_ref())? {
        if !first_frame_agrees(fs, seg, &candidate)? {
            continue;
        }
        let changed_bytes: Vec<usize> =
            (0..candidate.len()).filter(|&i| raw.get(i) != candidate.get(i)).collect();
        let saved_to = sibling_path(fs, &seg.path, "header.quarantine");
        let out = fs.create(&saved_to).ctx("create", &saved_to)?;
        out.write_all_at(&raw[..candidate.len().min(raw.len())], 0).ctx("write", &saved_to)?;
        out.sync_data().ctx("fsync", &saved_to)?;
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
        let target = fs.open_write(&seg.path).ctx("open", &seg.path)?;
        target.write_all_at(&candidate, 0).ctx("write", &seg.path)?;
        target.sync_data().ctx("fsync", &seg.path)?;
        let reason = reason.to_string();
        return Ok(Some(HeaderRewrite { segment: seg.path.clone(), changed_bytes, saved_to, reason }));
    }
    Ok(None)
}

/// The headers `seg` could have had: version 2 (with the manifest's id and
/// the previous segment's seal record) and version 1.
fn candidates(
    fs: &dyn Fs,
    dir: &Path,
    seg: &SegmentInfo,
    raw: &[u8],
    manifest: Option<&Manifest>,
) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let id = manifest
        .map(|m| m.journal_id)
        .or_else(|| format::decode_segment_header_unchecked(raw).and_then(|h| h.journal_id));
    if let Some(id) = id {
        let prev = previous_seal(fs, dir, seg)?;
        out.push(format::encode_segment_header(seg.first_lsn, id, prev).to_vec());
    }
    out.push(format::encode_segment_header_v1(seg.first_lsn).to_vec());
    Ok(out)
}

/// The seal record of the segment before `seg`, computed from its bytes
/// (`None` for the first segment, or if it is not intact).
fn previous_seal(fs: &dyn Fs, dir: &Path, seg: &SegmentInfo) -> Result<Option<SealRecord>> {
    let segments = segment::list_segments(fs, dir)?;
    let Some(prev) = segments.iter().rev().find(|s| s.first_lsn < seg.first_lsn) else { return Ok(None) };
    let mut scratch = RecoveryReport::default();
    let Ok(scan) = tail::scan(fs, prev, prev.first_lsn, ScanMode::Full, &mut scratch) else {
        return Ok(None);
    };
    let len = fs.open_read(&prev.path).and_then(|f| f.size()).ctx("stat", &prev.path)?;
    if scan.damage.is_some() || scan.end != len {
        return Ok(None);
    }
    let last_frame_offset = if scan.last_lsn < prev.first_lsn { scan.end } else { scan.last_frame_offset };
    Ok(Some(SealRecord {
        first_lsn: prev.first_lsn,
        last_lsn: scan.last_lsn,
        len: scan.end,
        last_frame_offset,
        crc: scan.crc,
    }))
}

/// Whether, with `header` in place, the segment's first frame is valid and
/// starts at the segment's first LSN (or the segment holds no frame).
fn first_frame_agrees(fs: &dyn Fs, seg: &SegmentInfo, header: &[u8]) -> Result<bool> {
    let Ok(decoded) = format::decode_segment_header(header) else { return Ok(false) };
    let file = fs.open_read(&seg.path).ctx("open", &seg.path)?;
    let len = file.size().ctx("stat", &seg.path)?;
    let at = header.len() as u64;
    if len == at {
        return Ok(true);
    }
    let mut head = vec![0u8; format::FRAME_HEADER_SIZE];
    let n = file.read_at(&mut head, at).ctx("read", &seg.path)?;
    let Ok(frame) = format::decode_frame_header(&head[..n], decoded.version) else { return Ok(false) };
    if frame.first_lsn != seg.first_lsn || at + frame.frame_len() as u64 > len {
        return Ok(false);
    }
    let mut payload = vec![0u8; frame.payload_len as usize];
    let n = file.read_at(&mut payload, at + frame.header_len() as u64).ctx("read", &seg.path)?;
    Ok(n == payload.len() && format::check_frame_payload(&frame, &payload).is_ok())
}
