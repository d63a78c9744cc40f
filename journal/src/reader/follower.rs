//! Followers: readers that wait for more.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{FOLLOW_POLL_INTERVAL_DEFAULT, OwnedFrame, Reader};
use crate::error::Result;
use crate::fs::Fs;
use crate::writer::Shared;

/// Waits for and hands out new frames, in order, without gaps.
pub struct Follower {
    reader: Reader,
    /// In-process: the writer's durable LSN, watched.
    durable: Option<(Arc<Shared>, watch::Receiver<u64>)>,
    poll_interval: Duration,
}

impl Follower {
    pub(crate) fn new(reader: Reader, shared: Option<Arc<Shared>>) -> Follower {
        let durable = shared.map(|s| {
            let rx = s.durable_watch.subscribe();
            (s, rx)
        });
        Follower { reader, durable, poll_interval: FOLLOW_POLL_INTERVAL_DEFAULT }
    }

    /// Follows the journal in `dir` (possibly written by another process),
    /// polling its files for growth.
    /// Like [`Reader::durable_only`], it hands out only what the journal's
    /// durable hint says was fsynced.
    pub fn open(dir: impl AsRef<Path>, from_lsn: u64) -> Result<Follower> {
        Ok(Self::new(Reader::open(dir, from_lsn)?.durable_only(), None))
    }

    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, from_lsn: u64) -> Follower {
        Self::new(Reader::open_with_fs(fs, dir, from_lsn).durable_only(), None)
    }

    /// Sets how often another process's files are polled.
    pub fn with_poll_interval(mut self, interval: Duration) -> Follower {
        self.poll_interval = interval;
        self
    }

    /// The LSN of the next event this follower will return.
    pub fn next_lsn(&self) -> u64 {
        self.reader.next_lsn()
    }

    /// The next frame that is already available, without waiting.
    pub fn try_next(&mut self) -> Result<Option<OwnedFrame>> {
        if let Some((_, rx)) = &mut self.durable {
            // Mark the current value seen before reading, so a change after
            // the read wakes the next wait.
            rx.borrow_and_update();
        }
        Ok(self.reader.next_frame()?.map(|f| f.to_owned_frame()))
    }

    /// Waits (async) for the next frame.
    pub async fn next(&mut self) -> Result<OwnedFrame> {
        loop {
            if let Some(frame) = self.try_next()? {
                return Ok(frame);
            }
            let poll = self.poll_interval;
            match &mut self.durable {
                Some((_, rx)) => {
                    // A closed journal stops notifying; fall back to polling.
                    if tokio::time::timeout(poll * 10, rx.changed()).await.is_ok_and(|r| r.is_err()) {
                        tokio::time::sleep(poll).await;
                    }
                }
                None => tokio::time::sleep(poll).await,
            }
        }
    }

    /// Waits (blocking) up to `timeout` for the next frame.
    pub fn next_blocking(&mut self, timeout: Duration) -> Result<Option<OwnedFrame>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.try_next()? {
                return Ok(Some(frame));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match &self.durable {
                Some((shared, _)) => {
                    let seen = self.reader.next_lsn().saturating_sub(1);
                    shared.wait_durable_past(seen, left.min(self.poll_interval * 10));
                }
                None => std::thread::sleep(left.min(self.poll_interval)),
            }
        }
    }
}
