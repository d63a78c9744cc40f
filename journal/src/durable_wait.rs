//! Asking the writer for an fsync and waiting for the durable LSN. The
//! journal handle does it through these functions; a [`DurableWaiter`]
//! does it without the handle, from another thread (the session journal's
//! checkpoint thread waits there, off the command path, until the state it
//! saves is durable).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::writer::{Pipeline, Shared};

/// Waits until an LSN of one journal is durable, asking its writer to sync
/// now rather than at its next timer. Cheap to clone.
#[derive(Clone)]
pub struct DurableWaiter {
    shared: Arc<Shared>,
    pipeline: Arc<Pipeline>,
}

impl std::fmt::Debug for DurableWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableWaiter").field("durable_lsn", &self.shared.durable_lsn()).finish()
    }
}

impl DurableWaiter {
    pub(crate) fn new(shared: Arc<Shared>, pipeline: Arc<Pipeline>) -> DurableWaiter {
        DurableWaiter { shared, pipeline }
    }

    /// [`crate::Journal::wait_durable_blocking`]: `Ok(false)` after
    /// `timeout`; an error if the journal is poisoned or closed first.
    pub fn wait_durable_blocking(&self, lsn: u64, timeout: Duration) -> Result<bool> {
        wait_durable(&self.shared, &self.pipeline, lsn, timeout)
    }
}

/// Wakes a writer thread, counting it.
pub(crate) fn wake_writer(shared: &Shared, pipeline: &Pipeline) {
    shared.counters.writer_wakes.fetch_add(1, Ordering::Relaxed);
    pipeline.wake_writer();
}

/// Asks the writer to sync what is written; the receiver gets the outcome.
pub(crate) fn request_sync(shared: &Shared, pipeline: &Pipeline) -> Result<oneshot::Receiver<Result<()>>> {
    let mut writer = pipeline.lock();
    if let Some(cause) = shared.poisoned() {
        return Err(Error::Poisoned { cause });
    }
    if writer.closed() {
        return Err(Error::Closed);
    }
    let (done, rx) = oneshot::channel();
    writer.request_sync(done);
    drop(writer);
    wake_writer(shared, pipeline);
    Ok(rx)
}

/// Blocks until every LSN up to `lsn` is durable, or until `timeout`
/// (`Ok(false)`). Uses no async machinery, so it is safe (if blocking)
/// inside a runtime.
pub(crate) fn wait_durable(
    shared: &Shared,
    pipeline: &Pipeline,
    lsn: u64,
    timeout: Duration,
) -> Result<bool> {
    if shared.durable_lsn() >= lsn {
        return Ok(true);
    }
    // The reply is not awaited: the durable LSN is what we wait on. No
    // request when an fsync covering `lsn` is already on its way (a durable
    // append just submitted): it would cost a second fsync.
    if !pipeline.lock().sync_coming(lsn) {
        drop(request_sync(shared, pipeline)?);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let durable = shared.wait_durable_past(lsn.saturating_sub(1), left);
        if durable >= lsn {
            return Ok(true);
        }
        if let Some(cause) = shared.poisoned() {
            return Err(Error::Poisoned { cause });
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}
