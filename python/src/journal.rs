//! `NativeJournal`: one open `SessionJournal`, held by a Python object.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bookend_journal::Durability;
use bookend_projector::{
    CloseReason, Command, OnUnclean, SessionJournal, SessionJournalOptions, SessionState, Sessions,
    StoreLocation, parse_command_text,
};
use pyo3::prelude::*;
use serde_json::{Value, json};

use crate::completion::Completer;
use crate::errors;
use crate::events::NativeEvents;

/// An open journal. Every method releases the GIL while it works.
#[pyclass(frozen, module = "bookend._native")]
pub struct NativeJournal {
    journal: Mutex<Option<SessionJournal>>,
    completer: Completer,
    dir: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a call failed with, before the GIL is taken back to raise it.
type Failure = Value;

fn failed(e: &bookend_projector::Error) -> Failure {
    e.to_json()
}

/// A refused command's answer in a batch: its error, with its index.
fn batch_error(index: usize, error: Value) -> Value {
    json!({"ok": false, "error": error, "index": index})
}

fn sessions_json(rows: &[SessionState]) -> String {
    Value::Array(rows.iter().map(SessionState::to_json).collect()).to_string()
}

fn options(
    durability: Option<&str>,
    on_unclean: &str,
    checkpoint_every_events: Option<u64>,
    clock_skew_max_ms: Option<u64>,
    store: bool,
) -> Result<SessionJournalOptions, String> {
    let mut options = SessionJournalOptions {
        durability: durability.map(str::parse::<Durability>).transpose()?,
        on_unclean: on_unclean.parse::<OnUnclean>()?,
        ..SessionJournalOptions::default()
    };
    if let Some(every) = checkpoint_every_events {
        if every == 0 {
            return Err("checkpoint_every_events must be at least 1".into());
        }
        options.checkpoint_every_events = every;
    }
    if let Some(skew) = clock_skew_max_ms {
        options.clock_skew_max_ms = skew;
    }
    if !store {
        options.store = StoreLocation::Disabled;
    }
    Ok(options)
}

impl NativeJournal {
    /// The open journal, or `closed`.
    fn open_journal(&self, py: Python<'_>) -> PyResult<SessionJournal> {
        match lock(&self.journal).as_ref() {
            Some(j) => Ok(j.clone()),
            None => Err(errors::kind(
                py,
                "closed",
                &format!("the journal {} is closed; open it again", self.dir.display()),
            )),
        }
    }

    /// Runs `work` on the open journal without the GIL; raises its failure.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&SessionJournal) -> Result<T, Failure> + Send,
    ) -> PyResult<T> {
        let journal = self.open_journal(py)?;
        py.detach(|| work(&journal)).map_err(|e| errors::from_json(py, &e))
    }
}

