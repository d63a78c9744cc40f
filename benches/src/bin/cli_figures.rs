//! Figures for the consumers and the command line, measured on a real disk:
//! `bookend verify` on a 1M-event journal, pipelined durable `bookend
//! append`, `tail --follow` latency across processes, catch-up read rate,
//! and append throughput with and without a stalled consumer.
//!
//!     cargo build --release -p bookend-cli
//!     cargo run --release -p bookend-benches --bin cli_figures
//!
//! `BOOKEND_BIN` overrides the path of the `bookend` binary;
//! `BOOKEND_BENCH_EVENTS` the size of the verify/catch-up journal.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bookend_benches::{bench_dir, bookend_bin, write_history};
use bookend_projector::{CloseReason, SessionJournal, SessionJournalOptions, Sessions, Start, Subscription};

fn events() -> u64 {
    std::env::var("BOOKEND_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn verify_speed(dir: &Path, n: u64) {
    let started = Instant::now();
    let out =
        Command::new(bookend_bin()).args(["verify", "--dir"]).arg(dir).output().expect("run bookend verify");
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    println!(
        "bookend verify, {n} events: {elapsed:.2?} ({:.2} M events/s)",
        n as f64 / elapsed.as_secs_f64() / 1e6
    );
}

fn catch_up_rate(dir: &Path, n: u64) {
    let started = Instant::now();
    let mut sub = Subscription::from_lsn_in_dir(dir, 1);
    let mut read = 0u64;
    while sub.try_next().expect("read").is_some() {
        read += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "subscription catch-up, {read} events: {elapsed:.2?} ({:.2} M events/s decoded)",
        read as f64 / elapsed.as_secs_f64() / 1e6
    );
    let started = Instant::now();
    let out = Command::new(bookend_bin())
        .args(["tail", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .expect("tail");
    assert!(out.success());
    let elapsed = started.elapsed();
    println!(
        "bookend tail > /dev/null, {n} events: {elapsed:.2?} ({:.2} M events/s as JSON)",
        n as f64 / elapsed.as_secs_f64() / 1e6
    );
}

fn pipelined_append(commands: usize) {
    let dir = bench_dir("cli-append");
    let input: String = (0..commands)
        .map(|i| format!("{{\"cmd\":\"start\",\"session_id\":\"s{i}\",\"key\":\"telegram:{i}\",\"platform\":\"telegram\"}}\n"))
        .collect();
    let mut child = Command::new(bookend_bin())
        .args(["append", "--durability", "durable", "--dir"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn append");
    let started = Instant::now();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("feed");
    drop(stdin);
    assert!(child.wait().expect("append").success());
    let elapsed = started.elapsed();
    println!(
        "bookend append --durability durable, {commands} starts: {elapsed:.2?} ({:.0} events/s, includes open and close)",
        commands as f64 / elapsed.as_secs_f64()
    );
}

fn follow_latency(samples: usize) {
    let dir = bench_dir("cli-follow");
    let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).expect("open");
    let mut tail = Command::new(bookend_bin())
        .args(["tail", "--follow", "--type", "session:start", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let mut lines = BufReader::new(tail.stdout.take().expect("stdout")).lines();
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        std::thread::sleep(Duration::from_millis(7));
        let start = Start::new(format!("s{i}"));
        journal.start(start).expect("start").wait().expect("durable");
        let acked = Instant::now();
        lines.next().expect("tail line").expect("read");
        latencies.push(acked.elapsed());
    }
    let _ = tail.kill();
    let _ = tail.wait();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "tail --follow latency (durable ack → line printed by another process), {samples} samples: p50 {:.2?}, p99 {:.2?}",
        pct(0.5),
        pct(0.99)
    );
    journal.close(CloseReason::Shutdown, Sessions::End).expect("close");
}

/// Durable starts/s from 64 threads, in alternating 500 ms windows with and
/// without a stalled named subscription (opened and never read), in one run
/// on one journal, so both see the same disk. Returns (without, with).
fn stalled_consumer_ratio(windows: usize) -> (f64, f64) {
    let dir = bench_dir("stalled-consumer");
    // No checkpoint inside the run: a checkpoint's sled writes would stall
    // both kinds of window alike (see docs/performance-log/2026-11-21.md).
    let options =
        SessionJournalOptions { checkpoint_every_events: u64::MAX, ..SessionJournalOptions::default() };
    let journal = SessionJournal::open(&dir, options).expect("open");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let (journal, stop) = (journal.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let start = Start::new(format!("t{t}-{n}"));
                    journal.start(start).expect("start").wait().expect("durable");
                    n += 1;
                }
            })
        })
        .collect();
    let window = Duration::from_millis(500);
    let (mut free, mut stalled) = ((0u64, Duration::ZERO), (0u64, Duration::ZERO));
    for w in 0..windows {
        let subscription = (w % 2 == 1).then(|| journal.subscribe("stalled").expect("subscribe"));
        let before = journal.journal().stats().events;
        let started = Instant::now();
        std::thread::sleep(window);
        let events = journal.journal().stats().events - before;
        let slot = if subscription.is_some() { &mut stalled } else { &mut free };
        slot.0 += events;
        slot.1 += started.elapsed();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().expect("thread");
    }
    journal.close(CloseReason::Shutdown, Sessions::End).expect("close");
    (free.0 as f64 / free.1.as_secs_f64(), stalled.0 as f64 / stalled.1.as_secs_f64())
}

