//! Auditing a journal: `verify` checks every frame and every lifecycle
//! invariant; `rebuild_and_compare` folds from LSN 1 and compares the result
//! with checkpoint + tail, byte for byte. Both fold in memory, so they run
//! while a writer appends (verify) or need only the checkpoint store (replay).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bookend_journal::fs::Fs;
use bookend_journal::{Reader, TornTail, codec};

use crate::error::{Error, Result};
use crate::fold;
use crate::rules::{Lifecycle, Violation};
use crate::store::ProjectionStore;
use crate::table::SessionTable;

/// Violations listed in a report at most (the count is always exact).
pub const VIOLATIONS_LISTED_MAX: usize = 1000;
/// Open session ids listed in a report at most.
pub const OPEN_SESSIONS_LISTED_MAX: usize = 100;

/// Where the journal is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptionReport {
    pub segment: PathBuf,
    pub offset: u64,
    pub reason: String,
}

/// Acknowledged LSNs missing from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLossReport {
    /// The journal ends here...
    pub found_lsn: u64,
    /// ...but this LSN was durable...
    pub expected_lsn: u64,
    /// ...as this says.
    pub evidence: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The journal's identity (`None` before format version 2).
    pub journal_id: Option<bookend_journal::JournalId>,
    pub segments: usize,
    pub frames: u64,
    pub events: u64,
    pub sessions: u64,
    pub spans: u64,
    pub ends: u64,
    pub ends_by_reason: BTreeMap<String, u64>,
    pub open_sessions: u64,
    pub open_session_ids: Vec<String>,
    pub epoch: u64,
    /// The last epoch has no `journal:close` (a writer is running, or crashed).
    pub epoch_open: bool,
    pub violations_total: u64,
    pub violations: Vec<Violation>,
    pub torn_tail: Option<TornTail>,
    pub corruption: Option<CorruptionReport>,
    pub data_loss: Option<DataLossReport>,
    /// Losses a person accepted earlier: LSNs `.0..=.1` of each.
    pub accepted_losses: Vec<(u64, u64)>,
}

impl VerifyReport {
    /// 0 clean, 1 lifecycle violation, 2 corruption or lost data.
    pub fn exit_code(&self) -> i32 {
        if self.corruption.is_some() || self.data_loss.is_some() {
            2
        } else if self.violations_total > 0 {
            1
        } else {
            0
        }
    }
}

/// Checks the journal in `dir`: every frame (CRC, LSN continuity, headers,
/// seal records), that nothing acknowledged is missing, and every
/// lifecycle invariant. `progress` is told the LSN reached as it goes. A
/// directory that holds no journal is `NoJournal`, never a clean report.
pub fn verify(fs: Arc<dyn Fs>, dir: &Path, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
    if !bookend_journal::has_journal(&*fs, dir)? {
        return Err(bookend_journal::Error::NoJournal { dir: dir.to_path_buf() }.into());
    }
    let mut report = VerifyReport::default();
    let (check, problem) = bookend_journal::check_partial(fs.clone(), dir)?;
    report.journal_id = check.journal_id;
    report.segments = check.segments;
    report.frames = check.frames_checked;
    report.torn_tail = check.torn_tail;
    report.accepted_losses = check.accepted_gaps.iter().map(|g| (g.lost_from, g.lost_to)).collect();
    match problem {
        None => {}
        Some(bookend_journal::Error::Corruption { segment, offset, reason }) => {
            report.corruption = Some(CorruptionReport { segment, offset, reason });
        }
        Some(bookend_journal::Error::DataLoss { found_lsn, expected_lsn, evidence, .. }) => {
            report.data_loss = Some(DataLossReport { found_lsn, expected_lsn, evidence });
        }
        Some(e @ bookend_journal::Error::ForeignState { .. }) => {
            report.corruption =
                Some(CorruptionReport { segment: dir.to_path_buf(), offset: 0, reason: e.to_string() });
        }
        Some(e) => return Err(e.into()),
    }
    let mut life = Lifecycle::with_table(SessionTable::untracked());
    let reader = Reader::open_with_fs(fs, dir, 1);
    let folded = fold::fold_journal_with(
        &mut life,
        reader,
        Some(fold::FOLD_CHECKPOINT_EVERY_EVENTS),
        |v| {
            report.violations_total += 1;
            if report.violations.len() < VIOLATIONS_LISTED_MAX {
                report.violations.push(v.clone());
            }
        },
        &mut progress,
    );
    match folded {
        Ok(events) => report.events = events,
        // The frame check already located the damage; the fold stops there.
        Err(Error::Journal(bookend_journal::Error::Corruption { .. })) if report.corruption.is_some() => {
            report.events = life.meta.last_lsn;
        }
        Err(e) => return Err(e),
    }
    progress(life.meta.last_lsn);
    fill_from_meta(&mut report, &life);
    Ok(report)
}

