//! Opening a journal for writing: the lock on its directory, recovery, the
//! manifest (identity and continuity), and the segment the writer starts on.
//!
//! The writer never appends to a version 1 segment: a journal written by an
//! older bookend gets a manifest (with the seal records of its version 1
//! segments, computed once) and a new version 2 segment. A loss the caller
//! accepts is recorded as a gap in the manifest, and the writer continues
//! after the highest LSN evidence says was durable, so LSNs are never reused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::{self, AcceptedGap, JournalId, LOCK_FILE_NAME, Manifest, SealRecord};
use crate::fs::{Fs, FsFile, LockGuard, LockMode, create_dir_durably};
use crate::manifest::{load_manifest, store_manifest};
use crate::options::JournalOptions;
use crate::recovery::{self, AcceptedLoss, Apply, Evidence, LateEvidence, Loss, RecoveryReport, Tail};
use crate::segment;

/// A journal directory locked for writing, not yet recovered: what a caller
/// holds while it gathers evidence of its own (a checkpoint, cursors)
/// before [`LockedDir::open`] recovers the journal with it.
///
/// The lock is taken on the directory itself, which cannot be unlinked from
/// under its holder: deleting `bookend.lock` (which only names the holder's
/// pid) lets no second writer in.
pub struct LockedDir {
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) dir: PathBuf,
    pub(crate) guard: LockGuard,
}

