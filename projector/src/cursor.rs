//! Consumer cursors: one small file per named consumer under
//! `<journal>/consumers/`, replaced atomically, holding the last LSN the
//! consumer acknowledged and the id of the journal it belongs to.
//!
//! Cursor files are parsed strictly: anything but `<lsn> <journal id>\n`
//! (or, from bookend before journal ids, `<lsn>\n`) is an error for that
//! consumer alone, as is a cursor of another journal or one past the
//! journal's end. Every write goes through the journal's `Fs` seam, so the
//! power-loss simulation covers cursors too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bookend_journal::JournalId;
use bookend_journal::fs::{Fs, LockGuard, LockMode, create_dir_durably, read_small_file, write_atomically};

use crate::error::{Error, Result};

/// Sub-directory of the journal holding cursor files.
pub const CONSUMERS_DIR: &str = "consumers";
/// Longest consumer name, in bytes.
pub const CONSUMER_NAME_LEN_MAX: usize = 64;
/// The largest cursor file read: a cursor is one short line.
const CURSOR_FILE_SIZE_MAX_BYTES: usize = 128;

// Format: "<lsn> <journal id>\n": the LSN in decimal (no sign, no leading
// zeros but for 0 itself), one space, the journal id in its hyphenated form.
const CURSOR_SUFFIX: &str = ".cursor";

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Checks a consumer name: 1–64 bytes of letters, digits, `-`, `_` and `.`,
/// not starting with a dot. Names become file names, so nothing else passes.
pub fn validate_consumer_name(name: &str) -> Result<()> {
    let invalid =
        |reason: &str| Err(Error::InvalidConsumer { name: name.to_string(), reason: reason.to_string() });
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > CONSUMER_NAME_LEN_MAX {
        return invalid("it is longer than 64 bytes");
    }
    if name.starts_with('.') {
        return invalid("it starts with a dot");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return invalid("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{CURSOR_SUFFIX}"))
}

/// Parses a cursor file's text: the LSN and, unless written before journal
/// ids, the journal id. The error says what is wrong, for a person.
fn parse_cursor(text: &[u8]) -> std::result::Result<(u64, Option<JournalId>), String> {
    let text = std::str::from_utf8(text).map_err(|_| "it is not text".to_string())?;
    let line = text.strip_suffix('\n').ok_or("it does not end with a newline")?;
    let (lsn, id) = match line.split_once(' ') {
        Some((lsn, id)) => (lsn, Some(id)),
        None => (line, None),
    };
    let canonical =
        !lsn.is_empty() && lsn.bytes().all(|b| b.is_ascii_digit()) && (lsn == "0" || !lsn.starts_with('0'));
    if !canonical {
        return Err(format!("{lsn:?} is not an LSN"));
    }
    let lsn = lsn.parse::<u64>().map_err(|_| format!("{lsn:?} is out of range"))?;
    let id = match id {
        Some(id) => Some(JournalId::parse(id).ok_or_else(|| format!("{id:?} is not a journal id"))?),
        None => None,
    };
    Ok((lsn, id))
}

/// What a cursor file says, or why it cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorInfo {
    pub name: String,
    /// The last acknowledged LSN, or why the cursor is unusable.
    pub acked: std::result::Result<u64, String>,
}

/// Reads the cursor `name` of the journal `id` in `dir` (0 if there is
/// none), checking its form and identity.
fn read_cursor(fs: &dyn Fs, dir: &Path, name: &str, id: Option<JournalId>) -> Result<u64> {
    let path = cursor_path(dir, name);
    let Some(bytes) = read_small_file(fs, &path, CURSOR_FILE_SIZE_MAX_BYTES).map_err(io("read", &path))?
    else {
        return Ok(0);
    };
    let invalid =
        |reason: String| Error::InvalidCursor { name: name.to_string(), path: path.clone(), reason };
    let (lsn, found) = parse_cursor(&bytes).map_err(invalid)?;
    if let (Some(found), Some(expected)) = (found, id)
        && found != expected
    {
        return Err(Error::Journal(bookend_journal::Error::ForeignState {
            dir: dir.to_path_buf(),
            what: format!("the cursor of consumer {name:?} ({})", path.display()),
            expected: expected.to_string(),
            found: found.to_string(),
        }));
    }
    Ok(lsn)
}

/// Every consumer of the journal `id` in `journal_dir` and its
/// acknowledged LSN, or why its cursor cannot be used (read without taking
/// the consumers' locks). A directory that cannot be listed is an error.
pub fn list_consumers(fs: &dyn Fs, journal_dir: &Path, id: Option<JournalId>) -> Result<Vec<CursorInfo>> {
    let dir = journal_dir.join(CONSUMERS_DIR);
    if !fs.exists(&dir) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for path in fs.list_files(&dir).map_err(io("list", &dir))? {
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(name) = file.strip_suffix(CURSOR_SUFFIX) else { continue };
        let acked = read_cursor(fs, &dir, name, id).map_err(|e| e.to_string());
        out.push(CursorInfo { name: name.to_string(), acked });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A consumer as dashboards and `stats` show it: how far behind the
/// journal's end it is, or why its cursor cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStatus {
    pub name: String,
    pub acked: Option<u64>,
    /// Events after its cursor, up to `end_lsn`.
    pub lag: Option<u64>,
    /// Why the cursor cannot be used (garbage, another journal's, past the end).
    pub error: Option<String>,
}

impl ConsumerStatus {
    /// `{"name", "acked_lsn", "lag", "error"}`: a consumer as `bookend stats
    /// --json`, `GET /v1/stats` and `GET /v1/consumers` show it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "acked_lsn": self.acked, "lag": self.lag, "error": self.error})
    }
}

