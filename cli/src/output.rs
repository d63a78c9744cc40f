//! Printing: error messages people can act on, JSON lines, progress bars
//! only when stderr is a terminal.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

/// Exit code for a damaged journal (as `verify` uses it).
pub const EXIT_CORRUPTION: u8 = 2;

/// Prints `error: …` with the cause chain; corruption and lost data exit 2.
/// A closed stdout (`bookend sessions | head`) is not an error: the reader
/// had enough, and the command exits 0 quietly.
pub fn report_error(e: &anyhow::Error) -> ExitCode {
    let broken_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<bookend_projector::Error>(), Some(bookend_projector::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {e:#}");
    let damaged = |j: &bookend_journal::Error| {
        matches!(j, bookend_journal::Error::Corruption { .. } | bookend_journal::Error::DataLoss { .. })
    };
    let corrupt = e.chain().any(|c| {
        c.downcast_ref::<bookend_journal::Error>().is_some_and(damaged)
            || matches!(c.downcast_ref::<bookend_projector::Error>(), Some(bookend_projector::Error::Journal(j)) if damaged(j))
    });
    if corrupt { ExitCode::from(EXIT_CORRUPTION) } else { ExitCode::FAILURE }
}

/// The JSON error ack of `bookend append`.
pub fn error_ack(line: u64, kind: &str, message: &str) -> Value {
    json!({"ok": false, "line": line, "error": {"kind": kind, "message": message}})
}

/// Refuses a directory that holds no journal (missing, empty, or holding
/// something else) rather than report it as an empty journal.
pub fn require_journal_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        anyhow::bail!("no journal in {}: the directory does not exist (check --dir)", dir.display());
    }
    if !bookend_journal::has_journal(&bookend_journal::fs::StdFs, dir)? {
        anyhow::bail!(bookend_journal::Error::NoJournal { dir: dir.to_path_buf() });
    }
    Ok(())
}

/// A spinner counting LSNs on stderr when it is a terminal; nothing
/// otherwise (not even a hidden bar: each update of one reads the clock,
/// 3.6% of `bookend verify`'s time when it was piped).
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// The last LSN done.
    pub fn set(&self, lsn: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(lsn);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

pub fn progress(message: &'static str) -> Progress {
    if !std::io::stderr().is_terminal() {
        return Progress(None);
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg}: LSN {pos} ({per_sec})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Progress(Some(bar))
}

/// Text from the journal made safe for a terminal: control characters
/// (ESC, CR, …) and bidirectional overrides are shown escaped (`\x1b`,
/// `\u{202e}`) and backslashes doubled, so a session id or reason cannot
/// move the cursor, recolour the screen or forge a line of output.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Milliseconds since the epoch as an RFC 3339-ish UTC time for tables.
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(1_763_719_200_000), "2025-11-21 10:00:00");
    }

    #[test]
    fn escapes_what_could_drive_a_terminal() {
        assert_eq!(super::safe("alice-1"), "alice-1");
        assert_eq!(super::safe("x\x1b[2K\rOK"), "x\\x1b[2K\\x0dOK");
        assert_eq!(super::safe("a\u{202e}b"), "a\\u{202e}b");
        // Backslashes are doubled, so an escape cannot be faked by text.
        assert_eq!(super::safe("a\\x1b"), "a\\\\x1b");
        assert_eq!(super::safe("a\\b\n"), "a\\\\b\\x0a");
    }
}
