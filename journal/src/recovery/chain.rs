//! The chain of sealed segments, checked in O(segments): every segment's
//! header, and every sealed segment against the seal record its
//! successor's header (or, for version 1 segments, the manifest) carries:
//! the segment before it, its length, its last frame and that frame's LSN.
//! A missing, renamed, cut or grown sealed segment breaks the chain.

use crate::error::{Error, IoContext};
use crate::format::{JournalId, Manifest, SealRecord, SegmentHeader};
use crate::fs::Fs;
use crate::segment::{SegmentCursor, SegmentInfo};

use super::tail::{self, Scan};
use super::{Apply, Broken, Loss, Options, RecoveryReport, ScanMode};

/// What the chain check established.
pub(super) struct ChainOutcome {
    /// The LSN the last segment must start at.
    pub expected_first: u64,
    /// The highest LSN a seal record vouches for.
    pub vouched: u64,
    /// Breaks found while the caller accepts data loss.
    pub losses: Vec<Loss>,
}

pub(super) fn check(
    fs: &dyn Fs,
    segments: &[SegmentInfo],
    manifest: Option<&Manifest>,
    opts: &Options,
    report: &mut RecoveryReport,
) -> Result<ChainOutcome, Broken> {
    let headers = read_headers(fs, segments, manifest)?;
    report.legacy_segments = headers.iter().filter(|h| h.version == 1).count();
    if report.journal_id.is_none() {
        report.journal_id = headers.iter().find_map(|h| h.journal_id);
    }
    let mut out = ChainOutcome { expected_first: segments[0].first_lsn, vouched: 0, losses: Vec::new() };
    check_first(&segments[0], &headers[0], manifest, opts, &mut out)?;
    let mut buf = Vec::new();
    for i in 0..segments.len() - 1 {
        let (a, b) = (&segments[i], &segments[i + 1]);
        out.expected_first = b.first_lsn;
        if manifest.and_then(|m| m.gap_between(a.first_lsn, b.first_lsn)).is_some() {
            continue;
        }
        let seal = headers[i + 1].prev.or_else(|| manifest.and_then(|m| m.legacy_seal(a.first_lsn)));
        let checked = match seal {
            Some(seal) => check_sealed(fs, (a, b), &seal, opts.mode, report, &mut buf),
            None if headers[i + 1].version >= 2 => Err(chain_error(
                Some(a),
                b,
                format!("its header says it is the first segment, but {} comes before it", a.path.display()),
            )),
            // Version 1 segments checked before their first upgrade: the
            // old rules (names, and every frame under a full scan).
            None => check_unsealed_v1(fs, a, b, opts.mode, report),
        };
        match checked {
            Ok(()) => out.vouched = out.vouched.max(seal.map_or(0, |s| s.last_lsn)),
            Err(broken) if opts.accept_data_loss && matches!(broken, Broken::Chain { .. }) => {
                out.losses.push(accept_break(fs, a, b, opts, report)?);
            }
            Err(broken) => return Err(broken),
        }
    }
    Ok(out)
}

/// Every segment's header, each checked against its name and the journal's
/// identity.
fn read_headers(
    fs: &dyn Fs,
    segments: &[SegmentInfo],
    manifest: Option<&Manifest>,
) -> Result<Vec<SegmentHeader>, Broken> {
    let mut id: Option<JournalId> = manifest.map(|m| m.journal_id);
    let mut headers = Vec::with_capacity(segments.len());
    for seg in segments {
        let header = match SegmentCursor::open(fs, seg) {
            Ok(cursor) => *cursor.header(),
            Err(error @ Error::Corruption { .. }) => {
                return Err(Broken::Header { segment: seg.clone(), error });
            }
            Err(e) => return Err(Broken::Other(e)),
        };
        if let Some(found) = header.journal_id {
            match id {
                Some(expected) if expected != found => {
                    let error = Error::ForeignState {
                        dir: seg.path.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
                        what: format!("segment {}", seg.path.display()),
                        expected: expected.to_string(),
                        found: found.to_string(),
                    };
                    return Err(Broken::Header { segment: seg.clone(), error });
                }
                Some(_) => {}
                None => id = Some(found),
            }
        }
        headers.push(header);
    }
    Ok(headers)
}

fn check_first(
    first: &SegmentInfo,
    header: &SegmentHeader,
    manifest: Option<&Manifest>,
    opts: &Options,
    out: &mut ChainOutcome,
) -> Result<(), Broken> {
    let accepted = manifest.and_then(|m| m.gap_between(0, first.first_lsn)).is_some();
    if first.first_lsn == 1 || accepted {
        return Ok(());
    }
    let reason = match header.prev {
        Some(p) => format!(
            "segments before LSN {} are missing (this one follows a segment that started at LSN {})",
            first.first_lsn, p.first_lsn
        ),
        None => format!("segments before LSN {} are missing", first.first_lsn),
    };
    if opts.accept_data_loss {
        out.losses.push(Loss::Between { after: None, next: first.clone(), lost_from: 1 });
        return Ok(());
    }
    Err(chain_error(None, first, reason))
}