/// Latency of durable starts from 64 threads for `seconds`, with the default
/// checkpoint cadence (every 50 000 events): a checkpoint must not stall
/// commands. Returns (p50, p99.9, max, checkpoints that happened).
fn latency_with_checkpoints(seconds: u64) -> (Duration, Duration, Duration, u64) {
    let dir = bench_dir("checkpoint-latency");
    let every = std::env::var("CHECKPOINT_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(bookend_projector::CHECKPOINT_EVERY_EVENTS_DEFAULT);
    let options =
        SessionJournalOptions { checkpoint_every_events: every, ..SessionJournalOptions::default() };
    let journal = SessionJournal::open(&dir, options).expect("open");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let start = Start::new(format!("t{t}-{n}"));
                    let began = Instant::now();
                    journal.start(start).expect("start").wait().expect("durable");
                    latencies.push(began.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    let events = journal.journal().stats().events;
    journal.close(CloseReason::Shutdown, Sessions::End).expect("close");
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (pct(0.5), pct(0.999), *all.last().expect("some commands"), events / every)
}

fn main() {
    assert!(bookend_bin().exists(), "build it first: cargo build --release -p bookend-cli");
    if std::env::args().any(|a| a == "--checkpoint-only") {
        let (p50, p999, max, checkpoints) = latency_with_checkpoints(6);
        println!(
            "start latency with checkpoints ({checkpoints} taken): p50 {p50:.2?}, p99.9 {p999:.2?}, max {max:.2?}"
        );
        return;
    }
    if std::env::args().any(|a| a == "--append-only") {
        pipelined_append(200_000);
        return;
    }
    if std::env::args().any(|a| a == "--stalled-only") {
        let (free, stalled) = stalled_consumer_ratio(20);
        println!("free {free:.0}  stalled {stalled:.0}  ratio {:.2}", stalled / free);
        return;
    }
    let n = events();
    let dir = bench_dir("cli-history");
    write_history(&dir, n);
    verify_speed(&dir, n);
    catch_up_rate(&dir, n);
    pipelined_append(200_000);
    follow_latency(200);
    let (p50, p999, max, checkpoints) = latency_with_checkpoints(6);
    println!(
        "durable start latency, 64 threads, default checkpoints ({checkpoints} taken): p50 {p50:.2?}, p99.9 {p999:.2?}, max {max:.2?}"
    );
    let (free, stalled) = stalled_consumer_ratio(20);
    println!(
        "durable starts/s from 64 threads, alternating 500 ms windows: {free:.0} without a consumer, {stalled:.0} with a stalled one (ratio {:.2})",
        stalled / free
    );
}
