//! bookend's session domain: the events of a session's life, the rules that
//! keep every span closed by exactly one `session:end`, the projections
//! folded from the journal (with sled checkpoints), and [`SessionJournal`],
//! the one type a gateway holds.
//!
//! # A gateway, whole
//!
//! Open the journal once per process, tell it about every lifecycle change
//! before acting on it, let a watcher expire idle sessions, let consumers
//! read through durable cursors, and close it on the way out. Every command
//! answers with a [`Pending`]: `.wait()` it from sync code or `.await` it.
//!
//! ```
//! use bookend_projector::{
//!     CloseReason, EndReason, ManualClock, ResetPolicy, SessionJournal, SessionJournalOptions, Sessions, Start,
//! };
//!
//! # fn main() -> Result<(), bookend_projector::Error> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path().join("journal");
//! // A clock the example drives; a gateway uses the default system clock.
//! let clock = ManualClock::new(1_700_000_000_000);
//! let options = SessionJournalOptions { clock: clock.clone(), ..SessionJournalOptions::default() };
//! let journal = SessionJournal::open(&dir, options)?;
//!
//! // A message arrives on a chat: start its session (durable when `wait` returns).
//! let ack = journal.start(Start::new("alice-1").key("telegram:alice").platform("telegram"))?.wait()?;
//! assert_eq!(ack.session_id.as_deref(), Some("alice-1"));
//! journal.touch("alice-1")?.wait()?;
//!
//! // Forty idle minutes later the expiry watcher ends it, exactly once.
//! clock.advance(40 * 60_000);
//! let expired = journal.expire(clock.now(), ResetPolicy::idle(30))?.wait()?;
//! assert_eq!(expired.events.len(), 1);
//!
//! // The memory provider reads through its own durable cursor: it sees the
//! // end, flushes, records that it is done, and acknowledges.
//! let mut memory = journal.subscribe("memory")?;
//! while let Some(event) = memory.try_next()? {
//!     if event.body.type_name() == "session:end" {
//!         let id = event.body.session_id().unwrap_or_default().to_string();
//!         journal.mark_flushed(&id, "memory")?.wait()?;
//!         journal.finalized(&id)?.wait()?;
//!     }
//!     memory.ack(event.lsn)?;
//! }
//! assert!(journal.pending_finalization()?.is_empty());
//! drop(memory);
//!
//! // The user is back: a new session on the same key.
//! journal.start(Start::new("alice-2").key("telegram:alice"))?.wait()?;
//!
//! // Shutdown ends what is still open, in one batch with `journal:close`.
//! let closed = journal.close(CloseReason::Shutdown, Sessions::End)?;
//! assert_eq!(closed.events.len(), 2);
//! assert_eq!(journal.get("alice-2")?.and_then(|s| s.end_reason), Some(EndReason::Shutdown));
//! # Ok(())
//! # }
//! ```

mod command;
mod command_fast;
mod consumer;
mod cursor;
mod error;
mod event;
mod event_codec;
mod fold;
mod inspect;
mod json;
mod limits;
mod page;
mod projection;
mod rules;
mod session;
mod session_journal;
mod store;
mod table;
mod verify;

pub use command::{
    ACK_EVENTS_SHOWN_MAX, Ack, Command, CommandLine, ResetMode, ResetPolicy, Sessions, Start, parse_command,
    parse_json,
};
pub use command_fast::parse_command_text;
pub use consumer::{ConsumerCursor, Subscription};
pub use cursor::{
    CONSUMER_NAME_LEN_MAX, CONSUMERS_DIR, ConsumerStatus, CursorInfo, consumer_statuses, list_consumers,
    validate_consumer_name,
};
pub use error::{Error, LifecycleError, Result};
pub use event::{CloseReason, EndReason, Event, EventBody, SessionsOnClose, StartFields, StoredEvent};
pub use event_codec::{decode_event, encode_event};
pub use fold::FOLD_CHECKPOINT_EVERY_EVENTS;
pub use inspect::{Inspection, replay};
pub use limits::{
    ATTR_NAME_LEN_MAX_BYTES, ATTRS_COUNT_MAX, ATTRS_TOTAL_MAX_BYTES, CLOCK_SKEW_MAX_MS_DEFAULT,
    ERROR_LEN_MAX_BYTES, KEY_LEN_MAX_BYTES, LABEL_LEN_MAX_BYTES, MARKER_LEN_MAX_BYTES, NAME_CHARSET,
    REASON_LEN_MAX_BYTES, SESSION_ID_LEN_MAX_BYTES,
};
pub use page::{PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, SessionPage};
pub use projection::{Projection, ProjectionRunner};
pub use rules::{ACTIVITY_COALESCE_MS_DEFAULT, FINALIZE_ATTEMPTS_MAX_DEFAULT, Rules, Violation, WriterEpoch};
pub use session::{Meta, SessionState};
pub use session_journal::{
    BATCH_COMMANDS_MAX, CHECKPOINT_EVERY_EVENTS_DEFAULT, CHECKPOINT_INTERVAL_DEFAULT, Clock, ManualClock,
    OnUnclean, OpenReport, Pending, SessionJournal, SessionJournalOptions, StoreLocation, Summary,
    SystemClock, WRITER_CHECK_INTERVAL_DEFAULT, WRITERS_DIR_NAME,
};
pub use store::{CACHE_CAPACITY_BYTES_DEFAULT, ProjectionStore, STORE_DIR_NAME, STORE_FORMAT};
pub use verify::{CorruptionReport, DataLossReport, ReplayReport, VerifyReport, rebuild_and_compare, verify};