fn fill_from_meta(report: &mut VerifyReport, life: &Lifecycle) {
    let meta = &life.meta;
    report.sessions = meta.sessions_total;
    report.spans = meta.spans_total;
    report.ends_by_reason = meta.ends_by_reason.clone();
    report.ends = meta.ends_by_reason.values().sum();
    report.open_sessions = meta.active.len() as u64;
    report.open_session_ids = meta.active.iter().take(OPEN_SESSIONS_LISTED_MAX).cloned().collect();
    report.epoch = meta.epoch;
    report.epoch_open = meta.epoch_open;
}

/// The outcome of folding from LSN 1 and comparing with the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// LSN the checkpoint store was at.
    pub checkpoint_lsn: Option<u64>,
    /// LSN both folds reached.
    pub last_lsn: u64,
    pub sessions: usize,
    pub identical: bool,
    /// The first differences found, in words.
    pub differences: Vec<String>,
}

/// Encoded meta state, and every encoded session by id.
type CanonicalState = (Vec<u8>, BTreeMap<String, Vec<u8>>);

/// The canonical bytes of a folded state: meta then every session in id order.
fn canonical(life: &Lifecycle) -> Result<CanonicalState> {
    let meta = codec::encode(&life.meta)?;
    let mut sessions = BTreeMap::new();
    for s in fold::all_sessions(life)? {
        sessions.insert(s.id().to_string(), codec::encode(&s)?);
    }
    Ok((meta, sessions))
}

/// Folds the journal in `dir` from LSN 1 in memory, folds the checkpoint at
/// `checkpoint` plus the journal's tail, and compares them byte for byte.
/// Needs the checkpoint store to itself (no writer running).
pub fn rebuild_and_compare(
    fs: Arc<dyn Fs>,
    dir: &Path,
    checkpoint: &Path,
    cache_bytes: u64,
) -> Result<ReplayReport> {
    let mut rebuilt = Lifecycle::default();
    fold::fold_journal(&mut rebuilt, Reader::open_with_fs(fs.clone(), dir, 1), |_| {})?;
    let store = ProjectionStore::open(checkpoint, cache_bytes)?;
    let loaded = store.load_meta()?;
    let checkpoint_lsn = loaded.as_ref().map(|m| m.last_lsn);
    let mut resumed = Lifecycle::with_table(SessionTable::with_store(Some(store)));
    if let Some(meta) = loaded
        && meta.last_lsn <= rebuilt.meta.last_lsn
    {
        resumed.table.load_active(&meta)?;
        resumed.meta = meta;
    }
    // The tail is folded with a read-only view: nothing is saved to the store.
    let tail_reader = Reader::open_with_fs(fs, dir, resumed.meta.last_lsn + 1);
    fold_without_saving(&mut resumed, tail_reader)?;
    let (meta_a, sessions_a) = canonical(&rebuilt)?;
    let (meta_b, sessions_b) = canonical(&resumed)?;
    let mut differences = Vec::new();
    if meta_a != meta_b {
        differences.push(format!(
            "journal-wide state differs: rebuilt {:?} vs checkpoint {:?}",
            rebuilt.meta, resumed.meta
        ));
    }
    for (id, bytes) in &sessions_a {
        match sessions_b.get(id) {
            Some(other) if other == bytes => {}
            Some(_) => differences.push(format!("session {id:?} differs")),
            None => differences.push(format!("session {id:?} is missing from the checkpoint")),
        }
    }
    for id in sessions_b.keys().filter(|id| !sessions_a.contains_key(*id)) {
        differences.push(format!("session {id:?} is in the checkpoint but not in the journal"));
    }
    differences.truncate(20);
    Ok(ReplayReport {
        checkpoint_lsn,
        last_lsn: rebuilt.meta.last_lsn,
        sessions: sessions_a.len(),
        identical: differences.is_empty(),
        differences,
    })
}

fn fold_without_saving(life: &mut Lifecycle, reader: Reader) -> Result<()> {
    fold::fold_journal_with(life, reader, None, |_| {}, |_| {}).map(|_| ())
}
