//! Restart cost: opening a `SessionJournal` with a large history behind a
//! checkpoint, against a full fold from LSN 1 (no checkpoint store).
//!
//!     cargo bench -p bookend-benches --bench open_time
//!     BOOKEND_BENCH_EVENTS=10000000 cargo bench -p bookend-benches --bench open_time

use std::time::{Duration, Instant};

use bookend_benches::{bench_dir, write_history};
use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, StoreLocation};
use criterion::{Criterion, criterion_group, criterion_main};

fn events() -> u64 {
    std::env::var("BOOKEND_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn open_and_close(dir: &std::path::Path, store: StoreLocation) -> Duration {
    let options = SessionJournalOptions { store, ..SessionJournalOptions::default() };
    let started = Instant::now();
    let journal = SessionJournal::open(dir, options).expect("open");
    let elapsed = started.elapsed();
    journal.close(CloseReason::Restart, Sessions::Keep).expect("close");
    elapsed
}

fn open_time(c: &mut Criterion) {
    let n = events();
    let dir = bench_dir(&format!("open-{n}"));
    let built = Instant::now();
    write_history(&dir, n);
    eprintln!("wrote {n} events in {:?}", built.elapsed());
    // The first open folds everything and saves the checkpoint.
    let first = open_and_close(&dir, StoreLocation::InJournalDir);
    eprintln!("first open (fold from LSN 1, build the checkpoint): {first:?}");

    let mut group = c.benchmark_group(format!("open_{n}_events"));
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    group.bench_function("with_checkpoint", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| open_and_close(&dir, StoreLocation::InJournalDir)).sum())
    });
    group.bench_function("full_fold", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| open_and_close(&dir, StoreLocation::Disabled)).sum())
    });
    group.finish();
}

criterion_group!(benches, open_time);
criterion_main!(benches);
