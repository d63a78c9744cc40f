//! The read-only and maintenance commands: `sessions`, `verify`, `stats`
//! (fold the journal in memory; safe while a writer runs), `repair` and
//! `replay` (need the journal to themselves).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bookend_journal::fs::{Fs, StdFs};
use bookend_projector::{Inspection, SessionState, VerifyReport};
use serde_json::{Value, json};

use crate::output::{progress, require_journal_dir, safe, time};

fn fs() -> Arc<dyn Fs> {
    Arc::new(StdFs)
}

/// Which sessions `bookend sessions` lists.
pub struct SessionFilter {
    pub active: bool,
    pub key: Option<String>,
    pub limit: Option<usize>,
}

pub fn sessions(dir: &Path, filter: SessionFilter, as_json: bool) -> anyhow::Result<ExitCode> {
    require_journal_dir(dir)?;
    let bar = progress("reading the journal");
    let journal =
        Inspection::open_with_progress(fs(), dir, |lsn| bar.set(lsn)).context("folding the journal")?;
    bar.finish();
    let keep = |s: &SessionState| {
        (!filter.active || s.active) && filter.key.as_deref().is_none_or(|k| s.key() == Some(k))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut shown, mut active) = (0u64, 0u64);
    if !as_json {
        write_session_header(&mut out)?;
    }
    journal.for_each_in_start_order(keep, filter.limit, |s| {
        shown += 1;
        active += u64::from(s.active);
        let written = if as_json { writeln!(out, "{}", s.to_json()) } else { write_session_row(&mut out, s) };
        written.map_err(|e| bookend_projector::Error::Io { op: "write", path: "stdout".into(), source: e })
    })?;
    if !as_json {
        let more = if filter.limit.is_some_and(|l| shown as usize == l) { " (--limit reached)" } else { "" };
        writeln!(out, "{shown} sessions shown ({active} active){more}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

const SESSION_COLUMNS: [&str; 9] = [
    "SESSION",
    "KEY",
    "PLATFORM",
    "STATE",
    "STARTED (UTC)",
    "LAST ACTIVITY (UTC)",
    "ENDED (UTC)",
    "END REASON",
    "SPANS",
];

fn write_session_header(out: &mut impl Write) -> std::io::Result<()> {
    let c = SESSION_COLUMNS;
    writeln!(
        out,
        "{:<38} {:<24} {:<10} {:<6} {:<19} {:<19} {:<19} {:<16} {:>5}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
    )
}

/// One row, in start order; every text from the journal escaped.
fn write_session_row(out: &mut impl Write, s: &SessionState) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<38} {:<24} {:<10} {:<6} {:<19} {:<19} {:<19} {:<16} {:>5}",
        safe(s.id()),
        safe(s.key().unwrap_or("-")),
        safe(s.start.platform.as_deref().unwrap_or("-")),
        if s.active { "active" } else { "ended" },
        time(s.started_at),
        time(s.last_activity_at),
        s.ended_at.map_or_else(|| "-".to_string(), time),
        safe(s.end_reason.as_ref().map_or("-", |r| r.as_str())),
        s.spans
    )
}

pub fn verify_report_json(r: &VerifyReport) -> Value {
    json!({
        "clean": r.exit_code() == 0,
        "journal_id": r.journal_id.map(|id| id.to_string()),
        "segments": r.segments,
        "frames": r.frames,
        "events": r.events,
        "sessions": r.sessions,
        "spans": r.spans,
        "ends": r.ends,
        "ends_by_reason": r.ends_by_reason,
        "open_sessions": r.open_sessions,
        "open_session_ids": r.open_session_ids,
        "epoch": r.epoch,
        "epoch_open": r.epoch_open,
        "violations_total": r.violations_total,
        "violations": r.violations.iter().map(|v| json!({"lsn": v.lsn, "session_id": v.session_id, "message": v.message})).collect::<Vec<_>>(),
        "torn_tail": r.torn_tail.as_ref().map(|t| json!({"segment": t.segment, "offset": t.offset, "bytes": t.bytes, "reason": t.reason})),
        "corruption": r.corruption.as_ref().map(|c| json!({"segment": c.segment, "offset": c.offset, "reason": c.reason})),
        "data_loss": r.data_loss.as_ref().map(|d| json!({"found_lsn": d.found_lsn, "expected_lsn": d.expected_lsn, "evidence": d.evidence})),
        "accepted_losses": r.accepted_losses.iter().map(|(f, t)| json!({"lost_from": f, "lost_to": t})).collect::<Vec<_>>(),
    })
}

