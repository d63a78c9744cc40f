//! The same session workload through bookend and through what gateways use
//! today, in one run on the same disk: SQLite (WAL, `synchronous=FULL` and
//! `NORMAL`, one transaction per event and batched), sled (insert + flush),
//! and a `sessions.json` whole-file rewrite (fsync + rename) at 100, 1 000
//! and 10 000 sessions. Prints events/s, the ratio to SQLite FULL with one
//! transaction per event, and each scenario's peak RSS (every scenario runs
//! in its own child process).
//!
//! Everything runs with mimalloc, as the `bookend` command line does
//! (`bookend-alloc`); each bookend scenario runs a second time with glibc
//! malloc (`BOOKEND_BENCH_ALLOC=glibc`), which is what a program embedding
//! the library with Rust's default allocator gets. SQLite allocates with
//! libc's malloc either way.
//!
//!     cargo run --release -p bookend-benches --bin compare
//!
//! `BOOKEND_BENCH_CACHE_BYTES` and `BOOKEND_BENCH_STORE=off` change the
//! projection store of the bookend scenarios, to see what it costs.
//! `BOOKEND_BENCH_HEAP=1` adds each scenario's peak live heap (counted by
//! the allocator, which slows allocation a little): peak RSS minus it is
//! what the allocator holds on to, plus stacks and the binary.
//!
//! The workload: sessions started and ended (two events each), the way a
//! gateway records them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bookend_benches::heap::{ALLOCATOR_VAR, CountingAlloc, allocator_name, peak_heap_mib, set_up};
use bookend_benches::{BenchEvent, bench_dir, session_options_from_env, status_mib};
use bookend_journal::Durability;
use bookend_projector::{CloseReason, EndReason, SessionJournal, SessionJournalOptions, Sessions, Start};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// How long each time-bounded scenario runs.
const RUN_FOR: Duration = Duration::from_secs(4);

const SCENARIOS: [&str; 15] = [
    "bookend-durable-1-task",
    "bookend-durable-64-tasks",
    "bookend-durable-batched-1000",
    "bookend-buffered-batched-1000",
    "bookend-buffered-1-task",
    "bookend-buffered-64-tasks",
    "sqlite-full-per-event",
    "sqlite-normal-per-event",
    "sqlite-full-batched-1000",
    "sqlite-normal-batched-1000",
    "sled-insert-flush",
    "sled-insert-batched-1000",
    "sessions-json-100",
    "sessions-json-1000",
    "sessions-json-10000",
];