#[pymethods]
impl NativeJournal {
    #[new]
    /// `shared_writers_check_ms`: with a value, the journal is written
    /// beside other processes, checking for dead ones that often.
    #[pyo3(signature = (dir, durability=None, on_unclean="end", checkpoint_every_events=None, clock_skew_max_ms=None, store=true, shared_writers_check_ms=None))]
    // One argument per keyword of `bookend.open`.
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        dir: PathBuf,
        durability: Option<&str>,
        on_unclean: &str,
        checkpoint_every_events: Option<u64>,
        clock_skew_max_ms: Option<u64>,
        store: bool,
        shared_writers_check_ms: Option<u64>,
    ) -> PyResult<NativeJournal> {
        let mut options = options(durability, on_unclean, checkpoint_every_events, clock_skew_max_ms, store)
            .map_err(|m| errors::kind(py, "invalid_argument", &m))?;
        if let Some(ms) = shared_writers_check_ms {
            if !(10..=60_000).contains(&ms) {
                let message = format!("writer_check_ms {ms} must be between 10 and 60000");
                return Err(errors::kind(py, "invalid_argument", &message));
            }
            options.journal.shared_writers = true;
            options.writer_check_interval = Duration::from_millis(ms);
        }
        let opened = py.detach(|| SessionJournal::open(&dir, options).map_err(|e| failed(&e)));
        let journal = opened.map_err(|e| errors::from_json(py, &e))?;
        Ok(NativeJournal { journal: Mutex::new(Some(journal)), completer: Completer::default(), dir })
    }

    /// Runs one command (the JSON of the command language) and waits until
    /// it is durable; returns the ack's JSON.
    fn execute(&self, py: Python<'_>, command: &str) -> PyResult<String> {
        let line = parse_command_text(command.as_bytes()).map_err(|e| errors::lifecycle(py, &e))?;
        if matches!(line.command, Command::Close { .. }) {
            return Err(errors::kind(py, "invalid_command", "close the journal with close()"));
        }
        self.run(py, move |j| {
            let ack = j.execute(line.command, line.at).and_then(|p| p.wait()).map_err(|e| failed(&e))?;
            Ok(ack.to_json().to_string())
        })
    }

    /// Runs a JSON array of commands as one batch (one hold of the
    /// command lock, one fsync) and waits until all are durable; returns
    /// a JSON array with, for each command in order, its ack or
    /// `{"ok": false, "error": {...}, "index": i}`.
    fn execute_batch(&self, py: Python<'_>, commands: &str) -> PyResult<String> {
        let values: Vec<Value> = match bookend_projector::parse_json(commands.as_bytes()) {
            Ok(Value::Array(values)) => values,
            Ok(_) => return Err(errors::kind(py, "invalid_command", "a batch is a JSON array of commands")),
            Err(e) => return Err(errors::lifecycle(py, &e)),
        };
        let items: Vec<_> = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                bookend_projector::parse_command(value).map_err(|e| batch_error(i, e.to_json()))
            })
            .collect();
        let all = self.run(py, move |j| {
            let answers =
                j.execute_batch_among(items, |i, e| batch_error(i, e.to_json())).map_err(|e| failed(&e))?;
            let waited = answers.into_iter().enumerate().map(|(i, answer)| match answer {
                Ok(pending) => {
                    pending.wait().map_or_else(|e| batch_error(i, e.to_json()), |ack| ack.to_json())
                }
                Err(refused) => refused,
            });
            Ok(waited.collect::<Vec<Value>>())
        })?;
        Ok(Value::Array(all).to_string())
    }

    /// Submits one command without waiting: `resolve(ack_json, None)` or
    /// `resolve(None, error_json)` is called later from another thread
    /// (the asyncio face wraps it in `loop.call_soon_threadsafe`).
    fn submit(&self, py: Python<'_>, command: &str, resolve: Py<PyAny>) -> PyResult<()> {
        let line = parse_command_text(command.as_bytes()).map_err(|e| errors::lifecycle(py, &e))?;
        if matches!(line.command, Command::Close { .. }) {
            return Err(errors::kind(py, "invalid_command", "close the journal with close()"));
        }
        let journal = self.open_journal(py)?;
        self.completer.submit(journal, line, resolve).map_err(|m| errors::kind(py, "closed", m))
    }

    fn get(&self, py: Python<'_>, session_id: &str) -> PyResult<Option<String>> {
        let id = session_id.to_string();
        self.run(py, move |j| Ok(j.get(&id).map_err(|e| failed(&e))?.map(|s| s.to_json().to_string())))
    }

    /// Sessions in start order, filtered, at most `limit` of them.
    #[pyo3(signature = (active=None, key=None, end_reason=None, limit=None))]
    fn sessions(
        &self,
        py: Python<'_>,
        active: Option<bool>,
        key: Option<String>,
        end_reason: Option<String>,
        limit: Option<usize>,
    ) -> PyResult<String> {
        self.run(py, move |j| {
            let keeps = |s: &SessionState| {
                active.is_none_or(|a| s.active == a)
                    && key.as_deref().is_none_or(|k| s.key() == Some(k))
                    && end_reason
                        .as_deref()
                        .is_none_or(|r| s.end_reason.as_ref().map(|e| e.as_str()) == Some(r))
            };
            // With a limit, one page: at most `limit + 1` sessions decoded,
            // not the whole table.
            let rows = match limit {
                Some(limit) => j.sessions_page(0, limit, keeps).map(|page| page.sessions),
                None => j.sessions_where(keeps),
            };
            Ok(sessions_json(&rows.map_err(|e| failed(&e))?))
        })
    }

    fn pending_finalization(&self, py: Python<'_>) -> PyResult<String> {
        self.run(py, |j| Ok(sessions_json(&j.pending_finalization().map_err(|e| failed(&e))?)))
    }

    fn pending_flush(&self, py: Python<'_>, marker: &str) -> PyResult<String> {
        let marker = marker.to_string();
        self.run(py, move |j| Ok(sessions_json(&j.pending_flush(&marker).map_err(|e| failed(&e))?)))
    }

    fn stats(&self, py: Python<'_>) -> PyResult<String> {
        self.run(py, |j| Ok(j.stats().map_err(|e| failed(&e))?.to_string()))
    }

    /// What open found and did: the epoch, sessions recovered.
    fn open_report(&self, py: Python<'_>) -> PyResult<String> {
        self.run(py, |j| {
            let r = j.open_report();
            Ok(json!({
                "epoch": r.epoch,
                "unclean": r.unclean,
                "crash_recovered": r.crash_recovered,
                "from_checkpoint": r.from_checkpoint,
                "replayed_events": r.replayed_events,
                "open_millis": r.open_millis,
            })
            .to_string())
        })
    }

    /// Subscribes: as the named consumer (its durable cursor), or from an
    /// LSN without one.
    #[pyo3(signature = (consumer=None, types=None, from_lsn=None))]
    fn subscribe(
        &self,
        py: Python<'_>,
        consumer: Option<String>,
        types: Option<Vec<String>>,
        from_lsn: Option<u64>,
    ) -> PyResult<NativeEvents> {
        if consumer.is_some() && from_lsn.is_some() {
            let m = "a named consumer resumes after its cursor: give consumer or from_lsn, not both";
            return Err(errors::kind(py, "invalid_argument", m));
        }
        let subscription = self.run(py, move |j| {
            let sub = match &consumer {
                Some(name) => j.subscribe(name),
                None => j.subscribe_from(from_lsn.unwrap_or(1)),
            };
            let sub = sub.map_err(|e| failed(&e))?;
            match &types {
                Some(types) => {
                    let names: Vec<&str> = types.iter().map(String::as_str).collect();
                    sub.with_types(&names).map_err(|e| failed(&e))
                }
                None => Ok(sub),
            }
        })?;
        Ok(NativeEvents::new(subscription))
    }

    fn ack_consumer(&self, py: Python<'_>, consumer: &str, lsn: u64) -> PyResult<u64> {
        let name = consumer.to_string();
        self.run(py, move |j| j.ack_consumer(&name, lsn).map_err(|e| failed(&e)))
    }

    /// Closes the journal; the first call returns the close's ack JSON,
    /// later ones `None`. Waits for commands submitted by `submit` first.
    #[pyo3(signature = (reason="restart", sessions="keep"))]
    fn close(&self, py: Python<'_>, reason: &str, sessions: &str) -> PyResult<Option<String>> {
        let reason = match reason {
            "shutdown" => CloseReason::Shutdown,
            "restart" => CloseReason::Restart,
            other => {
                let m = format!("close reason {other:?}: use \"shutdown\" or \"restart\"");
                return Err(errors::kind(py, "invalid_argument", &m));
            }
        };
        let sessions = match sessions {
            "end" => Sessions::End,
            "keep" => Sessions::Keep,
            other => {
                let m = format!("close sessions={other:?}: use \"end\" or \"keep\"");
                return Err(errors::kind(py, "invalid_argument", &m));
            }
        };
        py.detach(|| self.completer.drain(Duration::from_secs(30)));
        let Some(journal) = lock(&self.journal).take() else { return Ok(None) };
        let closed = py.detach(move || journal.close(reason, sessions).map_err(|e| failed(&e)));
        closed.map(|ack| Some(ack.to_json().to_string())).map_err(|e| errors::from_json(py, &e))
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.journal).is_none()
    }

    #[getter]
    fn journal_id(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.open_journal(py)?.journal_id().to_string())
    }
}