/// The human report of `verify`.
pub fn print_verify_report(out: &mut impl Write, r: &VerifyReport) -> std::io::Result<()> {
    print_verify_counts(out, r)?;
    print_verify_findings(out, r)?;
    print_verify_damage(out, r)?;
    match r.exit_code() {
        0 => writeln!(out, "OK: every frame checks out and every lifecycle invariant holds"),
        1 => writeln!(out, "FAILED: {} lifecycle violation(s)", r.violations_total),
        _ if r.data_loss.is_some() && r.corruption.is_none() => {
            writeln!(out, "FAILED: acknowledged data is missing")
        }
        _ => writeln!(out, "FAILED: the journal is corrupt"),
    }
}

/// What the journal holds: segments, events, sessions and their ends.
fn print_verify_counts(out: &mut impl Write, r: &VerifyReport) -> std::io::Result<()> {
    if let Some(id) = &r.journal_id {
        writeln!(out, "journal id: {id}")?;
    }
    writeln!(
        out,
        "journal: {} segments, {} frames checked, {} events, epoch {}{}",
        r.segments,
        r.frames,
        r.events,
        r.epoch,
        if r.epoch_open { " (open: a writer is running or crashed)" } else { " (closed)" }
    )?;
    writeln!(
        out,
        "sessions: {}, spans: {}, ends: {}, open: {}",
        r.sessions, r.spans, r.ends, r.open_sessions
    )?;
    for (reason, n) in &r.ends_by_reason {
        writeln!(out, "  ended {}: {n}", safe(reason))?;
    }
    if r.open_sessions > 0 {
        let shown: Vec<_> = r.open_session_ids.iter().map(|id| safe(id)).collect();
        let more = if r.open_sessions as usize > r.open_session_ids.len() { ", …" } else { "" };
        writeln!(out, "  open sessions: {}{more}", shown.join(", "))?;
    }
    Ok(())
}

/// What is worth knowing but harmless: a torn tail, violations, accepted losses.
fn print_verify_findings(out: &mut impl Write, r: &VerifyReport) -> std::io::Result<()> {
    if let Some(t) = &r.torn_tail {
        writeln!(
            out,
            "torn tail: {} bytes at offset {} of {} ({}); the next writer truncates it, nothing acknowledged is in it",
            t.bytes,
            t.offset,
            t.segment.display(),
            t.reason
        )?;
    }
    for v in &r.violations {
        let session = v.session_id.as_ref().map(|s| format!(" (session {})", safe(s))).unwrap_or_default();
        writeln!(out, "VIOLATION at LSN {}{session}: {}", v.lsn, safe(&v.message))?;
    }
    for (from, to) in &r.accepted_losses {
        writeln!(out, "accepted loss: LSNs {from}..={to} were lost and accepted with --accept-data-loss")?;
    }
    Ok(())
}

/// Damage that stops a writer: corruption and missing acknowledged data.
fn print_verify_damage(out: &mut impl Write, r: &VerifyReport) -> std::io::Result<()> {
    if let Some(c) = &r.corruption {
        writeln!(out, "CORRUPTION in {} at byte offset {}: {}", c.segment.display(), c.offset, c.reason)?;
        writeln!(
            out,
            "  run `bookend repair --dir …` (with no writer running) to move the damaged bytes into quarantine"
        )?;
    }
    if let Some(d) = &r.data_loss {
        writeln!(
            out,
            "DATA LOSS: the journal ends at LSN {} but LSN {} was durable ({})",
            d.found_lsn, d.expected_lsn, d.evidence
        )?;
        writeln!(out, "  restore the missing segment files from a backup, or open with --accept-data-loss")?;
    }
    Ok(())
}

pub fn verify(dir: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    require_journal_dir(dir)?;
    let bar = progress("verifying");
    let report = bookend_projector::verify(fs(), dir, |lsn| bar.set(lsn))?;
    bar.finish();
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", verify_report_json(&report))?;
    } else {
        print_verify_report(&mut out, &report)?;
    }
    Ok(ExitCode::from(report.exit_code() as u8))
}

