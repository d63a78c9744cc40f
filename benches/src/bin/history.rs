//! What a long history costs a gateway that restarts: open time and memory
//! with N ended sessions behind a checkpoint.
//!
//!     cargo run --release -p bookend-benches --bin history -- 1000000
//!
//! Builds `target/bench-data/history-<N>` once (N sessions started and
//! ended, then one open that writes the checkpoint; later runs reuse it),
//! then, in a fresh child process each time: opens the `SessionJournal`,
//! waits for its known-ids scan, looks up 10 000 old sessions, starts and
//! ends 10 000 new ones (durable, 64 threads), lists the sessions ended
//! `superseded` (none: a read of the whole store that keeps nothing) while
//! one thread keeps starting and ending sessions, closes it, and reports the
//! open time, the listing's time, the slowest command during it, and the
//! process's peak and final RSS. `BOOKEND_BENCH_CACHE_BYTES` sets sled's
//! `cache_capacity` for the measured runs, `BOOKEND_BENCH_PAIRS` the number
//! of start+end pairs (default 10 000).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bookend_benches::{bench_root, status_mib, write_history};
use bookend_projector::{CloseReason, EndReason, SessionJournal, SessionJournalOptions, Sessions, Start};

/// A positive count from the environment variable `name`, else `default`.
fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// Threads starting and ending new sessions (`BOOKEND_BENCH_THREADS`, default 64).
fn threads() -> u64 {
    env_count("BOOKEND_BENCH_THREADS", 64)
}

/// Start+end pairs the measured runs make (`BOOKEND_BENCH_PAIRS`, default
/// 10 000: about 0.1-0.2 s, so anything an open leaves running shows).
fn pairs() -> u64 {
    env_count("BOOKEND_BENCH_PAIRS", 10_000)
}

/// sled's `cache_capacity` for the measured runs (`BOOKEND_BENCH_CACHE_BYTES`,
/// default: the journal's default).
fn options() -> SessionJournalOptions {
    bookend_benches::session_options_from_env()
}

fn history_dir(sessions: u64) -> PathBuf {
    bench_root().join(format!("history-{sessions}"))
}

