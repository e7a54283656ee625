//! One shard of a map: a fixed array of buckets, each an immutable byte string behind an
//! epoch-managed atomic pointer, plus one CLOCK reference byte per bucket.
//!
//! This is the only file of the table with `unsafe` (opted in below): turning a pointer loaded
//! under an epoch guard into a byte slice, and retiring a bucket after unlinking it. The argument
//! for both is in `table/mod.rs` ("Reclamation"); each block says which part it relies on.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use super::entry::{self, Records};
use super::sync::{Atomic, AtomicIsize, AtomicU8, AtomicUsize, Guard, Ordering, Owned, Shared};

/// A bucket's bytes as crossbeam-epoch allocates them: one allocation, length in its header.
type Bytes = [MaybeUninit<u8>];

/// Most records one bucket holds. Inserting into a full bucket drops its oldest record in the
/// same swap, so the work of one update stays bounded even if many keys share a bucket.
pub(crate) const MAX_BUCKET_RECORDS: usize = 32;

/// One shard: buckets, reference bits and the count that bounds it.
pub(crate) struct Shard {
    /// Null for an empty bucket, else an immutable run of records.
    buckets: Box<[Atomic<Bytes>]>,
    /// CLOCK reference bits: set when a bucket is read or written, cleared by the hand.
    refs: Box<[AtomicU8]>,
    /// Records in the shard and records evicted from it, on one cache line that inserts write
    /// anyway.
    counts: CachePadded<Counts>,
    /// The CLOCK hand (a bucket index, taken modulo the bucket count).
    hand: AtomicUsize,
    /// The most records the shard keeps.
    cap: usize,
}

/// A shard's counters.
struct Counts {
    /// Records in the shard. Signed: a remove may publish and count before the insert it
    /// removed has counted, so the sum can dip below zero for a moment.
    len: AtomicIsize,
    /// Records dropped to keep the shard within its cap or a bucket within
    /// [`MAX_BUCKET_RECORDS`].
    evicted: AtomicUsize,
}

/// An upsert's edit: sees the current value (if any), writes the new one into the buffer.
pub(crate) type Edit<'a> = dyn FnMut(Option<&[u8]>, &mut Vec<u8>) -> Change + 'a;

/// What an upsert closure asks for, having seen the current value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Store the bytes the closure wrote.
    Put,
    /// Delete the record.
    Remove,
    /// Leave the bucket as it is.
    Keep,
}

/// What an upsert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A new record.
    Inserted,
    /// An existing record replaced.
    Updated,
    /// A record deleted.
    Removed,
    /// Nothing written.
    Unchanged,
}

// === impl Shard ===

impl Shard {
    /// A shard of `buckets` (a power of two) buckets keeping at most `cap` records.
    pub(crate) fn new(buckets: usize, cap: usize) -> Shard {
        debug_assert!(buckets.is_power_of_two());
        Shard {
            buckets: (0..buckets).map(|_| Atomic::null()).collect(),
            refs: (0..buckets).map(|_| AtomicU8::new(0)).collect(),
            counts: CachePadded::new(Counts { len: AtomicIsize::new(0), evicted: AtomicUsize::new(0) }),
            hand: AtomicUsize::new(0),
            cap,
        }
    }

