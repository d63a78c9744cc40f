//! `GET /v1/sessions` (a page at a time, in start order) and
//! `GET /v1/sessions/{id}`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bookend_projector::{EndReason, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, SessionState};
use serde_json::{Value, json};

use super::Shared;
use super::reply::{Params, Refusal, error, projector_error, refuse};

/// What a listing asked for.
struct Filter {
    active: Option<bool>,
    key: Option<String>,
    reason: Option<EndReason>,
}

impl Filter {
    fn keeps(&self, s: &SessionState) -> bool {
        self.active.is_none_or(|a| s.active == a)
            && self.key.as_deref().is_none_or(|k| s.key() == Some(k))
            && self.reason.as_ref().is_none_or(|r| s.end_reason.as_ref() == Some(r))
    }
}

/// An end reason to filter by must be one bookend knows or one this
/// journal has recorded: anything else is a typo, not an empty answer.
fn end_reason(state: &Shared, text: &str) -> Result<EndReason, Refusal> {
    let reason = EndReason::parse(text);
    let recorded = state.journal.summary().ends_by_reason.contains_key(text);
    if matches!(reason, EndReason::Other(_)) && !recorded {
        let known: Vec<String> = EndReason::known().map(|r| r.to_string()).collect();
        let message = format!("no session has ended with reason {text:?}; reasons: {}", known.join(", "));
        return Err(refuse(StatusCode::BAD_REQUEST, "invalid_query", message));
    }
    Ok(reason)
}

/// `?active=&key=&end_reason=&limit=&after=`: at most `limit` sessions
/// (default 100, at most 1000) in start order after the start LSN
/// `after`, and `next`, the `after` of the next page (null on the last).
pub async fn get_sessions(
    State(state): State<Shared>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let q = match Params::parse(pairs, &["active", "key", "end_reason", "limit", "after"]) {
        Ok(q) => q,
        Err(refusal) => return refusal.into_response(),
    };
    let (active, limit, after) =
        match (q.flag("active"), q.number("limit", 1, PAGE_LIMIT_MAX as u64), q.number("after", 0, u64::MAX))
        {
            (Ok(a), Ok(l), Ok(f)) => (a, l.map_or(PAGE_LIMIT_DEFAULT, |l| l as usize), f.unwrap_or(0)),
            (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r.into_response(),
        };
    let reason = match q.text("end_reason").map(|r| end_reason(&state, r)).transpose() {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let filter = Filter { active, key: q.text("key").map(str::to_string), reason };
    let page = tokio::task::block_in_place(|| state.journal.sessions_page(after, limit, |s| filter.keeps(s)));
    match page {
        Ok(page) => {
            let rows: Vec<Value> = page.sessions.iter().map(SessionState::to_json).collect();
            axum::Json(json!({"sessions": rows, "next": page.next})).into_response()
        }
        Err(e) => projector_error(&e),
    }
}

pub async fn get_session(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    match tokio::task::block_in_place(|| state.journal.get(&id)) {
        Ok(Some(s)) => axum::Json(s.to_json()).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_session", &format!("unknown session {id:?}")),
        Err(e) => projector_error(&e),
    }
}

/// `GET /v1/pending/finalization`: sessions ended by expiry whose
/// finalization has not succeeded and still has attempts left.
pub async fn get_pending_finalization(State(state): State<Shared>) -> Response {
    match tokio::task::block_in_place(|| state.journal.pending_finalization()) {
        Ok(rows) => session_list(&rows),
        Err(e) => projector_error(&e),
    }
}

/// `GET /v1/pending/flush/{marker}`: ended sessions without that marker.
pub async fn get_pending_flush(State(state): State<Shared>, Path(marker): Path<String>) -> Response {
    match tokio::task::block_in_place(|| state.journal.pending_flush(&marker)) {
        Ok(rows) => session_list(&rows),
        Err(e) => projector_error(&e),
    }
}

/// `GET /v1/stats`: the counts `bookend stats --json` prints.
pub async fn get_stats(State(state): State<Shared>) -> Response {
    match tokio::task::block_in_place(|| state.journal.stats()) {
        Ok(stats) => axum::Json(stats).into_response(),
        Err(e) => projector_error(&e),
    }
}

fn session_list(rows: &[SessionState]) -> Response {
    let rows: Vec<Value> = rows.iter().map(SessionState::to_json).collect();
    axum::Json(json!({"sessions": rows})).into_response()
}
