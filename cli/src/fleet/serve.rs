//! `bookend fleet`: the fleet-wide view served read-only over HTTP, with
//! the shapes of `bookend serve` (docs/fleet.md): `/v1/sessions` with a
//! `journal` filter, `/v1/sessions/{journal}/{id}`, `/v1/events` (SSE across
//! the fleet, the stream sequence as the event id), `/v1/health`,
//! `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use super::view::{Filter, FleetView};

#[derive(Args, Debug, Clone)]
pub struct FleetArgs {
    /// The NATS server, for example nats://127.0.0.1:4222.
    #[arg(long)]
    pub nats: String,
    /// The JetStream stream the forwarders publish to.
    #[arg(long, default_value = "bookend")]
    pub stream: String,
    /// The subject prefix the forwarders use.
    #[arg(long, default_value = "bookend")]
    pub subject_prefix: String,
    /// Where to listen (loopback by default; the view is read-only).
    #[arg(long, default_value = "127.0.0.1:7312")]
    pub listen: SocketAddr,
}

struct Fleet {
    view: RwLock<FleetView>,
    js: jetstream::Context,
    args: FleetArgs,
}

type Shared = Arc<Fleet>;

pub fn run(args: FleetArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: FleetArgs) -> anyhow::Result<()> {
    let client = async_nats::connect(args.nats.as_str())
        .await
        .with_context(|| format!("connecting to {}", args.nats))?;
    let js = jetstream::new(client);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let fleet = Arc::new(Fleet { view: RwLock::new(FleetView::default()), js, args });
    println!("bookend fleet listening on http://{}", listener.local_addr()?);
    tokio::spawn(fold_forever(fleet.clone()));
    let app = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/sessions", get(sessions))
        .route("/v1/sessions/{journal}/{id}", get(session))
        .route("/v1/events", get(events))
        .route("/metrics", get(metrics))
        .with_state(fleet);
    axum::serve(listener, app).with_graceful_shutdown(crate::forward::stop_signal()).await?;
    Ok(())
}

