//! The allocator of what bookend ships: the `bookend` command line, the
//! Python module (for its own Rust code: the interpreter keeps its own
//! malloc) and the benches that measure the library. The library itself
//! allocates with whatever its host process uses; docs/performance.md
//! measures both.
//!
//! * **mimalloc, not glibc malloc.** bookend frees on one thread what
//!   another allocated: the checkpoint thread drops sessions the command
//!   thread made, the journal's writer drops frames, sled's I/O threads
//!   drop its nodes. With glibc each such free takes the lock of the arena
//!   the memory came from, and the thread allocating from that arena waits:
//!   in compare's durable batches, 4 261 of the command thread's 11 452
//!   switches in 4 s were waits for it. mimalloc frees across threads
//!   without a lock.
//! * **Without transparent huge pages** (`no_thp`): sled allocates 40
//!   metrics histograms of 512 KiB at open, and with huge pages each became
//!   2 MiB of zeroed, resident memory (an idle `append` on a 10M-event
//!   journal peaked at 136 MiB instead of 47).
//! * **Freed memory goes back at once** ([`return_freed_memory_at_once`]):
//!   mimalloc v3 keeps freed pages for a second before it gives them back.
//!   Measured on this project's machine (docs/performance.md): peak RSS of
//!   `bookend append` with 1M lines 66–68 MiB → 39–41 MiB, for 1.90–2.16 s
//!   instead of 1.67–1.71 s; compare's one-caller scenarios 58 MiB → 33
//!   MiB. `bookend verify` holds what it folds until it ends, so the
//!   returns only cost it (sys time 0.09 → 0.27 s, the same peak): the
//!   command line leaves `verify` and `replay` at mimalloc's default.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// The allocator: `#[global_allocator] static A: Allocator = Allocator;`.
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay`: its place in mimalloc v3's `mi_option_e`
/// (`mimalloc.h`), which `libmimalloc-sys` names no constant for. The test
/// below checks that this option has the purge delay's default.
const PURGE_DELAY: mi_option_t = 15;

/// The environment variable by which mimalloc takes the purge delay; when
/// it is set, it is left to decide.
pub const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// Makes mimalloc give freed pages back to the system as soon as they are
/// free, unless `MIMALLOC_PURGE_DELAY` says otherwise. Call it first thing
/// in `main`.
pub fn return_freed_memory_at_once() {
    if std::env::var_os(PURGE_DELAY_VAR).is_none() {
        // SAFETY: sets one of mimalloc's option values; any value is valid
        // for the purge delay, and mimalloc reads options atomically.
        unsafe { mi_option_set(PURGE_DELAY, 0) };
    }
}

#[cfg(test)]
mod tests {
    use libmimalloc_sys::mi_option_get;

    use super::*;

    /// The option at `PURGE_DELAY` is the purge delay: it starts at v3's
    /// default of 1 000 ms and ends at 0. A mimalloc whose options moved
    /// fails here rather than changing some other option.
    #[test]
    fn the_purge_delay_is_set_to_zero() {
        if std::env::var_os(PURGE_DELAY_VAR).is_some() {
            return;
        }
        // SAFETY: reads an option value.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 1000);
        return_freed_memory_at_once();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 0);
    }
}
