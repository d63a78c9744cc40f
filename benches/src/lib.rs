//! Shared pieces of bookend's benches: where bench data lives (a real disk,
//! never tmpfs) and a representative session-sized event.

pub mod heap;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Bench data goes under `target/bench-data` (override with
/// `BOOKEND_BENCH_DIR`); it must be on a real disk, since tmpfs makes fsync
/// free and every durable figure meaningless.
pub fn bench_dir(name: &str) -> PathBuf {
    let dir = bench_root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create bench directory");
    dir
}

/// Where bench data lives: `target/bench-data`, or `BOOKEND_BENCH_DIR`.
/// Session journal options as the environment asks for them:
/// `BOOKEND_BENCH_CACHE_BYTES` sets sled's `cache_capacity`, and
/// `BOOKEND_BENCH_STORE=off` runs without a projection store (to see what
/// the store costs).
pub fn session_options_from_env() -> bookend_projector::SessionJournalOptions {
    let mut options = bookend_projector::SessionJournalOptions::default();
    if let Some(bytes) = std::env::var("BOOKEND_BENCH_CACHE_BYTES").ok().and_then(|v| v.parse().ok()) {
        options.cache_capacity_bytes = bytes;
    }
    if std::env::var("BOOKEND_BENCH_STORE").is_ok_and(|v| v == "off") {
        options.store = bookend_projector::StoreLocation::Disabled;
    }
    options
}

pub fn bench_root() -> PathBuf {
    std::env::var_os("BOOKEND_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"))
}

/// A memory figure of this process from `/proc/self/status`, in MiB
/// (`"VmHWM:"` is the peak RSS, `"VmRSS:"` the current one); 0 if unknown.
pub fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `task(t)` for each `t` in `0..tasks` as tokio tasks on `runtime`,
/// waits for all of them, and returns how long that took.
pub fn time_tasks<F>(runtime: &tokio::runtime::Runtime, tasks: u64, task: impl Fn(u64) -> F) -> Duration
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks).map(|t| tokio::spawn(task(t))).collect();
        for h in handles {
            h.await.expect("task");
        }
    });
    started.elapsed()
}

/// About the size of a `session:start` event (~90 bytes encoded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchEvent {
    pub session_id: String,
    pub key: String,
    pub platform: String,
    pub user_id: String,
    pub at: u64,
}

impl BenchEvent {
    pub fn new(n: u64) -> BenchEvent {
        BenchEvent {
            session_id: format!("0190f5c2-7a1b-7c3d-9e8f-{n:012x}"),
            key: format!("telegram:{}", n % 10_000),
            platform: "telegram".into(),
            user_id: format!("u{}", n % 10_000),
            at: 1_763_700_000_000 + n,
        }
    }
}

use bookend_journal::{Batch, Durability, Journal, JournalOptions};
use bookend_projector::{EventBody, StartFields, StoredEvent};

/// Writes a lifecycle-valid history of `events` events straight into the
/// journal at `dir` (one epoch; sessions started and ended in pairs, on
/// 10 000 keys), in large batches. Faster than going through
/// `SessionJournal`, and byte-for-byte what it would have written.
pub fn write_history(dir: &std::path::Path, events: u64) {
    let journal = Journal::open(dir, JournalOptions::default()).expect("open journal");
    let at = 1_763_700_000_000;
    let mut batch = Batch::with_capacity(1 << 20);
    let open = EventBody::JournalOpen { epoch: 1, pid: 1, host: "bench".into(), version: "0".into() };
    batch.push(&StoredEvent { at, body: open }).expect("encode");
    for n in 0..(events.saturating_sub(1) / 2) {
        let session_id = format!("0190f5c2-7a1b-7c3d-9e8f-{n:012x}");
        let key = Some(format!("telegram:{}", n % 10_000));
        let start =
            StartFields { session_id: session_id.clone(), key: key.clone(), ..StartFields::default() };
        batch.push(&StoredEvent { at: at + n, body: EventBody::SessionStart(start.into()) }).expect("encode");
        let end = EventBody::SessionEnd {
            session_id,
            key,
            reason: bookend_projector::EndReason::Completed,
            next_id: None,
        };
        batch.push(&StoredEvent { at: at + n, body: end }).expect("encode");
        if batch.len() >= 10_000 {
            let full = std::mem::replace(&mut batch, Batch::with_capacity(1 << 20));
            journal.append_blocking(full, Durability::Buffered).expect("append");
        }
    }
    if !batch.is_empty() {
        journal.append_blocking(batch, Durability::Buffered).expect("append");
    }
    journal.close().expect("close");
}

/// The `bookend` binary the CLI figures run: `$BOOKEND_BIN`, else the
/// workspace's release build.
pub fn bookend_bin() -> PathBuf {
    std::env::var_os("BOOKEND_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/bookend"))
}
