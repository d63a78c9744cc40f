//! The background policies: the idle/daily reset and the reaper, on a timer,
//! until the server stops.

use bookend_projector::{Ack, Pending, SessionJournal};
use tokio::sync::watch;

use super::args::Settings;

/// Runs the reset policy and the reaper every `policy_interval`.
pub async fn run_policies(journal: SessionJournal, settings: Settings, mut stopping: watch::Receiver<bool>) {
    if settings.reset_policy.is_none() && settings.reap_ttl_ms.is_none() {
        return;
    }
    let mut ticker = tokio::time::interval(settings.policy_interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let now = journal.now_ms();
        if let Some(policy) = settings.reset_policy {
            report("expire", tokio::task::block_in_place(|| journal.expire(now, policy)), now).await;
        }
        if let Some(ttl) = settings.reap_ttl_ms {
            report("reap", tokio::task::block_in_place(|| journal.reap(now, ttl)), now).await;
        }
    }
}

async fn report(name: &str, pending: bookend_projector::Result<Pending<Ack>>, now: u64) {
    let result = match pending {
        Ok(pending) => pending.await,
        Err(e) => Err(e),
    };
    match result {
        Ok(ack) if !ack.events.is_empty() => {
            tracing::info!(policy = name, now, ended = ack.events.len(), "policy ended sessions")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(policy = name, error = %e, "policy failed; it runs again at the next tick"),
    }
}
