//! `SessionJournal::stats`: the counts `bookend stats`, `GET /v1/stats`
//! and Python's `Journal.stats()` show, in one JSON shape.

use serde_json::{Value, json};

use super::SessionJournal;
use crate::error::Result;

impl SessionJournal {
    /// The journal's identity, its LSNs, session counts, ends by reason,
    /// consumers' lag (from one snapshot of the folded state), the open
    /// epochs (with several writer processes, each live one: pid, host and
    /// sessions owned), and what
    /// this process's writer has done since open (`writer`: appends,
    /// group commits, fsyncs, bytes).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// use bookend_projector::{SessionJournal, SessionJournalOptions, Start};
    /// let journal = SessionJournal::open(tmp.path().join("j"), SessionJournalOptions::default())?;
    /// journal.start(Start::new("s1").key("cli:me"))?.wait()?;
    /// let stats = journal.stats()?;
    /// assert_eq!(stats["sessions"]["active"], 1);
    /// assert_eq!(stats["epoch_open"], true);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> Result<Value> {
        let meta = self.meta();
        let journal = self.journal();
        let active = meta.active.len() as u64;
        let writer = journal.stats();
        let consumers: Vec<Value> = self.consumers()?.into_iter().map(|c| c.to_json()).collect();
        let writers: Vec<Value> = self.writers().iter().map(|w| w.to_json()).collect();
        Ok(json!({
            "journal_id": self.journal_id().to_string(),
            "events": meta.last_lsn,
            "durable_lsn": journal.durable_lsn(),
            "next_lsn": journal.next_lsn(),
            "epoch": meta.epoch,
            "epoch_open": meta.epoch_open,
            "sessions": {
                "total": meta.sessions_total,
                "active": active,
                "ended": meta.sessions_total - active,
                "awaiting_finalization": meta.awaiting_finalization.len(),
            },
            "ends_by_reason": meta.ends_by_reason,
            "consumers": consumers,
            "open_epochs": writers,
            "writer": {
                "appends": writer.appends,
                "events": writer.events,
                "groups": writer.groups,
                "fsyncs": writer.fsyncs,
                "bytes_written": writer.bytes_written,
            },
            "poisoned": self.poisoned(),
        }))
    }
}
