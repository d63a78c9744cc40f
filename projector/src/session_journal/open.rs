//! Opening a session journal: the journal's lock, journal recovery with
//! evidence of durability from the projection store and the consumer
//! cursors (so that a journal that lost acknowledged data refuses to open
//! rather than reuse LSNs; `open_store.rs`), checkpoint load and tail
//! replay, and the new epoch's `journal:open` batch.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bookend_journal::fs::{Fs, StdFs};
use bookend_journal::{Durability, Journal, LockedDir};

use super::append::{Submit, apply_appended, submit};
use super::checkpointer::{BackgroundCheckpoints, checkpoint};
use super::open_store::{recover_beside_store, settle_store};
use super::options::{OnUnclean, OpenReport, SessionJournalOptions, StoreLocation};
use super::pending::wait_durable;
use super::shared_writers::{self, Joined, SharedWriting, host_name};
use super::{Core, Inner, SessionJournal};
use crate::error::{Error, Result};
use crate::event::EventBody;
use crate::fold;
use crate::rules::Lifecycle;
use crate::store::{ProjectionStore, StartedIds};
use crate::table::SessionTable;

/// How long open waits for its `journal:open` batch to become durable.
pub(crate) const OPEN_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

impl SessionJournal {
    /// Opens the session journal in `dir`: journal recovery, checkpoint load,
    /// tail replay, and the new epoch's `journal:open` (ending the sessions an
    /// unclean shutdown left active, unless `on_unclean` is `Keep`).
    pub fn open(dir: impl AsRef<Path>, options: SessionJournalOptions) -> Result<SessionJournal> {
        Self::open_with_fs(Arc::new(StdFs), dir, options)
    }

    pub fn open_with_fs(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        options: SessionJournalOptions,
    ) -> Result<SessionJournal> {
        let mut times = OpenTimes::start();
        let dir = dir.as_ref();
        let (locked, options) = lock_dir(&fs, dir, options)?;
        let (journal, store, store_ms) = recover_beside_store(&fs, dir, locked, &options)?;
        let recovery_ms = times.lap();
        let store = settle_store(store, &journal, dir, &options)?;
        let Loaded { mut life, from_checkpoint, checkpoint, replayed_events } =
            load_and_replay(&journal, store)?;
        if !from_checkpoint && replayed_events >= REWRITE_AFTER_REBUILD_EVENTS {
            rewrite_rebuilt_store(&mut life)?;
        }
        let replay_ms = times.lap();
        let background = start_background(&life, checkpoint, &journal)?;
        let filter_ms = times.lap();
        let mut core = Core {
            life,
            events_since_checkpoint: replayed_events,
            last_checkpoint: Instant::now(),
            background,
            store_failure: None,
            catch_up: None,
        };
        let (epoch, unclean, crash_recovered, joined) = enter_epoch(&journal, &mut core, &options)?;
        let open_millis = times.total();
        let open_report =
            OpenReport { epoch, unclean, crash_recovered, from_checkpoint, replayed_events, open_millis };
        tracing::info!(
            dir = %dir.display(),
            journal_id = %journal.id(),
            epoch,
            from_checkpoint,
            replayed_events,
            open_ms = open_millis,
            store_ms,
            recovery_ms,
            replay_ms,
            filter_ms,
            "session journal opened"
        );
        let inner = Inner {
            journal,
            core: Mutex::new(core),
            options,
            poison: Mutex::new(None),
            open_report,
            consumers: Default::default(),
            shared: joined.map(SharedWriting::new),
        };
        let journal = SessionJournal { inner: Arc::new(inner) };
        if let Some(shared) = &journal.inner.shared {
            shared.watch(Arc::downgrade(&journal.inner), journal.inner.options.writer_check_interval)?;
        }
        journal.rebuild_if_store_failed()?;
        Ok(journal)
    }
}

/// Where an open's time went, for its log line: the journal's recovery
/// (with the projection store opening beside it, whose own time is logged
/// too), loading the checkpoint and replaying the tail, loading the
/// known-ids filter (or starting its scan); the rest is the new epoch's
/// batch, its fsync and a checkpoint.
struct OpenTimes {
    started: Instant,
    lap: Instant,
}

impl OpenTimes {
    fn start() -> OpenTimes {
        let now = Instant::now();
        OpenTimes { started: now, lap: now }
    }

    /// Milliseconds since the last lap (or the start).
    fn lap(&mut self) -> u64 {
        let now = Instant::now();
        let ms = now.duration_since(self.lap).as_millis() as u64;
        self.lap = now;
        ms
    }

