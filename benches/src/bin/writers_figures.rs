//! Several writer processes on one journal (`JournalOptions::shared_writers`,
//! the journal layer), side by side with SQLite (WAL, `synchronous=FULL`)
//! shared by as many processes, in one run on the same disk: durable
//! start+end pairs/s with 1, 2, 4 and 8 processes, each with one pair in
//! flight at a time. A pair is one durable batch of two events in bookend,
//! and one transaction of an INSERT and an UPDATE in SQLite.
//!
//!     cargo run --release -p bookend-benches --bin writers_figures

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bookend_benches::bench_dir;
use bookend_journal::{Batch, Durability, Journal, JournalOptions};

/// How long each process appends.
const RUN_FOR: Duration = Duration::from_secs(3);
const PROCESSES: [usize; 4] = [1, 2, 4, 8];

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
            _ => sqlite_child(&args[3], id),
        };
        println!("{pairs}");
        return;
    }
    println!("| writer processes | bookend pairs/s | SQLite WAL FULL pairs/s | bookend / SQLite |");
    println!("|---|---|---|---|");
    for n in PROCESSES {
        let (ours, theirs) = (run("bookend", n), run("sqlite", n));
        println!("| {n} | {ours:.0} | {theirs:.0} | {:.2}× |", ours / theirs);
    }
}