fn chain_error(after: Option<&SegmentInfo>, next: &SegmentInfo, reason: String) -> Broken {
    Broken::Chain {
        after: after.cloned(),
        next: next.clone(),
        error: Error::corruption(&next.path, 0, reason),
    }
}

/// Checks the sealed segment `a` against `seal`, from its successor `b`,
/// reading through `buf` (handed on from segment to segment).
fn check_sealed(
    fs: &dyn Fs,
    (a, b): (&SegmentInfo, &SegmentInfo),
    seal: &SealRecord,
    mode: ScanMode,
    report: &mut RecoveryReport,
    buf: &mut Vec<u8>,
) -> Result<(), Broken> {
    // A full check reads (and counts) the frames first; a broken chain is
    // still reported before damage inside the segment.
    let full_scan = match mode {
        ScanMode::Full => Some(tail::scan(fs, a, a.first_lsn, mode, report)?),
        ScanMode::LastSegment => None,
    };
    if seal.first_lsn != a.first_lsn {
        let missing = crate::format::segment_file_name(seal.first_lsn);
        let reason = format!(
            "segment {missing} is missing: this segment follows one that started at LSN {}, but the segment before it starts at LSN {}",
            seal.first_lsn, a.first_lsn
        );
        return Err(chain_error(Some(a), b, reason));
    }
    if b.first_lsn != seal.last_lsn + 1 {
        let reason = format!(
            "LSN gap: the previous segment ended at LSN {} but this one starts at {}",
            seal.last_lsn, b.first_lsn
        );
        return Err(chain_error(Some(a), b, reason));
    }
    let size = fs.open_read(&a.path).and_then(|f| f.size()).ctx("stat", &a.path)?;
    if size != seal.len {
        let what = if size < seal.len { "cut short" } else { "grown" };
        let reason =
            format!("sealed segment is {size} bytes but was {} bytes when sealed ({what})", seal.len);
        return Err(Broken::Chain {
            after: Some(a.clone()),
            next: b.clone(),
            error: Error::corruption(&a.path, size.min(seal.len), reason),
        });
    }
    if let Some(scan) = &full_scan {
        refuse_damage_in_sealed(a, scan)?;
    }
    let mut cursor = SegmentCursor::open_with_buffer(fs, a, std::mem::take(buf))?;
    if seal.last_frame_offset < seal.len {
        let last = cursor.frame_at(seal.last_frame_offset)?;
        let matches = last.is_some_and(|h| {
            h.last_lsn() == seal.last_lsn && seal.last_frame_offset + h.frame_len() as u64 == seal.len
        });
        if !matches {
            let reason = format!("the last frame does not match its seal record (LSN {})", seal.last_lsn);
            return Err(Broken::Frame {
                segment: a.clone(),
                offset: seal.last_frame_offset,
                error: Error::corruption(&a.path, seal.last_frame_offset, reason),
            });
        }
    }
    *buf = cursor.into_buffer();
    if let Some(scan) = full_scan
        && (scan.crc != seal.crc || scan.end != seal.len)
    {
        let reason = format!("sealed segment's checksum {:#010x} differs from its seal record", scan.crc);
        let error = Error::corruption(&a.path, 0, reason);
        return Err(Broken::Frame { segment: a.clone(), offset: 0, error });
    }
    Ok(())
}

fn check_unsealed_v1(
    fs: &dyn Fs,
    a: &SegmentInfo,
    b: &SegmentInfo,
    mode: ScanMode,
    report: &mut RecoveryReport,
) -> Result<(), Broken> {
    if b.first_lsn <= a.first_lsn {
        return Err(chain_error(Some(a), b, "segments are out of order".to_string()));
    }
    if mode == ScanMode::Full {
        let scan = tail::scan(fs, a, a.first_lsn, mode, report)?;
        refuse_damage_in_sealed(a, &scan)?;
        if scan.last_lsn + 1 != b.first_lsn {
            let reason = format!(
                "LSN gap: the previous segment ends before LSN {} but this one starts at {}",
                scan.last_lsn + 1,
                b.first_lsn
            );
            return Err(chain_error(Some(a), b, reason));
        }
    }
    Ok(())
}

fn refuse_damage_in_sealed(seg: &SegmentInfo, scan: &Scan) -> Result<(), Broken> {
    let Some(damage) = &scan.damage else { return Ok(()) };
    let error = Error::corruption(&seg.path, damage.offset, format!("{} in a sealed segment", damage.reason));
    Err(Broken::Frame { segment: seg.clone(), offset: damage.offset, error })
}

/// A break between `a` and `b` while the caller accepts data loss: what
/// survives of `a` is found (a torn end of it saved aside when writing),
/// and the LSNs after it up to `b` are the loss.
fn accept_break(
    fs: &dyn Fs,
    a: &SegmentInfo,
    b: &SegmentInfo,
    opts: &Options,
    report: &mut RecoveryReport,
) -> Result<Loss, Broken> {
    let scan = tail::scan(fs, a, a.first_lsn, ScanMode::Full, report)?;
    if let Some(damage) = &scan.damage
        && opts.apply == Apply::Truncate
    {
        tail::save_torn(fs, a, damage.offset, damage.reason.clone())?;
    }
    Ok(Loss::Between { after: Some(a.clone()), next: b.clone(), lost_from: scan.last_lsn + 1 })
}
