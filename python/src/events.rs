//! `NativeEvents`: a subscription, read from Python a batch at a time.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bookend_projector::Subscription;
use pyo3::prelude::*;

use crate::errors;

/// Events after a consumer's cursor (or an LSN), durable only: what is on
/// disk first, then live ones as they become durable.
#[pyclass(frozen, module = "bookend._native")]
pub struct NativeEvents {
    subscription: Mutex<Option<Subscription>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl NativeEvents {
    pub fn new(subscription: Subscription) -> NativeEvents {
        NativeEvents { subscription: Mutex::new(Some(subscription)) }
    }
}

#[pymethods]
impl NativeEvents {
    /// The next event's JSON, waiting up to `timeout_ms` (GIL released);
    /// `None` when none arrived in time.
    fn next(&self, py: Python<'_>, timeout_ms: u64) -> PyResult<Option<String>> {
        let got = py.detach(|| {
            let mut guard = lock(&self.subscription);
            let Some(sub) = guard.as_mut() else { return Err(None) };
            sub.next_blocking(Duration::from_millis(timeout_ms)).map_err(Some)
        });
        match got {
            Ok(event) => Ok(event.map(|e| e.to_json().to_string())),
            Err(Some(e)) => Err(errors::projector(py, &e)),
            Err(None) => Err(errors::kind(py, "closed", "this event stream is closed")),
        }
    }

    /// Acknowledges every event up to `lsn` (durably, before returning).
    fn ack(&self, py: Python<'_>, lsn: u64) -> PyResult<()> {
        let done = py.detach(|| match lock(&self.subscription).as_mut() {
            Some(sub) => sub.ack(lsn).map_err(Some),
            None => Err(None),
        });
        match done {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(errors::projector(py, &e)),
            Err(None) => Err(errors::kind(py, "closed", "this event stream is closed")),
        }
    }

    /// The LSN this consumer has acknowledged (`None` for anonymous streams).
    #[getter]
    fn acked(&self) -> Option<u64> {
        lock(&self.subscription).as_ref().and_then(Subscription::acked)
    }

    /// Lets go of the consumer's cursor (another reader may then take it).
    fn close(&self, py: Python<'_>) {
        let taken = lock(&self.subscription).take();
        py.detach(move || drop(taken));
    }
}
