//! Several writer processes on one journal (docs/ARCHITECTURE.md, "Several
//! writer processes"): the session layer's part.
//!
//! * Every command, and every query, runs in a turn: under the journal's
//!   append lock this process first folds what the others appended, so its
//!   rules decide against every process's sessions (one active session per
//!   key across all of them).
//! * A process joins with `journal:join` and writes `journal:turn` before
//!   its events whenever another epoch wrote last, so the fold knows which
//!   epoch started (and so owns) each session.
//! * Each process holds an exclusive flock on `writers/<epoch>.owner`. The
//!   kernel releases it when the process dies, however it dies. A watcher
//!   thread in every process tries those locks every
//!   `writer_check_interval`; the survivor that gets one appends, in one
//!   batch, the end of every session the dead process owned and the close
//!   of its epoch (`writer_died`), then removes its owner file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bookend_journal::fs::{Fs, LockGuard, LockMode, create_dir_durably};
use bookend_journal::{Durability, HeldTurn, Journal, Reader};

use super::append::{Submit, apply_appended, submit};
use super::pending::wait_durable;
use super::{Core, Inner, SessionJournal, lock};
use crate::error::{Error, Result};
use crate::event::EventBody;
use crate::rules::Lifecycle;

/// How many times a catch-up reads again where the reader saw the end of
/// the data before the journal's end (stale read-ahead), before it gives up.
const CATCH_UP_RETRIES: u32 = 3;

/// The folder of owner files, inside the journal directory.
pub const WRITERS_DIR_NAME: &str = "writers";

/// This process's part in a journal several processes write.
pub(super) struct SharedWriting {
    pub epoch: u64,
    /// The flock on `writers/<epoch>.owner`: held for as long as this
    /// process writes as `epoch`.
    owner: Mutex<Option<(PathBuf, LockGuard)>>,
    watcher: Mutex<Option<Watcher>>,
}

/// The thread that notices dead writers, and how to stop it.
struct Watcher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

/// This machine's name, as `journal:open` and `journal:join` record it.
pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn owner_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(WRITERS_DIR_NAME).join(format!("{epoch:020}.owner"))
}

fn epoch_of(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_suffix(".owner")?.parse().ok()
}

fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io { op, path: path.to_path_buf(), source }
}

/// Folds what other processes appended after `core`'s last LSN, up to
/// `end` (the journal's end as the turn found it). Returns how many events
/// that was. The reader is kept for the next turn: it passes over this
/// process's own frames (already folded) rather than searching the
/// segment for the first new frame every time.
pub(super) fn catch_up(journal: &Journal, core: &mut Core, end: u64) -> Result<u64> {
    let life = &mut core.life;
    if life.meta.last_lsn >= end {
        return Ok(0);
    }
    let next = life.meta.last_lsn + 1;
    let reader = match core.catch_up.take() {
        Some(reader) if reader.next_lsn() <= next => reader,
        _ => Reader::open_with_fs(journal.fs().clone(), journal.dir(), next),
    };
    let reader = core.catch_up.insert(reader);
    let (mut folded, mut misses) = (0, 0);
    while life.meta.last_lsn < end {
        let Some(frame) = reader.next_frame()? else {
            // The reader may have met bytes it read before they were
            // written (preallocated zeros); it reads them afresh next time.
            misses += 1;
            if misses > CATCH_UP_RETRIES {
                break;
            }
            continue;
        };
        let mut gap = frame.follows_gap;
        for (lsn, bytes) in frame.events() {
            if lsn <= life.meta.last_lsn {
                continue; // this process's own, folded when it appended them
            }
            let event = crate::event_codec::decode_event(lsn, bytes)?;
            crate::fold::fold_one(life, event, gap.take(), |v| {
                tracing::warn!(lsn = v.lsn, session = ?v.session_id, "lifecycle violation in another writer's events: {}", v.message);
            })?;
            folded += 1;
        }
    }
    if life.meta.last_lsn != end {
        core.catch_up = None;
        let reason = format!(
            "the journal ends at LSN {end} under the append lock, but its frames could be read only up to LSN {}",
            life.meta.last_lsn
        );
        return Err(Error::SharedWriters { path: journal.dir().to_path_buf(), reason });
    }
    Ok(folded)
}

