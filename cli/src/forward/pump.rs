//! One connection's worth of forwarding: subscribe after the cursor, skip
//! what the stream already holds, publish, and acknowledge the cursor as
//! JetStream acknowledges the publishes, in LSN order.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture};
use bookend_projector::{Event, Subscription};
use tokio::sync::{mpsc, watch};

use super::{ForwardArgs, Stop, Target, last_lsn_in_stream, subject_for, wait_stopped};

/// How often the cursor is acknowledged while publishes are acked (each
/// acknowledgement is an fsync of the cursor file).
const CURSOR_ACK_INTERVAL: Duration = Duration::from_millis(50);
/// How long a stop waits for the acks in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the journal files are polled for another process's appends.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

pub enum Ended {
    /// SIGTERM or SIGINT: everything acked was acknowledged.
    Stopped,
    /// The connection was lost after some progress (reconnect at once).
    Progress,
}

pub async fn run_once(
    args: &ForwardArgs,
    target: &Target,
    stop: watch::Receiver<Stop>,
) -> anyhow::Result<Ended> {
    let client = target.connect().await?;
    let js = jetstream::new(client);
    let stream = target.stream(&js).await?;
    let in_stream = last_lsn_in_stream(&stream, &target.journal_subjects()).await?;
    let mut sub = Subscription::named_in_dir(&args.dir, &args.consumer)
        .with_context(|| format!("opening the consumer cursor {:?}", args.consumer))?
        .with_poll_interval(POLL_INTERVAL);
    let cursor = sub.acked().unwrap_or(0);
    if in_stream > cursor {
        // A cursor behind the stream (a lost cursor, a crash after the
        // publish acks): the stream has those already.
        sub.ack(in_stream)?;
    }
    tracing::info!(journal = %target.journal_id, cursor, in_stream, "forwarding");
    let (acks_tx, acks_rx) = mpsc::channel(args.max_in_flight as usize);
    let (acked_tx, mut acked) = watch::channel(cursor.max(in_stream));
    let acker = tokio::spawn(await_acks(acks_rx, acked_tx));
    let result = publish_loop(&mut sub, &js, target, in_stream, acks_tx, &mut acked, stop).await;
    // Whatever ended the loop, acknowledge what JetStream acknowledged.
    let drained = tokio::time::timeout(STOP_GRACE, acker).await;
    sub.ack(*acked.borrow())?;
    match (result, drained) {
        (Err(e), _) => Err(e),
        (Ok(ended), Ok(Ok(Ok(())))) => Ok(ended),
        (Ok(_), Ok(Ok(Err(e)))) => Err(e),
        (Ok(_), Ok(Err(e))) => Err(e.into()),
        (Ok(_), Err(_)) => {
            anyhow::bail!("JetStream did not acknowledge the publishes in flight in {STOP_GRACE:?}")
        }
    }
}

async fn publish_loop(
    sub: &mut Subscription,
    js: &jetstream::Context,
    target: &Target,
    skip_through: u64,
    acks: mpsc::Sender<(u64, PublishAckFuture)>,
    acked: &mut watch::Receiver<u64>,
    stop: watch::Receiver<Stop>,
) -> anyhow::Result<Ended> {
    let mut tick = tokio::time::interval(CURSOR_ACK_INTERVAL);
    let mut cursor_at = *acked.borrow();
    loop {
        tokio::select! {
            biased;
            _ = wait_stopped(stop.clone()) => return Ok(Ended::Stopped),
            _ = acks.closed() => anyhow::bail!("a publish was not acknowledged by JetStream"),
            _ = tick.tick() => {
                let now = *acked.borrow_and_update();
                if now > cursor_at {
                    sub.ack(now)?;
                    cursor_at = now;
                }
                if let Stop::OnceAcked(through) = *stop.borrow() && now >= through {
                    return Ok(Ended::Stopped);
                }
            }
            event = sub.next() => {
                let event = event?;
                if event.lsn <= skip_through {
                    continue;
                }
                let ack = publish(js, target, &event).await?;
                if acks.send((event.lsn, ack)).await.is_err() {
                    return Ok(Ended::Progress);
                }
            }
        }
    }
}

async fn publish(
    js: &jetstream::Context,
    target: &Target,
    event: &Event,
) -> anyhow::Result<PublishAckFuture> {
    let type_name = event.body.type_name();
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{}:{}", target.journal_id, event.lsn).as_str());
    headers.insert("Bookend-Journal", target.journal_id.as_str());
    headers.insert("Bookend-Lsn", event.lsn.to_string().as_str());
    headers.insert("Bookend-Type", type_name);
    let subject = subject_for(&target.prefix, &target.journal_id, type_name);
    let payload = event.to_json().to_string().into_bytes();
    js.publish_with_headers(subject, headers, payload.into())
        .await
        .with_context(|| format!("publishing LSN {}", event.lsn))
}

/// Awaits the acks in LSN order; each one moves `acked`. Returns at the
/// first failure (the caller then starts over from the cursor).
async fn await_acks(
    mut acks: mpsc::Receiver<(u64, PublishAckFuture)>,
    acked: watch::Sender<u64>,
) -> anyhow::Result<()> {
    while let Some((lsn, ack)) = acks.recv().await {
        let ack = ack.await.with_context(|| format!("JetStream's ack of LSN {lsn}"))?;
        if ack.duplicate {
            tracing::debug!(lsn, "dropped by the duplicate window (sent before a restart)");
        }
        acked.send_replace(lsn);
    }
    Ok(())
}
