//! `bookend fleet`: reading the fleet's stream, every journal's events
//! forwarded by `bookend forward`.
//!
//! * `verify`: the lifecycle invariants per journal across the stream.

mod verify;

pub use verify::{VerifyArgs, run_verify};