/// The open epochs of other processes that are dead: their owner lock can
/// be taken (or their owner file is gone). Each comes with the lock, held
/// until its file is removed. Call it only in a turn: a process joining
/// creates and locks its owner file in its own turn, so no live process is
/// ever between the two here.
fn dead_epochs(fs: &dyn Fs, dir: &Path, life: &Lifecycle) -> Result<Vec<(u64, LockGuard)>> {
    let mut dead = Vec::new();
    let open: Vec<u64> = life.writers.open_epochs().map(|w| w.epoch).collect();
    for epoch in open.into_iter().filter(|e| life.is_other_open_epoch(*e)) {
        let path = owner_path(dir, epoch);
        match fs.try_lock(&path, LockMode::Exclusive) {
            Ok(Some(guard)) => dead.push((epoch, guard)),
            Ok(None) => {}
            Err(e) => return Err(io_error("lock the owner file", &path, e)),
        }
    }
    Ok(dead)
}

/// Removes owner files whose epoch is not open and whose process is gone
/// (one that died before its `journal:join` was written); in a turn.
fn sweep_stale_owner_files(fs: &dyn Fs, dir: &Path, life: &Lifecycle) {
    let Ok(files) = fs.list_files(&dir.join(WRITERS_DIR_NAME)) else { return };
    for path in files {
        let Some(epoch) = epoch_of(&path) else { continue };
        if life.writers.is_open(epoch) || life.writers.own() == Some(epoch) {
            continue;
        }
        if let Ok(Some(_guard)) = fs.try_lock(&path, LockMode::Exclusive) {
            let _ = fs.remove_file(&path);
        }
    }
}

/// Removes the owner files of epochs whose close is durable.
fn remove_owner_files(fs: &dyn Fs, dir: &Path, dead: Vec<(u64, LockGuard)>) {
    for (epoch, guard) in dead {
        let path = owner_path(dir, epoch);
        if let Err(e) = fs.remove_file(&path) {
            tracing::warn!(file = %path.display(), error = %e, "could not remove a dead writer's owner file; the next check removes it");
        }
        drop(guard);
    }
}

/// Takes this process's owner file for `epoch` (in its joining turn).
fn claim_owner_file(fs: &dyn Fs, dir: &Path, epoch: u64) -> Result<(PathBuf, LockGuard)> {
    let writers = dir.join(WRITERS_DIR_NAME);
    create_dir_durably(fs, &writers).map_err(|e| io_error("create", &writers, e))?;
    let path = owner_path(dir, epoch);
    match fs.try_lock(&path, LockMode::Exclusive) {
        Ok(Some(guard)) => Ok((path, guard)),
        Ok(None) => {
            let reason =
                format!("epoch {epoch}'s owner file is locked by a live process, but the epoch is not open");
            Err(Error::SharedWriters { path, reason })
        }
        Err(e) => Err(io_error("lock the owner file", &path, e)),
    }
}

/// What joining appended: the new epoch, its owner file, the sessions it
/// ended for dead writers.
pub(super) struct Joined {
    pub epoch: u64,
    pub owner: (PathBuf, LockGuard),
    pub ended: Vec<String>,
}

