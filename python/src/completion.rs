//! Commands from the asyncio event loop, which must never block: `submit`
//! only queues the command. A submitting thread runs each one (taking the
//! journal's command lock, which can wait for a checkpoint) and passes its
//! `Pending` to a completing thread, which waits for the disk in
//! submission order and calls each command's `resolve` with its answer.
//! Because the submitter runs ahead of the completer, every command waiting
//! rides the same fsync, as threads do.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bookend_projector::{Ack, CommandLine, Pending, SessionJournal};
use pyo3::prelude::*;
use serde_json::Value;

/// Commands queued and not yet answered, at most; a submit beyond it waits.
const QUEUE_MAX: usize = 65_536;

struct Job {
    journal: SessionJournal,
    line: CommandLine,
    resolve: Py<PyAny>,
}

type Answer = (Result<Pending<Ack>, Value>, Py<PyAny>);

#[derive(Default)]
pub struct Completer {
    state: Mutex<Option<Running>>,
}

struct Running {
    jobs: mpsc::SyncSender<Job>,
    threads: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Completer {
    /// Queues `line`; `resolve(ack_json, None)` or `resolve(None,
    /// error_json)` is called once it is durable or refused.
    pub fn submit(
        &self,
        journal: SessionJournal,
        line: CommandLine,
        resolve: Py<PyAny>,
    ) -> Result<(), &'static str> {
        let mut state = lock(&self.state);
        if state.is_none() {
            *state = Some(start().map_err(|_| "could not start the completion threads")?);
        }
        let Some(running) = state.as_ref() else { return Err("the journal is closing") };
        running.jobs.send(Job { journal, line, resolve }).map_err(|_| "the journal is closing")
    }

    /// Answers everything queued (waiting at most `limit`), then stops the
    /// threads. Called without the GIL: the threads need it to answer.
    pub fn drain(&self, limit: Duration) {
        let Some(running) = lock(&self.state).take() else { return };
        drop(running.jobs);
        let deadline = Instant::now() + limit;
        for thread in running.threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("asyncio commands still waiting for the disk after {limit:?}; closing anyway");
            }
        }
    }
}

fn start() -> std::io::Result<Running> {
    let (jobs, queued) = mpsc::sync_channel::<Job>(QUEUE_MAX);
    let (answers, waiting) = mpsc::channel::<Answer>();
    let submitter = std::thread::Builder::new()
        .name("bookend-py-submit".into())
        .spawn(move || submit_all(queued, answers))?;
    let completer = std::thread::Builder::new()
        .name("bookend-py-complete".into())
        .spawn(move || complete_all(waiting))?;
    Ok(Running { jobs, threads: vec![submitter, completer] })
}

fn submit_all(queued: Receiver<Job>, answers: Sender<Answer>) {
    for job in queued {
        let pending = job.journal.execute(job.line.command, job.line.at).map_err(|e| e.to_json());
        if answers.send((pending, job.resolve)).is_err() {
            return;
        }
    }
}

fn complete_all(waiting: Receiver<Answer>) {
    let mut carried: Option<Answer> = None;
    loop {
        let first = match carried.take() {
            Some(answer) => answer,
            None => match waiting.recv() {
                Ok(answer) => answer,
                Err(_) => return,
            },
        };
        // Wait for the first; every answer behind it that the same fsync
        // made durable is resolved with it, under one hold of the GIL.
        let mut done = vec![finish(first)];
        while let Ok(next) = waiting.try_recv() {
            if next.0.as_ref().is_ok_and(|p| !p.is_durable()) {
                carried = Some(next);
                break;
            }
            done.push(finish(next));
        }
        Python::attach(|py| {
            for (resolve, ack, error) in done {
                if let Err(e) = resolve.call1(py, (ack, error)) {
                    e.write_unraisable(py, None);
                }
            }
        });
    }
}

/// Waits for one answer: `(resolve, ack_json, error_json)`.
fn finish((pending, resolve): Answer) -> (Py<PyAny>, Option<String>, Option<String>) {
    match pending.and_then(|p| p.wait().map_err(|e| e.to_json())) {
        Ok(ack) => (resolve, Some(ack.to_json().to_string()), None),
        Err(e) => (resolve, None, Some(e.to_string())),
    }
}
