//! `SessionJournal`: the one type a gateway holds.
//!
//! Commands are validated one at a time under a lock (so the rules always
//! see the state every earlier command left), appended as one atomic batch,
//! and folded into the state; the lock is released before waiting for
//! durability, so concurrent callers share fsyncs. A command's answer is a
//! [`Pending`]: `.await` it, or `.wait()` from sync code. Nothing is
//! reported done before the journal has it under the promised durability.

use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bookend_journal::fs::{Fs, StdFs};
use bookend_journal::{AppendTicket, Batch, Durability, Journal, JournalOptions, codec};

use crate::checkpoint::{CACHE_CAPACITY_BYTES_DEFAULT, Checkpoint, StoredMeta};
use crate::command::{Ack, Command, ResetPolicy, Sessions, Start};
use crate::error::{Error, Result};
use crate::event::{CloseReason, EndReason, Event, EventBody, StoredEvent};
use crate::fold;
use crate::lifecycle::{Decision, Lifecycle, Rules};
use crate::state::{Meta, SessionState};

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(ms)))
    }

    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What to do on open with sessions an unclean shutdown left active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnclean {
    /// End them `crash_recovered` in the same batch as the new `journal:open`.
    #[default]
    End,
    /// Leave them for the gateway to resume; the reaper closes strays.
    Keep,
}

/// Where the sled checkpoint store lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CheckpointStore {
    /// `<journal dir>/projection`.
    #[default]
    InJournalDir,
    At(PathBuf),
    /// No store: every open folds the whole journal.
    Disabled,
}

