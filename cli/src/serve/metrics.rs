//! `GET /metrics`: Prometheus text exposition.
//!
//! Each family's HELP says whose count it is: "this process" counters start
//! at zero when `serve` starts; "whole journal" figures come from the
//! projection and survive restarts. End reasons are labelled only with the
//! names bookend knows, plus `other`, so clients cannot grow the output.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bookend_journal::{FSYNC_BUCKETS_MICROS, GROUP_BUCKETS_EVENTS, JournalStats};
use bookend_projector::{ConsumerStatus, EndReason};

use super::AppState;

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A histogram from per-bucket counts (the last count is above every bound).
/// Returns its count, so a companion counter can agree with it exactly.
fn histogram(out: &mut String, name: &str, help: &str, bounds: &[f64], counts: &[u64; 11], sum: f64) -> u64 {
    family(out, name, "histogram", help);
    let mut cumulative = 0;
    for (bound, count) in bounds.iter().zip(counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += counts[10];
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {cumulative}\n{name}_sum {sum}\n{name}_count {cumulative}"
    );
    cumulative
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn write_journal(out: &mut String, stats: &JournalStats) {
    counter(out, "bookend_appends_total", "Batches appended by this process.", stats.appends);
    counter(out, "bookend_events_total", "Events appended by this process.", stats.events);
    counter(out, "bookend_fsyncs_total", "fdatasync calls made by this process's writer.", stats.fsyncs);
    counter(
        out,
        "bookend_bytes_written_total",
        "Bytes this process wrote to segment files.",
        stats.bytes_written,
    );
    let fsync_bounds: Vec<f64> = FSYNC_BUCKETS_MICROS.iter().map(|us| *us as f64 / 1e6).collect();
    histogram(
        out,
        "bookend_fsync_seconds",
        "fdatasync latency in this process.",
        &fsync_bounds,
        &stats.fsync_micros_buckets,
        stats.fsync_micros_sum as f64 / 1e6,
    );
    let group_bounds: Vec<f64> = GROUP_BUCKETS_EVENTS.iter().map(|e| *e as f64).collect();
    let groups = histogram(
        out,
        "bookend_group_commit_events",
        "Events per group commit in this process.",
        &group_bounds,
        &stats.group_events_buckets,
        stats.group_events_sum as f64,
    );
    // From the same snapshot as the histogram, so the two never disagree.
    counter(out, "bookend_group_commits_total", "Group commits (one write each) by this process.", groups);
    gauge(out, "bookend_durable_lsn", "Highest LSN known durable in the whole journal.", stats.durable_lsn);
}

/// Ends per reason, with every reason bookend does not know folded into `other`.
fn labelled_ends(ends_by_reason: &BTreeMap<String, u64>) -> BTreeMap<&'static str, u64> {
    let mut labelled = BTreeMap::new();
    for (reason, n) in ends_by_reason {
        let label = EndReason::parse(reason).name();
        *labelled.entry(label).or_insert(0) += n;
    }
    labelled
}

fn write_sessions(out: &mut String, state: &AppState) {
    let summary = state.journal.summary();
    gauge(out, "bookend_epoch", "Current epoch of the whole journal.", summary.epoch);
    gauge(out, "bookend_sessions_active", "Sessions with an open span, whole journal.", summary.active);
    gauge(
        out,
        "bookend_sessions_awaiting_finalization",
        "Sessions ended by expiry and not finalized, whole journal.",
        summary.awaiting_finalization,
    );
    family(out, "bookend_session_ends_total", "counter", "Session ends by reason in the whole journal.");
    for (reason, n) in labelled_ends(&summary.ends_by_reason) {
        let _ = writeln!(out, "bookend_session_ends_total{{reason=\"{reason}\"}} {n}");
    }
}

fn write_consumers(out: &mut String, consumers: &[ConsumerStatus]) {
    family(out, "bookend_consumer_lag_events", "gauge", "Durable events a consumer has not acknowledged.");
    for c in consumers {
        if let Some(lag) = c.lag {
            let _ = writeln!(out, "bookend_consumer_lag_events{{consumer=\"{}\"}} {lag}", escape(&c.name));
        }
    }
    family(out, "bookend_consumer_cursor_errors", "gauge", "Consumers whose cursor cannot be used (1 each).");
    for c in consumers.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(out, "bookend_consumer_cursor_errors{{consumer=\"{}\"}} 1", escape(&c.name));
    }
}

fn write_http(out: &mut String, state: &AppState) {
    family(
        out,
        "bookend_http_requests_total",
        "counter",
        "HTTP requests answered by this process, by status class.",
    );
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        let n = state.requests[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "bookend_http_requests_total{{code=\"{class}\"}} {n}");
    }
    let refused = state.refused.load(Ordering::Relaxed);
    counter(
        out,
        "bookend_http_connections_refused_total",
        "Connections this process closed at once: --max-connections were open.",
        refused,
    );
    let open = state.settings.max_streams.saturating_sub(state.streams.available_permits()) as u64;
    gauge(
        out,
        "bookend_event_streams_open",
        "Event streams open in this process (at most --max-streams).",
        open,
    );
}

pub async fn get_metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::with_capacity(4096);
    write_journal(&mut out, &state.journal.journal().stats());
    write_sessions(&mut out, &state);
    write_consumers(&mut out, &state.journal.consumers().unwrap_or_default());
    write_http(&mut out, &state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
