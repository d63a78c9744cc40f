//! Rust errors as Python exceptions: the class is chosen by the error's
//! `kind` in `bookend/_errors.py` (one table for the embedded journal and
//! the HTTP client), and carries the error's details as attributes.

use pyo3::prelude::*;
use serde_json::Value;

/// An error object `{"kind", "message", ...details}` as the exception
/// `bookend._errors.error_for` builds for it.
pub fn from_json(py: Python<'_>, error: &Value) -> PyErr {
    let text = error.to_string();
    let built = py
        .import("bookend._errors")
        .and_then(|m| m.getattr("error_from_json"))
        .and_then(|f| f.call1((text,)));
    match built {
        Ok(exception) => PyErr::from_value(exception),
        Err(e) => e,
    }
}

pub fn projector(py: Python<'_>, e: &bookend_projector::Error) -> PyErr {
    from_json(py, &e.to_json())
}

pub fn lifecycle(py: Python<'_>, e: &bookend_projector::LifecycleError) -> PyErr {
    from_json(py, &e.to_json())
}

/// An error of the binding itself (a closed journal, bad options).
pub fn kind(py: Python<'_>, kind: &str, message: &str) -> PyErr {
    from_json(py, &serde_json::json!({"kind": kind, "message": message}))
}
