//! A global allocator that counts on top of mimalloc, for benches that report memory (live
//! heap bytes as requested) and allocation calls. Included by `#[path]` from each bench.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes and allocation calls on top of mimalloc.
pub struct Counting;

/// Live heap bytes (as requested).
pub static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Allocation calls.
pub static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to mimalloc unchanged; only adds counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
