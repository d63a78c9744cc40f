//! The routes of `bookend serve`. Every error body is JSON:
//! `{"ok":false,"error":{"kind":"…","message":"…"}}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bookend_projector::{Ack, Command, EndReason, Subscription, parse_command};
use futures_util::Stream;
use serde_json::{Value, json};

use super::AppState;

/// Comment lines sent on idle event streams so proxies keep them open.
const SSE_HEARTBEAT: Duration = Duration::from_secs(15);

type Shared = Arc<AppState>;

pub fn router(state: Shared, max_concurrent: usize) -> Router {
    let api = Router::new()
        .route("/v1/commands", post(post_commands))
        .route("/v1/sessions", get(get_sessions))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/events", get(get_events))
        .route("/v1/consumers", get(get_consumers))
        .route("/v1/consumers/{name}/ack", post(post_ack))
        .route("/metrics", get(super::metrics::get_metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/v1/health", get(get_health))
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route; see docs/http.md") })
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .layer(tower::limit::ConcurrencyLimitLayer::new(max_concurrent))
        // The body limit is enforced by `post_commands` itself, so the 413
        // can carry a JSON body.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, axum::Json(json!({"ok": false, "error": {"kind": kind, "message": message}}))).into_response()
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

async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else { return next.run(request).await };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        next.run(request).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the bearer token: Authorization: Bearer <token>",
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn get_health(State(state): State<Shared>) -> Response {
    let journal = &state.journal;
    let poisoned = journal.poisoned();
    let summary = journal.summary();
    let body = json!({
        "ok": poisoned.is_none(),
        "journal_open": poisoned.is_none(),
        "journal_id": journal.journal_id().to_string(),
        "epoch": summary.epoch,
        "durable_lsn": journal.journal().durable_lsn(),
        "next_lsn": journal.journal().next_lsn(),
        "active_sessions": summary.active,
        "poisoned": poisoned,
    });
    let status = if body["ok"] == true { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// One command's ack, or its error ack with its position in the request.
fn error_ack(index: Option<usize>, kind: &str, message: &str) -> Value {
    let mut ack = json!({"ok": false, "error": {"kind": kind, "message": message}});
    if let Some(i) = index {
        ack["index"] = json!(i);
    }
    ack
}

/// Validates and submits one command; the returned future waits for it.
fn submit(
    state: &AppState,
    value: Value,
    index: Option<usize>,
) -> Result<bookend_projector::Pending<Ack>, Value> {
    let line = parse_command(value).map_err(|e| error_ack(index, e.kind(), &e.to_string()))?;
    if matches!(line.command, Command::Close { .. }) {
        let message = "close is done by stopping the server (SIGTERM), which closes the journal";
        return Err(error_ack(index, "not_allowed", message));
    }
    // Validation takes the journal's command lock and may wait for a
    // checkpoint's fsync: keep it off the async worker.
    tokio::task::block_in_place(|| state.journal.execute(line.command, line.at))
        .map_err(|e| error_ack(index, e.kind(), &e.to_string()))
}

async fn post_commands(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let json_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_type {
        return error(StatusCode::BAD_REQUEST, "content_type", "send Content-Type: application/json");
    }
    let limit = state.body_limit;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!("the body is over the limit of {limit} bytes");
            return error(StatusCode::PAYLOAD_TOO_LARGE, "oversize", &message);
        }
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_json", &e.to_string()),
    };
    let (values, batch) = match value {
        Value::Array(values) => (values, true),
        single => (vec![single], false),
    };
    // Submit everything first, then wait: the commands of one request (and
    // of concurrent requests) share fsyncs.
    let submitted: Vec<_> =
        values.into_iter().enumerate().map(|(i, v)| submit(&state, v, batch.then_some(i))).collect();
    let mut acks = Vec::with_capacity(submitted.len());
    for (i, s) in submitted.into_iter().enumerate() {
        acks.push(match s {
            Ok(pending) => match pending.await {
                Ok(ack) => ack.to_json(),
                Err(e) => error_ack(batch.then_some(i), e.kind(), &e.to_string()),
            },
            Err(ack) => ack,
        });
    }
    let body = if batch { Value::Array(acks) } else { acks.pop().unwrap_or(Value::Null) };
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn get_sessions(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let active_only = q.get("active").is_some_and(|v| v == "true" || v == "1");
    let key = q.get("key");
    let reason = q.get("end_reason").map(|r| EndReason::parse(r));
    let wanted = |s: &bookend_projector::SessionState| {
        key.is_none_or(|k| s.key() == Some(k.as_str()))
            && reason.as_ref().is_none_or(|r| s.end_reason.as_ref() == Some(r))
    };
    let sessions = if active_only {
        Ok(state.journal.active().into_iter().filter(|s| wanted(s)).collect())
    } else {
        tokio::task::block_in_place(|| state.journal.sessions_where(wanted))
    };
    let sessions = match sessions {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.kind(), &e.to_string()),
    };
    let rows: Vec<Value> = sessions.iter().map(|s| s.to_json()).collect();
    axum::Json(Value::Array(rows)).into_response()
}

async fn get_session(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    match state.journal.get(&id) {
        Ok(Some(s)) => axum::Json(s.to_json()).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_session", &format!("unknown session {id:?}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.kind(), &e.to_string()),
    }
}

/// An event stream's state.
struct EventStream {
    sub: Subscription,
    stopping: tokio::sync::watch::Receiver<bool>,
}

async fn get_events(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let durable = state.journal.journal().durable_lsn();
    let last_event_id = match headers
        .get("last-event-id")
        .map(|v| parse_lsn(v.to_str().unwrap_or(""), durable))
    {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(why)) => {
            return error(StatusCode::BAD_REQUEST, "invalid_last_event_id", &format!("Last-Event-ID {why}"));
        }
    };
    let from = match q.get("from").map(|f| parse_lsn(f, durable + 1)) {
        Some(Ok(f)) => f,
        Some(Err(why)) => return error(StatusCode::BAD_REQUEST, "invalid_query", &format!("from {why}")),
        None => 1,
    };
    // A named consumer resumes after its cursor (Last-Event-ID says the
    // client has everything up to it, which acknowledges it) and holds the
    // cursor while the stream lasts; an anonymous stream starts at `from`
    // or after Last-Event-ID.
    let subscription = match q.get("consumer") {
        Some(name) => tokio::task::block_in_place(|| state.journal.subscribe_after(name, last_event_id)),
        None => state.journal.subscribe_from(last_event_id.map_or(from, |id| id + 1)),
    };
    let subscription = match subscription {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.kind(), &e.to_string()),
    };
    let types: Vec<String> =
        q.get("type").map(|t| t.split(',').map(str::to_string).collect()).unwrap_or_default();
    let subscription = if types.is_empty() {
        subscription
    } else {
        match subscription.with_types(&types.iter().map(String::as_str).collect::<Vec<_>>()) {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.kind(), &e.to_string()),
        }
    };
    let stream = EventStream { sub: subscription, stopping: state.stopping.clone() };
    Sse::new(event_stream(stream)).keep_alive(KeepAlive::new().interval(SSE_HEARTBEAT)).into_response()
}

