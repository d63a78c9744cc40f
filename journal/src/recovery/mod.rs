//! Recovery on open, read-only checking, and repair.
//!
//! The rules (design.md §2, docs/format.md "Recovery rules"):
//!
//! * Open proves continuity at a cost of O(segments): every sealed segment
//!   is checked against the seal record its successor's header carries
//!   (`chain`), and the last segment is scanned frame by frame (`tail`).
//! * Everything that says an LSN was durable is *evidence*: the manifest's
//!   durable floor, the durable hint, the watermark of every frame read, the
//!   existence of a later segment, and what the caller adds (the projector's
//!   checkpoint and consumer cursors).
//! * Damage at the end of the last segment whose LSNs lie above every piece
//!   of evidence was never acknowledged as durable: a torn tail, saved to a
//!   `.torn` file and truncated. Damage that evidence vouches for, damage in
//!   a sealed segment, a broken chain and a bad header are corruption: the
//!   journal refuses to open and nothing is modified.
//! * A journal that ends before its evidence has lost acknowledged data: it
//!   refuses to open, unless the caller accepts the loss, which records a
//!   gap in the manifest so that LSNs are never reused.

// `Broken` carries the place and the error a person (or `repair`) needs;
// it is returned at most once per open, so its size costs nothing.
#![allow(clippy::result_large_err)]

mod chain;
mod repair;
mod tail;

pub(crate) use tail::save_torn;

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::{AcceptedGap, JournalId, Manifest, SealRecord, SegmentHeader};
use crate::fs::Fs;
use crate::manifest;
use crate::segment::{self, SegmentInfo};

pub(crate) use repair::read_holder;
pub use repair::{HeaderRewrite, Moved, RepairReport, repair};

/// How much of the journal is checked frame by frame on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanMode {
    /// Every frame of every segment: CRCs, LSN continuity and every sealed
    /// segment's CRC against its seal record. Cost grows with the journal.
    Full,
    /// Every segment header, every sealed segment's size and last frame
    /// against its seal record, and every frame of the last segment.
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

/// The highest LSN known to have been durable, and what says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub lsn: u64,
    pub source: String,
}

impl Evidence {
    pub fn new(lsn: u64, source: impl Into<String>) -> Evidence {
        Evidence { lsn, source: source.into() }
    }

    /// Keeps the higher of the two.
    pub fn raise(&mut self, lsn: u64, source: impl FnOnce() -> String) {
        if lsn > self.lsn {
            self.lsn = lsn;
            self.source = source();
        }
    }
}

/// LSNs a loss accepted by this open took, and what said they had been
/// durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedLoss {
    pub lost_from: u64,
    pub lost_to: u64,
    pub evidence: String,
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
    /// The journal's identity (`None` for a new journal, or one written
    /// before format version 2 that was only checked).
    pub journal_id: Option<JournalId>,
    /// The highest LSN known durable.
    pub evidence: Evidence,
    /// Gaps a person accepted earlier (`--accept-data-loss`).
    pub accepted_gaps: Vec<AcceptedGap>,
    /// Losses accepted by this open.
    pub accepted_now: Vec<AcceptedLoss>,
    /// Segments of format version 1.
    pub legacy_segments: usize,
}

/// The last segment as recovery leaves it to the writer.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    pub seg: SegmentInfo,
    pub header: SegmentHeader,
    /// Where its valid frames end.
    pub end: u64,
    pub last_frame_offset: u64,
    /// CRC of its bytes `0..end`.
    pub crc: u32,
    pub last_lsn: u64,
    /// Frames readers may start at, up to `end` (see `seek.rs`).
    pub seek: crate::seek::SeekPoints,
}

/// Acknowledged LSNs found missing while the caller accepts the loss.
#[derive(Debug, Clone)]
pub(crate) enum Loss {
    /// The journal ends at `found` but `expected` was durable.
    AtEnd { found: u64, expected: u64, evidence: String },
    /// LSNs between two segments are missing (a deleted or cut segment).
    Between { after: Option<SegmentInfo>, next: SegmentInfo, lost_from: u64 },
}

/// The state recovery leaves the writer.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub report: RecoveryReport,
    pub manifest: Option<Manifest>,
    pub tail: Option<Tail>,
    pub losses: Vec<Loss>,
}

/// Whether recovery may change files (the writer) or only look (checkers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Apply {
    Truncate,
    ReadOnly,
}

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub mode: ScanMode,
    pub apply: Apply,
    pub evidence: Evidence,
    pub accept_data_loss: bool,
}

