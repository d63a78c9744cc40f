//! Event streams (Server-Sent Events) and named consumers.
//!
//! A stream takes one of `--max-streams` places for as long as it lasts
//! (503 past them). A named consumer's stream holds its cursor exclusively,
//! here and across processes (`consumer_busy`); it is opened when a stream
//! starts or an ack arrives and released when they end, so descriptors stay
//! bounded whatever names clients send. `?named=false` sends every event as
//! an unnamed `message` event, which a stock `EventSource`'s `onmessage`
//! receives.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bookend_projector::{Error, Subscription};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use super::reply::{Params, Refusal, error, is_json, not_json, projector_error, refuse};

/// Comment lines sent on idle event streams so proxies keep them open (and
/// a vanished client is noticed).
const SSE_HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a stream waits for a consumer another stream of this server is
/// letting go of: a client that reconnects before the server has noticed
/// its old connection close.
const CONSUMER_BUSY_WAIT: Duration = Duration::from_secs(2);

/// An event stream's state.
struct EventStream {
    sub: Subscription,
    stopping: tokio::sync::watch::Receiver<bool>,
    named: bool,
    _place: OwnedSemaphorePermit,
}

/// What a stream asked for.
struct StreamRequest {
    consumer: Option<String>,
    last_event_id: Option<u64>,
    from: u64,
    types: Vec<String>,
    named: bool,
}

fn parse_stream_request(
    state: &Shared,
    headers: &HeaderMap,
    pairs: Vec<(String, String)>,
) -> Result<StreamRequest, Refusal> {
    let q = Params::parse(pairs, &["consumer", "from", "type", "named"])?;
    let durable = state.journal.journal().durable_lsn();
    let last_event_id =
        match headers.get("last-event-id").map(|v| parse_lsn(v.to_str().unwrap_or(""), durable)) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(why)) => {
                let message = format!("Last-Event-ID {why}");
                return Err(refuse(StatusCode::BAD_REQUEST, "invalid_last_event_id", message));
            }
        };
    let from = match q.text("from").map(|f| parse_lsn(f, durable + 1)) {
        Some(Ok(f)) => f,
        Some(Err(why)) => {
            return Err(refuse(StatusCode::BAD_REQUEST, "invalid_query", format!("from {why}")));
        }
        None => 1,
    };
    let consumer = q.text("consumer").map(str::to_string);
    if consumer.is_some() && q.text("from").is_some() {
        let message = "a named consumer resumes after its cursor: give consumer or from, not both";
        return Err(refuse(StatusCode::BAD_REQUEST, "invalid_query", message));
    }
    let types = q.text("type").map(|t| t.split(',').map(str::to_string).collect()).unwrap_or_default();
    let named = q.flag("named")?.unwrap_or(true);
    Ok(StreamRequest { consumer, last_event_id, from, types, named })
}

/// `GET /v1/events`: durable events from disk, then live.
pub async fn get_events(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let request = match parse_stream_request(&state, &headers, pairs) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let Ok(place) = state.streams.clone().try_acquire_owned() else {
        let message = format!(
            "{} event streams are open, the most this server serves (--max-streams)",
            state.settings.max_streams
        );
        return error(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", &message);
    };
    let sub = match subscribe(&state, &request).await {
        Ok(sub) => sub,
        Err(e) => return projector_error(&e),
    };
    let sub = if request.types.is_empty() {
        sub
    } else {
        match sub.with_types(&request.types.iter().map(String::as_str).collect::<Vec<_>>()) {
            Ok(s) => s,
            Err(e) => return projector_error(&e),
        }
    };
    let stream = EventStream { sub, stopping: state.stopping.clone(), named: request.named, _place: place };
    Sse::new(event_stream(stream)).keep_alive(KeepAlive::new().interval(SSE_HEARTBEAT)).into_response()
}

/// A named consumer resumes after its cursor (Last-Event-ID says the
/// client has everything up to it, which acknowledges it) and holds the
/// cursor while the stream lasts, waiting briefly for a stream of this
/// server that is letting go of it; an anonymous stream starts at `from` or
/// after Last-Event-ID.
async fn subscribe(state: &Shared, r: &StreamRequest) -> Result<Subscription, Error> {
    let Some(name) = &r.consumer else {
        return state.journal.subscribe_from(r.last_event_id.map_or(r.from, |id| id + 1));
    };
    let deadline = Instant::now() + CONSUMER_BUSY_WAIT;
    loop {
        match tokio::task::block_in_place(|| state.journal.subscribe_after(name, r.last_event_id)) {
            Err(Error::ConsumerBusy { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
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
                let sse = SseEvent::default().id(event.lsn.to_string()).data(data);
                let sse = if s.named { sse.event(event.body.type_name()) } else { sse };
                Some((Ok(sse), s))
            }
            Err(e) => {
                tracing::error!(error = %e, "event stream stopped");
                None
            }
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    lsn: u64,
}

/// `POST /v1/consumers/{name}/ack` with `{"lsn": N}`: the consumer has
/// processed everything up to N; its next stream starts after N.
pub async fn post_ack(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !is_json(&headers) {
        return not_json();
    }
    let lsn = match serde_json::from_slice::<AckBody>(&body) {
        Ok(ack) => ack.lsn,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "malformed_json", &format!("send {{\"lsn\": N}}: {e}"));
        }
    };
    match tokio::task::block_in_place(|| state.journal.ack_consumer(&name, lsn)) {
        Ok(acked) => axum::Json(json!({"ok": true, "consumer": name, "acked_lsn": acked})).into_response(),
        Err(e) => projector_error(&e),
    }
}

/// `GET /v1/consumers`: every consumer, its acknowledged LSN and lag.
pub async fn get_consumers(
    State(state): State<Shared>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(refusal) = Params::parse(pairs, &[]) {
        return refusal.into_response();
    }
    match tokio::task::block_in_place(|| state.journal.consumers()) {
        Ok(list) => axum::Json(Value::Array(list.into_iter().map(|c| c.to_json()).collect())).into_response(),
        Err(e) => projector_error(&e),
    }
}
