//! Checkpoints: the folded state saved to the projection store once the
//! journal has made it durable, on a background thread so that a
//! checkpoint of many changed sessions does not stall commands. That
//! thread also waits for the journal's fsync: with buffered appends the
//! state taken is usually not durable yet, and a command that waited for
//! it under the core lock held every other command up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bookend_journal::{DurableWaiter, Journal};

use super::Core;
use super::options::CHECKPOINT_SYNC_TIMEOUT;
use crate::error::{Error, Result};
use crate::session::SessionState;
use crate::store::{IdScan, ProjectionStore, StoredMeta};

/// A checkpoint handed to the background writer: state as of
/// `meta.last_lsn()`, saved once the journal has made that LSN durable.
struct CheckpointJob {
    meta: StoredMeta,
    /// Shared with the table: a session changed while the job is written is
    /// copied on write, so taking the snapshot copies nothing.
    sessions: Vec<Arc<SessionState>>,
}

/// What the background writer did with one job. The sessions come back
/// to be let go of on the command path, where they were allocated: freed
/// on the checkpoint thread, each took the allocator's lock of the command
/// thread's arena (glibc), and that thread waited on it (futex calls were
/// 14% of a batched run's command thread).
struct CheckpointDone {
    sessions: Vec<Arc<SessionState>>,
    outcome: Outcome,
}

/// What became of one checkpoint job.
enum Outcome {
    /// Saved, with this many sessions.
    Saved(usize),
    /// Not saved: the journal did not make its LSN durable (in time, or at
    /// all); the store is as it was, and the sessions are saved next time.
    Postponed(String),
    /// The store failed while saving: it is rebuilt.
    Failed(String),
}

/// One thread that writes checkpoints to sled, so a checkpoint of many
/// changed sessions does not stall commands. At most one job is in flight;
/// sessions leave memory only after the job that wrote them succeeded.
pub(super) struct BackgroundCheckpoints {
    jobs: Option<std::sync::mpsc::Sender<CheckpointJob>>,
    done: std::sync::mpsc::Receiver<CheckpointDone>,
    in_flight: usize,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The scan that fills the store's known-ids filter after open.
    id_scan: Option<IdScan>,
}

impl BackgroundCheckpoints {
    pub(super) fn start(
        store: ProjectionStore,
        id_scan: Option<IdScan>,
        waiter: DurableWaiter,
    ) -> Result<BackgroundCheckpoints> {
        let (jobs, job_rx) = std::sync::mpsc::channel::<CheckpointJob>();
        let (done_tx, done) = std::sync::mpsc::channel();
        // Built first, so a failure below still stops the scan (on drop).
        let mut background = BackgroundCheckpoints { jobs: None, done, in_flight: 0, thread: None, id_scan };
        let thread = std::thread::Builder::new()
            .name("bookend-checkpoint".into())
            .spawn(move || {
                if let Err(e) = store.sync_opened() {
                    // The next save tries again, and fails as a checkpoint.
                    tracing::warn!(error = %e, "could not fsync the projection store's files after open");
                }
                let mut next = job_rx.recv().ok();
                while let Some(job) = next {
                    let outcome = save_when_durable(&store, &waiter, &job);
                    if done_tx.send(CheckpointDone { sessions: job.sessions, outcome }).is_err() {
                        break;
                    }
                    next = merge_while_idle(&store, &job_rx);
                }
            })
            .map_err(|e| Error::Io { op: "spawn checkpoint thread for", path: PathBuf::new(), source: e })?;
        background.jobs = Some(jobs);
        background.thread = Some(thread);
        Ok(background)
    }
}

/// Saves `job` once the journal has made its LSN durable: the checkpoint
/// never runs ahead of the journal.
fn save_when_durable(store: &ProjectionStore, waiter: &DurableWaiter, job: &CheckpointJob) -> Outcome {
    let lsn = job.meta.last_lsn();
    match waiter.wait_durable_blocking(lsn, CHECKPOINT_SYNC_TIMEOUT) {
        Ok(true) => match store.save(&job.meta, job.sessions.iter().map(|s| &**s)) {
            Ok(saved) => Outcome::Saved(saved),
            Err(e) => Outcome::Failed(e.to_string()),
        },
        Ok(false) => Outcome::Postponed(format!(
            "the journal did not make LSN {lsn} durable within {} s",
            CHECKPOINT_SYNC_TIMEOUT.as_secs()
        )),
        Err(e) => Outcome::Postponed(format!("the journal could not make LSN {lsn} durable: {e}")),
    }
}

/// Merges runs of ended sessions, one merge at a time, while no checkpoint
/// waits; returns the next checkpoint (`None` once the journal closes).
/// A checkpoint arriving during a merge waits for that one merge only.
fn merge_while_idle(
    store: &ProjectionStore,
    jobs: &std::sync::mpsc::Receiver<CheckpointJob>,
) -> Option<CheckpointJob> {
    loop {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        match store.merge_step() {
            Ok(true) => {}
            Ok(false) => return jobs.recv().ok(),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "could not merge runs of ended sessions; they stay as they are, and lookups of old sessions read more of them"
                );
                return jobs.recv().ok();
            }
        }
    }
}

impl Drop for BackgroundCheckpoints {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Stops the scan (and waits for it) on drop.
        self.id_scan = None;
    }
}

/// Applies what the background writer finished; with `wait`, waits for
/// every job in flight first.
pub(super) fn collect_checkpoints(core: &mut Core, wait: bool) {
    let Some(bg) = core.background.as_mut() else { return };
    while bg.in_flight > 0 {
        let done = if wait { bg.done.recv().ok() } else { bg.done.try_recv().ok() };
        let Some(done) = done else { break };
        bg.in_flight -= 1;
        match done.outcome {
            Outcome::Saved(written) => {
                tracing::debug!(sessions = written, "background checkpoint saved");
                core.life.table.evict_written(&done.sessions);
            }
            Outcome::Postponed(why) => {
                tracing::warn!(reason = %why, "checkpoint postponed; its sessions are saved with the next one");
                core.life.table.redirty(&done.sessions);
            }
            Outcome::Failed(e) => {
                // The store is only a cache: keep the sessions in memory,
                // and let the next command rebuild the store.
                tracing::warn!(error = %e, "background checkpoint failed; the projection store will be rebuilt");
                core.life.table.redirty(&done.sessions);
                core.store_failure = Some(e);
            }
        }
    }
}

/// Hands the state to the background writer, which saves it once the
/// journal has made it durable. Skipped while the previous job is still
/// being written, unless `backlog_max` events have piled up since: then the
/// command waits for it (backpressure). sled applies a large batch far more
/// slowly per session than a small one (42 µs against 14 µs at 138 000
/// sessions), and the backlog is also memory.
pub(super) fn checkpoint_in_background(journal: &Journal, core: &mut Core, backlog_max: u64) -> Result<()> {
    collect_checkpoints(core, false);
    let Some(bg) = core.background.as_ref() else { return checkpoint(journal, core) };
    if bg.in_flight > 0 {
        if core.events_since_checkpoint < backlog_max {
            return Ok(());
        }
        collect_checkpoints(core, true);
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

/// Saves the state once the journal has made it durable: the checkpoint
/// never runs ahead of the journal.
pub(super) fn checkpoint(journal: &Journal, core: &mut Core) -> Result<()> {
    collect_checkpoints(core, true);
    if core.life.table.store().is_none() {
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