/// What is wrong, in a form `repair` can act on.
#[derive(Debug)]
pub(crate) enum Broken {
    /// A segment header that does not check.
    Header { segment: SegmentInfo, error: Error },
    /// A frame that does not check (or an LSN gap inside a segment).
    Frame { segment: SegmentInfo, offset: u64, error: Error },
    /// A sealed segment that does not match its seal record, or segments
    /// missing between two that exist.
    Chain { after: Option<SegmentInfo>, next: SegmentInfo, error: Error },
    /// Anything else (I/O, a lost tail, a bad manifest).
    Other(Error),
}

impl Broken {
    pub fn into_error(self) -> Error {
        match self {
            Broken::Header { error, .. }
            | Broken::Frame { error, .. }
            | Broken::Chain { error, .. }
            | Broken::Other(error) => error,
        }
    }
}

impl From<Error> for Broken {
    fn from(e: Error) -> Broken {
        Broken::Other(e)
    }
}

/// Evidence of the caller's own, asked for once the segments are read and
/// checked (see [`recover_with`]).
pub(crate) type LateEvidence<'a> = &'a mut dyn FnMut() -> Result<Evidence>;

pub(crate) fn recover(fs: &dyn Fs, dir: &Path, opts: &Options) -> Result<Recovered, Broken> {
    recover_with(fs, dir, opts, &mut no_late_evidence)
}

/// For a recovery whose evidence is all in `Options::evidence`.
pub(super) fn no_late_evidence() -> Result<Evidence> {
    Ok(Evidence::default())
}

/// [`recover`], raising `opts.evidence` with what `late` returns once the
/// segments are read and checked, before anything that depends on the
/// evidence is decided or changed (a torn tail is truncated, a loss is
/// found): the caller gathers it meanwhile, on another thread.
pub(crate) fn recover_with(
    fs: &dyn Fs,
    dir: &Path,
    opts: &Options,
    late: LateEvidence,
) -> Result<Recovered, Broken> {
    let mut report = RecoveryReport::default();
    recover_into(fs, dir, opts, &mut report, late)
}

/// [`recover_with`], counting what it checked in `report` as it goes, so
/// that a failure still says what was checked before it.
fn recover_into(
    fs: &dyn Fs,
    dir: &Path,
    opts: &Options,
    report: &mut RecoveryReport,
    late: LateEvidence,
) -> Result<Recovered, Broken> {
    // The manifest and the hint are read before the segments, so that a
    // writer appending meanwhile can only have made the segments longer
    // than what they vouch for (read-only checks run beside a writer).
    let manifest = manifest::load_manifest(fs, dir)?;
    let mut evidence = opts.evidence.clone();
    if let Some(m) = &manifest {
        evidence.raise(m.durable_floor_lsn, || "the manifest's durable floor".into());
        evidence.raise(m.last_segment_first_lsn.saturating_sub(1), || {
            format!("segment {} was created, so everything before it was durable", m.last_segment_first_lsn)
        });
        let hint = manifest::read_durable_hint(fs, dir, m.journal_id);
        evidence.raise(hint, || "the durable hint written after the last fsync".into());
    }
    report.evidence = evidence.clone();
    let segments = segment::list_segments(fs, dir)?;
    report.segments = segments.len();
    report.next_lsn = 1;
    report.journal_id = manifest.as_ref().map(|m| m.journal_id);
    report.accepted_gaps = manifest.as_ref().map(|m| m.gaps.clone()).unwrap_or_default();
    if opts.apply == Apply::Truncate {
        remove_temp_segments(fs, dir, report)?;
    }
    let Some(last) = segments.last().cloned() else {
        raise_late(&mut evidence, late)?;
        return no_segments(dir, manifest, evidence, opts, report);
    };
    let chain = chain::check(fs, &segments, manifest.as_ref(), opts, report)?;
    evidence.raise(chain.vouched, || "the seal record of the last sealed segment".into());
    let scan = tail::scan(fs, &last, chain.expected_first, opts.mode, report)?;
    raise_late(&mut evidence, late)?;
    evidence.raise(scan.max_watermark, || "the durable watermark of a frame in the last segment".into());
    let tail = tail::settle(fs, &last, scan, &evidence, opts, report)?;
    report.next_lsn = tail.last_lsn + 1;
    let mut losses = chain.losses;
    if evidence.lsn > tail.last_lsn {
        let found = tail.last_lsn;
        if !opts.accept_data_loss || evidence.lsn > LSN_ACCEPTABLE_MAX {
            return Err(Broken::Other(data_loss(dir, found, &evidence)));
        }
        losses.push(Loss::AtEnd { found, expected: evidence.lsn, evidence: evidence.source.clone() });
    }
    report.evidence = evidence;
    Ok(Recovered { report: report.clone(), manifest, tail: Some(tail), losses })
}