/// Every consumer of journal `id` in `journal_dir`, measured against the
/// journal's last LSN `end_lsn`. One bad cursor is that consumer's error;
/// the others are listed as usual.
pub fn consumer_statuses(
    fs: &dyn Fs,
    journal_dir: &Path,
    id: Option<JournalId>,
    end_lsn: u64,
) -> Result<Vec<ConsumerStatus>> {
    let statuses = list_consumers(fs, journal_dir, id)?.into_iter().map(|info| match info.acked {
        Ok(acked) if acked > end_lsn => ConsumerStatus {
            error: Some(Error::CursorAhead { name: info.name.clone(), acked, end: end_lsn }.to_string()),
            name: info.name,
            acked: Some(acked),
            lag: None,
        },
        Ok(acked) => {
            ConsumerStatus { name: info.name, acked: Some(acked), lag: Some(end_lsn - acked), error: None }
        }
        Err(reason) => ConsumerStatus { name: info.name, acked: None, lag: None, error: Some(reason) },
    });
    Ok(statuses.collect())
}

/// A named consumer's position: the last LSN it acknowledged. Held
/// exclusively (a lock the kernel releases on death) so two processes
/// cannot move one cursor.
pub struct ConsumerCursor {
    fs: Arc<dyn Fs>,
    name: String,
    dir: PathBuf,
    id: Option<JournalId>,
    acked: u64,
    _lock: LockGuard,
}

impl std::fmt::Debug for ConsumerCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerCursor").field("name", &self.name).field("acked", &self.acked).finish()
    }
}

impl ConsumerCursor {
    /// Opens (creating at 0) the cursor `name` of the journal `id` in
    /// `journal_dir`. A cursor past `end_lsn` (the journal's last LSN) means
    /// the journal lost what the consumer saw: `CursorAhead`.
    pub fn open(
        fs: Arc<dyn Fs>,
        journal_dir: &Path,
        name: &str,
        id: Option<JournalId>,
        end_lsn: Option<u64>,
    ) -> Result<ConsumerCursor> {
        validate_consumer_name(name)?;
        let dir = journal_dir.join(CONSUMERS_DIR);
        create_dir_durably(&*fs, &dir).map_err(io("create directory", &dir))?;
        let lock_path = dir.join(format!("{name}.lock"));
        let Some(lock) = fs.try_lock(&lock_path, LockMode::Exclusive).map_err(io("lock", &lock_path))? else {
            return Err(Error::ConsumerBusy { name: name.to_string() });
        };
        let acked = read_cursor(&*fs, &dir, name, id)?;
        if let Some(end) = end_lsn
            && acked > end
        {
            return Err(Error::CursorAhead { name: name.to_string(), acked, end });
        }
        Ok(ConsumerCursor { fs, name: name.to_string(), dir, id, acked, _lock: lock })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last acknowledged LSN (0: nothing yet).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Moves the cursor to `lsn` durably: write a temporary file, fsync it,
    /// rename it over the cursor, fsync the directory. Acks never move back.
    pub fn ack(&mut self, lsn: u64) -> Result<()> {
        if lsn <= self.acked {
            return Ok(());
        }
        let path = cursor_path(&self.dir, &self.name);
        let text = match self.id {
            Some(id) => format!("{lsn} {id}\n"),
            None => format!("{lsn}\n"),
        };
        write_atomically(&*self.fs, &path, text.as_bytes()).map_err(io("replace", &path))?;
        self.acked = lsn;
        Ok(())
    }
}

/// The highest LSN any trustworthy cursor of journal `id` in `journal_dir`
/// acknowledged, and whose it is: evidence that the journal had it durable.
pub(crate) fn cursor_evidence(
    fs: &dyn Fs,
    journal_dir: &Path,
    id: Option<JournalId>,
) -> Result<(u64, String)> {
    let mut best = (0, String::new());
    for info in list_consumers(fs, journal_dir, id)? {
        match info.acked {
            Ok(lsn) if lsn > best.0 => best = (lsn, format!("consumer {:?} acknowledged it", info.name)),
            Ok(_) => {}
            Err(reason) => {
                tracing::warn!(consumer = %info.name, %reason, "a consumer's cursor cannot be used")
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_files_are_parsed_strictly() {
        let id = JournalId::mint();
        assert_eq!(parse_cursor(format!("42 {id}\n").as_bytes()), Ok((42, Some(id))));
        assert_eq!(parse_cursor(b"0\n"), Ok((0, None)));
        for bad in
            ["", "42", "42 \n", "-1\n", "+4\n", "007\n", "18446744073709551616\n", "4 2\n", "x\n", "42\n\n"]
        {
            assert!(parse_cursor(bad.as_bytes()).is_err(), "{bad:?} was accepted");
        }
    }
}
