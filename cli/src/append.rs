//! `bookend append`: JSON-lines commands in, JSON-lines acks out, in order.
//!
//! The parsing thread validates each command as it arrives and hands the
//! commands already read to the submitting thread together, as one batch,
//! whenever the input has no more ready (so many are in flight and share
//! one write and one fsync, and a command typed alone is submitted at
//! once); the printing thread waits for each in input order and prints its
//! ack only once it is durable. The windows between them are bounded.
//!
//! A polite stop is not a crash: on SIGTERM, SIGINT or a closed stdout the
//! reader stops taking commands, everything already submitted is waited
//! for (and acknowledged while stdout works), and the journal is closed
//! with `restart`/`kept`, so the next open finds a clean epoch.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bookend_journal::Durability;
use bookend_projector::{
    Ack, CloseReason, Command, CommandLine, OnUnclean, Pending, SessionJournal, SessionJournalOptions,
    Sessions, parse_command_text,
};

use crate::ack_line::write_ack;
use crate::output::error_ack;

/// Commands in flight between reading and printing.
const WINDOW: usize = 4096;
/// Commands submitted as one batch, at most.
const BATCH_MAX: usize = 1024;
/// The input buffer: commands already in it are submitted together.
const INPUT_BUFFER_BYTES: usize = 256 * 1024;
/// The longest command line accepted.
pub const LINE_MAX_BYTES: usize = 1024 * 1024;

enum Item {
    Pending {
        pending: Pending<Ack>,
    },
    Refused {
        line: u64,
        kind: &'static str,
        message: String,
    },
    Close {
        line: u64,
        reason: CloseReason,
        sessions: Sessions,
    },
    EndOfInput,
    /// A signal arrived: stop reading and close.
    Signal(i32),
}

/// What the reader and the printer share to stop reading at a clean point:
/// the reader submits and enqueues a command under `gate`, and nothing
/// is submitted once `stopping` is set under it.
#[derive(Default)]
struct Input {
    gate: Mutex<()>,
    stopping: AtomicBool,
}

/// How the run ended, for the exit code.
enum Outcome {
    Done { ok: bool },
    Signalled(i32),
    StdoutClosed,
}

/// How `append` opens the journal.
pub struct Opening {
    pub durability: Option<Durability>,
    pub on_unclean: OnUnclean,
    pub accept_data_loss: bool,
    /// Beside other writer processes, checking for dead ones this often.
    pub shared: Option<std::time::Duration>,
}

pub fn run(dir: &Path, opening: Opening) -> anyhow::Result<ExitCode> {
    let Opening { durability, on_unclean, accept_data_loss, shared } = opening;
    let mut options = SessionJournalOptions { durability, on_unclean, ..SessionJournalOptions::default() };
    options.journal.accept_data_loss = accept_data_loss;
    if let Some(interval) = shared {
        options.journal.shared_writers = true;
        options.writer_check_interval = interval;
    }
    let journal = SessionJournal::open(dir, options)
        .with_context(|| format!("opening the journal in {}", dir.display()))?;
    let (tx, rx) = mpsc::sync_channel(WINDOW);
    let input = Arc::new(Input::default());
    watch_signals(tx.clone())?;
    let printer = {
        let (journal, input) = (journal.clone(), input.clone());
        std::thread::Builder::new()
            .name("bookend-acks".into())
            .spawn(move || print_acks(rx, &journal, &input))?
    };
    // Submitting (and, on a thread of its own, parsing) runs apart from
    // this thread: a stop must not wait for a line that may never come.
    let reader = {
        let (journal, input) = (journal.clone(), input.clone());
        std::thread::Builder::new()
            .name("bookend-submit".into())
            .spawn(move || read_commands(&journal, &input, tx))?
    };
    let outcome = printer.join().map_err(|_| anyhow::anyhow!("the ack printer thread panicked"))?;
    if let Outcome::Done { .. } = outcome {
        reader.join().map_err(|_| anyhow::anyhow!("the input thread panicked"))??;
    }
    Ok(match outcome {
        Outcome::Done { ok: true } => ExitCode::SUCCESS,
        Outcome::Done { ok: false } => ExitCode::FAILURE,
        Outcome::Signalled(signal) => {
            tracing::warn!(
                signal,
                "stopped by a signal; the journal was closed cleanly (restart, sessions kept)"
            );
            ExitCode::from(128 + signal as u8)
        }
        Outcome::StdoutClosed => {
            tracing::warn!(
                "stdout was closed; stopped reading input and closed the journal cleanly (restart, sessions kept)"
            );
            ExitCode::FAILURE
        }
    })
}

