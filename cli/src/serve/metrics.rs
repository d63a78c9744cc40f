//! `GET /metrics`: Prometheus text exposition.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bookend_journal::{FSYNC_BUCKETS_MICROS, GROUP_BUCKETS_EVENTS};

use super::AppState;

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

/// A histogram from per-bucket counts (the last count is above every bound).
fn histogram(out: &mut String, name: &str, help: &str, bounds: &[f64], counts: &[u64; 11], sum: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
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
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub async fn get_metrics(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.journal.journal().stats();
    let summary = state.journal.summary();
    let mut out = String::with_capacity(4096);
    counter(&mut out, "bookend_appends_total", "Batches appended to the journal.", stats.appends);
    counter(&mut out, "bookend_events_total", "Events appended to the journal.", stats.events);
    counter(&mut out, "bookend_fsyncs_total", "fdatasync calls made by the writer.", stats.fsyncs);
    counter(&mut out, "bookend_group_commits_total", "Group commits (one write each).", stats.groups);
    counter(&mut out, "bookend_bytes_written_total", "Bytes written to segment files.", stats.bytes_written);
    let fsync_bounds: Vec<f64> = FSYNC_BUCKETS_MICROS.iter().map(|us| *us as f64 / 1e6).collect();
    histogram(
        &mut out,
        "bookend_fsync_seconds",
        "fdatasync latency.",
        &fsync_bounds,
        &stats.fsync_micros_buckets,
        stats.fsync_micros_sum as f64 / 1e6,
    );
    let group_bounds: Vec<f64> = GROUP_BUCKETS_EVENTS.iter().map(|e| *e as f64).collect();
    histogram(
        &mut out,
        "bookend_group_commit_events",
        "Events per group commit.",
        &group_bounds,
        &stats.group_events_buckets,
        stats.group_events_sum as f64,
    );
    gauge(&mut out, "bookend_durable_lsn", "Highest LSN known durable.", stats.durable_lsn);
    gauge(&mut out, "bookend_epoch", "Current journal epoch.", summary.epoch);
    gauge(&mut out, "bookend_sessions_active", "Sessions with an open span.", summary.active);
    gauge(
        &mut out,
        "bookend_sessions_awaiting_finalization",
        "Sessions ended by expiry and not finalized.",
        summary.awaiting_finalization,
    );
    let _ = writeln!(
        out,
        "# HELP bookend_session_ends_total Session ends by reason.\n# TYPE bookend_session_ends_total counter"
    );
    for (reason, n) in &summary.ends_by_reason {
        let _ = writeln!(out, "bookend_session_ends_total{{reason=\"{}\"}} {n}", escape(reason));
    }
    let _ = writeln!(
        out,
        "# HELP bookend_consumer_lag_events Durable events a consumer has not acknowledged.\n# TYPE bookend_consumer_lag_events gauge"
    );
    let consumers = state.journal.consumers().unwrap_or_default();
    for c in &consumers {
        if let Some(lag) = c.lag {
            let _ = writeln!(out, "bookend_consumer_lag_events{{consumer=\"{}\"}} {lag}", escape(&c.name));
        }
    }
    let _ = writeln!(
        out,
        "# HELP bookend_consumer_cursor_errors Consumers whose cursor cannot be used (1 each).\n# TYPE bookend_consumer_cursor_errors gauge"
    );
    for c in consumers.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(out, "bookend_consumer_cursor_errors{{consumer=\"{}\"}} 1", escape(&c.name));
    }
    let _ = writeln!(
        out,
        "# HELP bookend_http_requests_total HTTP requests by status class.\n# TYPE bookend_http_requests_total counter"
    );
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        let _ = writeln!(
            out,
            "bookend_http_requests_total{{code=\"{class}\"}} {}",
            state.requests[i].load(Ordering::Relaxed)
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