    /// Records in the shard (approximate while writers run).
    pub(crate) fn len(&self) -> usize {
        usize::try_from(self.counts.len.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// The most records the shard keeps.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Records evicted from the shard so far.
    pub(crate) fn evicted(&self) -> usize {
        self.counts.evicted.load(Ordering::Relaxed)
    }

    /// Number of buckets.
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The bytes of bucket `b` as of now; valid while both `self` and `guard` are.
    pub(crate) fn bucket<'a>(&'a self, b: usize, guard: &'a Guard) -> &'a [u8] {
        as_bytes(self.buckets[b].load(Ordering::Acquire, guard))
    }

    /// The value stored under `key` in bucket `b`. Marks the bucket referenced.
    pub(crate) fn get<'a>(&'a self, b: usize, key: &[u8], guard: &'a Guard) -> Option<&'a [u8]> {
        self.touch(b);
        entry::find(self.bucket(b, guard), key).map(|r| r.val)
    }

    /// Read-modify-write of `key` in bucket `b`: `f` sees the current value (if any) and writes
    /// the new one into its buffer. If another writer swaps the bucket first, `f` runs again on
    /// the newer value, so no update is lost. Records dropped to make room are appended to
    /// `evicted` (whole records, see [`entry::Records`]).
    pub(crate) fn upsert(
        &self,
        b: usize,
        key: &[u8],
        guard: &Guard,
        f: &mut Edit<'_>,
        evicted: &mut Vec<Vec<u8>>,
    ) -> Outcome {
        let slot = &self.buckets[b];
        // Read the CLOCK bit now, beside the slot, so its cache miss overlaps the slot's instead
        // of coming after the whole edit.
        let referenced = self.refs[b].load(Ordering::Relaxed) != 0;
        let (mut val, mut next) = BUFFERS.take();
        let outcome = loop {
            let cur = slot.load(Ordering::Acquire, guard);
            let bytes = as_bytes(cur);
            let found = entry::find(bytes, key);
            val.clear();
            next.clear();
            let (outcome, dropped) = match (f(found.map(|r| r.val), &mut val), found) {
                (Change::Keep, _) | (Change::Remove, None) => break Outcome::Unchanged,
                (Change::Remove, Some(r)) => {
                    entry::copy_without(&mut next, bytes, r.range());
                    (Outcome::Removed, None)
                }
                (Change::Put, Some(r)) => {
                    entry::copy_without(&mut next, bytes, r.range());
                    entry::put_record(&mut next, key, &val);
                    (Outcome::Updated, None)
                }
                (Change::Put, None) => {
                    let dropped = make_room(bytes, &mut next);
                    entry::put_record(&mut next, key, &val);
                    (Outcome::Inserted, dropped)
                }
            };
            if self.publish(slot, cur, &next, guard) {
                if !referenced {
                    self.refs[b].store(1, Ordering::Relaxed);
                }
                if let Some(range) = dropped {
                    self.counts.evicted.fetch_add(1, Ordering::Relaxed);
                    evicted.push(bytes[range].to_vec());
                } else {
                    self.count(outcome, guard, evicted);
                }
                break outcome;
            }
        };
        BUFFERS.set((val, next));
        outcome
    }

    /// Drops one record: the oldest record of the first unreferenced, non-empty bucket under
    /// the CLOCK hand, clearing reference bits on the way. If two turns of the hand find none
    /// (concurrent reads keep setting bits, or swaps lose races), the next non-empty bucket
    /// gives up its oldest record regardless, retrying lost swaps: each loss means another
    /// writer progressed. Fails only if the shard is empty.
    pub(crate) fn evict_one(&self, guard: &Guard, evicted: &mut Vec<Vec<u8>>) -> bool {
        let n = self.buckets.len();
        for _ in 0..2 * n {
            let b = self.hand.fetch_add(1, Ordering::Relaxed) & (n - 1);
            if self.refs[b].load(Ordering::Relaxed) != 0 {
                self.refs[b].store(0, Ordering::Relaxed);
            } else if self.try_evict_oldest(b, guard, evicted) == Some(true) {
                return true;
            }
        }
        let start = self.hand.load(Ordering::Relaxed);
        for b in (start..start + n).map(|b| b & (n - 1)) {
            while let Some(done) = self.try_evict_oldest(b, guard, evicted) {
                if done {
                    return true;
                }
            }
        }
        false
    }

    /// One attempt to drop bucket `b`'s oldest record: `None` if the bucket is empty,
    /// `Some(false)` if another writer swapped it first.
    fn try_evict_oldest(&self, b: usize, guard: &Guard, evicted: &mut Vec<Vec<u8>>) -> Option<bool> {
        let slot = &self.buckets[b];
        let cur = slot.load(Ordering::Acquire, guard);
        let bytes = as_bytes(cur);
        let first = Records::new(bytes).next()?.range();
        let mut next = Vec::with_capacity(bytes.len());
        entry::copy_without(&mut next, bytes, first.clone());
        if !self.publish(slot, cur, &next, guard) {
            return Some(false);
        }
        self.counts.len.fetch_sub(1, Ordering::Relaxed);
        self.counts.evicted.fetch_add(1, Ordering::Relaxed);
        evicted.push(bytes[first].to_vec());
        Some(true)
    }

    /// Updates the count after a successful swap. An insert that took the count past the cap
    /// evicts exactly one record, so once concurrent inserts finish the shard is back at its cap
    /// (never below it because of a race).
    fn count(&self, outcome: Outcome, guard: &Guard, evicted: &mut Vec<Vec<u8>>) {
        match outcome {
            Outcome::Inserted => {
                let before = self.counts.len.fetch_add(1, Ordering::Relaxed);
                if usize::try_from(before).is_ok_and(|n| n >= self.cap) {
                    self.evict_one(guard, evicted);
                }
            }
            Outcome::Removed => {
                self.counts.len.fetch_sub(1, Ordering::Relaxed);
            }
            Outcome::Updated | Outcome::Unchanged => {}
        }
    }

    /// Sets bucket `b`'s reference bit; loads first so hot buckets don't bounce a cache line.
    fn touch(&self, b: usize) {
        if self.refs[b].load(Ordering::Relaxed) == 0 {
            self.refs[b].store(1, Ordering::Relaxed);
        }
    }

    /// Swaps `cur` for a bucket holding `bytes` (null if empty). On success the old bucket is
    /// retired to the epoch collector.
    fn publish<'g>(
        &self,
        slot: &Atomic<Bytes>,
        cur: Shared<'g, Bytes>,
        bytes: &[u8],
        guard: &'g Guard,
    ) -> bool {
        let (acq_rel, acq) = (Ordering::AcqRel, Ordering::Acquire);
        let swapped = if bytes.is_empty() {
            slot.compare_exchange(cur, Shared::null(), acq_rel, acq, guard).is_ok()
        } else {
            slot.compare_exchange(cur, alloc(bytes), acq_rel, acq, guard).is_ok()
        };
        if swapped && !cur.is_null() {
            retire(cur, guard);
        }
        swapped
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        for slot in std::mem::take(&mut self.buckets).into_vec() {
            // SAFETY: `&mut self` means no thread holds a reference into this shard (every
            // slice handed out borrows the shard), so the current bucket is ours to free; retired
            // ones belong to the collector, not to the slot.
            drop(unsafe { slot.try_into_owned() });
        }
    }
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("buckets", &self.buckets.len()).field("len", &self.len()).finish()
    }
}

