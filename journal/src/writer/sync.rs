//! The pipeline (the writer's state behind one lock, with the conditions
//! appenders and writer threads wait on) and the writer threads: each
//! waits for appends that want durability, takes them as one group, lets
//! go of the lock, and syncs the group through its own handle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::IoContext;
use crate::fs::FsFile;

use super::shared::{Shared, lock};
use super::{Next, SyncTarget, Writer};

/// The writer's state and what waits on it.
pub(crate) struct Pipeline {
    writer: Mutex<Writer>,
    /// A writer thread has work (a durable append, a sync, buffered data
    /// whose sync interval started, the close).
    work: Condvar,
    /// A writer thread took the pending appends: room for more.
    room: Condvar,
    max_pending: usize,
    /// Appenders waiting for the lock right now.
    contenders: AtomicUsize,
}

impl Pipeline {
    pub fn new(writer: Writer) -> Pipeline {
        let max_pending = writer.options.submission_queue_max_requests;
        Pipeline {
            writer: Mutex::new(writer),
            work: Condvar::new(),
            room: Condvar::new(),
            max_pending,
            contenders: AtomicUsize::new(0),
        }
    }

    /// The writer's state, once fewer than `submission_queue_max_requests`
    /// appends wait for a writer thread (backpressure); and whether other
    /// appenders are waiting for it (each of them will write the buffer,
    /// or wake a writer thread that does).
    pub fn lock_with_room(&self) -> (MutexGuard<'_, Writer>, bool) {
        self.contenders.fetch_add(1, Ordering::AcqRel);
        let mut writer = lock(&self.writer);
        self.contenders.fetch_sub(1, Ordering::AcqRel);
        while writer.pending_len() >= self.max_pending && !writer.closed() {
            writer = self.room.wait(writer).unwrap_or_else(|p| p.into_inner());
        }
        let contended = self.contenders.load(Ordering::Acquire) > 0;
        (writer, contended)
    }

    pub fn lock(&self) -> MutexGuard<'_, Writer> {
        lock(&self.writer)
    }

    pub fn wake_writer(&self) {
        self.work.notify_one();
    }

    /// Marks the pipeline closed and wakes every writer thread to finish.
    pub fn close(&self) {
        lock(&self.writer).close();
        self.work.notify_all();
        self.room.notify_all();
    }

    /// Waits until there is work, then takes it.
    fn next(&self) -> Next {
        let mut writer = lock(&self.writer);
        loop {
            let due = writer.due();
            if due.is_ok() {
                break;
            }
            writer.waiters.idle += 1;
            writer = match due {
                Err(Some(left)) => self.work.wait_timeout(writer, left).unwrap_or_else(|p| p.into_inner()).0,
                _ => self.work.wait(writer).unwrap_or_else(|p| p.into_inner()),
            };
            writer.waiters.idle -= 1;
        }
        let mut writer = self.gather(writer);
        let next = writer.take_group();
        drop(writer);
        self.room.notify_all();
        next
    }
}

impl Pipeline {
    /// Before syncing, waits for the callers the last fsync released to
    /// come back, so they ride this fsync rather than the next.
    ///
    /// Without it a steady crowd of N callers splits in two: the first to
    /// return after an fsync is taken alone while the others are still on
    /// their way, the rest gather during that lone fsync, and every other
    /// fsync carries one append (N/2 appends per fsync instead of N). The
    /// wait ends as soon as as many appends are pending as the last fsync
    /// completed, and never lasts longer than that fsync took (at most
    /// `GATHER_WAIT_MAX`): a lone caller (a cohort of one) never waits, and
    /// a caller that does not come back costs the others at most one fsync's
    /// time once, after which the cohort is counted smaller.
    fn gather<'a>(&'a self, mut writer: MutexGuard<'a, Writer>) -> MutexGuard<'a, Writer> {
        let (cohort, fsync) = writer.shared.last_cohort();
        let window = fsync.min(GATHER_WAIT_MAX);
        if cohort < 2 || window.is_zero() {
            return writer;
        }
        let deadline = Instant::now() + window;
        writer.waiters.gathering += 1;
        writer.waiters.gather_until = cohort;
        while !writer.closed() && (1..cohort).contains(&writer.pending_appends()) {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                break;
            };
            writer = self.work.wait_timeout(writer, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        writer.waiters.gathering -= 1;
        writer
    }
}

/// The longest a writer thread waits for a returning cohort (a bound on
/// the latency `Pipeline::gather` may add, whatever the device's fsync
/// costs).
const GATHER_WAIT_MAX: Duration = Duration::from_millis(2);

/// Starts the writer threads; returns a handle that finishes when all of
/// them have stopped (after [`Pipeline::close`]).
pub(crate) fn spawn(
    pipeline: Arc<Pipeline>,
    shared: Arc<Shared>,
    threads: usize,
) -> std::io::Result<JoinHandle<()>> {
    let mut others = Vec::with_capacity(threads.saturating_sub(1));
    for i in 1..threads {
        let (shared, pipeline) = (shared.clone(), pipeline.clone());
        // On failure the caller closes the pipeline, which stops the
        // threads already started.
        let handle = std::thread::Builder::new()
            .name(format!("bookend-writer-{i}"))
            .spawn(move || run(&shared, &pipeline))?;
        others.push(handle);
    }
    std::thread::Builder::new().name("bookend-writer-0".into()).spawn(move || {
        run(&shared, &pipeline);
        for handle in others {
            if handle.join().is_err() {
                tracing::error!(dir = %shared.dir.display(), "a journal writer thread panicked");
            }
        }
    })
}

/// One writer thread: take a group, let go, sync it through this thread's
/// own handle.
fn run(shared: &Shared, pipeline: &Pipeline) {
    let mut own: Option<(u64, Box<dyn FsFile>)> = None;
    loop {
        let (SyncTarget { lsn, generation, path }, stop) = match pipeline.next() {
            Next::Continue => continue,
            Next::Sync(target) => (target, false),
            Next::Stop(target) => (target, true),
        };
        if shared.poisoned().is_none() && claim(shared, lsn) {
            if own.as_ref().is_some_and(|(g, _)| *g != generation) {
                own = None;
            }
            let result = match &own {
                Some((_, file)) => shared.sync_file(&**file, &path),
                None => shared.fs.open_write(&path).ctx("open for fsync", &path).and_then(|file| {
                    let result = shared.sync_file(&*file, &path);
                    own = Some((generation, file));
                    result
                }),
            };
            match result.and_then(|()| shared.durable_up_to(lsn)) {
                Ok(()) => {}
                Err(e) => {
                    if stop {
                        tracing::error!(error = %e, "final fsync on close failed");
                    }
                    shared.fail(e);
                }
            }
        }
        if stop {
            // The other threads stop too (each sees `closed`).
            pipeline.work.notify_all();
            return;
        }
    }
}

/// Claims the fsync that makes `lsn` durable; false if one that covers it
/// has already started.
pub(super) fn claim(shared: &Shared, lsn: u64) -> bool {
    let mut sync = lock(&shared.sync);
    if lsn <= sync.claimed {
        return false;
    }
    sync.claimed = lsn;
    true
}
