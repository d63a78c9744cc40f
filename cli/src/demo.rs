//! `bookend demo`: a simulated gateway on a fresh journal — users chatting,
//! a `/new` reset, a stale session superseded by auto-reset, idle expiry
//! with memory hooks finalized once, a gateway process killed with SIGKILL
//! and recovered, a consumer that falls behind and catches up, a graceful
//! shutdown — then `verify`, showing every span ended exactly once.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;

use anyhow::{Context, bail};
use bookend_journal::fs::StdFs;
use bookend_projector::{
    CloseReason, EndReason, ManualClock, ResetPolicy, SessionJournal, SessionJournalOptions, Sessions, Start,
    SystemClock,
};

use crate::inspect::print_verify_report;

/// A file the demo leaves in its directory, so a rerun may replace it.
const DEMO_MARKER: &str = ".bookend-demo";
/// Simulated time the killed child process should use.
const CHILD_CLOCK_ENV: &str = "BOOKEND_DEMO_NOW_MS";
const MINUTE: u64 = 60_000;

/// Makes `dir` ready for a fresh demo. A directory the demo made before
/// (its marker names the journal in it) may be replaced; anything else that
/// is not empty is refused, and so is any journal a writer has open.
fn prepare(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        return Ok(());
    }
    if std::fs::read_dir(dir)?.next().is_none() {
        return Ok(());
    }
    let fs: Arc<dyn bookend_journal::fs::Fs> = Arc::new(StdFs);
    // Holding the journal's lock while removing it: no writer can start in
    // it meanwhile, and a running one makes this fail.
    let locked = bookend_journal::LockedDir::lock(fs, dir).with_context(|| {
        format!("{} holds a journal in use; the demo never touches a live journal", dir.display())
    })?;
    let made_by_demo = std::fs::read_to_string(dir.join(DEMO_MARKER)).ok().and_then(|m| {
        let id = m.lines().find_map(|l| l.strip_prefix("journal "))?.trim().to_string();
        Some(Some(id) == locked.journal_id().ok().flatten().map(|id| id.to_string()))
    });
    if made_by_demo != Some(true) {
        bail!("{} is not empty and was not made by the demo; choose another --dir", dir.display());
    }
    std::fs::remove_dir_all(dir)
        .with_context(|| format!("removing the previous demo in {}", dir.display()))?;
    drop(locked);
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Marks `dir` as the demo's own, naming its journal, so a rerun may replace it.
fn mark(dir: &Path, journal: &SessionJournal) -> anyhow::Result<()> {
    let text = format!(
        "made by `bookend demo`; a rerun of the demo replaces it\njournal {}\n",
        journal.journal_id()
    );
    std::fs::write(dir.join(DEMO_MARKER), text)?;
    Ok(())
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> anyhow::Result<SessionJournal> {
    let options = SessionJournalOptions { clock: clock.clone(), ..SessionJournalOptions::default() };
    SessionJournal::open(dir, options).with_context(|| format!("opening the journal in {}", dir.display()))
}

fn user(id: &str, key: &str, platform: &str) -> Start {
    Start::new(id).key(key).platform(platform).user_id(id.split('-').next().unwrap_or(id))
}

fn step(n: u32, title: &str) {
    println!("\n{n}. {title}");
}

pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    prepare(dir)?;
    println!("bookend demo — a simulated gateway on a fresh journal in {}", dir.display());
    let clock = ManualClock::new(bookend_projector::Clock::now_ms(&SystemClock));
    let journal = open(dir, &clock)?;
    mark(dir, &journal)?;
    users_start_chatting(&journal)?;
    resets(&journal, &clock)?;
    idle_expiry(&journal, &clock)?;
    let journal = restart_and_crash(dir, journal, &clock)?;
    consumer_catches_up(&journal)?;
    shutdown_and_verify(dir, journal)
}

