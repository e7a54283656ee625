//! The table's only door to atomics and epoch reclamation, so the lock-free core can run under
//! loom (the pattern of sharded-slab's `src/sync.rs`).
//!
//! Normal builds use `std` atomics and crossbeam-epoch's global collector, pinned through the
//! thread-local handle (a few ns). Under `--cfg loom` (plus `--cfg crossbeam_loom`, which turns on
//! crossbeam-epoch's own loom build, see `scripts/loom.sh`) the atomics are loom's, each table
//! owns a private collector, and every pin registers a fresh participant, so loom sees every load,
//! CAS and deferred free of the core. The hasher is also fixed under loom, because loom requires
//! every execution of a model to be deterministic.

pub(crate) use crossbeam_epoch::{Atomic, Guard, Owned, Shared};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};

/// The keyed hasher of a map: SipHash with random keys (hash flooding needs the keys), fixed
/// keys under loom.
#[cfg(not(loom))]
pub(crate) type HashState = std::collections::hash_map::RandomState;
/// The keyed hasher of a map: SipHash with random keys (hash flooding needs the keys), fixed
/// keys under loom.
#[cfg(loom)]
pub(crate) type HashState = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// Where a table's guards come from.
#[derive(Default)]
pub(crate) struct Collector {
    /// Under loom each table has its own collector: loom state must not outlive one model run.
    #[cfg(loom)]
    inner: crossbeam_epoch::Collector,
}

// === impl Collector ===

impl Collector {
    /// Pins the current thread: shared pointers loaded under the guard stay valid until it drops.
    #[inline]
    pub(crate) fn pin(&self) -> Guard {
        #[cfg(not(loom))]
        {
            crossbeam_epoch::pin()
        }
        #[cfg(loom)]
        {
            self.inner.register().pin()
        }
    }
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}
