//! `SessionJournal`: the one type a gateway holds.
//!
//! Commands are validated one at a time under a lock (so the rules always
//! see the state every earlier command left), appended as one atomic batch,
//! and folded into the state; the lock is released before waiting for
//! durability, so concurrent callers share fsyncs. A command's answer is a
//! [`Pending`]: `.await` it, or `.wait()` from sync code. Nothing is
//! reported done before the journal has it under the promised durability.
//!
//! * `options`: what a gateway chooses, and the open report.
//! * `open`: evidence, recovery, checkpoint load, the new epoch.
//! * `append`: decided events encoded, submitted and folded.
//! * `batch`: many commands under one hold of the lock, one fsync.
//! * `checkpointer`: checkpoints, on a background thread.
//! * `pending`: the answer on its way to disk.

mod append;
mod batch;
mod checkpointer;
mod consumers;
mod open;
mod open_store;
mod options;
mod pending;
mod queries;
mod rebuild;
mod shared_writers;
mod stats;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bookend_journal::{Durability, Journal};

use crate::command::{Ack, Command, ResetPolicy, Sessions, Start};
use crate::error::{Error, Result};
use crate::event::{CloseReason, EndReason};
use crate::rules::{Decision, Lifecycle};
use crate::store::{ProjectionStore, SAVE_CHUNK_SESSIONS};
use append::{Submit, apply_appended, submit};
pub use batch::BATCH_COMMANDS_MAX;
use checkpointer::{BackgroundCheckpoints, checkpoint, checkpoint_in_background, collect_checkpoints};
pub(crate) use open::OPEN_SYNC_TIMEOUT;
use options::CHECKPOINT_BACKLOG_FACTOR;
pub use options::{
    CHECKPOINT_EVERY_EVENTS_DEFAULT, CHECKPOINT_INTERVAL_DEFAULT, Clock, ManualClock, OnUnclean, OpenReport,
    SessionJournalOptions, StoreLocation, Summary, SystemClock, WRITER_CHECK_INTERVAL_DEFAULT,
};
pub use pending::Pending;
use pending::{Wait, wait_durable};
pub use shared_writers::WRITERS_DIR_NAME;

/// The most changed sessions `close` writes to the store; a larger drain
/// leaves them to the next open (see `save_for_next_open`).
pub const CLOSE_CHECKPOINT_SESSIONS_MAX: usize = 20_000;

/// The state commands change, under one lock.
struct Core {
    life: Lifecycle,
    events_since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Writes checkpoints to sled off the command path.
    background: Option<BackgroundCheckpoints>,
    /// Why the background writer could not save the last checkpoint: the
    /// next command rebuilds the store.
    store_failure: Option<String>,
    /// Several writers: where this process's reading of the journal has
    /// got to, kept across turns so each turn reads only what is new.
    catch_up: Option<bookend_journal::Reader>,
}

struct Inner {
    journal: Journal,
    core: Mutex<Core>,
    options: SessionJournalOptions,
    poison: Mutex<Option<String>>,
    open_report: OpenReport,
    /// Cursors held by live subscriptions, for acknowledgements by name.
    consumers: consumers::LiveConsumers,
    /// This process's epoch, owner file and watcher when several processes
    /// write the journal (`JournalOptions::shared_writers`).
    shared: Option<shared_writers::SharedWriting>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The session journal a gateway holds. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct SessionJournal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionJournal").field("dir", &self.inner.journal.dir()).finish_non_exhaustive()
    }
}