/// Starts and ends sessions from `tasks` tokio tasks (on a 2-worker
/// runtime, as a gateway would) until `RUN_FOR` is up.
fn bookend(tasks: u64, durability: Durability) -> (u64, Duration) {
    let dir = bench_dir("compare-bookend");
    let options = SessionJournalOptions { durability: Some(durability), ..session_options_from_env() };
    let journal = SessionJournal::open(&dir, options).expect("open");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let events = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    runtime.block_on(async {
        let workers: Vec<_> = (0..tasks)
            .map(|t| {
                let (journal, events, stop) = (journal.clone(), events.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let e = BenchEvent::new(t << 32 | n);
                        let id = e.session_id.clone();
                        let start = Start::new(e.session_id)
                            .key(format!("t{t}:{}", n % 100))
                            .platform(e.platform)
                            .user_id(e.user_id);
                        journal.start(start).expect("start").await.expect("start acknowledged");
                        journal.end(&id, EndReason::Completed).expect("end").await.expect("end acknowledged");
                        events.fetch_add(2, Ordering::Relaxed);
                        n += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(RUN_FOR).await;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.expect("worker");
        }
    });
    let elapsed = started.elapsed();
    journal.close(CloseReason::Shutdown, Sessions::End).expect("close");
    (events.load(Ordering::Relaxed), elapsed)
}

fn sqlite(synchronous: &str, batch: u64) -> (u64, Duration) {
    let dir = bench_dir("compare-sqlite");
    let db = rusqlite::Connection::open(dir.join("state.db")).expect("open sqlite");
    db.pragma_update(None, "journal_mode", "WAL").expect("wal");
    db.pragma_update(None, "synchronous", synchronous).expect("synchronous");
    db.execute_batch(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, key TEXT, platform TEXT, user_id TEXT,
                                started_at INTEGER, ended_at INTEGER, end_reason TEXT);",
    )
    .expect("schema");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < RUN_FOR {
        if batch == 1 {
            // One transaction per event: the start, then the end.
            let tx = db.unchecked_transaction().expect("begin");
            start_row(&tx, &BenchEvent::new(n));
            tx.commit().expect("commit");
            let tx = db.unchecked_transaction().expect("begin");
            end_row(&tx, &BenchEvent::new(n));
            tx.commit().expect("commit");
            n += 1;
            continue;
        }
        let tx = db.unchecked_transaction().expect("begin");
        for _ in 0..batch / 2 {
            let e = BenchEvent::new(n);
            start_row(&tx, &e);
            end_row(&tx, &e);
            n += 1;
        }
        tx.commit().expect("commit");
    }
    (n * 2, started.elapsed())
}

fn start_row(tx: &rusqlite::Transaction<'_>, e: &BenchEvent) {
    tx.execute(
        "INSERT INTO sessions (id, key, platform, user_id, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![e.session_id, e.key, e.platform, e.user_id, e.at as i64],
    )
    .expect("insert");
}

fn end_row(tx: &rusqlite::Transaction<'_>, e: &BenchEvent) {
    tx.execute(
        "UPDATE sessions SET ended_at = ?1, end_reason = 'completed' WHERE id = ?2",
        rusqlite::params![e.at as i64 + 1, e.session_id],
    )
    .expect("update");
}

fn sled_store(batch: u64) -> (u64, Duration) {
    let dir = bench_dir("compare-sled");
    let db = sled::Config::new().path(dir.join("db")).cache_capacity(8 << 20).open().expect("sled");
    let started = Instant::now();
    let mut events = 0u64;
    let mut n = 0u64;
    while started.elapsed() < RUN_FOR {
        let mut sled_batch = sled::Batch::default();
        for _ in 0..batch {
            let e = BenchEvent::new(n / 2);
            let state = if n.is_multiple_of(2) { "active" } else { "ended:completed" };
            let value = serde_json::to_vec(&(&e, state)).expect("json");
            if batch == 1 {
                db.insert(e.session_id.as_bytes(), value).expect("insert");
            } else {
                sled_batch.insert(e.session_id.as_bytes(), value);
            }
            n += 1;
            events += 1;
        }
        if batch > 1 {
            db.apply_batch(sled_batch).expect("batch");
        }
        db.flush().expect("flush");
    }
    (events, started.elapsed())
}

/// A gateway that keeps every session in one JSON file and rewrites it
/// (write temp, fsync, rename) on each change.
fn sessions_json(sessions: u64) -> (u64, Duration) {
    let dir = bench_dir("compare-json");
    let path = dir.join("sessions.json");
    let mut table: BTreeMap<String, (BenchEvent, &str)> =
        (0..sessions).map(|n| (BenchEvent::new(n).session_id, (BenchEvent::new(n), "active"))).collect();
    let started = Instant::now();
    let mut events = 0u64;
    while started.elapsed() < RUN_FOR {
        let n = events % sessions;
        let e = BenchEvent::new(n);
        table.insert(e.session_id.clone(), (e, if events.is_multiple_of(2) { "ended" } else { "active" }));
        rewrite(&dir, &path, &table);
        events += 1;
    }
    (events, started.elapsed())
}

fn rewrite(dir: &Path, path: &Path, table: &BTreeMap<String, (BenchEvent, &str)>) {
    use std::io::Write;
    let temp = dir.join("sessions.json.tmp");
    let mut file = std::fs::File::create(&temp).expect("create");
    file.write_all(&serde_json::to_vec(table).expect("json")).expect("write");
    file.sync_all().expect("fsync");
    std::fs::rename(&temp, path).expect("rename");
    std::fs::File::open(dir).and_then(|d| d.sync_all()).expect("fsync dir");
}

/// One caller, `SessionJournal::execute_batch` of 500 sessions started
/// and ended (1 000 events), waiting for each batch: SQLite's
/// transaction-of-1000 case.
fn bookend_batched(durability: Durability) -> (u64, Duration) {
    use bookend_projector::{Command, CommandLine};
    let dir = bench_dir("compare-bookend-batched");
    let options = SessionJournalOptions { durability: Some(durability), ..session_options_from_env() };
    let journal = SessionJournal::open(&dir, options).expect("open");
    let started = Instant::now();
    let mut events = 0u64;
    while started.elapsed() < RUN_FOR {
        let mut lines = Vec::with_capacity(1000);
        for i in 0..500 {
            let e = BenchEvent::new(events + i);
            let id = e.session_id.clone();
            let start =
                Start::new(e.session_id).key(format!("k{}", i % 100)).platform(e.platform).user_id(e.user_id);
            lines.push(CommandLine { command: Command::Start(start), at: None });
            let end = Command::End { session_id: id, reason: EndReason::Completed };
            lines.push(CommandLine { command: end, at: None });
        }
        let answers = journal.execute_batch(lines).expect("batch");
        for answer in answers {
            answer.expect("accepted").wait().expect("acknowledged");
        }
        events += 1000;
    }
    let elapsed = started.elapsed();
    journal.close(CloseReason::Shutdown, Sessions::End).expect("close");
    (events, elapsed)
}

fn run_scenario(name: &str) -> (u64, Duration) {
    match name {
        "bookend-durable-1-task" => bookend(1, Durability::Durable),
        "bookend-durable-64-tasks" => bookend(64, Durability::Durable),
        "bookend-durable-batched-1000" => bookend_batched(Durability::Durable),
        "bookend-buffered-batched-1000" => bookend_batched(Durability::Buffered),
        "bookend-buffered-1-task" => bookend(1, Durability::Buffered),
        "bookend-buffered-64-tasks" => bookend(64, Durability::Buffered),
        "sqlite-full-per-event" => sqlite("FULL", 1),
        "sqlite-normal-per-event" => sqlite("NORMAL", 1),
        "sqlite-full-batched-1000" => sqlite("FULL", 1000),
        "sqlite-normal-batched-1000" => sqlite("NORMAL", 1000),
        "sled-insert-flush" => sled_store(1),
        "sled-insert-batched-1000" => sled_store(1000),
        "sessions-json-100" => sessions_json(100),
        "sessions-json-1000" => sessions_json(1000),
        "sessions-json-10000" => sessions_json(10_000),
        other => panic!("unknown scenario {other}"),
    }
}

fn main() {
    set_up();
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--scenario") {
        let name = &args[pos + 1];
        let (events, elapsed) = run_scenario(name);
        let heap = peak_heap_mib().map_or_else(|| "-".to_string(), |mib| format!("{mib:.1}"));
        let (secs, rss, allocator) = (elapsed.as_secs_f64(), status_mib("VmHWM:"), allocator_name());
        println!("{events} {secs} {rss:.1} {heap} {allocator}");
        return;
    }
    let only: Vec<&String> = args.iter().skip(1).collect();
    let mut rows = Vec::new();
    for name in SCENARIOS.iter().filter(|s| only.is_empty() || only.iter().any(|o| s.contains(o.as_str()))) {
        rows.push(run_child(name, "mimalloc"));
        // What a program that embeds the library with Rust's default
        // allocator gets (the others do not allocate through Rust's).
        if name.starts_with("bookend-") {
            rows.push(run_child(name, "glibc"));
        }
    }
    let baseline = rows.iter().find(|r| r.0 == "sqlite-full-per-event").map_or(1.0, |r| r.1);
    println!("| scenario | events/s | × SQLite FULL per-event | peak RSS MiB | peak heap MiB |");
    println!("|---|---|---|---|---|");
    for (name, rate, rss, heap) in rows {
        println!("| {name} | {rate:.0} | {:.1} | {rss:.1} | {heap} |", rate / baseline);
    }
}

/// Runs scenario `name` in a child process with `allocator` (`mimalloc`
/// or `glibc`); returns its row: name, events/s, peak RSS, peak heap.
fn run_child(name: &str, allocator: &str) -> (String, f64, f64, String) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(&exe)
        .args(["--scenario", name])
        .env(ALLOCATOR_VAR, allocator)
        .output()
        .expect("run scenario");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let events: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let secs: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let rss: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let heap = parts.next().unwrap_or("-").to_string();
    let allocator = parts.next().unwrap_or("?");
    let label = if allocator == "glibc" { format!("{name} (glibc malloc)") } else { name.to_string() };
    eprintln!("{label}: {:.0} events/s", events / secs);
    (label, events / secs, rss, heap)
}
