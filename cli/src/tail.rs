//! `bookend tail`: events as JSON lines, optionally following another
//! process's appends, optionally as a durable consumer.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use bookend_projector::{Event, Subscription};

use crate::output::require_journal_dir;

/// A consumer acknowledges at least this often while events stream.
const ACK_EVERY_EVENTS: u64 = 1000;
/// How often a follower polls the journal files of the writing process.
const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(10);

struct Printer {
    out: BufWriter<std::io::StdoutLock<'static>>,
    subscription: Subscription,
    since_ack: u64,
    last_printed: Option<u64>,
}

impl Printer {
    fn print(&mut self, event: &Event) -> anyhow::Result<()> {
        writeln!(self.out, "{}", event.to_json())?;
        self.last_printed = Some(event.lsn);
        self.since_ack += 1;
        if self.since_ack >= ACK_EVERY_EVENTS {
            self.ack()?;
        }
        Ok(())
    }

    /// Flushes stdout, then acknowledges everything read so far: a consumer
    /// never acknowledges an event before it was written out.
    fn ack(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        let read_through = self.subscription.next_lsn().saturating_sub(1);
        self.subscription.ack(read_through)?;
        self.since_ack = 0;
        Ok(())
    }

    /// Prints every event available now.
    fn drain(&mut self) -> anyhow::Result<()> {
        while let Some(event) = self.subscription.try_next()? {
            self.print(&event)?;
        }
        self.ack()
    }
}

pub fn run(
    dir: &Path,
    from: u64,
    follow: bool,
    consumer: Option<String>,
    types: Vec<String>,
) -> anyhow::Result<ExitCode> {
    require_journal_dir(dir)?;
    let subscription = match &consumer {
        Some(name) => Subscription::named_in_dir(dir, name)?,
        None => Subscription::from_lsn_in_dir(dir, from),
    };
    let type_refs: Vec<&str> = types.iter().map(String::as_str).collect();
    let subscription = if types.is_empty() { subscription } else { subscription.with_types(&type_refs)? };
    let subscription = subscription.with_poll_interval(FOLLOW_POLL_INTERVAL);
    let out = BufWriter::new(std::io::stdout().lock());
    let mut printer = Printer { out, subscription, since_ack: 0, last_printed: None };
    printer.drain()?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(follow_until_signal(&mut printer))?;
    Ok(ExitCode::SUCCESS)
}

async fn follow_until_signal(printer: &mut Printer) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            event = printer.subscription.next() => {
                printer.print(&event?)?;
                printer.drain()?;
            }
            _ = term.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    printer.ack()?;
    tracing::info!(last_lsn = ?printer.last_printed, "stopped following");
    Ok(())
}
