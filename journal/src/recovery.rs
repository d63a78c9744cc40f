//! Recovery on open, read-only checking, and repair.
//!
//! The rules (design.md §2): an incomplete or checksum-bad frame at the very
//! end of the last segment is a torn tail, which is saved to a `.torn` file
//! and truncated. Anything else that is wrong — a bad frame with valid data
//! after it, a bad frame in a sealed segment, an LSN gap, a missing or
//! misnamed segment, a bad header — is corruption: the journal refuses to
//! open and nothing is modified. [`repair`] moves the damaged suffix into
//! quarantine files so the journal can open again; it never deletes bytes.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fs::Fs;
use crate::segment::{self, FrameRead, SegmentCursor, SegmentInfo};

/// How much of the journal is checked frame by frame on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanMode {
    /// Every frame of every segment: CRCs and LSN continuity across the whole
    /// journal. Cost grows with the journal (about the speed of a sequential
    /// read).
    Full,
    /// Every segment header, and every frame of the last segment only. Sealed
    /// segments were fsynced before their successor was created, and are
    /// checked again by every reader; `check`/`verify` check them all.
    #[default]
    LastSegment,
}

/// A torn tail found (and, when opening for writing, removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
    /// Where the torn bytes were saved; `None` when only checking.
    pub saved_to: Option<PathBuf>,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Frames and events checked (all of them under `ScanMode::Full`).
    pub frames_checked: u64,
    pub events_checked: u64,
    /// Payload bytes of the checked frames.
    pub bytes_checked: u64,
    /// The LSN the next append will get.
    pub next_lsn: u64,
    pub torn_tail: Option<TornTail>,
    /// Temporary segment files (from a crash during creation) removed.
    pub removed_temp_segments: Vec<PathBuf>,
}

/// The state recovery leaves the writer.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub report: RecoveryReport,
    /// The last segment and the offset where its valid frames end.
    pub tail: Option<(SegmentInfo, u64)>,
}

/// Whether recovery may change files (the writer) or only look (checkers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Apply {
    Truncate,
    ReadOnly,
}

pub(crate) fn recover(fs: &dyn Fs, dir: &Path, mode: ScanMode, apply: Apply) -> Result<Recovered> {
    let segments = segment::list_segments(fs, dir)?;
    let mut report = RecoveryReport { segments: segments.len(), next_lsn: 1, ..Default::default() };
    if apply == Apply::Truncate {
        remove_temp_segments(fs, dir, &mut report)?;
    }
    let Some(last) = segments.last() else {
        return Ok(Recovered { report, tail: None });
    };
    if segments[0].first_lsn != 1 {
        return Err(Error::corruption(
            &segments[0].path,
            0,
            format!("segments before LSN {} are missing", segments[0].first_lsn),
        ));
    }
    let (sealed, _) = segments.split_at(segments.len() - 1);
    let mut expected = 1;
    for seg in sealed {
        if mode == ScanMode::LastSegment {
            SegmentCursor::open(fs, seg)?;
            continue;
        }
        segment::check_starts_at(seg, expected)?;
        scan_segment(fs, seg, true, apply, &mut expected, &mut report)?;
    }
    if mode == ScanMode::LastSegment {
        expected = last.first_lsn;
    }
    segment::check_starts_at(last, expected)?;
    let end = scan_segment(fs, last, false, apply, &mut expected, &mut report)?;
    report.next_lsn = expected;
    Ok(Recovered { report, tail: Some((last.clone(), end)) })
}

fn remove_temp_segments(fs: &dyn Fs, dir: &Path, report: &mut RecoveryReport) -> Result<()> {
    let temps = segment::list_segment_temps(fs, dir)?;
    if temps.is_empty() {
        return Ok(());
    }
    for temp in &temps {
        // A temporary segment holds only a header: no event was ever in it.
        tracing::info!(path = %temp.display(), "removing a segment whose creation was interrupted");
        fs.remove_file(temp).ctx("remove", temp)?;
    }
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    report.removed_temp_segments = temps;
    Ok(())
}

/// Checks every frame of one segment; returns the offset where valid frames
/// end. `expected` is the next LSN and moves past every frame.
fn scan_segment(
    fs: &dyn Fs,
    seg: &SegmentInfo,
    sealed: bool,
    apply: Apply,
    expected: &mut u64,
    report: &mut RecoveryReport,
) -> Result<u64> {
    let mut cursor = SegmentCursor::open(fs, seg)?;
    loop {
        let (offset, reason) = match cursor.next_frame()? {
            FrameRead::Frame { offset, header } => {
                if header.first_lsn != *expected {
                    return Err(Error::corruption(
                        &seg.path,
                        offset,
                        format!(
                            "LSN gap: expected a frame starting at LSN {expected}, found {}",
                            header.first_lsn
                        ),
                    ));
                }
                *expected = header.last_lsn() + 1;
                report.frames_checked += 1;
                report.events_checked += u64::from(header.count);
                report.bytes_checked += u64::from(header.payload_len);
                continue;
            }
            FrameRead::End { offset } => return Ok(offset),
            FrameRead::Unwritten { offset } if !sealed && cursor.zeros_from(offset)? => return Ok(offset),
            FrameRead::Unwritten { offset } => {
                (offset, "a zeroed frame header with data after it, or in a sealed segment".to_string())
            }
            FrameRead::Incomplete { offset, reason } | FrameRead::Bad { offset, reason } => (offset, reason),
        };
        if sealed {
            return Err(Error::corruption(&seg.path, offset, format!("{reason} in a sealed segment")));
        }
        if let Some(valid) = cursor.valid_frame_after(offset)? {
            return Err(Error::corruption(
                &seg.path,
                offset,
                format!("{reason}, followed by a valid frame at offset {valid}"),
            ));
        }
        report.torn_tail = Some(handle_torn_tail(fs, seg, offset, reason, apply)?);
        return Ok(offset);
    }
}

