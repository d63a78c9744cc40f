//! The fleet-wide view: every journal's events folded into one table of
//! sessions keyed by (journal id, session id), in memory. JetStream is the
//! durable store; the view is rebuilt by replaying the stream on start.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// One session as the fleet sees it.
#[derive(Debug, Clone, Default)]
struct Row {
    key: Option<String>,
    platform: Option<String>,
    user_id: Option<String>,
    parent_id: Option<String>,
    active: bool,
    started_at: u64,
    ended_at: Option<u64>,
    end_reason: Option<String>,
    next_id: Option<String>,
    spans: u64,
    start_lsn: u64,
    end_lsn: Option<u64>,
    expiry_finalized: bool,
}

#[derive(Default)]
pub struct FleetView {
    sessions: BTreeMap<(String, String), Row>,
    /// The stream sequence of the last message folded.
    pub last_sequence: u64,
    /// Messages folded since start.
    pub folded: u64,
    /// Per journal: the last LSN folded.
    pub journals: BTreeMap<String, u64>,
}

fn text(event: &Value, field: &str) -> Option<String> {
    event[field].as_str().map(str::to_string)
}

impl FleetView {
    /// Folds one message: `event` is the event JSON `bookend forward` publishes.
    pub fn fold(&mut self, sequence: u64, journal: &str, event: &Value) {
        self.last_sequence = self.last_sequence.max(sequence);
        self.folded += 1;
        let lsn = event["lsn"].as_u64().unwrap_or(0);
        let last = self.journals.entry(journal.to_string()).or_default();
        *last = (*last).max(lsn);
        let Some(id) = text(event, "session_id") else { return };
        let at = event["at"].as_u64().unwrap_or(0);
        let key = (journal.to_string(), id);
        match event["type"].as_str().unwrap_or_default() {
            "session:start" => {
                let row = Row {
                    key: text(event, "key"),
                    platform: text(event, "platform"),
                    user_id: text(event, "user_id"),
                    parent_id: text(event, "parent_id"),
                    active: true,
                    started_at: at,
                    spans: 1,
                    start_lsn: lsn,
                    ..Row::default()
                };
                self.sessions.insert(key, row);
            }
            "session:end" => {
                let row = self.sessions.entry(key).or_default();
                row.active = false;
                row.ended_at = Some(at);
                row.end_reason = text(event, "reason");
                row.next_id = text(event, "next_id");
                row.end_lsn = Some(lsn);
            }
            "session:reopen" => {
                let row = self.sessions.entry(key).or_default();
                row.active = true;
                row.spans += 1;
                row.ended_at = None;
                row.end_reason = None;
            }
            "session:expiry_finalized" => self.sessions.entry(key).or_default().expiry_finalized = true,
            _ => {}
        }
    }

    fn row_json(journal: &str, id: &str, r: &Row) -> Value {
        json!({"journal_id": journal, "session_id": id, "key": r.key, "platform": r.platform,
               "user_id": r.user_id, "parent_id": r.parent_id, "active": r.active, "started_at": r.started_at,
               "ended_at": r.ended_at, "end_reason": r.end_reason, "next_id": r.next_id, "spans": r.spans,
               "start_lsn": r.start_lsn, "end_lsn": r.end_lsn, "expiry_finalized": r.expiry_finalized})
    }

    pub fn get(&self, journal: &str, id: &str) -> Option<Value> {
        let row = self.sessions.get(&(journal.to_string(), id.to_string()))?;
        Some(Self::row_json(journal, id, row))
    }

    /// At most `limit` sessions after position `after` (in (journal, id)
    /// order), filtered; and the position to continue from.
    pub fn page(&self, filter: &Filter, after: usize, limit: usize) -> (Vec<Value>, Option<usize>) {
        let mut rows = Vec::new();
        let mut next = None;
        for (i, ((journal, id), row)) in self.sessions.iter().enumerate().skip(after) {
            if !filter.keeps(journal, row) {
                continue;
            }
            if rows.len() == limit {
                next = Some(i);
                break;
            }
            rows.push(Self::row_json(journal, id, row));
        }
        (rows, next)
    }

    /// Active sessions per journal (for metrics).
    pub fn active_by_journal(&self) -> BTreeMap<&str, u64> {
        let mut out: BTreeMap<&str, u64> = self.journals.keys().map(|j| (j.as_str(), 0)).collect();
        for ((journal, _), row) in &self.sessions {
            if row.active {
                *out.entry(journal.as_str()).or_default() += 1;
            }
        }
        out
    }

    pub fn sessions_total(&self) -> usize {
        self.sessions.len()
    }
}

/// What a listing asked for.
#[derive(Default)]
pub struct Filter {
    pub journal: Option<String>,
    pub active: Option<bool>,
    pub key: Option<String>,
}

impl Filter {
    fn keeps(&self, journal: &str, row: &Row) -> bool {
        self.journal.as_deref().is_none_or(|j| j == journal)
            && self.active.is_none_or(|a| row.active == a)
            && self.key.as_deref().is_none_or(|k| row.key.as_deref() == Some(k))
    }
}
