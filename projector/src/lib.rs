//! bookend's session domain: the events of a session's life, the rules that
//! keep every span closed by exactly one `session:end`, the projections
//! folded from the journal (with sled checkpoints), and [`SessionJournal`],
//! the one type a gateway holds.

mod command;
mod consumer;
mod cursor;
mod error;
mod event;
mod event_codec;
mod fold;
mod inspect;
mod projection;
mod rules;
mod session;
mod session_journal;
mod store;
mod table;
mod verify;

pub use command::{Ack, Command, CommandLine, ResetMode, ResetPolicy, Sessions, Start, parse_command};
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
pub use projection::{Projection, ProjectionRunner};
pub use rules::{
    ACTIVITY_COALESCE_MS_DEFAULT, ERROR_LEN_MAX_BYTES, FINALIZE_ATTEMPTS_MAX_DEFAULT, ID_LEN_MAX_BYTES,
    Rules, Violation,
};
pub use session::{Meta, SessionState};
pub use session_journal::{
    CHECKPOINT_EVERY_EVENTS_DEFAULT, CHECKPOINT_INTERVAL_DEFAULT, Clock, ManualClock, OnUnclean, OpenReport,
    Pending, SessionJournal, SessionJournalOptions, StoreLocation, Summary, SystemClock,
};
pub use store::{CACHE_CAPACITY_BYTES_DEFAULT, ProjectionStore, STORE_DIR_NAME, STORE_FORMAT};
pub use verify::{CorruptionReport, DataLossReport, ReplayReport, VerifyReport, rebuild_and_compare, verify};