fn users_start_chatting(journal: &SessionJournal) -> anyhow::Result<()> {
    step(1, "Five users start chatting");
    for (id, key, platform) in [
        ("alice-1", "telegram:alice", "telegram"),
        ("bob-1", "telegram:bob", "telegram"),
        ("carol-1", "discord:carol", "discord"),
        ("dave-1", "discord:dave", "discord"),
        ("erin-1", "slack:erin", "slack"),
    ] {
        let ack = journal.start(user(id, key, platform))?.wait()?;
        println!("   session:start {id:<8} on {key:<15} (LSN {})", ack.lsn.unwrap_or(0));
    }
    let mut hooks = journal.subscribe("memory-hooks")?;
    let mut seen = 0;
    while let Some(event) = hooks.try_next()? {
        hooks.ack(event.lsn)?;
        seen += 1;
    }
    println!("   the memory-hooks consumer reads {seen} events, acknowledges them, then stops reading");
    Ok(())
}

fn resets(journal: &SessionJournal, clock: &ManualClock) -> anyhow::Result<()> {
    step(2, "Alice types /new");
    clock.advance(2 * MINUTE);
    let end = journal.end("alice-1", EndReason::ManualReset)?.wait()?;
    println!("   session:end   alice-1  reason manual_reset (LSN {})", end.lsn.unwrap_or(0));
    journal.start(user("alice-2", "telegram:alice", "telegram"))?.wait()?;
    println!("   session:start alice-2");

    step(3, "Bob's stale session is auto-reset by his next message");
    clock.advance(3 * MINUTE);
    let ack = journal.start(user("bob-2", "telegram:bob", "telegram"))?.wait()?;
    for e in &ack.events {
        println!("   {}", e.to_json());
    }
    println!("   (end and start are one atomic batch: no consumer ever sees one without the other)");
    Ok(())
}

fn idle_expiry(journal: &SessionJournal, clock: &ManualClock) -> anyhow::Result<()> {
    step(4, "Carol and Dave keep chatting; Erin goes quiet; 35 minutes later the expiry watcher runs");
    for _ in 0..3 {
        clock.advance(10 * MINUTE);
        journal.touch("carol-1")?.wait()?;
        journal.touch("dave-1")?.wait()?;
    }
    clock.advance(5 * MINUTE);
    let expired = journal.expire(clock.now(), ResetPolicy::idle(30))?.wait()?;
    for e in &expired.events {
        println!("   session:end   {:<8} reason idle_expiry", e.body.session_id().unwrap_or("?"));
    }

    step(5, "Memory hooks run once for every expired session");
    for round in 1..=2 {
        let pending = journal.pending_finalization()?;
        println!("   watcher tick {round}: {} sessions pending finalization", pending.len());
        for s in pending {
            journal.mark_flushed(s.id(), "memory")?.wait()?;
            journal.finalized(s.id())?.wait()?;
            println!("   flushed memory of {} and recorded session:expiry_finalized", s.id());
        }
    }
    Ok(())
}

/// Closes for a restart, lets a child process resume and be killed -9,
/// and returns the journal the next process opens.
fn restart_and_crash(
    dir: &Path,
    journal: SessionJournal,
    clock: &Arc<ManualClock>,
) -> anyhow::Result<SessionJournal> {
    step(6, "The gateway restarts, keeping its sessions — and the new process is killed with SIGKILL");
    journal.close(CloseReason::Restart, Sessions::Keep)?;
    drop(journal);
    clock.advance(MINUTE);
    let (pid, started) = run_child_and_kill(dir, clock.now())?;
    println!(
        "   a gateway process (pid {pid}) resumed the kept sessions, started {}, and was killed -9",
        started.join(" and ")
    );

    step(7, "The next process opens the journal and recovers");
    clock.advance(MINUTE);
    let journal = open(dir, clock)?;
    let report = journal.open_report().clone();
    println!(
        "   unclean shutdown found: {}; ended as crash_recovered in the journal:open batch:",
        report.unclean
    );
    println!("   {}", report.crash_recovered.join(", "));
    for (id, key, platform) in
        [("carol-2", "discord:carol", "discord"), ("frank-2", "telegram:frank", "telegram")]
    {
        journal.start(user(id, key, platform))?.wait()?;
        println!("   session:start {id} (the user comes back)");
    }
    Ok(journal)
}