fn raise_late(evidence: &mut Evidence, late: LateEvidence) -> Result<(), Broken> {
    let theirs = late()?;
    evidence.raise(theirs.lsn, || theirs.source);
    Ok(())
}

/// The highest LSN a loss may be accepted up to: evidence beyond it (a
/// cursor file holding `u64::MAX`, say) is no real LSN, and continuing after
/// it would leave no LSNs to write; it is refused even with
/// `accept_data_loss`, so that a person fixes the evidence instead.
const LSN_ACCEPTABLE_MAX: u64 = u64::MAX - (1 << 32);

fn data_loss(dir: &Path, found: u64, evidence: &Evidence) -> Error {
    Error::DataLoss {
        dir: dir.to_path_buf(),
        found_lsn: found,
        expected_lsn: evidence.lsn,
        evidence: evidence.source.clone(),
    }
}

/// A directory with no segment: a new journal, unless evidence says that
/// durable events were here.
fn no_segments(
    dir: &Path,
    manifest: Option<Manifest>,
    evidence: Evidence,
    opts: &Options,
    report: &mut RecoveryReport,
) -> Result<Recovered, Broken> {
    let mut losses = Vec::new();
    if evidence.lsn > 0 {
        if !opts.accept_data_loss || evidence.lsn > LSN_ACCEPTABLE_MAX {
            return Err(Broken::Other(data_loss(dir, 0, &evidence)));
        }
        losses.push(Loss::AtEnd { found: 0, expected: evidence.lsn, evidence: evidence.source.clone() });
    }
    report.evidence = evidence;
    Ok(Recovered { report: report.clone(), manifest, tail: None, losses })
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

/// Checks the journal in `dir` without changing anything; returns what was
/// checked, and the first problem found (corruption, or lost data) if any.
pub(crate) fn check_partial(fs: &dyn Fs, dir: &Path) -> Result<(RecoveryReport, Option<Error>)> {
    let opts = Options {
        mode: ScanMode::Full,
        apply: Apply::ReadOnly,
        evidence: Evidence::default(),
        accept_data_loss: false,
    };
    let mut report = RecoveryReport::default();
    match recover_into(fs, dir, &opts, &mut report, &mut no_late_evidence) {
        Ok(recovered) => Ok((recovered.report, None)),
        Err(Broken::Other(e @ Error::Io { .. })) => Err(e),
        Err(broken) => Ok((report, Some(broken.into_error()))),
    }
}

/// The seal records of the version 1 segments of `dir` that have a
/// successor, read from their bytes (once, when an older journal gets its
/// manifest); any damage in them is corruption.
pub(crate) fn legacy_seals(fs: &dyn Fs, dir: &Path) -> Result<Vec<SealRecord>> {
    let segments = segment::list_segments(fs, dir)?;
    let mut seals = Vec::new();
    for seg in segments.iter().take(segments.len().saturating_sub(1)) {
        let mut scratch = RecoveryReport::default();
        let scan =
            tail::scan(fs, seg, seg.first_lsn, ScanMode::Full, &mut scratch).map_err(Broken::into_error)?;
        if scan.header.version != 1 {
            continue;
        }
        let len = fs.open_read(&seg.path).and_then(|f| f.size()).ctx("stat", &seg.path)?;
        if let Some(d) = &scan.damage {
            return Err(Error::corruption(&seg.path, d.offset, format!("{} in a sealed segment", d.reason)));
        }
        if scan.end != len {
            return Err(Error::corruption(
                &seg.path,
                scan.end,
                "bytes after the last frame of a sealed segment",
            ));
        }
        let empty = scan.last_lsn < seg.first_lsn;
        seals.push(SealRecord {
            first_lsn: seg.first_lsn,
            last_lsn: scan.last_lsn,
            len,
            last_frame_offset: if empty { len } else { scan.last_frame_offset },
            crc: scan.crc,
        });
    }
    Ok(seals)
}
