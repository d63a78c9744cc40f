//! The routes of `bookend serve` and the layers around them. Every error
//! body is JSON (`reply.rs`); see docs/http.md.
//!
//! Layers, outermost first: counting and logging each request; JSON bodies
//! for the errors the layers below answer with an empty one (405, 408,
//! 413); a time limit on the whole request, body included (408); the body
//! limit (413); reading the whole body before a request takes one of the
//! `--max-concurrent` places, so a client that sends its body slowly holds
//! a connection, never a place; then the token check and the routes.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bookend_projector::{Ack, Command, Pending, parse_command, parse_json};
use serde_json::{Value, json};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::reply::{Refusal, error, is_json, not_json, refuse};
use super::{AppState, Shared};
use super::{events, sessions};

pub fn router(state: Shared) -> Router {
    let s = &state.settings;
    let api = Router::new()
        .route("/v1/commands", post(post_commands))
        .route("/v1/sessions", get(sessions::get_sessions))
        .route("/v1/sessions/{id}", get(sessions::get_session))
        .route("/v1/pending/finalization", get(sessions::get_pending_finalization))
        .route("/v1/pending/flush/{marker}", get(sessions::get_pending_flush))
        .route("/v1/stats", get(sessions::get_stats))
        .route("/v1/events", get(events::get_events))
        .route("/v1/consumers", get(events::get_consumers))
        .route("/v1/consumers/{name}/ack", post(events::post_ack))
        .route("/metrics", get(super::metrics::get_metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/v1/health", get(get_health))
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route; see docs/http.md") })
        .layer(tower::limit::ConcurrencyLimitLayer::new(s.max_concurrent))
        .layer(middleware::from_fn(read_whole_body))
        .layer(RequestBodyLimitLayer::new(s.body_limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, s.body_timeout))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

async fn log_request(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let class = usize::from(status / 100).clamp(1, 5) - 1;
    state.requests[class].fetch_add(1, Ordering::Relaxed);
    tracing::info!(%method, path, status, micros = started.elapsed().as_micros() as u64, "request");
    response
}

/// Gives a JSON body to the errors layers answer without one.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (kind, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this route does not take that method; see docs/http.md")
        }
        StatusCode::REQUEST_TIMEOUT => {
            ("request_timeout", "the request did not arrive in time (see --body-timeout-ms)")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("oversize", "the body is over the limit (see --body-limit-bytes)"),
        _ => ("http", status.canonical_reason().unwrap_or("error")),
    };
    let mut answer = error(status, kind, message);
    if let Some(allow) = response.headers().get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}

/// Reads the whole body (within the limit and the time limit outside)
/// before the request takes one of the `--max-concurrent` places.
async fn read_whole_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(_) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversize",
            "the body is over the limit (see --body-limit-bytes)",
        ),
    }
}

/// Whether the request carries the bearer token (always, without one).
/// The scheme is case-insensitive (RFC 9110); the token is compared in
/// constant time.
pub fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.settings.token else { return true };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
}

async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if authorized(&state, request.headers()) {
        return next.run(request).await;
    }
    error(StatusCode::UNAUTHORIZED, "unauthorized", "send the bearer token: Authorization: Bearer <token>")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /v1/health`: open to all, but a client without the token (when
/// one is required) learns only whether the journal is up: no ids, no
/// counts, no failure text (which can name paths).
async fn get_health(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let journal = &state.journal;
    let poisoned = journal.poisoned();
    let status = if poisoned.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if !authorized(&state, &headers) {
        return (status, axum::Json(json!({"ok": poisoned.is_none(), "journal_open": poisoned.is_none()})))
            .into_response();
    }
    let summary = journal.summary();
    let body = json!({
        "ok": poisoned.is_none(),
        "journal_open": poisoned.is_none(),
        "journal_id": journal.journal_id().to_string(),
        "epoch": summary.epoch,
        "durable_lsn": journal.journal().durable_lsn(),
        "next_lsn": journal.journal().next_lsn(),
        "active_sessions": summary.active,
        "writers": journal.writers().iter().map(|w| w.to_json()).collect::<Vec<_>>(),
        "poisoned": poisoned,
    });
    (status, axum::Json(body)).into_response()
}

/// One command's ack, or its error ack with its position in the request.
fn error_ack(index: Option<usize>, kind: &str, message: &str) -> Value {
    error_ack_with(index, json!({"kind": kind, "message": message}))
}

/// An error ack whose error object carries the error's details (the
/// session, the key, ...).
fn error_ack_with(index: Option<usize>, error: Value) -> Value {
    let mut ack = json!({"ok": false, "error": error});
    if let Some(i) = index {
        ack["index"] = json!(i);
    }
    ack
}

/// Parses one command of a request; `close` is not a request's to make.
fn parse_one(value: Value, index: Option<usize>) -> Result<bookend_projector::CommandLine, Value> {
    let line = parse_command(value).map_err(|e| error_ack_with(index, e.to_json()))?;
    if matches!(line.command, Command::Close { .. }) {
        let message = "close is done by stopping the server (SIGTERM), which closes the journal";
        return Err(error_ack(index, "not_allowed", message));
    }
    Ok(line)
}

/// Validates and submits the commands of one request as one batch (one
/// hold of the command lock, one fsync); each answer waits for its own.
fn submit_all(state: &AppState, values: Vec<Value>, batch: bool) -> Vec<Result<Pending<Ack>, Value>> {
    let index = |i: usize| batch.then_some(i);
    let count = values.len();
    let items: Vec<_> = values.into_iter().enumerate().map(|(i, v)| parse_one(v, index(i))).collect();
    let refuse = |i: usize, e: bookend_projector::Error| error_ack_with(index(i), e.to_json());
    // Validation takes the journal's command lock and may wait for a
    // checkpoint's fsync: keep it off the async worker.
    match tokio::task::block_in_place(|| state.journal.execute_batch_among(items, refuse)) {
        Ok(answers) => answers,
        Err(e) => {
            let error = e.to_json();
            (0..count).map(|i| Err(error_ack_with(index(i), error.clone()))).collect()
        }
    }
}

/// The commands of one request: one object, or an array of them, parsed
/// strictly (a key given twice is refused).
fn parse_body(bytes: &[u8]) -> Result<(Vec<Value>, bool), Refusal> {
    let value = parse_json(bytes).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.kind(), e.to_string()))?;
    Ok(match value {
        Value::Array(values) => (values, true),
        single => (vec![single], false),
    })
}

async fn post_commands(State(state): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !is_json(&headers) {
        return not_json();
    }
    let (values, batch) = match parse_body(&body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal.into_response(),
    };
    // Submit everything first, then wait: the commands of one request (and
    // of concurrent requests) share fsyncs.
    let submitted = submit_all(&state, values, batch);
    let mut acks = Vec::with_capacity(submitted.len());
    for (i, s) in submitted.into_iter().enumerate() {
        acks.push(match s {
            Ok(pending) => match pending.await {
                Ok(ack) => ack.to_json(),
                Err(e) => error_ack_with(batch.then_some(i), e.to_json()),
            },
            Err(ack) => ack,
        });
    }
    let body = if batch { Value::Array(acks) } else { acks.pop().unwrap_or(Value::Null) };
    (StatusCode::OK, axum::Json(body)).into_response()
}
