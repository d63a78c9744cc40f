//! A global allocator that counts live heap bytes, for the benches' memory
//! figures: peak RSS minus peak heap is what the allocator keeps and what
//! is not heap (stacks, the binary, mapped files). Counting costs two
//! atomic operations per allocation, so it is off unless
//! `BOOKEND_BENCH_HEAP=1` (`count_if_asked` reads it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting live bytes while `COUNTING` is on.
pub struct CountingAlloc;

fn grew(bytes: usize) {
    let bytes = bytes as isize;
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
}

// SAFETY: every call goes to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            shrank(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// Starts counting if `BOOKEND_BENCH_HEAP=1`. Call first thing in `main`:
/// the few bytes the runtime allocated before are not counted (freeing
/// them later lowers the live figure by as much).
pub fn count_if_asked() {
    if std::env::var("BOOKEND_BENCH_HEAP").is_ok_and(|v| v == "1") {
        COUNTING.store(true, Ordering::Relaxed);
    }
}

/// The most live heap seen while counting, in MiB; `None` when not counting.
pub fn peak_heap_mib() -> Option<f64> {
    COUNTING.load(Ordering::Relaxed).then(|| PEAK.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0))
}
