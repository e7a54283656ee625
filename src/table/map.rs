//! A bounded, sharded, lock-free map from byte keys to byte values: the hashing layer over
//! [`Shard`]s. The profile table is three of these (profiles, declared IDs, ECIDs).

use std::hash::BuildHasher;

use super::shard::{Change, Edit, Outcome, Shard};
use super::sync::{Guard, HashState};

/// Records per bucket when the shard is full: bigger buckets save pointer and allocation
/// overhead per record but copy more bytes per update (4 records ≈ 400 bytes ≈ 20 ns of copy).
pub(crate) const BUCKET_LOAD: usize = 4;

/// A map of `shards` shards holding at most about `cap` records in all.
#[derive(Debug)]
pub(crate) struct Map {
    /// The shards, a power of two of them.
    shards: Box<[Shard]>,
    /// Keyed SipHash: keys come from clients, so bucket placement must not be predictable.
    hasher: HashState,
    /// `shards.len() - 1`.
    shard_mask: usize,
    /// Buckets per shard minus one.
    bucket_mask: usize,
}

// === impl Map ===

impl Map {
    /// A map bounded to `cap` records (split evenly over the shards, at least one each).
    pub(crate) fn new(cap: usize, shards: usize) -> Map {
        let shards = shards.clamp(1, 1 << 16).next_power_of_two();
        let per_shard = cap.div_ceil(shards).max(1);
        let buckets = (per_shard / BUCKET_LOAD).max(1).next_power_of_two();
        Map {
            shards: (0..shards).map(|_| Shard::new(buckets, per_shard)).collect(),
            hasher: HashState::default(),
            shard_mask: shards - 1,
            bucket_mask: buckets - 1,
        }
    }

    /// The shard and bucket of `key`: high hash bits pick the shard, low bits the bucket.
    #[inline]
    fn locate(&self, key: &[u8]) -> (&Shard, usize) {
        let h = self.hasher.hash_one(key);
        let shard = &self.shards[(h >> 40) as usize & self.shard_mask];
        (shard, h as usize & self.bucket_mask)
    }

    /// The value under `key`, valid while `self` and `guard` are.
    pub(crate) fn get<'a>(&'a self, key: &[u8], guard: &'a Guard) -> Option<&'a [u8]> {
        let (shard, b) = self.locate(key);
        shard.get(b, key, guard)
    }

    /// Atomic read-modify-write of `key`; see [`Shard::upsert`].
    pub(crate) fn upsert(
        &self,
        key: &[u8],
        guard: &Guard,
        f: &mut Edit<'_>,
        evicted: &mut Vec<Vec<u8>>,
    ) -> Outcome {
        let (shard, b) = self.locate(key);
        shard.upsert(b, key, guard, f, evicted)
    }

    /// Stores `val` under `key`.
    pub(crate) fn put(&self, key: &[u8], val: &[u8], guard: &Guard, evicted: &mut Vec<Vec<u8>>) {
        self.upsert(
            key,
            guard,
            &mut |_, out| {
                out.extend_from_slice(val);
                Change::Put
            },
            evicted,
        );
    }

    /// Deletes `key` if its value passes `pred`; returns whether it deleted.
    pub(crate) fn remove_if(&self, key: &[u8], guard: &Guard, pred: impl Fn(&[u8]) -> bool) -> bool {
        let mut f = |old: Option<&[u8]>, _: &mut Vec<u8>| match old {
            Some(v) if pred(v) => Change::Remove,
            _ => Change::Keep,
        };
        self.upsert(key, guard, &mut f, &mut Vec::new()) == Outcome::Removed
    }

    /// Records in the map (approximate while writers run).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(Shard::len).sum()
    }

    /// The most records the map keeps (the sum of its shards' caps).
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(Shard::cap).sum()
    }

    /// Records evicted from the map so far.
    pub(crate) fn evicted(&self) -> usize {
        self.shards.iter().map(Shard::evicted).sum()
    }

    /// The shards, for walking every bucket.
    pub(crate) fn shards(&self) -> &[Shard] {
        &self.shards
    }
}