/// Sends `Item::Signal` on the first SIGTERM or SIGINT.
fn watch_signals(tx: SyncSender<Item>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let (mut term, mut int) = runtime.block_on(async {
        Ok::<_, std::io::Error>((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?))
    })?;
    std::thread::Builder::new().name("bookend-signals".into()).spawn(move || {
        let signal = runtime.block_on(async {
            tokio::select! {
                _ = term.recv() => 15,
                _ = int.recv() => 2,
            }
        });
        let _ = tx.send(Item::Signal(signal));
    })?;
    Ok(())
}

/// Commands parsed and waiting to be submitted, at most, in batches of up
/// to `BATCH_MAX`.
const PARSED_BATCHES_MAX: usize = 4;

/// What the parsing thread hands the submitting one, in input order.
enum Parsed {
    /// Commands to submit together.
    Batch(Waiting),
    /// A line that is not a command to submit: a refusal, a close.
    Item(Item),
    /// Reading stdin failed; nothing follows.
    Failed(std::io::Error),
}

/// Submits commands until the end of input, a read error, or a stop; then
/// tells the printer the input has ended (unless it is stopping). The
/// lines are read and parsed on a thread of their own, beside the
/// deciding: parsing was a fifth of this thread's time.
fn read_commands(journal: &SessionJournal, input: &Input, tx: SyncSender<Item>) -> anyhow::Result<()> {
    let (parsed_tx, parsed_rx) = mpsc::sync_channel(PARSED_BATCHES_MAX);
    // Not joined: on a stop it may be waiting for a line that never comes.
    std::thread::Builder::new().name("bookend-parse".into()).spawn(move || {
        if let Err(e) = parse_until_end(&parsed_tx) {
            let _ = parsed_tx.send(Parsed::Failed(e));
        }
    })?;
    let result = submit_parsed(journal, input, &tx, parsed_rx);
    let _gate = input.gate.lock().unwrap_or_else(|p| p.into_inner());
    if !input.stopping.load(Ordering::Acquire) {
        let _ = tx.send(Item::EndOfInput);
    }
    result.context("reading commands from stdin")
}