impl std::fmt::Debug for LockedDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedDir").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl LockedDir {
    /// Creates `dir` if needed and takes its writer lock; `Locked` (naming
    /// the holder's pid) if another process holds it.
    pub fn lock(fs: Arc<dyn Fs>, dir: impl AsRef<Path>) -> Result<LockedDir> {
        Self::lock_mode(fs, dir.as_ref(), LockMode::Exclusive)
    }

    /// The same, for one of several writer processes
    /// (`JournalOptions::shared_writers`): the lock is shared with the
    /// others, and still excludes a single writer and `repair`.
    pub fn lock_shared(fs: Arc<dyn Fs>, dir: impl AsRef<Path>) -> Result<LockedDir> {
        Self::lock_mode(fs, dir.as_ref(), LockMode::Shared)
    }

    fn lock_mode(fs: Arc<dyn Fs>, dir: &Path, mode: LockMode) -> Result<LockedDir> {
        let dir = dir.to_path_buf();
        create_dir_durably(&*fs, &dir).ctx("create directory", &dir)?;
        let Some(guard) = fs.try_lock(&dir, mode).ctx("lock", &dir)? else {
            return Err(Error::Locked { pid: recovery::read_holder(&*fs, &dir), dir });
        };
        let pid_path = dir.join(LOCK_FILE_NAME);
        let pid = format!("{}\n", std::process::id());
        fs.create(&pid_path)
            .and_then(|f| f.write_all_at(pid.as_bytes(), 0))
            .ctx("write the pid to", &pid_path)?;
        Ok(LockedDir { fs, dir, guard })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }

    /// Recovers the journal with `evidence` of the caller's own (the
    /// highest LSN it knows was durable: a checkpoint, consumer cursors) and
    /// starts the writer. Acknowledged LSNs missing from the journal are
    /// `Error::DataLoss`, unless `options.accept_data_loss`.
    pub fn open(self, options: JournalOptions, evidence: Evidence) -> Result<crate::Journal> {
        self.open_with_evidence_from(options, || Ok(evidence))
    }

    /// [`LockedDir::open`], asking `evidence` for the caller's evidence only
    /// once recovery has read and checked the segments, before it decides
    /// or changes anything that depends on it: the caller gathers it
    /// meanwhile, on another thread (a projection store opening). An error
    /// from `evidence` stops the recovery there, and is returned.
    pub fn open_with_evidence_from(
        self,
        options: JournalOptions,
        evidence: impl FnOnce() -> Result<Evidence>,
    ) -> Result<crate::Journal> {
        let mut evidence = Some(evidence);
        crate::Journal::start(self, options, &mut || {
            evidence.take().map_or_else(|| Ok(Evidence::default()), |f| f())
        })
    }

    /// The journal's id as its manifest (or, if the manifest is gone, its
    /// first version 2 segment header) records it; `None` for a journal not
    /// created yet, or one written before format version 2.
    pub fn journal_id(&self) -> Result<Option<JournalId>> {
        if let Some(m) = load_manifest(&*self.fs, &self.dir)? {
            return Ok(Some(m.journal_id));
        }
        for seg in segment::list_segments(&*self.fs, &self.dir)? {
            if let Ok(cursor) = segment::SegmentCursor::open(&*self.fs, &seg)
                && let Some(id) = cursor.header().journal_id
            {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

/// Where the writer starts.
pub(crate) struct Start {
    pub manifest: Manifest,
    pub report: RecoveryReport,
    pub segment: ActiveStart,
    /// Frames of the recovered last segment readers may start at.
    pub seek: Option<crate::seek::SeekPoints>,
}

/// The active segment the writer starts on.
pub(crate) struct ActiveStart {
    pub file: Box<dyn FsFile>,
    pub path: PathBuf,
    /// The active segment's first LSN, length, allocated size, last frame
    /// and the CRC of its bytes so far.
    pub first_lsn: u64,
    pub len: u64,
    pub allocated: u64,
    pub last_frame_offset: u64,
    pub crc: crc32fast::Hasher,
    /// The last LSN in the journal.
    pub last_lsn: u64,
}

/// Recovers the journal in the locked `dir` and readies the active segment.
pub(crate) fn prepare(
    fs: &dyn Fs,
    dir: &Path,
    options: &JournalOptions,
    evidence: LateEvidence,
) -> Result<Start> {
    let opts = recovery::Options {
        mode: options.scan_mode,
        apply: Apply::Truncate,
        evidence: Evidence::default(),
        accept_data_loss: options.accept_data_loss,
    };
    let recovered = recovery::recover_with(fs, dir, &opts, evidence).map_err(recovery::Broken::into_error)?;
    let mut report = recovered.report;
    let loaded = recovered.manifest.clone();
    let mut manifest = match recovered.manifest {
        Some(m) => m,
        None => adopt_or_mint(fs, dir, &report, recovered.tail.as_ref())?,
    };
    let tail = recovered.tail;
    let seek = tail.as_ref().map(|t| t.seek.clone());
    // The next segment to create, and the seal record of the one before it.
    let mut next: Option<(u64, Option<SealRecord>)> = None;
    if let Some(t) = tail.as_ref().filter(|t| t.header.version == 1) {
        next = Some((t.last_lsn + 1, Some(seal(fs, t)?)));
    }
    for loss in recovered.losses {
        let (gap, starts_segment) = record_loss(&loss, tail.as_ref());
        let evidence = match &loss {
            Loss::AtEnd { evidence, .. } => evidence.as_str(),
            Loss::Between { .. } => "the seal record of a segment after them",
        };
        tracing::warn!(
            lost_from = gap.lost_from,
            lost_to = gap.lost_to,
            evidence,
            "accepting the loss of acknowledged LSNs (--accept-data-loss); they will never be reused"
        );
        let (lost_from, lost_to) = (gap.lost_from, gap.lost_to);
        report.accepted_now.push(AcceptedLoss { lost_from, lost_to, evidence: evidence.to_string() });
        if starts_segment {
            let prev = tail.as_ref().map(|t| seal(fs, t)).transpose()?;
            next = Some((gap.next_segment, prev));
        }
        if !manifest.gaps.contains(&gap) {
            manifest.gaps.push(gap);
        }
    }
    if tail.is_none() && next.is_none() {
        next = Some((1, None));
    }
    if let Some((first, _)) = next {
        manifest.last_segment_first_lsn = manifest.last_segment_first_lsn.max(first);
        manifest.durable_floor_lsn = manifest.durable_floor_lsn.max(first - 1);
    }
    // An open that changes nothing leaves the manifest alone: its fsync
    // would wait behind whatever else the file system is flushing.
    if loaded.as_ref() != Some(&manifest) {
        store_manifest(fs, dir, &manifest)?;
    }
    let segment = match (next, tail) {
        (Some((first, prev)), _) => new_segment(fs, dir, manifest.journal_id, first, prev)?,
        (None, Some(t)) => reopen_tail(fs, t, report.evidence.lsn)?,
        (None, None) => unreachable!("a journal without segments always gets segment 1"),
    };
    report.journal_id = Some(manifest.journal_id);
    report.next_lsn = segment.last_lsn + 1;
    Ok(Start { manifest, report, segment, seek })
}

/// A manifest for a journal that has none: a new one, one written before
/// format version 2 (its version 1 segments' seal records computed once),
/// or one whose manifest was deleted (its id read from the segment headers).
fn adopt_or_mint(fs: &dyn Fs, dir: &Path, report: &RecoveryReport, tail: Option<&Tail>) -> Result<Manifest> {
    let journal_id = report.journal_id.unwrap_or_else(JournalId::mint);
    if tail.is_some() {
        tracing::warn!(
            dir = %dir.display(),
            journal_id = %journal_id,
            "the journal has no manifest (written by an older bookend, or the file was deleted); writing one"
        );
    }
    Ok(Manifest {
        journal_id,
        created_at_ms: now_ms(),
        durable_floor_lsn: report.evidence.lsn,
        last_segment_first_lsn: tail.map_or(1, |t| t.seg.first_lsn),
        legacy_seals: recovery::legacy_seals(fs, dir)?,
        gaps: Vec::new(),
    })
}

/// The gap a loss becomes, and whether the writer must start a new segment
/// after it (a loss at the end: the next LSN is past the evidence).
fn record_loss(loss: &Loss, tail: Option<&Tail>) -> (AcceptedGap, bool) {
    let accepted_at_ms = now_ms();
    match loss {
        Loss::AtEnd { found, expected, .. } => {
            let gap = AcceptedGap {
                after_segment: tail.map_or(0, |t| t.seg.first_lsn),
                next_segment: expected + 1,
                lost_from: found + 1,
                lost_to: *expected,
                accepted_at_ms,
            };
            (gap, true)
        }
        Loss::Between { after, next, lost_from } => {
            let gap = AcceptedGap {
                after_segment: after.as_ref().map_or(0, |a| a.first_lsn),
                next_segment: next.first_lsn,
                lost_from: *lost_from,
                lost_to: next.first_lsn - 1,
                accepted_at_ms,
            };
            (gap, false)
        }
    }
}

/// Trims the recovered last segment to its frames and returns its seal
/// record: it is about to get a successor.
fn seal(fs: &dyn Fs, tail: &Tail) -> Result<SealRecord> {
    let file = fs.open_write(&tail.seg.path).ctx("open", &tail.seg.path)?;
    file.set_len(tail.end).ctx("trim", &tail.seg.path)?;
    file.sync_data().ctx("fsync", &tail.seg.path)?;
    let empty = tail.last_lsn < tail.seg.first_lsn;
    Ok(SealRecord {
        first_lsn: tail.seg.first_lsn,
        last_lsn: tail.last_lsn,
        len: tail.end,
        last_frame_offset: if empty { tail.end } else { tail.last_frame_offset },
        crc: tail.crc,
    })
}

fn new_segment(
    fs: &dyn Fs,
    dir: &Path,
    id: JournalId,
    first: u64,
    prev: Option<SealRecord>,
) -> Result<ActiveStart> {
    let (file, path) = segment::create_segment(fs, dir, first, id, prev)?;
    let header = format::encode_segment_header(first, id, prev);
    let len = header.len() as u64;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    Ok(ActiveStart {
        file,
        path,
        first_lsn: first,
        len,
        allocated: len,
        last_frame_offset: len,
        crc,
        last_lsn: first - 1,
    })
}

fn reopen_tail(fs: &dyn Fs, t: Tail, durable: u64) -> Result<ActiveStart> {
    let file = fs.open_write(&t.seg.path).ctx("open", &t.seg.path)?;
    // What survived recovery may still sit in the page cache of a process
    // that crashed; make it durable before counting it so. Evidence that
    // its last LSN was durable (the hint a clean close leaves) says it is.
    if durable < t.last_lsn {
        file.sync_data().ctx("fsync", &t.seg.path)?;
    }
    let allocated = file.size().ctx("stat", &t.seg.path)?;
    Ok(ActiveStart {
        file,
        path: t.seg.path.clone(),
        first_lsn: t.seg.first_lsn,
        len: t.end,
        allocated,
        last_frame_offset: t.last_frame_offset,
        crc: crc32fast::Hasher::new_with_initial(t.crc),
        last_lsn: t.last_lsn,
    })
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}