/// Joins the writers of `journal` (at open): in one turn, folds what the
/// others appended, takes an owner file, and appends `journal:join`, the
/// ends and close of every writer that died unnoticed, and, if no other
/// writer is alive, the ends of sessions no epoch owns (a single writer's,
/// left by its crash; kept if `keep`). Returns once that batch is durable.
pub(super) fn join(
    journal: &Journal,
    core: &mut Core,
    keep: bool,
    at: u64,
    record_max: usize,
) -> Result<Joined> {
    let (fs, dir) = (journal.fs().clone(), journal.dir().to_path_buf());
    let turn = journal.hold_turn()?.ok_or(Error::Journal(bookend_journal::Error::Closed))?;
    catch_up(journal, core, turn.end_lsn())?;
    let epoch = core.life.meta.epoch + 1;
    let owner = claim_owner_file(&*fs, &dir, epoch)?;
    let dead = dead_epochs(&*fs, &dir, &core.life)?;
    let version = env!("CARGO_PKG_VERSION").to_string();
    let host = host_name();
    let join = EventBody::JournalJoin { epoch, pid: std::process::id(), host, version, keep_on_death: keep };
    let mut bodies = vec![join];
    for (dead_epoch, _) in &dead {
        bodies.extend(core.life.dead_writer_batch(*dead_epoch));
    }
    let alive = core.life.writers.open_epochs().filter(|w| !dead.iter().any(|(e, _)| *e == w.epoch)).count();
    if alive == 0 && !keep {
        bodies.extend(core.life.unowned_ends());
    }
    core.life.writers.set_own(epoch);
    let submitted = submit(journal, &bodies, at, Durability::Durable, record_max, Submit::Now)?;
    let appended = apply_appended(&mut core.life, &submitted, bodies, at)?;
    drop(turn);
    wait_durable(journal, core.life.meta.last_lsn, "the journal:join batch's fsync")?;
    report_dead(&dead, &appended);
    remove_owner_files(&*fs, &dir, dead);
    let ended = appended.iter().filter(|e| matches!(e.body, EventBody::SessionEnd { .. }));
    let ended = ended.filter_map(|e| e.body.session_id().map(str::to_string)).collect();
    Ok(Joined { epoch, owner, ended })
}

fn report_dead(dead: &[(u64, LockGuard)], appended: &[crate::event::Event]) {
    if dead.is_empty() {
        return;
    }
    let ended = appended.iter().filter(|e| matches!(e.body, EventBody::SessionEnd { .. })).count();
    let epochs: Vec<u64> = dead.iter().map(|(e, _)| *e).collect();
    tracing::warn!(
        ?epochs,
        sessions_ended = ended,
        "writer processes on this journal died without closing; their sessions are ended (or kept, as each asked) and their epochs closed"
    );
}

impl SharedWriting {
    pub fn new(joined: Joined) -> SharedWriting {
        SharedWriting {
            epoch: joined.epoch,
            owner: Mutex::new(Some(joined.owner)),
            watcher: Mutex::new(None),
        }
    }

    /// Starts the thread that checks the other writers every `interval`.
    pub fn watch(&self, inner: Weak<Inner>, interval: Duration) -> Result<()> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bookend-writers-watch".into())
            .spawn(move || watch_loop(inner, interval, stopping))
            .map_err(|e| io_error("spawn the writers watcher thread for", Path::new(""), e))?;
        *lock(&self.watcher) = Some(Watcher { stop, thread });
        Ok(())
    }

    /// Stops the watcher and lets go of the owner file (removing it): this
    /// process's epoch is closed, or is about to be.
    pub fn leave(&self, fs: &dyn Fs) {
        if let Some(watcher) = lock(&self.watcher).take() {
            *lock(&watcher.stop.0) = true;
            watcher.stop.1.notify_all();
            if watcher.thread.join().is_err() {
                tracing::error!("the writers watcher thread panicked");
            }
        }
        if let Some((path, guard)) = lock(&self.owner).take() {
            let _ = fs.remove_file(&path);
            drop(guard);
        }
    }
}