thread_local! {
    /// An upsert's value and bucket buffers, reused per thread (taken, so nesting is safe).
    static BUFFERS: std::cell::Cell<(Vec<u8>, Vec<u8>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// Copies the bucket into `next` without its oldest record if it is full; returns that
/// record's range.
fn make_room(bytes: &[u8], next: &mut Vec<u8>) -> Option<std::ops::Range<usize>> {
    if Records::new(bytes).count() < MAX_BUCKET_RECORDS {
        next.extend_from_slice(bytes);
        return None;
    }
    let first = Records::new(bytes).next()?.range();
    entry::copy_without(next, bytes, first.clone());
    Some(first)
}

/// Hands an unlinked bucket to the epoch collector.
#[cfg(not(loom))]
fn retire(cur: Shared<'_, Bytes>, guard: &Guard) {
    // SAFETY: the caller's CAS unlinked `cur`, so no thread can load it any more; threads that
    // loaded it earlier did so under a guard pinned before the CAS, and `defer_destroy` frees it
    // only after every such guard is dropped (Reclamation in mod.rs). It is retired exactly
    // once: only the CAS winner calls this.
    unsafe { guard.defer_destroy(cur) };
}

/// Under loom: poisons the bucket before freeing it, and flushes, so the collector really runs
/// deferred frees during a model and a reader that could see a freed bucket sees poison.
#[cfg(loom)]
fn retire(cur: Shared<'_, Bytes>, guard: &Guard) {
    // SAFETY: as in the non-loom `retire`: the closure runs only after every guard that could
    // have loaded `cur` is gone, so it is the only user of the allocation, and it runs once.
    unsafe {
        guard.defer_unchecked(move || {
            let mut owned = cur.into_owned();
            owned.iter_mut().for_each(|b| drop(b.write(POISON)));
        })
    };
    guard.flush();
}

/// What a freed bucket is overwritten with under loom (never a valid record start: a key
/// length of 0x7F bytes is longer than any key the loom tests use).
#[cfg(loom)]
pub(crate) const POISON: u8 = 0x7F;

/// A new bucket holding a copy of `bytes`.
fn alloc(bytes: &[u8]) -> Owned<Bytes> {
    let mut owned = Owned::<Bytes>::init(bytes.len());
    for (dst, src) in owned.iter_mut().zip(bytes) {
        dst.write(*src);
    }
    owned
}

/// The bytes of a bucket pointer loaded under a guard (empty for null).
fn as_bytes<'g>(p: Shared<'g, Bytes>) -> &'g [u8] {
    // SAFETY: `p` was loaded from a bucket slot under the guard that `'g` borrows; a bucket is
    // freed only through `defer_destroy` after it is unlinked, which waits for that guard.
    let Some(cells) = (unsafe { p.as_ref() }) else {
        return &[];
    };
    // SAFETY: `alloc` wrote every byte before the pointer was published (the publishing CAS is
    // Release, our load Acquire), and a published bucket is never written again;
    // `MaybeUninit<u8>` has the layout of `u8`.
    unsafe { std::slice::from_raw_parts(cells.as_ptr().cast::<u8>(), cells.len()) }
}