/// Saves the torn bytes to `<segment>.<offset>.torn`, then truncates.
fn handle_torn_tail(
    fs: &dyn Fs,
    seg: &SegmentInfo,
    offset: u64,
    reason: String,
    apply: Apply,
) -> Result<TornTail> {
    let file = fs.open_read(&seg.path).ctx("open", &seg.path)?;
    // The torn bytes end where the writer's preallocated zeros begin, or
    // where the frame says it ends if that is further (a frame may end in
    // zero bytes of its own).
    let len = file.size().ctx("stat", &seg.path)?;
    let mut end = segment::end_of_nonzero(&*file, &seg.path, offset)?;
    let mut header = [0u8; crate::format::FRAME_HEADER_SIZE];
    if file.read_at(&mut header, offset).ctx("read", &seg.path)? == header.len()
        && let Ok(h) = crate::format::decode_frame_header(&header)
    {
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
fn sibling_path(fs: &dyn Fs, path: &Path, suffix: &str) -> PathBuf {
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
fn move_suffix(fs: &dyn Fs, path: &Path, (offset, end): (u64, u64), dest: &Path) -> Result<()> {
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

/// What [`repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Files the damaged bytes were moved into.
    pub quarantined: Vec<PathBuf>,
    /// The torn tail truncated on the way, if any.
    pub torn_tail: Option<TornTail>,
    /// The LSN the next append will get after the repair.
    pub next_lsn: u64,
}

/// Makes the journal in `dir` openable again: every corrupt suffix is moved
/// into `.quarantine` files beside the segments (whole segments are renamed),
/// a torn tail is truncated as on open, and no byte is deleted.
/// Takes the writer lock, so it refuses to run while a writer is open.
pub fn repair(fs: &dyn Fs, dir: &Path) -> Result<RepairReport> {
    let lock_path = dir.join(crate::format::LOCK_FILE_NAME);
    let _lock = match fs.try_lock(&lock_path, std::process::id()).ctx("lock", &lock_path)? {
        crate::fs::LockOutcome::Acquired(guard) => guard,
        crate::fs::LockOutcome::HeldBy(pid) => return Err(Error::Locked { dir: dir.to_path_buf(), pid }),
    };
    let mut report = RepairReport::default();
    // Each round quarantines at least one file or suffix, so the number of
    // rounds is bounded by the number of files.
    let rounds_max = fs.list_files(dir).ctx("list", dir)?.len() + 2;
    for _ in 0..rounds_max {
        match recover(fs, dir, ScanMode::Full, Apply::Truncate) {
            Ok(recovered) => {
                report.torn_tail = recovered.report.torn_tail;
                report.next_lsn = recovered.report.next_lsn;
                return Ok(report);
            }
            Err(Error::Corruption { segment, offset, reason }) => {
                tracing::warn!(segment = %segment.display(), offset, %reason, "quarantining a corrupt suffix");
                quarantine_from(fs, dir, &segment, offset, &mut report.quarantined)?;
            }
            Err(other) => return Err(other),
        }
    }
    Err(Error::corruption(dir, 0, "repair did not converge; inspect the directory by hand"))
}

/// Quarantines `segment` from `offset` on, and every segment after it.
fn quarantine_from(
    fs: &dyn Fs,
    dir: &Path,
    segment: &Path,
    offset: u64,
    moved: &mut Vec<PathBuf>,
) -> Result<()> {
    let segments = segment::list_segments(fs, dir).unwrap_or_default();
    let first_lsn = segments.iter().find(|s| s.path == segment).map(|s| s.first_lsn);
    let Some(first_lsn) = first_lsn else {
        // A misnamed segment: move it aside whole.
        return rename_aside(fs, dir, segment, moved);
    };
    if offset <= crate::format::SEGMENT_HEADER_SIZE as u64 {
        rename_aside(fs, dir, segment, moved)?;
    } else {
        let dest = sibling_path(fs, segment, &format!("{offset}.quarantine"));
        let len = fs.open_read(segment).and_then(|f| f.size()).ctx("stat", segment)?;
        // Everything from the damage on, zeros included: repair never
        // decides which bytes matter.
        move_suffix(fs, segment, (offset, len), &dest)?;
        moved.push(dest);
    }
    for later in segments.iter().filter(|s| s.first_lsn > first_lsn) {
        rename_aside(fs, dir, &later.path, moved)?;
    }
    Ok(())
}

fn rename_aside(fs: &dyn Fs, dir: &Path, path: &Path, moved: &mut Vec<PathBuf>) -> Result<()> {
    let dest = sibling_path(fs, path, "quarantine");
    fs.rename(path, &dest).ctx("rename", path)?;
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    moved.push(dest);
    Ok(())
}