fn consumer_catches_up(journal: &SessionJournal) -> anyhow::Result<()> {
    step(8, "The memory-hooks consumer comes back and catches up from disk");
    let mut hooks = journal.subscribe("memory-hooks")?;
    let behind = journal.journal().durable_lsn().saturating_sub(hooks.acked().unwrap_or(0));
    let mut ends = 0;
    while let Some(event) = hooks.try_next()? {
        ends += usize::from(event.body.type_name() == "session:end");
        hooks.ack(event.lsn)?;
    }
    println!(
        "   it was {behind} events behind; it read them in order, {ends} of them session:end, and is now caught up"
    );
    Ok(())
}

fn shutdown_and_verify(dir: &Path, journal: SessionJournal) -> anyhow::Result<ExitCode> {
    step(9, "Graceful shutdown");
    let closed = journal.close(CloseReason::Shutdown, Sessions::End)?;
    println!("   one batch: {} session:end (shutdown) and journal:close", closed.events.len() - 1);
    drop(journal);

    step(10, "bookend verify");
    let audit = bookend_projector::verify(Arc::new(StdFs), dir, |_| {})?;
    let mut out = std::io::stdout().lock();
    print_verify_report(&mut out, &audit)?;
    if audit.exit_code() == 0 && audit.open_sessions == 0 && audit.spans == audit.ends {
        writeln!(
            out,
            "\nEvery one of the {} spans was closed by exactly one session:end. Nothing leaked.",
            audit.spans
        )?;
    }
    writeln!(
        out,
        "Try: bookend sessions --dir {0}   ·   bookend tail --dir {0} --type session:end",
        dir.display()
    )?;
    Ok(ExitCode::from(audit.exit_code() as u8))
}

/// Runs `bookend demo-child`, waits until it has started its sessions, and
/// kills it with SIGKILL. Returns its pid and the sessions it started.
fn run_child_and_kill(dir: &Path, now_ms: u64) -> anyhow::Result<(u32, Vec<String>)> {
    let exe = std::env::current_exe().context("finding the bookend executable")?;
    let mut child = std::process::Command::new(exe)
        .args(["demo-child", "--dir"])
        .arg(dir)
        .env(CHILD_CLOCK_ENV, now_ms.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the demo gateway process")?;
    let pid = child.id();
    let mut started = Vec::new();
    let stdout = child.stdout.take().context("no stdout from the demo gateway")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match line.strip_prefix("started ") {
            Some(id) => started.push(id.to_string()),
            None if line == "ready" => break,
            None => {}
        }
    }
    child.kill().context("killing the demo gateway")?;
    child.wait()?;
    Ok((pid, started))
}

/// The gateway process the demo kills: resumes the kept sessions, starts
/// two more, says `ready`, and waits for its end.
pub fn child(dir: &Path) -> anyhow::Result<ExitCode> {
    let now = std::env::var(CHILD_CLOCK_ENV).ok().and_then(|v| v.parse().ok());
    let clock = ManualClock::new(now.unwrap_or_else(|| bookend_projector::Clock::now_ms(&SystemClock)));
    let journal = open(dir, &clock)?;
    let mut out = std::io::stdout().lock();
    for (id, key) in [("frank-1", "telegram:frank"), ("grace-1", "discord:grace")] {
        journal.start(user(id, key, key.split(':').next().unwrap_or("chat")))?.wait()?;
        writeln!(out, "started {id}")?;
    }
    journal.touch("carol-1")?.wait()?;
    writeln!(out, "ready")?;
    out.flush()?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
