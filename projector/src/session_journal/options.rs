//! What a gateway chooses when it opens a session journal, and what open
//! tells it back.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bookend_journal::{Durability, JournalOptions};

use crate::rules::Rules;
use crate::store::CACHE_CAPACITY_BYTES_DEFAULT;

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

impl std::str::FromStr for OnUnclean {
    type Err = String;

    /// `end` or `keep`.
    fn from_str(text: &str) -> std::result::Result<OnUnclean, String> {
        match text {
            "end" => Ok(OnUnclean::End),
            "keep" => Ok(OnUnclean::Keep),
            other => Err(format!("{other:?} is not an unclean-shutdown policy (end or keep)")),
        }
    }
}

/// Where the projection store lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreLocation {
    /// `<journal dir>/projection`.
    #[default]
    InJournalDir,
    At(PathBuf),
    /// No store: every open folds the whole journal.
    Disabled,
}

/// Default interval between checks for dead writer processes (several
/// writers only): deaths are noticed within about this long.
pub const WRITER_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_millis(500);
/// Default number of events between checkpoints. A checkpoint is also due
/// once 1 000 sessions have changed, whatever this says (a larger one needs
/// several sled batches).
pub const CHECKPOINT_EVERY_EVENTS_DEFAULT: u64 = 5_000;
/// Default longest time between checkpoints while events arrive.
pub const CHECKPOINT_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
/// Commands wait for the checkpoint being written once this many times
/// `checkpoint_every_events` events are waiting for the next one.
pub(crate) const CHECKPOINT_BACKLOG_FACTOR: u64 = 2;
/// Longest a checkpoint waits for the journal to make its state durable.
pub(crate) const CHECKPOINT_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SessionJournalOptions {
    pub journal: JournalOptions,
    pub rules: Rules,
    pub on_unclean: OnUnclean,
    /// Overrides the per-command durability (touch buffered, the rest durable).
    pub durability: Option<Durability>,
    /// Where the projection store lives (or none).
    pub store: StoreLocation,
    pub cache_capacity_bytes: u64,
    pub checkpoint_every_events: u64,
    pub checkpoint_interval: Duration,
    pub clock: Arc<dyn Clock>,
    /// How far ahead of `clock` a command's explicit `at` may be; further is
    /// refused with `invalid_time` (a session dated in the far future would
    /// never be expired or reaped).
    pub clock_skew_max_ms: u64,
    /// With several writer processes (`journal.shared_writers`): how often
    /// each checks whether another has died. A death is noticed, and its
    /// sessions ended, within this interval plus one append turn.
    pub writer_check_interval: Duration,
}

impl Default for SessionJournalOptions {
    fn default() -> Self {
        SessionJournalOptions {
            journal: JournalOptions::default(),
            rules: Rules::default(),
            on_unclean: OnUnclean::End,
            durability: None,
            store: StoreLocation::InJournalDir,
            cache_capacity_bytes: CACHE_CAPACITY_BYTES_DEFAULT,
            checkpoint_every_events: CHECKPOINT_EVERY_EVENTS_DEFAULT,
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
            clock: Arc::new(SystemClock),
            clock_skew_max_ms: crate::limits::CLOCK_SKEW_MAX_MS_DEFAULT,
            writer_check_interval: WRITER_CHECK_INTERVAL_DEFAULT,
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