/// Default number of events between checkpoints.
pub const CHECKPOINT_EVERY_EVENTS_DEFAULT: u64 = 5_000;
/// Default longest time between checkpoints while events arrive.
pub const CHECKPOINT_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
/// Commands wait for the checkpoint being written once this many times
/// `checkpoint_every_events` events are waiting for the next one.
const CHECKPOINT_BACKLOG_FACTOR: u64 = 2;
/// Longest a checkpoint waits for the journal to make its state durable.
const CHECKPOINT_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SessionJournalOptions {
    pub journal: JournalOptions,
    pub rules: Rules,
    pub on_unclean: OnUnclean,
    /// Overrides the per-command durability (touch buffered, the rest durable).
    pub durability: Option<Durability>,
    pub checkpoint_store: CheckpointStore,
    pub cache_capacity_bytes: u64,
    pub checkpoint_every_events: u64,
    pub checkpoint_interval: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for SessionJournalOptions {
    fn default() -> Self {
        SessionJournalOptions {
            journal: JournalOptions::default(),
            rules: Rules::default(),
            on_unclean: OnUnclean::End,
            durability: None,
            checkpoint_store: CheckpointStore::InJournalDir,
            cache_capacity_bytes: CACHE_CAPACITY_BYTES_DEFAULT,
            checkpoint_every_events: CHECKPOINT_EVERY_EVENTS_DEFAULT,
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Counts of the folded state (see [`SessionJournal::summary`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    pub epoch: u64,
    pub last_lsn: u64,
    pub sessions_total: u64,
    pub active: u64,
    pub awaiting_finalization: u64,
    pub ends_by_reason: std::collections::BTreeMap<String, u64>,
}

/// What open found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// The new epoch.
    pub epoch: u64,
    /// The previous epoch had no `journal:close`.
    pub unclean: bool,
    /// Sessions ended `crash_recovered` by this open.
    pub crash_recovered: Vec<String>,
    /// Whether state came from a checkpoint (else a fold from LSN 1).
    pub from_checkpoint: bool,
    /// Events folded on open (the tail after the checkpoint).
    pub replayed_events: u64,
    pub open_millis: u64,
}

struct Core {
    life: Lifecycle,
    events_since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Writes checkpoints to sled off the command path.
    background: Option<BackgroundCheckpoints>,
}

/// A checkpoint handed to the background writer: state as of a durable LSN.
struct CheckpointJob {
    meta: StoredMeta,
    /// Shared with the table: a session changed while the job is written is
    /// copied on write, so taking the snapshot copies nothing.
    sessions: Vec<Arc<SessionState>>,
}

/// What the background writer did with one job.
struct CheckpointDone {
    ids: Vec<String>,
    result: std::result::Result<usize, String>,
}

/// One thread that writes checkpoints to sled, so a checkpoint of many
/// changed sessions does not stall commands. At most one job is in flight;
/// sessions leave memory only after the job that wrote them succeeded.
struct BackgroundCheckpoints {
    jobs: Option<std::sync::mpsc::Sender<CheckpointJob>>,
    done: std::sync::mpsc::Receiver<CheckpointDone>,
    in_flight: usize,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The scan that fills the store's known-ids filter after open.
    id_scan: Option<(Checkpoint, std::thread::JoinHandle<()>)>,
}

impl BackgroundCheckpoints {
    fn start(
        store: Checkpoint,
        id_scan: Option<std::thread::JoinHandle<()>>,
    ) -> Result<BackgroundCheckpoints> {
        let (jobs, job_rx) = std::sync::mpsc::channel::<CheckpointJob>();
        let (done_tx, done) = std::sync::mpsc::channel();
        // Built first, so a failure below still stops the scan (on drop).
        let id_scan = id_scan.map(|scan| (store.clone(), scan));
        let mut background = BackgroundCheckpoints { jobs: None, done, in_flight: 0, thread: None, id_scan };
        let thread = std::thread::Builder::new()
            .name("bookend-checkpoint".into())
            .spawn(move || {
                for job in job_rx {
                    let ids = job.sessions.iter().map(|s| s.session_id.clone()).collect();
                    let result =
                        store.save(&job.meta, job.sessions.iter().map(|s| &**s)).map_err(|e| e.to_string());
                    if done_tx.send(CheckpointDone { ids, result }).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Io { op: "spawn checkpoint thread for", path: PathBuf::new(), source: e })?;
        background.jobs = Some(jobs);
        background.thread = Some(thread);
        Ok(background)
    }
}

impl Drop for BackgroundCheckpoints {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some((store, scan)) = self.id_scan.take() {
            store.stop_id_scan();
            let _ = scan.join();
        }
    }
}

/// Applies what the background writer finished; with `wait`, waits for
/// every job in flight first.
fn collect_checkpoints(core: &mut Core, wait: bool) {
    let Some(bg) = core.background.as_mut() else { return };
    while bg.in_flight > 0 {
        let done = if wait { bg.done.recv().ok() } else { bg.done.try_recv().ok() };
        let Some(done) = done else { break };
        bg.in_flight -= 1;
        match done.result {
            Ok(written) => {
                tracing::debug!(sessions = written, "background checkpoint saved");
                core.life.table.evict_written(&done.ids);
            }
            Err(e) => {
                // The cache is only a cache: keep the sessions in memory and
                // write them with the next checkpoint.
                tracing::warn!(error = %e, "background checkpoint failed; the next one retries");
                core.life.table.redirty(done.ids);
            }
        }
    }
}

/// Hands the state to the background writer once the journal has made it
/// durable. Skipped while the previous job is still being written, unless
/// `backlog_max` events have piled up since: then the command waits for it
/// (backpressure). sled applies a large batch far more slowly per session
/// than a small one (42 µs against 14 µs at 138 000 sessions), and the
/// backlog is also memory.
fn checkpoint_in_background(journal: &Journal, core: &mut Core, backlog_max: u64) -> Result<()> {
    collect_checkpoints(core, false);
    let Some(bg) = core.background.as_ref() else { return checkpoint(journal, core) };
    if bg.in_flight > 0 {
        if core.events_since_checkpoint < backlog_max {
            return Ok(());
        }
        collect_checkpoints(core, true);
    }
    let last = core.life.meta.last_lsn;
    if !journal.wait_durable_blocking(last, CHECKPOINT_SYNC_TIMEOUT)? {
        tracing::warn!(lsn = last, "the journal did not sync in time; checkpoint postponed");
        return Ok(());
    }
    let job = CheckpointJob { meta: StoredMeta::of(&core.life.meta), sessions: core.life.table.take_dirty() };
    let sent = core.background.as_mut().and_then(|bg| {
        let ok = bg.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        bg.in_flight += usize::from(ok);
        ok.then_some(())
    });
    if sent.is_none() {
        tracing::warn!("the checkpoint thread is gone; checkpoints continue on the command path");
        core.background = None;
    }
    core.events_since_checkpoint = 0;
    core.last_checkpoint = Instant::now();
    Ok(())
}

struct Inner {
    journal: Journal,
    core: Mutex<Core>,
    options: SessionJournalOptions,
    poison: Mutex<Option<String>>,
    open_report: OpenReport,
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

/// How long open waits for its `journal:open` batch to become durable.
const OPEN_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Events appended for one command, in the order they were submitted.
struct Submitted {
    /// One ticket per batch; tickets complete in LSN order, so the last one
    /// completing means every batch is acknowledged.
    tickets: Vec<AppendTicket>,
    /// The first LSN of each batch and how many events it holds.
    batches: Vec<(u64, usize)>,
}

/// Encodes `bodies` (all at time `at`) and submits them: as one atomic batch
/// when they fit in one frame, else as consecutive batches that each fit.
/// Every event is encoded and checked before anything is submitted, so a
/// command is never half appended because one of its events is too large.
fn submit(
    journal: &Journal,
    bodies: &[EventBody],
    at: u64,
    durability: Durability,
    record_max: usize,
) -> Result<Submitted> {
    let mut encoded = Vec::with_capacity(bodies.len());
    for body in bodies {
        let bytes = codec::encode(&StoredEvent { at, body: body.clone() })?;
        let frame_len = bookend_journal::format::FRAME_HEADER_SIZE
            + bookend_journal::format::EVENT_PREFIX_SIZE
            + bytes.len();
        if frame_len > record_max {
            return Err(bookend_journal::Error::RecordTooLarge { size: frame_len, max: record_max }.into());
        }
        encoded.push(bytes);
    }
    let mut submitted = Submitted { tickets: Vec::new(), batches: Vec::new() };
    let mut batch = Batch::with_capacity(encoded.iter().map(|e| e.len() + 4).sum::<usize>().min(record_max));
    for bytes in &encoded {
        let would_be = batch.frame_len() + bookend_journal::format::EVENT_PREFIX_SIZE + bytes.len();
        if !batch.is_empty()
            && (would_be > record_max || batch.len() >= bookend_journal::format::BATCH_EVENTS_MAX)
        {
            let full = std::mem::replace(&mut batch, Batch::with_capacity(record_max.min(1 << 20)));
            submit_one(journal, full, durability, &mut submitted)?;
        }
        batch.push_encoded(bytes)?;
    }
    submit_one(journal, batch, durability, &mut submitted)?;
    Ok(submitted)
}

fn submit_one(
    journal: &Journal,
    batch: Batch,
    durability: Durability,
    submitted: &mut Submitted,
) -> Result<()> {
    let count = batch.len();
    let ticket = journal.submit(batch, durability)?;
    submitted.batches.push((ticket.lsns().first_lsn, count));
    submitted.tickets.push(ticket);
    Ok(())
}

/// Folds a batch this process just appended. `decide` produced it, so it
/// breaks no rule; a violation here is a bug in the rules.
fn apply_appended(
    life: &mut Lifecycle,
    submitted: &Submitted,
    bodies: Vec<EventBody>,
    at: u64,
) -> Result<Vec<Event>> {
    let lsns = submitted.batches.iter().flat_map(|&(first, count)| first..first + count as u64);
    let mut events = Vec::with_capacity(bodies.len());
    for (lsn, body) in lsns.zip(bodies) {
        let stored = StoredEvent { at, body };
        let violations = life.apply_decided(lsn, &stored)?;
        assert!(violations.is_empty(), "an accepted command broke a lifecycle rule: {violations:?}");
        events.push(Event { lsn, at, body: stored.body });
    }
    Ok(events)
}

/// Saves the state once the journal has made it durable: the checkpoint
/// never runs ahead of the journal.
fn checkpoint(journal: &Journal, core: &mut Core) -> Result<()> {
    collect_checkpoints(core, true);
    if core.life.cold.is_none() {
        // Nothing to save: ended sessions are packed in memory instead.
        core.life.save_checkpoint()?;
        core.events_since_checkpoint = 0;
        core.last_checkpoint = Instant::now();
        return Ok(());
    }
    let last = core.life.meta.last_lsn;
    if !journal.wait_durable_blocking(last, CHECKPOINT_SYNC_TIMEOUT)? {
        tracing::warn!(lsn = last, "the journal did not sync in time; checkpoint postponed");
        return Ok(());
    }
    let written = core.life.save_checkpoint()?;
    core.events_since_checkpoint = 0;
    core.last_checkpoint = Instant::now();
    tracing::debug!(lsn = last, sessions = written, "checkpoint saved");
    Ok(())
}

fn begin_epoch(
    journal: &Journal,
    core: &mut Core,
    options: &SessionJournalOptions,
) -> Result<(u64, bool, Vec<String>)> {
    let unclean = core.life.meta.epoch_open;
    let end_active = options.on_unclean == OnUnclean::End;
    let bodies = core.life.open_batch(
        std::process::id(),
        host_name(),
        env!("CARGO_PKG_VERSION").to_string(),
        end_active,
    );
    let ended: Vec<String> = bodies
        .iter()
        .filter(|b| matches!(b, EventBody::SessionEnd { .. }))
        .filter_map(|b| b.session_id().map(str::to_string))
        .collect();
    if unclean {
        let active = core.life.meta.active.len();
        if end_active {
            tracing::warn!(
                sessions = active,
                "the journal was not closed cleanly; ending its active sessions as crash_recovered"
            );
        } else {
            tracing::warn!(
                sessions = active,
                "the journal was not closed cleanly; keeping its active sessions for the gateway to resume"
            );
        }
    }
    let at = options.clock.now_ms();
    let submitted = submit(journal, &bodies, at, Durability::Durable, options.journal.record_size_max_bytes)?;
    apply_appended(&mut core.life, &submitted, bodies, at)?;
    if !journal.wait_durable_blocking(core.life.meta.last_lsn, OPEN_SYNC_TIMEOUT)? {
        return Err(Error::Journal(bookend_journal::Error::Closed));
    }
    checkpoint(journal, core)?;
    Ok((core.life.meta.epoch, unclean, ended))
}

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
        let started = Instant::now();
        let dir = dir.as_ref();
        let journal = Journal::open_with_fs(fs, dir, options.journal.clone())?;
        let store = match &options.checkpoint_store {
            CheckpointStore::InJournalDir => {
                Some(Checkpoint::open_or_reset(&dir.join("projection"), options.cache_capacity_bytes)?)
            }
            CheckpointStore::At(path) => Some(Checkpoint::open_or_reset(path, options.cache_capacity_bytes)?),
            CheckpointStore::Disabled => None,
        };
        let mut life = Lifecycle { cold: store, ..Lifecycle::default() };
        let from_checkpoint = fold::load_checkpoint(&mut life, journal.next_lsn() - 1)?;
        let tail = journal.reader(life.meta.last_lsn + 1)?;
        let replayed_events = fold::fold_journal(&mut life, tail, |v| {
            tracing::warn!(lsn = v.lsn, session = ?v.session_id, "lifecycle violation in the journal: {}", v.message);
        })?;
        // With a checkpoint loaded, learn which ids the store holds (in the
        // background); a rebuilt store started empty and knows them already.
        let id_scan = match life.cold.as_ref() {
            Some(store) if from_checkpoint => {
                match store.start_id_scan(life.meta.sessions_total, life.meta.last_lsn) {
                    Ok(scan) => scan,
                    Err(e) => {
                        // Only an optimisation: starts keep asking the store.
                        tracing::warn!(error = %e, "could not start the id scan; every start will look its id up in the checkpoint store");
                        None
                    }
                }
            }
            _ => None,
        };
        let background =
            life.cold.clone().map(|store| BackgroundCheckpoints::start(store, id_scan)).transpose()?;
        let mut core = Core {
            life,
            events_since_checkpoint: replayed_events,
            last_checkpoint: Instant::now(),
            background,
        };
        let (epoch, unclean, crash_recovered) = begin_epoch(&journal, &mut core, &options)?;
        let open_report = OpenReport {
            epoch,
            unclean,
            crash_recovered,
            from_checkpoint,
            replayed_events,
            open_millis: started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            dir = %dir.display(),
            epoch,
            from_checkpoint,
            replayed_events,
            open_ms = open_report.open_millis,
            "session journal opened"
        );
        let inner = Inner { journal, core: Mutex::new(core), options, poison: Mutex::new(None), open_report };
        Ok(SessionJournal { inner: Arc::new(inner) })
    }

    /// What open found and did.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.open_report
    }

    /// The checkpoint store, if there is one (for stats and tools).
    pub fn checkpoint_store(&self) -> Option<Checkpoint> {
        lock(&self.inner.core).life.cold.clone()
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
    pub fn execute(&self, mut command: Command, at: Option<u64>) -> Result<Pending<Ack>> {
        self.check_poison()?;
        let at = at.unwrap_or_else(|| self.now_ms());
        if let Command::Start(start) = &mut command
            && start.session_id.is_none()
        {
            start.session_id = Some(uuid::Uuid::now_v7().to_string());
        }
        let durability = self.durability_of(&command);
        let mut core = lock(&self.inner.core);
        let decision = core.life.decide(&command, at, &self.inner.options.rules)?;
        let (events, answer, session_id, reason) = match decision {
            Decision::Done(ack) => {
                let wait = match ack.lsn {
                    Some(lsn) if ack.duplicate => Wait::Durable(lsn),
                    _ => Wait::Ready,
                };
                return Ok(Pending { value: ack, wait, owner: self.clone() });
            }
            Decision::Append { events, answer, session_id, reason } => (events, answer, session_id, reason),
        };
        let record_max = self.inner.options.journal.record_size_max_bytes;
        let mut submitted = submit(&self.inner.journal, &events, at, durability, record_max)
            .map_err(|e| self.poison_on(e))?;
        let appended = apply_appended(&mut core.life, &submitted, events, at)?;
        let lsn = answer.and_then(|i| appended.get(i)).or(appended.last()).map(|e| e.lsn);
        core.events_since_checkpoint += appended.len() as u64;
        self.maybe_checkpoint(&mut core);
        drop(core);
        let ack = Ack { lsn, duplicate: false, session_id, reason, events: appended };
        let last = submitted.tickets.pop().ok_or(Error::Journal(bookend_journal::Error::EmptyBatch))?;
        Ok(Pending { value: ack, wait: Wait::Ticket(last), owner: self.clone() })
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
        let o = &self.inner.options;
        let due = core.events_since_checkpoint >= o.checkpoint_every_events
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
        if !self.inner.journal.wait_durable_blocking(last, OPEN_SYNC_TIMEOUT)? {
            return Err(Error::Journal(bookend_journal::Error::Closed));
        }
        let ack = pending.value;
        {
            let mut core = lock(&self.inner.core);
            checkpoint(&self.inner.journal, &mut core)?;
            if let Some(store) = core.life.cold.as_ref() {
                // The next open loads this instead of scanning the store.
                if let Err(e) = store.save_known_ids(core.life.meta.last_lsn) {
                    tracing::warn!(error = %e, "could not save the known-ids filter; the next open scans the store");
                }
                store.flush()?;
            }
        }
        self.inner.journal.close()?;
        Ok(ack)
    }

    /// Subscribes as the named consumer: events after its cursor, from
    /// disk then live, durable only.
    pub fn subscribe(&self, name: &str) -> Result<crate::consumer::Subscription> {
        crate::consumer::Subscription::named(&self.inner.journal, name)
    }

    /// Subscribes anonymously from `from_lsn` (nothing is remembered).
    pub fn subscribe_from(&self, from_lsn: u64) -> Result<crate::consumer::Subscription> {
        crate::consumer::Subscription::from_lsn(&self.inner.journal, from_lsn)
    }

    // ---- queries (state as accepted; see docs/lifecycle.md) ----

    pub fn get(&self, session_id: &str) -> Result<Option<SessionState>> {
        let core = lock(&self.inner.core);
        Ok(core.life.table.get(session_id, core.life.cold.as_ref())?.map(|c| c.into_owned()))
    }

    pub fn active_by_key(&self, key: &str) -> Result<Option<SessionState>> {
        let core = lock(&self.inner.core);
        let Some(id) = core.life.table.active_on_key(key) else { return Ok(None) };
        Ok(core.life.table.get(id, core.life.cold.as_ref())?.map(|c| c.into_owned()))
    }

    pub fn active(&self) -> Vec<SessionState> {
        lock(&self.inner.core).life.active_sessions().cloned().collect()
    }

    /// Every session, in id order (reads the whole checkpoint store).
    pub fn all_sessions(&self) -> Result<Vec<SessionState>> {
        self.sessions_where(|_| true)
    }

    /// The sessions `keep` accepts, in id order. Reads the whole checkpoint
    /// store, but without holding up commands: the sessions in memory are
    /// copied (shared) under the lock, and the store is read after it is
    /// released. Each session is at least as recent as at the call. Only
    /// the matches are held decoded.
    pub fn sessions_where(&self, keep: impl Fn(&SessionState) -> bool) -> Result<Vec<SessionState>> {
        let core = lock(&self.inner.core);
        let Some(store) = core.life.cold.clone() else { return fold::sessions_where(&core.life, keep) };
        let hot = core.life.table.hot_snapshot();
        drop(core);
        fold::overlay(store.sessions(), hot.values().map(|s| &**s), |id| hot.contains_key(id), keep)
    }

    pub fn ended_by_reason(&self, reason: &EndReason) -> Result<Vec<SessionState>> {
        self.sessions_where(|s| !s.active && s.end_reason.as_ref() == Some(reason))
    }

    /// Sessions ended by expiry (idle or daily) whose finalization has not
    /// succeeded and still has attempts left.
    pub fn pending_finalization(&self) -> Result<Vec<SessionState>> {
        let core = lock(&self.inner.core);
        let max = self.inner.options.rules.finalize_attempts_max;
        let mut out = Vec::new();
        for id in &core.life.meta.awaiting_finalization {
            if let Some(s) = core.life.table.get(id, core.life.cold.as_ref())?
                && s.finalize_attempts < max
                && s.expiry_finalized_lsn.is_none()
            {
                out.push(s.into_owned());
            }
        }
        Ok(out)
    }

    /// Ended sessions that have no flush marker `marker`.
    pub fn pending_flush(&self, marker: &str) -> Result<Vec<SessionState>> {
        self.sessions_where(|s| !s.active && !s.flush_markers.contains_key(marker))
    }

    /// Counts for dashboards and metrics, without copying any set.
    pub fn summary(&self) -> Summary {
        let core = lock(&self.inner.core);
        let meta = &core.life.meta;
        Summary {
            epoch: meta.epoch,
            last_lsn: meta.last_lsn,
            sessions_total: meta.sessions_total,
            active: meta.active.len() as u64,
            awaiting_finalization: meta.awaiting_finalization.len() as u64,
            ends_by_reason: meta.ends_by_reason.clone(),
        }
    }

    /// Why the session journal refuses commands, if it does.
    pub fn poisoned(&self) -> Option<String> {
        lock(&self.inner.poison).clone().or_else(|| self.inner.journal.poisoned())
    }

    /// The folded journal-wide state.
    pub fn meta(&self) -> Meta {
        lock(&self.inner.core).life.meta.clone()
    }
}

enum Wait {
    Ready,
    Ticket(AppendTicket),
    /// A duplicate: wait until the original LSN is durable.
    Durable(u64),
}

/// A command accepted, on its way to disk. `.await` it, or `.wait()` from
/// sync code (not from inside an async task).
pub struct Pending<T> {
    value: T,
    wait: Wait,
    owner: SessionJournal,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("value", &self.value).finish_non_exhaustive()
    }
}

impl<T> Pending<T> {
    /// The answer, before it is durable (for pipelining: do not report it
    /// to anyone until `wait` or `.await` returns).
    pub fn peek(&self) -> &T {
        &self.value
    }

    /// Blocks until the command is durable.
    pub fn wait(self) -> Result<T> {
        match self.wait {
            Wait::Ready => {}
            Wait::Ticket(ticket) => {
                ticket.wait().map_err(|e| self.owner.poison_on(e.into()))?;
            }
            Wait::Durable(lsn) => {
                if !self.owner.inner.journal.wait_durable_blocking(lsn, OPEN_SYNC_TIMEOUT)? {
                    return Err(Error::Journal(bookend_journal::Error::Closed));
                }
            }
        }
        Ok(self.value)
    }
}

impl<T: Send + 'static> IntoFuture for Pending<T> {
    type Output = Result<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.wait {
                Wait::Ready => {}
                Wait::Ticket(ticket) => {
                    ticket.await.map_err(|e| self.owner.poison_on(e.into()))?;
                }
                Wait::Durable(lsn) => {
                    if self.owner.inner.journal.durable_lsn() < lsn {
                        self.owner.inner.journal.sync().await?;
                    }
                }
            }
            Ok(self.value)
        })
    }
}

/// Decodes one stored event.
pub fn decode_event(lsn: u64, bytes: &[u8]) -> Result<Event> {
    let stored: StoredEvent =
        codec::decode(bytes).map_err(|e| Error::Decode { lsn, reason: e.to_string() })?;
    Ok(Event { lsn, at: stored.at, body: stored.body })
}
