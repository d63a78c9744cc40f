//! A global allocator for the benches: mimalloc as the `bookend` command
//! line uses it (`bookend-alloc`), or glibc malloc when
//! `BOOKEND_BENCH_ALLOC=glibc`, as a program that embeds the library with
//! Rust's default allocator gets; and it counts live heap bytes, for the
//! memory figures: peak RSS minus peak heap is what the allocator keeps and
//! what is not heap (stacks, the binary, mapped files). Counting costs two
//! atomic operations per allocation, so it is off unless
//! `BOOKEND_BENCH_HEAP=1` (`set_up` reads it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{CStr, c_char};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, Ordering};

use bookend_alloc::Allocator as MiMalloc;

/// The variable that picks glibc malloc (`glibc`) over mimalloc; as a C
/// string for `getenv`.
const ALLOCATOR_VAR_C: &CStr = c"BOOKEND_BENCH_ALLOC";
pub const ALLOCATOR_VAR: &str = match ALLOCATOR_VAR_C.to_str() {
    Ok(name) => name,
    Err(_) => panic!("the variable's name is ASCII"),
};
const UNDECIDED: u8 = 0;
const GLIBC: u8 = 1;
const MIMALLOC: u8 = 2;
/// Decided at the first allocation, before any thread starts, and never
/// changed: every block is freed by the allocator that gave it.
static CHOSEN: AtomicU8 = AtomicU8::new(UNDECIDED);

unsafe extern "C" {
    /// libc's `getenv`, which unlike `std::env::var` does not allocate.
    fn getenv(name: *const c_char) -> *mut c_char;
}

fn glibc() -> bool {
    match CHOSEN.load(Ordering::Relaxed) {
        GLIBC => true,
        MIMALLOC => false,
        _ => {
            // SAFETY: a NUL-terminated name; the value, if any, is a C string
            // read before anything could change the environment.
            let value = unsafe { getenv(ALLOCATOR_VAR_C.as_ptr()) };
            let glibc = !value.is_null() && unsafe { CStr::from_ptr(value) } == c"glibc";
            CHOSEN.store(if glibc { GLIBC } else { MIMALLOC }, Ordering::Relaxed);
            glibc
        }
    }
}

/// The allocator every call goes to.
fn chosen() -> &'static dyn GlobalAlloc {
    if glibc() { &System } else { &MiMalloc }
}

/// The allocator in use, as `BOOKEND_BENCH_ALLOC` names it.
pub fn allocator_name() -> &'static str {
    if glibc() { "glibc" } else { "mimalloc" }
}

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// The chosen allocator, counting live bytes while `COUNTING` is on.
pub struct CountingAlloc;

fn grew(bytes: usize) {
    let bytes = bytes as isize;
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
}

// SAFETY: every call goes unchanged to the allocator chosen once for the
// process (so a block is freed by the one that gave it); only counters are
// added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { chosen().alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { chosen().alloc_zeroed(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { chosen().dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            shrank(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { chosen().realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// Call first thing in `main`: gives mimalloc its purge delay (as the
/// command line does), and starts counting if `BOOKEND_BENCH_HEAP=1` (the
/// few bytes the runtime allocated before are not counted; freeing them
/// later lowers the live figure by as much).
pub fn set_up() {
    if !glibc() {
        bookend_alloc::return_freed_memory_at_once();
    }
    if std::env::var("BOOKEND_BENCH_HEAP").is_ok_and(|v| v == "1") {
        COUNTING.store(true, Ordering::Relaxed);
    }
}

/// The most live heap seen while counting, in MiB; `None` when not counting.
pub fn peak_heap_mib() -> Option<f64> {
    COUNTING.load(Ordering::Relaxed).then(|| PEAK.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0))
}