/// Submits what the parsing thread hands over, in order, until it is done
/// or the run stops.
fn submit_parsed(
    journal: &SessionJournal,
    input: &Input,
    tx: &SyncSender<Item>,
    parsed: Receiver<Parsed>,
) -> std::io::Result<()> {
    for next in parsed {
        match next {
            Parsed::Batch(mut waiting) => {
                if !waiting.submit(journal, input, tx) {
                    return Ok(());
                }
            }
            Parsed::Item(item) => {
                let _gate = input.gate.lock().unwrap_or_else(|p| p.into_inner());
                if input.stopping.load(Ordering::Acquire) || tx.send(item).is_err() {
                    return Ok(());
                }
            }
            Parsed::Failed(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads and parses lines until the end of input, handing them over in
/// order: commands wait while more input is already here, then go as one
/// batch; what is not a command goes after the commands before it.
fn parse_until_end(tx: &SyncSender<Parsed>) -> std::io::Result<()> {
    let mut stdin = std::io::BufReader::with_capacity(INPUT_BUFFER_BYTES, std::io::stdin().lock());
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut closed = false;
    let mut waiting = Waiting::default();
    while let Some(too_long) = read_line_bounded(&mut stdin, &mut buf, LINE_MAX_BYTES)? {
        line += 1;
        let item = if too_long {
            let message = format!("line is longer than {LINE_MAX_BYTES} bytes");
            Some(Item::Refused { line, kind: "oversize", message })
        } else if buf.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            parse(&buf, line, &mut closed, &mut waiting)
        };
        let due = item.is_some() || stdin.buffer().is_empty() || waiting.lines.len() >= BATCH_MAX;
        if due && !waiting.lines.is_empty() && tx.send(Parsed::Batch(std::mem::take(&mut waiting))).is_err() {
            return Ok(());
        }
        if let Some(item) = item
            && tx.send(Parsed::Item(item)).is_err()
        {
            return Ok(());
        }
    }
    if !waiting.lines.is_empty() {
        let _ = tx.send(Parsed::Batch(waiting));
    }
    Ok(())
}

/// Commands read and not yet submitted: they go to the journal together
/// (`execute_batch`: one hold of the command lock, one write, one fsync)
/// once the input has nothing more ready, or `BATCH_MAX` of them wait.
#[derive(Default)]
struct Waiting {
    lines: Vec<u64>,
    commands: Vec<CommandLine>,
}

impl Waiting {
    /// Submits them and enqueues their answers in order; false once the
    /// run is stopping (nothing is submitted then) or the printer is gone.
    fn submit(&mut self, journal: &SessionJournal, input: &Input, tx: &SyncSender<Item>) -> bool {
        if self.lines.is_empty() {
            return true;
        }
        let _gate = input.gate.lock().unwrap_or_else(|p| p.into_inner());
        if input.stopping.load(Ordering::Acquire) {
            return false;
        }
        let lines = std::mem::take(&mut self.lines);
        let answers = match journal.execute_batch(std::mem::take(&mut self.commands)) {
            Ok(answers) => answers,
            Err(e) => {
                let refuse = |line| Item::Refused { line, kind: e.kind(), message: e.to_string() };
                return lines.into_iter().all(|line| tx.send(refuse(line)).is_ok());
            }
        };
        lines.into_iter().zip(answers).all(|(line, answer)| {
            let item = match answer {
                Ok(pending) => Item::Pending { pending },
                Err(e) => Item::Refused { line, kind: e.kind(), message: e.to_string() },
            };
            tx.send(item).is_ok()
        })
    }
}

/// Validates one line: a command waits in `waiting`; anything else (a
/// refusal, a close) is returned to be enqueued after the waiting ones.
fn parse(bytes: &[u8], line: u64, closed: &mut bool, waiting: &mut Waiting) -> Option<Item> {
    let parsed = match parse_command_text(bytes) {
        Ok(p) => p,
        Err(e) => return Some(Item::Refused { line, kind: e.kind(), message: e.to_string() }),
    };
    if *closed {
        return Some(Item::Refused {
            line,
            kind: "closed",
            message: "the journal was closed by an earlier close command".into(),
        });
    }
    if let Command::Close { reason, sessions } = parsed.command {
        *closed = true;
        return Some(Item::Close { line, reason, sessions });
    }
    waiting.lines.push(line);
    waiting.commands.push(parsed);
    None
}

/// Acks printed so far, and whether stdout still takes them.
struct Printer {
    out: BufWriter<std::io::StdoutLock<'static>>,
    ok: bool,
    closed: bool,
    stdout_gone: bool,
}

impl Printer {
    /// Waits for one item and prints its ack; `Some` when the run stops here.
    fn handle(&mut self, item: Item, journal: &SessionJournal) -> Option<Outcome> {
        let ack = match item {
            Item::Pending { pending } => match pending.wait() {
                Ok(ack) => return self.print(|out| write_ack(out, &ack)),
                Err(e) => {
                    self.ok = false;
                    serde_json::json!({"ok": false, "error": {"kind": e.kind(), "message": e.to_string()}})
                }
            },
            Item::Refused { line, kind, message } => error_ack(line, kind, &message),
            Item::Close { line, reason, sessions } => {
                self.closed = true;
                match journal.close(reason, sessions) {
                    Ok(ack) => ack.to_json(),
                    Err(e) => {
                        self.ok = false;
                        error_ack(line, e.kind(), &e.to_string())
                    }
                }
            }
            Item::EndOfInput => return Some(Outcome::Done { ok: self.ok }),
            Item::Signal(signal) => return Some(Outcome::Signalled(signal)),
        };
        self.print(|out| writeln!(out, "{ack}"))
    }

    /// Writes one ack line while stdout takes them; `Some` once it does not.
    fn print(&mut self, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Option<Outcome> {
        if !self.stdout_gone && write(&mut self.out).is_err() {
            self.stdout_gone = true;
            return Some(Outcome::StdoutClosed);
        }
        None
    }
}

/// Prints acks in input order, then closes the journal (unless a `close`
/// command did), however the run ends.
fn print_acks(rx: Receiver<Item>, journal: &SessionJournal, input: &Input) -> Outcome {
    let out = BufWriter::new(std::io::stdout().lock());
    let mut printer = Printer { out, ok: true, closed: false, stdout_gone: false };
    let outcome = loop {
        let item = match rx.try_recv() {
            Ok(item) => item,
            Err(TryRecvError::Empty) => {
                // Nothing else is ready: let the reader see what is done.
                if printer.out.flush().is_err() {
                    printer.stdout_gone = true;
                    break Outcome::StdoutClosed;
                }
                match rx.recv() {
                    Ok(item) => item,
                    Err(_) => break Outcome::Done { ok: printer.ok },
                }
            }
            Err(TryRecvError::Disconnected) => break Outcome::Done { ok: printer.ok },
        };
        if let Some(outcome) = printer.handle(item, journal) {
            break outcome;
        }
    };
    if !matches!(outcome, Outcome::Done { .. }) {
        stop_reading(&rx, input, &mut printer, journal);
    }
    let _ = printer.out.flush();
    if !printer.closed
        && let Err(e) = journal.close(CloseReason::Restart, Sessions::Keep)
    {
        tracing::error!(error = %e, "closing the journal failed");
        return Outcome::Done { ok: false };
    }
    outcome
}

/// Stops the reader at a clean point and waits for (and acknowledges,
/// while stdout works) every command it submitted.
fn stop_reading(rx: &Receiver<Item>, input: &Input, printer: &mut Printer, journal: &SessionJournal) {
    loop {
        // The reader holds the gate only while it submits and enqueues one
        // command; keep draining so that it can finish and let go.
        if let Ok(_gate) = input.gate.try_lock() {
            input.stopping.store(true, Ordering::Release);
            break;
        }
        if let Ok(item) = rx.recv_timeout(Duration::from_millis(1)) {
            printer.handle(item, journal);
        }
    }
    // Whatever the reader enqueued before it saw the stop.
    while let Ok(item) = rx.recv_timeout(Duration::from_millis(1)) {
        printer.handle(item, journal);
    }
}

/// Reads one line into `buf` (without the newline), keeping at most `max`
/// bytes: a longer line is consumed and reported as too long. `None` at the
/// end of input.
fn read_line_bounded(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(any.then_some(too_long));
        }
        any = true;
        let (chunk, consumed, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        input.consume(consumed);
        if done {
            return Ok(Some(too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_line_bounded;

    #[test]
    fn long_lines_are_consumed_and_flagged() {
        let data = b"short\nthis line is too long\nok";
        let mut input = &data[..];
        let mut buf = Vec::new();
        assert_eq!(read_line_bounded(&mut input, &mut buf, 8).unwrap(), Some(false));
        assert_eq!(buf, b"short");
        assert_eq!(read_line_bounded(&mut input, &mut buf, 8).unwrap(), Some(true));
        assert_eq!(read_line_bounded(&mut input, &mut buf, 8).unwrap(), Some(false));
        assert_eq!(buf, b"ok");
        assert_eq!(read_line_bounded(&mut input, &mut buf, 8).unwrap(), None);
    }
}