/// Replays the stream from its start into the view, then follows it;
/// starts over (from the last sequence folded) after an error.
async fn fold_forever(fleet: Shared) {
    loop {
        let from = fleet.view.read().map(|v| v.last_sequence + 1).unwrap_or(1);
        if let Err(e) = fold_from(&fleet, from).await {
            tracing::warn!(error = %format!("{e:#}"), "reading the stream failed; retrying in 1 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn fold_from(fleet: &Fleet, from: u64) -> anyhow::Result<()> {
    let mut messages = ordered_from(&fleet.js, &fleet.args.stream, from, None).await?;
    while let Some(message) = messages.next().await {
        let (sequence, journal, event) = decode(&message?)?;
        if let Ok(mut view) = fleet.view.write() {
            view.fold(sequence, &journal, &event);
        }
    }
    anyhow::bail!("the stream ended")
}

async fn ordered_from(
    js: &jetstream::Context,
    stream: &str,
    from: u64,
    filter_subject: Option<String>,
) -> anyhow::Result<pull::Ordered> {
    let stream = js.get_stream(stream).await.with_context(|| format!("opening stream {stream}"))?;
    let config = pull::OrderedConfig {
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from.max(1) },
        filter_subject: filter_subject.unwrap_or_default(),
        ..Default::default()
    };
    Ok(stream.create_consumer(config).await?.messages().await?)
}

/// A message's stream sequence, journal id and event.
fn decode(message: &jetstream::Message) -> anyhow::Result<(u64, String, Value)> {
    let sequence = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence;
    let journal = message
        .headers
        .as_ref()
        .and_then(|h| h.get("Bookend-Journal"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    let event = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
    Ok((sequence, journal, event))
}

fn bad_request(message: String) -> Response {
    let body = json!({"ok": false, "error": {"kind": "invalid_query", "message": message}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn health(State(fleet): State<Shared>) -> Response {
    let view = match fleet.view.read() {
        Ok(v) => v,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    axum::Json(json!({"ok": true, "stream": fleet.args.stream, "last_sequence": view.last_sequence,
                       "journals": view.journals, "sessions": view.sessions_total()}))
    .into_response()
}

fn listing_filter(q: &std::collections::HashMap<String, String>) -> Result<(Filter, usize, usize), String> {
    for name in q.keys() {
        if !["journal", "active", "key", "limit", "after"].contains(&name.as_str()) {
            return Err(format!(
                "unknown query parameter {name:?}; this route takes journal, active, key, limit, after"
            ));
        }
    }
    let active = match q.get("active").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => return Err(format!("active must be true or false, not {other:?}")),
    };
    let number = |name: &str, default: usize| -> Result<usize, String> {
        q.get(name)
            .map_or(Ok(default), |v| v.parse().map_err(|_| format!("{name} must be a number, not {v:?}")))
    };
    let limit = number("limit", 100)?;
    if !(1..=1000).contains(&limit) {
        return Err(format!("limit must be between 1 and 1000, not {limit}"));
    }
    let filter = Filter { journal: q.get("journal").cloned(), active, key: q.get("key").cloned() };
    Ok((filter, number("after", 0)?, limit))
}

async fn sessions(
    State(fleet): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let (filter, after, limit) = match listing_filter(&q) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    let Ok(view) = fleet.view.read() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let (rows, next) = view.page(&filter, after, limit);
    axum::Json(json!({"sessions": rows, "next": next})).into_response()
}

async fn session(State(fleet): State<Shared>, Path((journal, id)): Path<(String, String)>) -> Response {
    let Ok(view) = fleet.view.read() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    match view.get(&journal, &id) {
        Some(row) => axum::Json(row).into_response(),
        None => {
            let body = json!({"ok": false, "error": {"kind": "unknown_session",
                "message": format!("no session {id:?} in journal {journal:?}")}});
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}

/// `GET /v1/events?from=SEQ&journal=ID`: every journal's events from the
/// stream, the stream sequence as the SSE id; `Last-Event-ID` resumes
/// after the last one seen.
async fn events(
    State(fleet): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(|v| v.parse::<u64>());
    let from = match (resume, q.get("from").map(|f| f.parse::<u64>())) {
        (Some(Ok(seen)), _) => seen + 1,
        (Some(Err(_)), _) => return bad_request("Last-Event-ID must be a stream sequence".into()),
        (None, Some(Ok(from))) => from,
        (None, Some(Err(_))) => return bad_request("from must be a stream sequence".into()),
        (None, None) => 1,
    };
    let subject = q.get("journal").map(|j| format!("{}.{j}.>", fleet.args.subject_prefix));
    match ordered_from(&fleet.js, &fleet.args.stream, from, subject).await {
        Ok(messages) => Sse::new(sse_stream(messages)).keep_alive(KeepAlive::default()).into_response(),
        Err(e) => {
            let body = json!({"ok": false, "error": {"kind": "stream", "message": format!("{e:#}")}});
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

fn sse_stream(messages: pull::Ordered) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    messages.filter_map(|message| async move {
        let (sequence, journal, mut event) = decode(&message.ok()?).ok()?;
        event["journal_id"] = Value::String(journal);
        Some(Ok(SseEvent::default().id(sequence.to_string()).data(event.to_string())))
    })
}

async fn metrics(State(fleet): State<Shared>) -> Response {
    let Ok(view) = fleet.view.read() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let mut out = String::new();
    out.push_str("# HELP bookend_fleet_stream_sequence The last stream sequence folded into the view.\n");
    out.push_str("# TYPE bookend_fleet_stream_sequence gauge\n");
    out.push_str(&format!("bookend_fleet_stream_sequence {}\n", view.last_sequence));
    out.push_str("# HELP bookend_fleet_active_sessions Active sessions per journal.\n");
    out.push_str("# TYPE bookend_fleet_active_sessions gauge\n");
    for (journal, active) in view.active_by_journal() {
        out.push_str(&format!("bookend_fleet_active_sessions{{journal=\"{journal}\"}} {active}\n"));
    }
    out.push_str("# HELP bookend_fleet_last_lsn The last LSN folded, per journal.\n");
    out.push_str("# TYPE bookend_fleet_last_lsn gauge\n");
    for (journal, lsn) in &view.journals {
        out.push_str(&format!("bookend_fleet_last_lsn{{journal=\"{journal}\"}} {lsn}\n"));
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
