//! `bookend._native`: the session journal inside a Python process.
//!
//! The Python package (`python/bookend/`) is the public face; this module
//! gives it three things, each as thin as possible:
//!
//! * `journal`: an open journal. Commands go in as the JSON of the command
//!   language and acks come back as JSON, so the embedded journal and
//!   `bookend serve` speak exactly the same shapes. Every call releases the
//!   GIL while it waits for the journal's lock or the disk, so Python
//!   threads share fsyncs.
//! * `completion`: the asyncio path: commands submitted from the event loop
//!   without blocking it, completed on a thread that resolves the futures.
//! * `events`: a consumer's subscription (catch-up, then live).
//!
//! Errors become `bookend` exceptions in `errors`.

/// The module's own Rust allocations go to mimalloc (`bookend-alloc`), not
/// to the interpreter process's malloc: see `alloc/src/lib.rs`.
#[global_allocator]
static ALLOCATOR: bookend_alloc::Allocator = bookend_alloc::Allocator;

mod completion;
mod errors;
mod events;
mod journal;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    bookend_alloc::return_freed_memory_at_once();
    m.add_class::<journal::NativeJournal>()?;
    m.add_class::<events::NativeEvents>()?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