fn watch_loop(inner: Weak<Inner>, interval: Duration, stop: Arc<(Mutex<bool>, Condvar)>) {
    let mut failures = 0u32;
    loop {
        {
            let stopped = lock(&stop.0);
            let (stopped, _) =
                stop.1.wait_timeout_while(stopped, interval, |s| !*s).unwrap_or_else(|p| p.into_inner());
            if *stopped {
                return;
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        let journal = SessionJournal { inner };
        match journal.end_dead_writers() {
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                // Once, then every 100th time: a person reads every line.
                if failures == 1 || failures.is_multiple_of(100) {
                    tracing::warn!(error = %e, failures, "could not check the other writer processes; retrying");
                }
            }
        }
    }
}

impl SessionJournal {
    pub(super) fn shared(&self) -> Option<&SharedWriting> {
        self.inner.shared.as_ref()
    }

    /// Several writers: takes the append turn and folds what the other
    /// processes appended; `None` (taking nothing) for a single writer.
    pub(super) fn turn<'a>(&'a self, core: &mut Core) -> Result<Option<HeldTurn<'a>>> {
        let Some(turn) = self.inner.journal.hold_turn()? else { return Ok(None) };
        let folded = catch_up(&self.inner.journal, core, turn.end_lsn())?;
        core.events_since_checkpoint += folded;
        Ok(Some(turn))
    }

    /// The state, with what other processes appended folded in. A failure
    /// to catch up is logged and the state as last known is returned: a
    /// query answers, a command (which catches up in its own turn) fails.
    pub(super) fn read_core(&self) -> MutexGuard<'_, Core> {
        let mut core = lock(&self.inner.core);
        if let Err(e) = self.turn(&mut core) {
            tracing::warn!(error = %e, "could not read what the other writer processes appended; answering from what this process knows");
        }
        core
    }

    /// Prepends `journal:turn` to events this process appends when another
    /// epoch wrote the last ones, so each event's writer is known.
    pub(super) fn mark_turn(
        &self,
        life: &Lifecycle,
        events: &mut Vec<EventBody>,
        answer: &mut Option<usize>,
    ) {
        let Some(shared) = self.shared() else { return };
        if life.writers.current() != shared.epoch {
            events.insert(0, EventBody::JournalTurn { epoch: shared.epoch });
            *answer = answer.map(|i| i + 1);
        }
    }

    /// Ends the sessions of every other writer process that died and
    /// closes its epoch, in one durable batch; returns how many died (0
    /// for a single writer). The watcher thread calls it every
    /// `writer_check_interval`; call it to check now.
    pub fn end_dead_writers(&self) -> Result<usize> {
        if self.shared().is_none() {
            return Ok(0);
        }
        let journal = &self.inner.journal;
        let (fs, dir) = (journal.fs().clone(), journal.dir().to_path_buf());
        let mut core = lock(&self.inner.core);
        let Some(turn) = self.turn(&mut core)? else { return Ok(0) };
        sweep_stale_owner_files(&*fs, &dir, &core.life);
        let dead = dead_epochs(&*fs, &dir, &core.life)?;
        if dead.is_empty() {
            return Ok(0);
        }
        let mut bodies: Vec<EventBody> =
            dead.iter().flat_map(|(e, _)| core.life.dead_writer_batch(*e)).collect();
        let mut answer = None;
        self.mark_turn(&core.life, &mut bodies, &mut answer);
        let at = self.now_ms();
        let record_max = self.inner.options.journal.record_size_max_bytes;
        let submitted = submit(journal, &bodies, at, Durability::Durable, record_max, Submit::Now)
            .map_err(|e| self.poison_on(e))?;
        let appended = apply_appended(&mut core.life, &submitted, bodies, at)?;
        core.events_since_checkpoint += appended.len() as u64;
        let last = core.life.meta.last_lsn;
        drop(turn);
        drop(core);
        wait_durable(journal, last, "the fsync of a dead writer's ends")?;
        report_dead(&dead, &appended);
        let count = dead.len();
        remove_owner_files(&*fs, &dir, dead);
        Ok(count)
    }
}