fn dir_mib(dir: &Path) -> f64 {
    fn walk(p: &Path) -> u64 {
        std::fs::read_dir(p).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

/// Builds the history once; a `built` marker says it is complete.
fn build(dir: &Path, sessions: u64) {
    if dir.join("built").exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create bench directory");
    let started = Instant::now();
    write_history(dir, 2 * sessions + 1);
    eprintln!("wrote {} events in {:.1?}", 2 * sessions + 1, started.elapsed());
    let started = Instant::now();
    let journal = SessionJournal::open(dir, SessionJournalOptions::default()).expect("open");
    journal.close(CloseReason::Restart, Sessions::Keep).expect("close");
    eprintln!("first open (fold, write the checkpoint) {:.1?}", started.elapsed());
    std::fs::write(dir.join("built"), b"").expect("write marker");
}

/// A tag no earlier run on this history used, for the ids a run starts.
/// Starting an id the store already holds appends nothing (a start is
/// idempotent), nor does ending it again: with the same ids in every run,
/// runs after the first measured those no-ops (143–149 k "pairs/s"
/// against 41–63 k for new sessions; docs/performance-log/2026-12-06.md).
fn run_tag() -> String {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:x}-{}", since_epoch.as_nanos(), std::process::id())
}

/// One measured run, in its own process so its RSS is its own.
fn measure(dir: &Path, sessions: u64) {
    let started = Instant::now();
    let journal = SessionJournal::open(dir, options()).expect("open");
    let open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let after_open = status_mib("VmRSS:");
    // Let the known-ids scan finish, so the lookups below measure the
    // steady state and its memory is counted.
    let store = journal.projection_store().expect("checkpoint store");
    let started = Instant::now();
    while !store.ids_known() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let scan_ms = started.elapsed().as_secs_f64() * 1000.0;
    let after_scan = status_mib("VmRSS:");
    let started = Instant::now();
    let step = (sessions / 10_000).max(1);
    let mut found = 0;
    for n in (0..sessions).step_by(step as usize).take(10_000) {
        let id = format!("0190f5c2-7a1b-7c3d-9e8f-{n:012x}");
        found += usize::from(journal.get(&id).expect("get").is_some());
    }
    let lookup_us = started.elapsed().as_secs_f64() * 1e6 / found.max(1) as f64;
    let after_lookups = status_mib("VmRSS:");
    let threads = threads();
    let run = run_tag();
    let events_before = journal.journal().stats().events;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (journal, run) = (&journal, &run);
            scope.spawn(move || {
                for n in 0..(pairs() / threads) {
                    let id = format!("new-{run}-{t}-{n}");
                    let start = Start::new(id.clone()).key(format!("new:{t}"));
                    journal.start(start).expect("start").wait().expect("start acknowledged");
                    journal.end(&id, EndReason::Completed).expect("end").wait().expect("end acknowledged");
                }
            });
        }
    });
    let pairs_made = pairs() / threads * threads;
    let pairs_per_s = pairs_made as f64 / started.elapsed().as_secs_f64();
    // Every pair appended its start and its end: none was a repeat.
    assert_eq!(
        journal.journal().stats().events - events_before,
        2 * pairs_made,
        "pairs that appended nothing"
    );
    let peak_before_listing = status_mib("VmHWM:");
    // A filtered listing reads the whole store; commands must not wait for it.
    let (listing_ms, worst_start_ms) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| {
            let started = Instant::now();
            // No session ends superseded here: the listing reads every
            // session and keeps none.
            let listed = journal.ended_by_reason(&EndReason::Superseded).expect("ended_by_reason");
            (started.elapsed().as_secs_f64() * 1000.0, listed.len())
        });
        let mut worst = 0f64;
        let mut n = 0;
        while !listing.is_finished() {
            let id = format!("during-listing-{run}-{n}");
            let started = Instant::now();
            let start = Start::new(id.clone());
            journal.start(start).expect("start").wait().expect("start acknowledged");
            worst = worst.max(started.elapsed().as_secs_f64() * 1000.0);
            let started = Instant::now();
            journal.end(&id, EndReason::Completed).expect("end").wait().expect("end acknowledged");
            worst = worst.max(started.elapsed().as_secs_f64() * 1000.0);
            n += 1;
        }
        let (ms, listed) = listing.join().expect("listing thread");
        assert_eq!(listed, 0, "no session ended superseded");
        (ms, worst)
    });
    journal.close(CloseReason::Restart, Sessions::Keep).expect("close");
    println!(
        "{open_ms:.1} {after_open:.1} {scan_ms:.0} {after_scan:.1} {found} {lookup_us:.1} {after_lookups:.1} \
         {pairs_per_s:.0} {peak_before_listing:.1} {listing_ms:.0} {worst_start_ms:.1} {:.1} {:.1}",
        status_mib("VmHWM:"),
        status_mib("VmRSS:")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sessions: u64 = args.iter().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = history_dir(sessions);
    if args.iter().any(|a| a == "--measure") {
        measure(&dir, sessions);
        return;
    }
    build(&dir, sessions);
    let exe = std::env::current_exe().expect("current exe");
    println!("{sessions} ended sessions in history; journal + checkpoint on disk: {:.0} MiB", dir_mib(&dir));
    println!(
        "| run | open ms | RSS after open MiB | id scan ms | RSS after scan MiB | old sessions found \
         | µs per lookup | RSS after lookups MiB | start+end pairs/s ({} threads) | peak RSS so far MiB | listing ms \
         | slowest command during it ms | peak RSS after it MiB | RSS at close MiB |",
        threads()
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for run in 1..=3 {
        let out =
            Command::new(&exe).args([sessions.to_string().as_str(), "--measure"]).output().expect("run");
        if !out.status.success() {
            panic!("measuring run failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        println!("| {run} | {} |", text.split_whitespace().collect::<Vec<_>>().join(" | "));
    }
}
