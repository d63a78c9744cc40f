//! `serve --forward-nats`: the forwarder as a task of the server's own
//! runtime. It reads the journal from disk through its cursor, exactly as
//! `bookend forward` does, so the server's commands never wait for NATS.
//! At shutdown the server closes its journal first and then lets the
//! forwarder publish through the close (the shutdown ends reach the
//! stream), for at most [`DRAIN_GRACE`].

use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ForwardArgs, Stop, forward_until};

/// How long a stopping server waits for the forwarder to publish through
/// the journal's close, before stopping it where it is.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long a forwarder told to stop now may take (its acks in flight).
const STOP_GRACE: Duration = Duration::from_secs(6);

pub struct InProcess {
    stop: watch::Sender<Stop>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub fn start(runtime: &Runtime, args: ForwardArgs) -> InProcess {
        let (stop, told) = watch::channel(Stop::No);
        tracing::info!(nats = %args.nats, stream = %args.stream, "forwarding the journal to NATS JetStream in this process");
        let task = runtime.spawn(forward_until(args, told));
        InProcess { stop, task }
    }

    /// Publishes through `through` (the journal's last LSN) if it can
    /// within [`DRAIN_GRACE`], then stops. What is not published yet is
    /// published by the next forwarder from the cursor.
    pub fn finish(self, runtime: &Runtime, through: Option<u64>) {
        let InProcess { stop, mut task } = self;
        let _ = stop.send(through.map_or(Stop::Now, Stop::OnceAcked));
        let drained = runtime.block_on(async {
            match tokio::time::timeout(DRAIN_GRACE, &mut task).await {
                Ok(done) => Some(done),
                Err(_) => {
                    tracing::warn!(
                        "the forwarder did not publish through the journal's close in {DRAIN_GRACE:?}; \
                         stopping it (the next forwarder resends from its cursor)"
                    );
                    let _ = stop.send(Stop::Now);
                    tokio::time::timeout(STOP_GRACE, &mut task).await.ok()
                }
            }
        });
        match drained {
            Some(Ok(Ok(()))) => tracing::info!(?through, "forwarder stopped"),
            Some(Ok(Err(e))) => {
                tracing::error!(error = %format!("{e:#}"), "the forwarder stopped on an error")
            }
            Some(Err(e)) => tracing::error!(error = %e, "the forwarder task failed"),
            None => {
                tracing::error!("the forwarder did not stop in time; its cursor holds what was acknowledged")
            }
        }
    }
}
