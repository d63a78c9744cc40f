//! `bookend fleet`: reading the fleet's stream, every journal's events
//! forwarded by `bookend forward`.
//!
//! * `view`: the fleet-wide table of sessions, folded from the stream.
//! * `serve`: that view over HTTP, and SSE across the fleet.
//! * `verify`: the lifecycle invariants per journal across the stream.

mod serve;
mod verify;
mod view;

pub use serve::{FleetArgs, run};
pub use verify::{VerifyArgs, run_verify};