    fn total(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// The state an open folded.
struct Loaded {
    life: Lifecycle,
    from_checkpoint: bool,
    /// The checkpoint's session count and LSN: the store holds at least
    /// these sessions (the replay may add more, in memory or saved).
    checkpoint: Option<(u64, u64)>,
    replayed_events: u64,
}

/// The checkpoint in `store` if it is usable, then the journal's tail
/// after it.
fn load_and_replay(journal: &Journal, store: Option<ProjectionStore>) -> Result<Loaded> {
    let mut life = Lifecycle::with_table(SessionTable::with_store(store));
    let from_checkpoint = fold::load_checkpoint(&mut life, journal.next_lsn() - 1)?;
    let checkpoint = from_checkpoint.then_some((life.meta.sessions_total, life.meta.last_lsn));
    let tail = journal.reader(life.meta.last_lsn + 1)?;
    let replayed_events = fold::fold_journal(&mut life, tail, |v| {
        tracing::warn!(lsn = v.lsn, session = ?v.session_id, "lifecycle violation in the journal: {}", v.message);
    })?;
    Ok(Loaded { life, from_checkpoint, checkpoint, replayed_events })
}

/// A store rebuilt from at least this many events is rewritten into a fresh
/// sled tree before use (`store/rewrite.rs`): the rebuild's merges leave
/// sled's file two to four times the size of what it holds.
const REWRITE_AFTER_REBUILD_EVENTS: u64 = 100_000;

/// Saves what the rebuild folded and rewrites the store, to give back the
/// space the rebuild's merges left behind.
fn rewrite_rebuilt_store(life: &mut Lifecycle) -> Result<()> {
    life.save_checkpoint()?;
    if let Some(store) = life.table.take_store() {
        life.table.put_store(store.rewritten()?);
    }
    Ok(())
}

/// The directory's lock: exclusive for a single writer, shared for one of
/// several writers (which keep no store: sled allows one process, so each
/// folds the journal at open; docs/ARCHITECTURE.md).
fn lock_dir(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    mut options: SessionJournalOptions,
) -> Result<(LockedDir, SessionJournalOptions)> {
    if !options.journal.shared_writers {
        return Ok((LockedDir::lock(fs.clone(), dir)?, options));
    }
    options.store = StoreLocation::Disabled;
    Ok((LockedDir::lock_shared(fs.clone(), dir)?, options))
}

/// With a checkpoint loaded (`(sessions, lsn)`), learns which ids the store
/// holds (in the background); a rebuilt store started empty and knows them
/// already.
fn start_background(
    life: &Lifecycle,
    checkpoint: Option<(u64, u64)>,
    journal: &Journal,
) -> Result<Option<BackgroundCheckpoints>> {
    let id_scan = match (life.table.store(), checkpoint) {
        (Some(store), Some((stored, lsn))) => {
            let (fs, dir) = (journal.fs().clone(), journal.dir().to_path_buf());
            let started: StartedIds = Box::new(move |from, to, stop| {
                fold::started_ids(bookend_journal::Reader::open_with_fs(fs, &dir, from), (from, to), stop)
            });
            match store.start_id_scan(stored, lsn, Some(started)) {
                Ok(scan) => Some(scan),
                Err(e) => {
                    // Only an optimisation: starts keep asking the store.
                    tracing::warn!(error = %e, "could not start the id scan; every start will look its id up in the projection store");
                    None
                }
            }
        }
        _ => None,
    };
    let waiter = journal.durable_waiter();
    life.table.store().cloned().map(|store| BackgroundCheckpoints::start(store, id_scan, waiter)).transpose()
}

/// The new epoch: alone (`journal:open`) or beside other writer processes
/// (`journal:join`). Returns the epoch, whether the last writers left
/// without closing, the sessions that open ended, and what joining took.
fn enter_epoch(
    journal: &Journal,
    core: &mut Core,
    options: &SessionJournalOptions,
) -> Result<(u64, bool, Vec<String>, Option<Joined>)> {
    if !options.journal.shared_writers {
        let (epoch, unclean, ended) = begin_epoch(journal, core, options)?;
        return Ok((epoch, unclean, ended, None));
    }
    let keep = options.on_unclean == OnUnclean::Keep;
    let at = options.clock.now_ms();
    let joined = shared_writers::join(journal, core, keep, at, options.journal.record_size_max_bytes)?;
    let unclean = !joined.ended.is_empty();
    Ok((joined.epoch, unclean, joined.ended.clone(), Some(joined)))
}

/// Appends the new epoch's batch: a record of every loss this open
/// accepted, `journal:open`, and the ends of the sessions an unclean
/// shutdown left active (unless they are kept).
fn begin_epoch(
    journal: &Journal,
    core: &mut Core,
    options: &SessionJournalOptions,
) -> Result<(u64, bool, Vec<String>)> {
    let unclean = core.life.meta.epoch_open;
    let end_active = options.on_unclean == OnUnclean::End;
    let report = journal.recovery_report();
    let mut bodies: Vec<EventBody> = report
        .accepted_now
        .iter()
        .map(|loss| EventBody::JournalDataLoss {
            lost_from: loss.lost_from,
            lost_to: loss.lost_to,
            evidence: loss.evidence.clone(),
        })
        .collect();
    let version = env!("CARGO_PKG_VERSION").to_string();
    bodies.extend(core.life.open_batch(std::process::id(), host_name(), version, end_active));
    let ended: Vec<String> = bodies
        .iter()
        .filter(|b| matches!(b, EventBody::SessionEnd { .. }))
        .filter_map(|b| b.session_id().map(str::to_string))
        .collect();
    if unclean {
        let active = core.life.meta.active.len();
        let what = if end_active {
            "ending its active sessions as crash_recovered"
        } else {
            "keeping its active sessions for the gateway to resume"
        };
        tracing::warn!(sessions = active, "the journal was not closed cleanly; {what}");
    }
    let at = options.clock.now_ms();
    let record_max = options.journal.record_size_max_bytes;
    let submitted = submit(journal, &bodies, at, Durability::Durable, record_max, Submit::Now)?;
    apply_appended(&mut core.life, &submitted, bodies, at)?;
    wait_durable(journal, core.life.meta.last_lsn, "the journal:open batch's fsync")?;
    match checkpoint(journal, core) {
        // The store failed: the journal has the batch; the store is rebuilt
        // before open returns.
        Err(Error::Store { reason, .. }) => core.store_failure = Some(reason),
        other => other?,
    }
    Ok((core.life.meta.epoch, unclean, ended))
}
