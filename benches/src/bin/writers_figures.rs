//! Several writer processes on one journal, side by side with SQLite (WAL,
//! `synchronous=FULL`) shared by as many processes, in one run on the same
//! disk: durable start+end pairs/s with 1, 2, 4 and 8 processes, each with
//! one pair in flight at a time. A pair is, in the session layer
//! (`SessionJournal` with `shared_writers`), a start and an end decided in
//! one turn and committed with one fsync (`execute_batch`); in the journal
//! layer, one durable batch of two events; in SQLite, one transaction of an
//! INSERT and an UPDATE.
//!
//! Then the detection latency: a writer process that started a session is
//! killed with -9 beside this one (default check interval, 500 ms), and the
//! time from the kill to its session's `crash_recovered` end is measured,
//! `DEATHS` times.
//!
//!     cargo run --release -p bookend-benches --bin writers_figures

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bookend_benches::bench_dir;
use bookend_journal::{Batch, Durability, Journal, JournalOptions};
use bookend_projector::{
    Command as Cmd, CommandLine, EndReason, SessionJournal, SessionJournalOptions, Start,
};

/// How long each process appends.
const RUN_FOR: Duration = Duration::from_secs(3);
const PROCESSES: [usize; 4] = [1, 2, 4, 8];
/// Kills measured for the detection latency.
const DEATHS: usize = 30;

fn shared_session_options() -> SessionJournalOptions {
    let mut options = SessionJournalOptions::default();
    options.journal.shared_writers = true;
    options
}

fn session_child(dir: &str, id: u64) -> u64 {
    let journal = SessionJournal::open(dir, shared_session_options()).expect("open");
    let started = Instant::now();
    let mut pairs = 0u64;
    while started.elapsed() < RUN_FOR {
        let session = format!("{id}-{pairs}");
        let start = Start::new(&session).key(format!("telegram:{session}"));
        let end = Cmd::End { session_id: session.clone(), reason: EndReason::Completed };
        let lines = vec![
            CommandLine { command: Cmd::Start(start), at: None },
            CommandLine { command: end, at: None },
        ];
        for answer in journal.execute_batch(lines).expect("batch") {
            answer.and_then(|p| p.wait()).expect("durable");
        }
        pairs += 1;
    }
    journal.close(bookend_projector::CloseReason::Shutdown, bookend_projector::Sessions::End).expect("close");
    pairs
}

/// A writer that starts one session, says so, and waits to be killed.
fn holding_child(dir: &str, id: u64) -> u64 {
    let journal = SessionJournal::open(dir, shared_session_options()).expect("open");
    journal
        .start(Start::new(format!("held-{id}")).key(format!("cli:{id}")))
        .expect("start")
        .wait()
        .expect("durable");
    println!("ready");
    std::thread::sleep(Duration::from_secs(600));
    0
}

/// Kill -9 to `crash_recovered` end, in ms, `DEATHS` times, with this
/// process as the survivor.
fn detection_latencies() -> Vec<f64> {
    use std::io::BufRead;
    let dir = bench_dir("writers-detection");
    let survivor = SessionJournal::open(&dir, shared_session_options()).expect("open");
    let exe = std::env::current_exe().expect("current exe");
    let mut latencies = Vec::with_capacity(DEATHS);
    for i in 0..DEATHS {
        let mut child = Command::new(&exe)
            .args(["--child", "hold"])
            .arg(&dir)
            .arg(i.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready");
        // Spread the kills over the check interval.
        std::thread::sleep(Duration::from_millis(37 * i as u64 % 500));
        child.kill().expect("kill -9");
        let killed = Instant::now();
        child.wait().expect("reap");
        let session = format!("held-{i}");
        while survivor.get(&session).expect("get").is_some_and(|s| s.active) {
            assert!(killed.elapsed() < Duration::from_secs(5), "not noticed");
            std::thread::sleep(Duration::from_micros(500));
        }
        latencies.push(killed.elapsed().as_secs_f64() * 1000.0);
    }
    latencies
}

fn bookend_child(dir: &str, id: u64) -> u64 {
    let options = JournalOptions { shared_writers: true, ..JournalOptions::default() };
    let journal = Journal::open(dir, options).expect("open");
    let started = Instant::now();
    let mut pairs = 0u64;
    while started.elapsed() < RUN_FOR {
        let mut batch = Batch::new();
        batch.push(&(id, pairs, "session:start", "telegram:42")).expect("encode");
        batch.push(&(id, pairs, "session:end", "completed")).expect("encode");
        journal.append_blocking(batch, Durability::Durable).expect("append");
        pairs += 1;
    }
    journal.close().expect("close");
    pairs
}

fn sqlite_child(dir: &str, id: u64) -> u64 {
    let db = rusqlite::Connection::open(std::path::Path::new(dir).join("state.db")).expect("open sqlite");
    db.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
    db.pragma_update(None, "synchronous", "FULL").expect("synchronous");
    let started = Instant::now();
    let mut pairs = 0u64;
    while started.elapsed() < RUN_FOR {
        let session = format!("{id}-{pairs}");
        let tx = db.unchecked_transaction().expect("begin");
        tx.execute("INSERT INTO sessions (id, key) VALUES (?1, 'telegram:42')", [&session]).expect("insert");
        tx.execute("UPDATE sessions SET end_reason = 'completed' WHERE id = ?1", [&session]).expect("update");
        tx.commit().expect("commit");
        pairs += 1;
    }
    pairs
}

fn sqlite_schema(dir: &std::path::Path) {
    let db = rusqlite::Connection::open(dir.join("state.db")).expect("open sqlite");
    db.pragma_update(None, "journal_mode", "WAL").expect("wal");
    db.execute_batch("CREATE TABLE sessions (id TEXT PRIMARY KEY, key TEXT, end_reason TEXT);")
        .expect("schema");
}

/// Pairs/s of `n` processes of `kind` on one store.
fn run(kind: &str, n: usize) -> f64 {
    let dir = bench_dir(&format!("writers-{kind}-{n}"));
    if kind == "sqlite" {
        sqlite_schema(&dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(&exe)
                .args(["--child", kind])
                .arg(&dir)
                .arg(i.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let pairs: u64 = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("child");
            String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().expect("child count")
        })
        .sum();
    pairs as f64 / RUN_FOR.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let id: u64 = args[4].parse().expect("id");
        let pairs = match args[2].as_str() {
            "bookend" => bookend_child(&args[3], id),
            "session" => session_child(&args[3], id),
            "hold" => holding_child(&args[3], id),
            _ => sqlite_child(&args[3], id),
        };
        println!("{pairs}");
        return;
    }
    println!(
        "| writer processes | sessions pairs/s | journal batches pairs/s | SQLite WAL FULL pairs/s | sessions / SQLite |"
    );
    println!("|---|---|---|---|---|");
    for n in PROCESSES {
        let (sessions, journal, theirs) = (run("session", n), run("bookend", n), run("sqlite", n));
        println!("| {n} | {sessions:.0} | {journal:.0} | {theirs:.0} | {:.2}× |", sessions / theirs);
    }
    let mut latencies = detection_latencies();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!("\ndetection, kill -9 to crash_recovered end, {DEATHS} kills, 500 ms check interval:");
    println!("p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms", at(0.5), at(0.99), at(1.0));
}
