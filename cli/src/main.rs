//! The `bookend` command line. Until the CLI issue lands it offers one
//! command, `demo`, which writes a small journal and checks it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bookend_journal::{Batch, Durability, Journal, JournalOptions};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo(dir_arg(&args)?),
        _ => bail!("usage: bookend demo --dir DIR"),
    }
}

fn dir_arg(args: &[String]) -> Result<PathBuf> {
    let at = args.iter().position(|a| a == "--dir").context("missing --dir DIR")?;
    args.get(at + 1).map(PathBuf::from).context("--dir needs a directory")
}

fn demo(dir: PathBuf) -> Result<()> {
    let journal = Journal::open(&dir, JournalOptions::default())
        .with_context(|| format!("opening the journal in {}", dir.display()))?;
    let first = journal.next_lsn();
    for i in 0..100u32 {
        let batch = Batch::of(&("demo", i))?;
        journal.append_blocking(batch, Durability::Durable)?;
    }
    journal.close()?;
    drop(journal);
    let report = bookend_journal::check(std::sync::Arc::new(bookend_journal::fs::StdFs), &dir)?;
    println!(
        "journal {}: appended LSNs {first}..{}; check found {} events in {} segments, no corruption",
        dir.display(),
        report.next_lsn - 1,
        report.events_checked,
        report.segments
    );
    println!("(the session lifecycle demo arrives with the CLI issue)");
    Ok(())
}