pub fn repair(dir: &Path) -> anyhow::Result<ExitCode> {
    require_journal_dir(dir)?;
    let report = bookend_journal::repair(&StdFs, dir).context("repairing the journal")?;
    let mut out = std::io::stdout().lock();
    print_repair_report(&mut out, &report)?;
    Ok(if report.lost_acknowledged() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn lsns(range: Option<(u64, u64)>) -> String {
    range.map_or_else(|| "no readable LSN".to_string(), |(f, t)| format!("LSNs {f}..={t}"))
}

/// What `repair` did, byte range by byte range.
fn print_repair_report(out: &mut impl Write, report: &bookend_journal::RepairReport) -> std::io::Result<()> {
    for h in &report.headers_rewritten {
        writeln!(
            out,
            "rewrote the header of {} ({} byte(s) differed; the old header is saved in {}); no frame was moved",
            h.segment.display(),
            h.changed_bytes.len(),
            h.saved_to.display()
        )?;
    }
    if let Some(t) = &report.torn_tail {
        writeln!(
            out,
            "truncated a torn tail of {} bytes at offset {} of {}",
            t.bytes,
            t.offset,
            t.segment.display()
        )?;
        if let Some(saved) = &t.saved_to {
            writeln!(out, "  the bytes are saved in {}", saved.display())?;
        }
    }
    for m in &report.moved {
        writeln!(
            out,
            "moved bytes {}..{} of {} ({}) to {}{}",
            m.bytes.0,
            m.bytes.1,
            m.from.display(),
            lsns(m.lsns),
            m.to.display(),
            if m.acknowledged { " — ACKNOWLEDGED data was in them" } else { "" }
        )?;
        writeln!(out, "  because: {}", m.reason)?;
    }
    if let Some(what) = &report.unresolved {
        writeln!(out, "NOT REPAIRED: {what}")?;
        return Ok(());
    }
    if report.moved.is_empty() && report.torn_tail.is_none() && report.headers_rewritten.is_empty() {
        writeln!(out, "nothing to repair")?;
    }
    if report.lost_acknowledged() {
        writeln!(
            out,
            "acknowledged LSNs were moved aside; the journal opens again only with --accept-data-loss"
        )?;
    } else {
        writeln!(out, "the journal opens again; the next LSN is {}", report.next_lsn)?;
    }
    Ok(())
}

pub fn replay(dir: &Path) -> anyhow::Result<ExitCode> {
    require_journal_dir(dir)?;
    let bar = progress("replaying");
    let report = bookend_projector::replay(dir)
        .context("replay compares the checkpoint with the journal and needs it to itself")?;
    bar.finish();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rebuilt {} sessions from LSN 1 to {}; checkpoint at LSN {}",
        report.sessions,
        report.last_lsn,
        report.checkpoint_lsn.map_or_else(|| "none".into(), |l| l.to_string())
    )?;
    if report.identical {
        writeln!(out, "OK: checkpoint + tail is byte-identical to the rebuild")?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in &report.differences {
        writeln!(out, "DIFFERENCE: {}", safe(d))?;
    }
    writeln!(
        out,
        "FAILED: the checkpoint differs; delete {}/{} and the next open rebuilds it",
        dir.display(),
        bookend_projector::STORE_DIR_NAME
    )?;
    Ok(ExitCode::FAILURE)
}

pub fn stats(dir: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    require_journal_dir(dir)?;
    let journal = Inspection::open(dir).context("folding the journal")?;
    let segments = journal.segments()?;
    let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let meta = journal.meta();
    let last_lsn = meta.last_lsn;
    let active = meta.active.len() as u64;
    let ended = meta.sessions_total - active;
    let journal_id = journal.journal_id();
    let consumers: Vec<Value> = journal.consumers()?.into_iter().map(|c| c.to_json()).collect();
    let open_epochs = journal.open_epochs();
    let epochs_json: Vec<Value> = open_epochs.iter().map(|e| e.to_json()).collect();
    let stats = json!({
        "journal_id": journal_id.map(|id| id.to_string()),
        "segments": segments.len(),
        "bytes": bytes,
        "events": last_lsn,
        "epoch": meta.epoch,
        "epoch_open": meta.epoch_open,
        "sessions": {"total": meta.sessions_total, "active": active, "ended": ended,
                     "awaiting_finalization": meta.awaiting_finalization.len()},
        "ends_by_reason": meta.ends_by_reason,
        "open_epochs": epochs_json,
        "consumers": consumers,
    });
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{stats}")?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = journal_id {
        writeln!(out, "journal id: {id}")?;
    }
    writeln!(out, "segments: {} ({} bytes)", segments.len(), bytes)?;
    writeln!(
        out,
        "events: {last_lsn} (epoch {}{})",
        meta.epoch,
        if meta.epoch_open { ", open" } else { ", closed" }
    )?;
    writeln!(
        out,
        "sessions: {} total, {active} active, {ended} ended, {} awaiting finalization",
        meta.sessions_total,
        meta.awaiting_finalization.len()
    )?;
    for (reason, n) in &meta.ends_by_reason {
        writeln!(out, "  ended {}: {n}", safe(reason))?;
    }
    for e in &open_epochs {
        let (epoch, pid, owned) = (e.epoch, e.pid, e.sessions_owned);
        writeln!(out, "open epoch {epoch}: pid {pid} on {}, {owned} active sessions owned", safe(&e.host))?;
    }
    if consumers.is_empty() {
        writeln!(out, "consumers: none")?;
    }
    for c in &consumers {
        let name = safe(c["name"].as_str().unwrap_or("?"));
        match c["error"].as_str() {
            Some(error) => writeln!(out, "consumer {name}: ERROR {error}")?,
            None => writeln!(out, "consumer {name}: acked LSN {}, lag {} events", c["acked_lsn"], c["lag"])?,
        }
    }
    Ok(ExitCode::SUCCESS)
}