impl SessionJournal {
    /// What open found and did.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.open_report
    }

    /// The checkpoint store, if there is one (for stats and tools).
    pub fn projection_store(&self) -> Option<ProjectionStore> {
        lock(&self.inner.core).life.table.store().cloned()
    }

    /// The underlying journal (for readers, followers and stats).
    pub fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.options.clock.now_ms()
    }

    fn check_poison(&self) -> Result<()> {
        match lock(&self.inner.poison).clone() {
            Some(cause) => Err(Error::Poisoned { cause }),
            None => Ok(()),
        }
    }

    fn durability_of(&self, command: &Command) -> Durability {
        self.inner.options.durability.unwrap_or(match command {
            Command::Touch { .. } => Durability::Buffered,
            _ => Durability::Durable,
        })
    }

    /// Validates and appends one command at time `at` (now when `None`).
    /// The returned [`Pending`] completes once the command is durable.
    pub fn execute(&self, command: Command, at: Option<u64>) -> Result<Pending<Ack>> {
        let (command, at) = self.prepare(command, at)?;
        let mut core = lock(&self.inner.core);
        let _turn = self.turn(&mut core)?;
        self.execute_in(&mut core, command, at, Submit::Now)
    }

    /// The checks a command passes before it takes the core lock; a start
    /// without an id gets one.
    fn prepare(&self, mut command: Command, at: Option<u64>) -> Result<(Command, u64)> {
        self.check_poison()?;
        let at = self.check_at(at)?;
        if let Command::Start(start) = &mut command
            && start.fields.session_id.is_empty()
        {
            std::sync::Arc::make_mut(&mut start.fields).session_id = uuid::Uuid::now_v7().to_string();
        }
        Ok((command, at))
    }

    /// Decides, submits and folds one command under the core lock.
    fn execute_in(&self, core: &mut Core, command: Command, at: u64, how: Submit) -> Result<Pending<Ack>> {
        let durability = self.durability_of(&command);
        let is_close = matches!(command, Command::Close { .. });
        let rules = self.inner.options.rules;
        let decision = self.with_store_retry(core, |core| {
            let decision = core.life.decide(&command, at, &rules)?;
            if let Decision::Append { events, .. } = &decision {
                // Folding them must not need the store after they are submitted.
                core.life.bring_into_memory(events)?;
            }
            Ok(decision)
        })?;
        let (events, answer, session_id, reason) = match decision {
            Decision::Done(ack) => {
                let wait = match ack.lsn {
                    Some(lsn) if ack.duplicate => Wait::Durable(lsn),
                    _ => Wait::Ready,
                };
                return Ok(Pending { value: ack, wait, owner: self.clone() });
            }
            Decision::Append { mut events, mut answer, session_id, reason } => {
                self.mark_turn(&core.life, &mut events, &mut answer);
                (events, answer, session_id, reason)
            }
        };
        let record_max = self.inner.options.journal.record_size_max_bytes;
        let submitted = submit(&self.inner.journal, &events, at, durability, record_max, how)
            .map_err(|e| self.poison_on(e))?;
        let appended = apply_appended(&mut core.life, &submitted, events, at)?;
        let lsn = answer.and_then(|i| appended.get(i)).or(appended.last()).map(|e| e.lsn);
        core.events_since_checkpoint += appended.len() as u64;
        if !is_close && how == Submit::Now {
            // A close checkpoints (or not) on its own terms
            // (save_for_next_open); a batch once it is all staged.
            self.maybe_checkpoint(core);
        }
        let ack = Ack { lsn, duplicate: false, session_id, reason, events: appended };
        Ok(Pending { value: ack, wait: Wait::Ticket(submitted.last), owner: self.clone() })
    }

    /// The time a command happens: `at` if given (and not further ahead of
    /// the clock than the skew allows), else now.
    fn check_at(&self, at: Option<u64>) -> Result<u64> {
        let now = self.now_ms();
        let Some(at) = at else { return Ok(now) };
        let skew = self.inner.options.clock_skew_max_ms;
        if at > now.saturating_add(skew) {
            let reason = format!("at {at} is more than {skew} ms ahead of the clock ({now})");
            return Err(crate::error::LifecycleError::InvalidTime { reason }.into());
        }
        Ok(at)
    }

    /// Journal failures leave accepted state that may not be on disk:
    /// refuse everything until reopened (which folds what is really there).
    fn poison_on(&self, e: Error) -> Error {
        if matches!(
            e,
            Error::Journal(bookend_journal::Error::Io { .. } | bookend_journal::Error::Poisoned { .. })
        ) {
            let mut poison = lock(&self.inner.poison);
            if poison.is_none() {
                *poison = Some(e.to_string());
            }
        }
        e
    }

    fn maybe_checkpoint(&self, core: &mut Core) {
        collect_checkpoints(core, false);
        if let Some(problem) = core.life.table.store().and_then(|s| s.take_problem()) {
            core.store_failure = Some(problem);
        }
        if let Some(cause) = core.store_failure.take() {
            let cause = Error::Store { path: Default::default(), reason: cause };
            if let Err(e) = self.rebuild_store(core, &cause) {
                tracing::error!(error = %e, "the projection store could not be rebuilt; the next open rebuilds it");
            }
        }
        let o = &self.inner.options;
        // A checkpoint is due after `checkpoint_every_events`, or once it
        // would need more than one sled batch: a larger one is written in
        // chunks with undo records, and sled holds every page a batch
        // replaces until it ends.
        let due = core.events_since_checkpoint >= o.checkpoint_every_events
            || core.life.table.dirty_count() >= SAVE_CHUNK_SESSIONS
            || (core.events_since_checkpoint > 0 && core.last_checkpoint.elapsed() >= o.checkpoint_interval);
        let backlog_max = o.checkpoint_every_events.saturating_mul(CHECKPOINT_BACKLOG_FACTOR);
        if due && let Err(e) = checkpoint_in_background(&self.inner.journal, core, backlog_max) {
            // The cache is only a cache: the journal has everything.
            tracing::warn!(error = %e, "checkpoint failed; the next open replays more of the journal");
        }
    }

    /// Saves a checkpoint now (for example before a planned restart).
    pub fn checkpoint(&self) -> Result<()> {
        let mut core = lock(&self.inner.core);
        checkpoint(&self.inner.journal, &mut core)
    }

    pub fn start(&self, start: Start) -> Result<Pending<Ack>> {
        self.execute(Command::Start(start), None)
    }

    /// Records activity (coalesced per session, buffered durability).
    pub fn touch(&self, session_id: &str) -> Result<Pending<Ack>> {
        self.execute(Command::Touch { session_id: session_id.to_string() }, None)
    }

    pub fn mark_flushed(&self, session_id: &str, marker: &str) -> Result<Pending<Ack>> {
        self.execute(Command::Flush { session_id: session_id.to_string(), marker: marker.to_string() }, None)
    }

    pub fn end(&self, session_id: &str, reason: EndReason) -> Result<Pending<Ack>> {
        self.execute(Command::End { session_id: session_id.to_string(), reason }, None)
    }

    /// Ends whatever session is active on `key` (an ack naming no session
    /// if none is): for gateways whose end events carry only the key.
    pub fn end_key(&self, key: &str, reason: EndReason) -> Result<Pending<Ack>> {
        self.execute(Command::EndKey { key: key.to_string(), reason }, None)
    }

    pub fn reopen(&self, session_id: &str, reason: &str) -> Result<Pending<Ack>> {
        self.execute(Command::Reopen { session_id: session_id.to_string(), reason: reason.to_string() }, None)
    }

    /// Ends every session due under `policy` at time `now`, in one batch.
    pub fn expire(&self, now: u64, policy: ResetPolicy) -> Result<Pending<Ack>> {
        use crate::command::ResetMode;
        let idle = matches!(policy.mode, ResetMode::Idle | ResetMode::Both).then_some(policy.idle_minutes);
        let daily = matches!(policy.mode, ResetMode::Daily | ResetMode::Both).then_some(policy.daily_at_hour);
        let command = Command::Expire {
            idle_minutes: idle,
            daily_at_hour: daily,
            utc_offset_minutes: Some(policy.utc_offset_minutes),
        };
        self.execute(command, Some(now))
    }

    pub fn finalized(&self, session_id: &str) -> Result<Pending<Ack>> {
        self.execute(Command::Finalized { session_id: session_id.to_string() }, None)
    }

    pub fn finalize_failed(&self, session_id: &str, error: &str) -> Result<Pending<Ack>> {
        self.execute(
            Command::FinalizeFailed { session_id: session_id.to_string(), error: error.to_string() },
            None,
        )
    }

    /// Ends every active session with no activity for `ttl_ms` before `now`.
    pub fn reap(&self, now: u64, ttl_ms: u64) -> Result<Pending<Ack>> {
        self.execute(Command::Reap { ttl_ms }, Some(now))
    }

    /// The shutdown drain: one batch that ends (or keeps) every active
    /// session and closes the epoch, then a checkpoint, then the journal
    /// stops. Bounded: one append, one fsync, one checkpoint.
    pub fn close(&self, reason: CloseReason, sessions: Sessions) -> Result<Ack> {
        let pending = self.execute(Command::Close { reason, sessions }, None)?;
        let last = pending.value.lsn.unwrap_or(0);
        wait_durable(&self.inner.journal, last, "the close batch's fsync")?;
        let ack = pending.value;
        {
            let mut core = lock(&self.inner.core);
            // The journal has the close; the store is only a cache, so its
            // failure costs the next open a rebuild, not this close.
            if let Err(e) = self.save_for_next_open(&mut core) {
                tracing::warn!(error = %e, "could not save the final checkpoint; the next open replays more of the journal");
            }
        }
        if let Some(shared) = self.shared() {
            // The epoch is closed: nobody may take this process for dead.
            shared.leave(&**self.inner.journal.fs());
        }
        self.inner.journal.close()?;
        Ok(ack)
    }

    /// The final checkpoint, so the next open replays little. Skipped with
    /// no store (nothing would read it) and when a drain changed more than
    /// [`CLOSE_CHECKPOINT_SESSIONS_MAX`] sessions: sled needs seconds and
    /// gigabytes for that many, and a shutdown must be quick and small. The
    /// journal has every event, so the next open folds them instead (saving
    /// as it goes, every `FOLD_CHECKPOINT_EVERY_EVENTS`).
    fn save_for_next_open(&self, core: &mut Core) -> Result<()> {
        checkpointer::collect_checkpoints(core, true);
        if core.life.table.store().is_none() {
            return Ok(());
        }
        let changed = core.life.table.dirty_count();
        if changed > CLOSE_CHECKPOINT_SESSIONS_MAX {
            tracing::info!(
                changed,
                from_lsn = core.life.meta.last_lsn,
                "not checkpointing this many changed sessions on close; the next open folds them from the journal"
            );
            return Ok(());
        }
        checkpoint(&self.inner.journal, core)?;
        if let Some(store) = core.life.table.store() {
            // The next open loads this instead of scanning the store.
            if let Err(e) = store.save_known_ids(core.life.meta.last_lsn) {
                tracing::warn!(error = %e, "could not save the known-ids filter; the next open scans the store");
            }
            store.flush()?;
        }
        Ok(())
    }

    /// Subscribes anonymously from `from_lsn` (nothing is remembered).
    pub fn subscribe_from(&self, from_lsn: u64) -> Result<crate::consumer::Subscription> {
        crate::consumer::Subscription::from_lsn(&self.inner.journal, from_lsn)
    }

    /// Why the session journal refuses commands, if it does.
    pub fn poisoned(&self) -> Option<String> {
        lock(&self.inner.poison).clone().or_else(|| self.inner.journal.poisoned())
    }
}
