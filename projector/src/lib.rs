//! bookend's session domain: the events of a session's life, the rules that
//! keep every span closed by exactly one `session:end`, the projections
//! folded from the journal (with sled checkpoints), and [`SessionJournal`],
//! the one type a gateway holds.

pub mod command;
pub mod consumer;
mod cursor;
mod error;
pub mod event;
mod event_codec;
pub mod fold;
pub mod lifecycle;
mod packed;
pub mod projection;
mod session_journal;
pub mod state;
pub mod store;
pub mod verify;

pub use command::{Ack, Command, CommandLine, ResetMode, ResetPolicy, Sessions, Start, parse_command};
pub use consumer::{ConsumerCursor, Subscription};
pub use cursor::{ConsumerStatus, CursorInfo, consumer_statuses, list_consumers, validate_consumer_name};
pub use error::{Error, LifecycleError, Result};
pub use event::{CloseReason, EndReason, Event, EventBody, SessionsOnClose, StartFields, StoredEvent};
pub use event_codec::{decode_event, encode_event};
pub use session_journal::{
    CHECKPOINT_EVERY_EVENTS_DEFAULT, CHECKPOINT_INTERVAL_DEFAULT, Clock, ManualClock, OnUnclean, OpenReport,
    Pending, SessionJournal, SessionJournalOptions, StoreLocation, Summary, SystemClock,
};
pub use state::{Meta, SessionState};
