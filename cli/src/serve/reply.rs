//! Answers: every error is JSON, `{"ok":false,"error":{"kind","message"}}`,
//! with an HTTP status that says whose fault it is; query parameters are
//! checked, never ignored.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, axum::Json(json!({"ok": false, "error": {"kind": kind, "message": message}}))).into_response()
}

/// A refusal on its way to becoming an error answer (small, unlike a
/// `Response`, so functions can return it in a `Result`).
pub struct Refusal {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.status, self.kind, &self.message)
    }
}

pub fn refuse(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status, kind, message: message.into() }
}

/// The HTTP status of a projector error: the client's mistake (400), a
/// conflict with the journal's state (409), the server unable to serve
/// right now (503), or the server's own failure (500).
pub fn status_of(e: &bookend_projector::Error) -> StatusCode {
    match e.kind() {
        "unknown_session" => StatusCode::NOT_FOUND,
        "consumer_busy" | "key_busy" | "key_mismatch" | "session_ended" | "already_active"
        | "already_finalized" | "attempts_exhausted" | "invalid_cursor" | "cursor_ahead" => {
            StatusCode::CONFLICT
        }
        "oversize" => StatusCode::PAYLOAD_TOO_LARGE,
        "poisoned" | "timeout" | "locked" => StatusCode::SERVICE_UNAVAILABLE,
        "journal" | "io" | "store" | "store_locked" | "corruption" | "data_loss" | "decode"
        | "no_journal" | "foreign_state" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A projector error as an answer.
pub fn projector_error(e: &bookend_projector::Error) -> Response {
    (status_of(e), axum::Json(json!({"ok": false, "error": e.to_json()}))).into_response()
}

/// A route's query parameters, each given at most once and each one the
/// route knows.
pub struct Params(BTreeMap<String, String>);

fn invalid_query(message: String) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, "invalid_query", message)
}

impl Params {
    pub fn parse(pairs: Vec<(String, String)>, known: &[&str]) -> Result<Params, Refusal> {
        let mut params = BTreeMap::new();
        for (name, value) in pairs {
            if !known.contains(&name.as_str()) {
                let message = if known.is_empty() {
                    format!("unknown query parameter {name:?}; this route takes none")
                } else {
                    format!("unknown query parameter {name:?}; this route takes {}", known.join(", "))
                };
                return Err(invalid_query(message));
            }
            if params.insert(name.clone(), value).is_some() {
                return Err(invalid_query(format!("query parameter {name:?} is given twice")));
            }
        }
        Ok(Params(params))
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `true`/`false` (or `1`/`0`).
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Refusal> {
        match self.text(name) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(invalid_query(format!("{name}={other:?}: use true or false"))),
        }
    }

    /// A decimal number in `min..=max`.
    pub fn number(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, Refusal> {
        let Some(text) = self.text(name) else { return Ok(None) };
        match text.parse::<u64>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid_query(format!("{name}={text:?}: use a number in {min}..={max}"))),
        }
    }
}

/// Whether the request says its body is JSON. Required (also by the ack
/// route): a browser page cannot send `application/json` to another
/// origin without a preflight this server never answers, so no web page
/// can post commands to a journal on localhost.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

pub fn not_json() -> Response {
    error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type", "send Content-Type: application/json")
}
