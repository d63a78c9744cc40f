//! `bookend append`: JSON-lines commands in, JSON-lines acks out, in order.
//!
//! The reading thread validates and submits each command as it arrives (so
//! many are in flight and durable ones share fsyncs); the printing thread
//! waits for each in input order and prints its ack only once it is
//! durable. The window between them is bounded.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, TryRecvError};

use anyhow::Context;
use bookend_journal::Durability;
use bookend_projector::{
    Ack, CloseReason, Command, OnUnclean, Pending, SessionJournal, SessionJournalOptions, Sessions,
    parse_command,
};

use crate::output::error_ack;
use crate::{DurabilityArg, OnUncleanArg};

/// Commands in flight between reading and printing.
const WINDOW: usize = 4096;
/// The longest command line accepted.
pub const LINE_MAX_BYTES: usize = 1024 * 1024;

enum Item {
    Pending { pending: Pending<Ack> },
    Refused { line: u64, kind: &'static str, message: String },
    Close { line: u64, reason: CloseReason, sessions: Sessions },
    EndOfInput,
}

pub fn run(
    dir: &Path,
    durability: Option<DurabilityArg>,
    on_unclean: OnUncleanArg,
) -> anyhow::Result<ExitCode> {
    let options = SessionJournalOptions {
        durability: durability.map(|d| match d {
            DurabilityArg::Durable => Durability::Durable,
            DurabilityArg::Buffered => Durability::Buffered,
        }),
        on_unclean: match on_unclean {
            OnUncleanArg::End => OnUnclean::End,
            OnUncleanArg::Keep => OnUnclean::Keep,
        },
        ..SessionJournalOptions::default()
    };
    let journal = SessionJournal::open(dir, options)
        .with_context(|| format!("opening the journal in {}", dir.display()))?;
    let (tx, rx) = mpsc::sync_channel(WINDOW);
    let printer = {
        let journal = journal.clone();
        std::thread::Builder::new().name("bookend-acks".into()).spawn(move || print_acks(rx, &journal))?
    };
    let mut input = std::io::stdin().lock();
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut closed = false;
    while let Some(too_long) = read_line_bounded(&mut input, &mut buf, LINE_MAX_BYTES)? {
        line += 1;
        if !too_long && buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let item = if too_long {
            Item::Refused {
                line,
                kind: "oversize",
                message: format!("line is longer than {LINE_MAX_BYTES} bytes"),
            }
        } else {
            submit(&journal, &buf, line, &mut closed)
        };
        if tx.send(item).is_err() {
            break;
        }
    }
    let _ = tx.send(Item::EndOfInput);
    drop(tx);
    let ok = printer.join().map_err(|_| anyhow::anyhow!("the ack printer thread panicked"))?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Validates one line and hands it to the journal.
fn submit(journal: &SessionJournal, bytes: &[u8], line: u64, closed: &mut bool) -> Item {
    let value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Item::Refused { line, kind: "malformed_json", message: e.to_string() },
    };
    let parsed = match parse_command(value) {
        Ok(p) => p,
        Err(e) => return Item::Refused { line, kind: e.kind(), message: e.to_string() },
    };
    if *closed {
        return Item::Refused {
            line,
            kind: "closed",
            message: "the journal was closed by an earlier close command".into(),
        };
    }
    if let Command::Close { reason, sessions } = parsed.command {
        *closed = true;
        return Item::Close { line, reason, sessions };
    }
    match journal.execute(parsed.command, parsed.at) {
        Ok(pending) => Item::Pending { pending },
        Err(e) => Item::Refused { line, kind: e.kind(), message: e.to_string() },
    }
}

/// Prints acks in input order; returns false if the journal failed.
fn print_acks(rx: Receiver<Item>, journal: &SessionJournal) -> bool {
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut ok = true;
    let mut closed = false;
    loop {
        let item = match rx.try_recv() {
            Ok(item) => item,
            Err(TryRecvError::Empty) => {
                // Nothing else is ready: let the reader see what is done.
                let _ = out.flush();
                match rx.recv() {
                    Ok(item) => item,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let ack = match item {
            Item::Pending { pending } => match pending.wait() {
                Ok(ack) => ack.to_json(),
                Err(e) => {
                    ok = false;
                    serde_json::json!({"ok": false, "error": {"kind": e.kind(), "message": e.to_string()}})
                }
            },
            Item::Refused { line, kind, message } => error_ack(line, kind, &message),
            Item::Close { line, reason, sessions } => {
                closed = true;
                match journal.close(reason, sessions) {
                    Ok(ack) => ack.to_json(),
                    Err(e) => {
                        ok = false;
                        error_ack(line, e.kind(), &e.to_string())
                    }
                }
            }
            Item::EndOfInput => {
                if !closed && let Err(e) = journal.close(CloseReason::Restart, Sessions::Keep) {
                    tracing::error!(error = %e, "closing the journal at end of input failed");
                    ok = false;
                }
                break;
            }
        };
        if writeln!(out, "{ack}").is_err() {
            // stdout is gone (the reader quit): nothing more can be reported.
            return false;
        }
    }
    let _ = out.flush();
    ok
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