/// An LSN a client sent: digits only, at most `max` (the journal's durable
/// end). The error completes "Last-Event-ID …" or "from …".
fn parse_lsn(text: &str, max: u64) -> Result<u64, String> {
    let text = text.trim();
    let lsn = text
        .parse::<u64>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("{text:?} is not an LSN (a decimal number)"))?;
    if lsn > max {
        return Err(format!("{lsn} is past the journal's durable end at LSN {max}"));
    }
    Ok(lsn)
}

/// `POST /v1/consumers/{name}/ack` with `{"lsn": N}`: the consumer has
/// processed everything up to N; its next stream starts after N.
async fn post_ack(
    State(state): State<Shared>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let lsn = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["lsn"].as_u64());
    let Some(lsn) = lsn else {
        return error(StatusCode::BAD_REQUEST, "malformed_json", "send {\"lsn\": N}");
    };
    let acked = tokio::task::block_in_place(|| state.journal.ack_consumer(&name, lsn));
    match acked {
        Ok(acked) => axum::Json(json!({"ok": true, "consumer": name, "acked_lsn": acked})).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.kind(), &e.to_string()),
    }
}

/// `GET /v1/consumers`: every consumer, its acknowledged LSN and lag.
async fn get_consumers(State(state): State<Shared>) -> Response {
    match state.journal.consumers() {
        Ok(list) => axum::Json(Value::Array(
            list.into_iter()
                .map(|c| json!({"name": c.name, "acked_lsn": c.acked, "lag": c.lag, "error": c.error}))
                .collect(),
        ))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.kind(), &e.to_string()),
    }
}

fn event_stream(state: EventStream) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(state, |mut s| async move {
        if *s.stopping.borrow() {
            return None;
        }
        let event = tokio::select! {
            event = s.sub.next() => event,
            _ = s.stopping.wait_for(|stop| *stop) => return None,
        };
        match event {
            Ok(event) => {
                let data = event.to_json().to_string();
                let sse =
                    SseEvent::default().id(event.lsn.to_string()).event(event.body.type_name()).data(data);
                Some((Ok(sse), s))
            }
            Err(e) => {
                tracing::error!(error = %e, "event stream stopped");
                None
            }
        }
    })
}
