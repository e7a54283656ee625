//! The profile table: every user's profile keyed by UUID, plus the declared-ID → UUID and
//! ECID → UUID maps. The only mutable state the cores share (docs/architecture.md §4); no IO except
//! [`snapshot`], which the daemon runs on its own thread.
//!
//! # API
//! [`ProfileTable::get`] decodes a copy of a profile; [`ProfileTable::update`] runs a closure on
//! the current profile (created if absent) and publishes the result atomically, re-running the
//! closure if another thread won the race; [`ProfileTable::remove`]; mappings with
//! [`ProfileTable::map_declared`] / [`ProfileTable::lookup_declared`] (most recent wins) and
//! [`ProfileTable::map_ecid`] / [`ProfileTable::lookup_ecid`];
//! [`ProfileTable::sync_declared`] records a declared ID in the profile and the map at once;
//! [`ProfileTable::for_each_profile`] walks the table. Expired realizations (older than
//! `history_days`) and partner results are dropped lazily, on every read and update.
//!
//! # Layout
//! Four maps (`map::Map`) of byte keys to byte values, each split into a power of two of
//! shards by the high bits of a keyed SipHash; a shard is a fixed array of buckets (about
//! `map::BUCKET_LOAD` records each when full). A bucket is one immutable heap allocation
//! holding its records back to back (`entry.rs`); a profile is stored in a compact encoding
//! (`codec.rs`, 67 bytes for the benchmark profile) and decoded into a [`Profile`] only
//! for the length of a read or an update.
//!
//! # Concurrency
//! Every bucket slot is an epoch-managed atomic pointer (crossbeam-epoch). A read pins the
//! epoch, loads the slot (Acquire) and reads the bytes: no lock, no retry, no write except
//! setting the bucket's CLOCK bit when it is clear. A write is read-copy-update: load the
//! bucket, build a new one with the record changed (the caller's closure sees the current
//! value), and compare-and-swap the slot (AcqRel). If the CAS fails another writer published
//! first, so the closure runs again on the newer value: two cores updating one profile at once
//! both land, and a writer is never blocked by a reader or by the snapshot thread (lock-free:
//! a failed CAS means another writer's succeeded). The unit of conflict is a bucket, so two
//! writers of different keys in one bucket also retry; with about 4 records a bucket and
//! 2^16+ buckets per million profiles that is rare.
//!
//! # Reclamation
//! A bucket is freed only through `Guard::defer_destroy`, called once, by the writer whose CAS
//! unlinked it. After that CAS no thread can load the old pointer; a thread still holding it
//! loaded it under a guard pinned earlier, and crossbeam-epoch runs the destructor only after
//! every thread pinned in that epoch has unpinned. Every slice the table hands out internally
//! borrows both the guard and the table, and the public API copies out before unpinning, so no
//! reference outlives its guard. `Shard`'s `Drop` frees the live buckets with `&mut self`
//! (no reader can exist). `shard.rs` is the only file with `unsafe` (three blocks).
//!
//! # Bounds and eviction
//! `max_profiles` is split evenly over the shards; an insert that takes a shard past its share
//! evicts one record chosen by a CLOCK hand over buckets (read or written buckets get a second
//! chance; in the chosen bucket the record least recently written goes, since an update moves
//! its record to the end). A shard can pass its share only by the number of inserts in flight
//! on it at once. Evicting a profile also drops the mappings that still point to it. The
//! mapping maps have the same bound and their own CLOCK. A bucket never holds more than
//! `shard::MAX_BUCKET_RECORDS` records, so one update copies a bounded number of bytes
//! whatever the keys. Per profile, at most `max_traits_per_profile` traits are kept (those last
//! realized longest ago go first).
//!
//! # Memory (bytes per profile at 1M profiles: 8 traits realized today, 2 segments, 1 declared ID)
//! Profile record: key 16 + 2 length bytes + encoded profile 67 (flags 1, last seen 4, traits
//! 1 + 2 + 34 (per trait an ID delta, 3 bytes for the first and 1 for the others, then days,
//! day delta and count, 1 byte each), segments 7, synced ID 18) = 85. Declared-ID record: 1 + (4 + 12) + 1 + 16 (UUID) +
//! 8 (mapping time) = 42. Buckets: an 8-byte length header per allocation, shared by about 3.8
//! records (4.2 bytes a profile over both maps); slot arrays: 9 bytes per bucket (pointer +
//! CLOCK byte) in four maps (7.7 bytes a profile). Sum: 139.
//! Measured (`cargo bench --bench table -- 1m`, mimalloc wrapped by a counting allocator):
//! 1M inserts into a table with `max_profiles` = 1M keep ~996 900 profiles (per-shard bounds
//! evict ~0.3% in the fuller shards) and ~995 000 declared-ID mappings: **139.3 heap bytes
//! requested per profile**; RSS grew by **173 bytes per profile** (175 with transparent huge
//! pages). After 1M more users are inserted (each evicting one), the heap is 138.8 bytes a
//! profile and RSS 197.6 (199.6). The gap is the
//! allocator's: size-class rounding and partly used pages, because read-copy-update allocates
//! every bucket version anew and bucket sizes vary with their record count (flushing the epoch
//! garbage or `MIMALLOC_PURGE_DELAY=0` change nothing; mimalloc v2 gives 168.5 / 195.3).
//!
//! # Performance
//! Measured on the 2-core development VM (AMD EPYC, shared, so absolute numbers move by ±20%
//! between runs; compare within a run), `cargo bench --bench table -- --warm-up-time 1
//! --measurement-time 3`, with transparent huge pages still allowed (the build has since turned
//! them off, see below), per-operation time per thread. Every store holds the same 100k
//! profiles; "cold" picks keys uniformly among all of them (DRAM-bound), "hot" among the first
//! 1 000 (their buckets stay in L2, so the time is the maps' own work):
//!
//! | op | keys | threads | table | `RwLock<HashMap>` | `DashMap` |
//! |---|---|---|---|---|---|
//! | get (copy out) | cold | 1 | 525 ns | 606 ns | 539 ns |
//! | get (copy out) | cold | 2 | 681 ns | 660 ns | 624 ns |
//! | get (copy out) | hot | 1 | 263 ns | 152 ns | 153 ns |
//! | get (copy out) | hot | 2 | 432 ns | 284 ns | 255 ns |
//! | update (1 realization) | cold | 1 | 819 ns | 320 ns | 338 ns |
//! | update (1 realization) | cold | 2 | 1.09 µs | 995 ns | 437 ns |
//! | update (1 realization) | hot | 1 | 386 ns | 52 ns | 56 ns |
//! | update (1 realization) | hot | 2 | 579 ns | 189 ns | 92 ns |
//!
//! `memory_floor/2_dependent_misses` in the same run: **311 ns** for two dependent loads from
//! random places in 32 MiB, the least any lookup through a slot and then its record pays when
//! both miss the caches. So on this machine no map meets the goal of ≤ 200 ns per update for
//! cold keys (the locked maps, which mutate in place, sit at the floor); for hot keys the table
//! spends ~4 190 instructions per update (callgrind, deterministic) where the locked maps need a
//! few hundred: ~60% decoding and re-encoding the compact profile (the price of ~85 bytes a
//! profile instead of a struct with five heap vectors), the rest SipHash, the epoch pin, the
//! bucket copy into a new allocation and its retirement. The goal is not met; meeting it needs
//! a stored form that is edited in place rather than decoded, which costs memory (see the
//! memory goal above). Gets are on par with the locked maps cold and ~1.7× hot.
//!
//! Without transparent huge pages (the build's `no_thp`, which the daemon needs for its tail
//! latency, README "Performance") every cold access also misses the TLB more often: in one run
//! the floor was 352 ns, updates 859 ns (table) / 384 ns (`RwLock<HashMap>`) / 407 ns
//! (`DashMap`) cold and 426 / 47 / 59 ns hot.
//!
//! Snapshot of 1M profiles (128 MB, with fsync): 0.23–0.32 s; restore (read, CRC, validate
//! every record, insert): 1.2–2.1 s. Daemon restart to serving with a 1M-profile snapshot
//! (`examples/gen_snapshot.rs`, default `store.max_profiles` of 10M, time from exec to the
//! first answered `/event`): 1.48–1.53 s over three restarts of the `no_thp` build (1.10–2.32 s
//! before it).

#[cfg(test)]
mod loom_tests;
#[cfg(test)]
mod tests;

mod codec;
mod entry;
mod map;
mod profile;
mod shard;
pub mod snapshot;
mod sync;

pub use profile::{day_of, DenyRule, Denylist, PartnerResult, Profile, Realization, SyncedId, DAY_S};

use crate::identity::Uuid;
use entry::Records;
use map::Map;
use profile::clamp_s;
use shard::Change;
use sync::{Collector, Guard};

/// Sizing and retention of a [`ProfileTable`] (`[store]` in `dcsd.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// Most profiles kept (`store.max_profiles`, default 10 000 000); also the bound of each
    /// mapping map.
    pub max_profiles: usize,
    /// Most distinct traits per profile (`store.max_traits_per_profile`, default 1000).
    pub max_traits_per_profile: usize,
    /// Shards per map, rounded up to a power of two (default 64).
    pub shards: usize,
    /// Days of realization history kept (default 120, the default trait TTL): the longest
    /// recency window segments can ask about.
    pub history_days: u16,
    /// When an ID is denylisted (`[denylist]`).
    pub deny: DenyRule,
}

/// The shared table of profiles and ID mappings. `Send + Sync`; share it with an `Arc`.
#[derive(Debug)]
pub struct ProfileTable {
    /// UUID (16 bytes LE) → encoded [`Profile`].
    profiles: Map,
    /// DPID (4 bytes LE) + DPUUID bytes → UUID (16 bytes LE) + when it was mapped (u64 LE,
    /// Unix milliseconds), so a request with several declared IDs finds the most recent one.
    declared: Map,
    /// ECID (16 bytes LE) → UUID (16 bytes LE).
    ecids: Map,
    /// Request counters of declared IDs and ECIDs (`deny_key`) → [`Denylist`] (12 bytes);
    /// profile IDs keep theirs in the profile.
    denied: Map,
    /// The limits this table was built with.
    config: TableConfig,
    /// Where guards come from (a facade so loom can model it).
    collector: Collector,
    /// The last declared-ID mapping time handed out (Unix ms), so mapping times strictly
    /// increase within the process and "most recently mapped" never ties.
    mapped_ms: std::sync::atomic::AtomicU64,
    /// How snapshots of this table have gone.
    snapshots: snapshot::SnapshotStatus,
}

/// Which map a record belongs to (also its tag in a snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A profile.
    Profile = 1,
    /// A declared-ID mapping.
    Declared = 2,
    /// An ECID mapping.
    Ecid = 3,
    /// Denylist counters of a declared ID or ECID.
    Denied = 4,
}

/// An ID that is not a profile ID, for denylisting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdRef<'a> {
    /// A declared ID: DPID and DPUUID.
    Declared(u32, &'a str),
    /// An Experience Cloud ID.
    Ecid(u128),
}

// === impl TableConfig ===

impl Default for TableConfig {
    fn default() -> TableConfig {
        TableConfig {
            max_profiles: 10_000_000,
            max_traits_per_profile: 1000,
            shards: 64,
            history_days: 120,
            deny: DenyRule::default(),
        }
    }
}

// === impl ProfileTable ===

impl ProfileTable {
    /// An empty table. Allocates the bucket arrays (9 bytes per 4 profiles per map) up front.
    pub fn new(config: TableConfig) -> ProfileTable {
        ProfileTable {
            profiles: Map::new(config.max_profiles, config.shards),
            declared: Map::new(config.max_profiles, config.shards),
            ecids: Map::new(config.max_profiles, config.shards),
            denied: Map::new((config.max_profiles / DENIED_SHARE).max(1024), config.shards),
            config,
            collector: Collector::default(),
            mapped_ms: std::sync::atomic::AtomicU64::new(0),
            snapshots: snapshot::SnapshotStatus::default(),
        }
    }

    /// The limits this table was built with.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// A copy of the profile of `uuid`, without realizations and partner results expired at
    /// `now_s`. Never blocks.
    pub fn get(&self, uuid: Uuid, now_s: u64) -> Option<Profile> {
        let guard = self.collector.pin();
        let bytes = self.profiles.get(&uuid.0.to_le_bytes(), &guard)?;
        let mut p = codec::decode(bytes)?;
        p.expire(now_s, self.config.history_days);
        Some(p)
    }

    /// Whether `uuid` has a profile.
    pub fn contains(&self, uuid: Uuid) -> bool {
        let guard = self.collector.pin();
        self.profiles.get(&uuid.0.to_le_bytes(), &guard).is_some()
    }

    /// Atomically edits the profile of `uuid` (a new, empty one if absent) and sets its last-seen
    /// time to `now_s`. `f` may run more than once if other threads update the same bucket at
    /// the same time; each run sees the latest profile and only the last run's edit is kept, so
    /// `f` must only edit the profile it is given. Returns what the kept run returned.
    pub fn update<R>(&self, uuid: Uuid, now_s: u64, mut f: impl FnMut(&mut Profile) -> R) -> R {
        self.update_if(uuid, now_s, |p| (f(p), true))
    }

    /// [`update`](Self::update) whose closure also says whether to store its edit: `false`
    /// leaves the table untouched (no profile is created, the last-seen time is not moved).
    pub fn update_if<R>(&self, uuid: Uuid, now_s: u64, mut f: impl FnMut(&mut Profile) -> (R, bool)) -> R {
        let (key, guard) = (uuid.0.to_le_bytes(), self.collector.pin());
        let (mut result, mut evicted) = (None, Vec::new());
        // Decoded into a per-thread scratch profile whose buffers are reused (taken, not
        // borrowed, so an update nested in `f` just starts from an empty one).
        let mut p = SCRATCH.take();
        let mut edit = |old: Option<&[u8]>, out: &mut Vec<u8>| {
            // A stored profile always decodes (we encoded it, restore validated it).
            if old.and_then(|b| codec::decode_into(b, &mut p)).is_none() {
                p.clear();
            }
            p.expire(now_s, self.config.history_days);
            let (r, write) = f(&mut p);
            result = Some(r);
            if !write {
                return Change::Keep;
            }
            p.last_seen_s = p.last_seen_s.max(clamp_s(now_s));
            p.cap_traits(self.config.max_traits_per_profile);
            codec::encode(&p, out);
            Change::Put
        };
        self.profiles.upsert(&key, &guard, &mut edit, &mut evicted);
        SCRATCH.set(p);
        self.forget_mappings(&evicted, &guard);
        #[allow(clippy::expect_used)]
        result.expect("Shard::upsert runs its closure at least once")
    }

    /// Deletes the profile of `uuid` and the mappings that point to it.
    pub fn remove(&self, uuid: Uuid) -> bool {
        let (key, guard) = (uuid.0.to_le_bytes(), self.collector.pin());
        let mut removed = Vec::new();
        let mut f = |old: Option<&[u8]>, _: &mut Vec<u8>| {
            removed.clear();
            if let Some(v) = old {
                entry::put_record(&mut removed, &key, v);
            }
            Change::Remove
        };
        let gone = self.profiles.upsert(&key, &guard, &mut f, &mut Vec::new()) == shard::Outcome::Removed;
        if gone {
            self.forget_mappings(&[removed], &guard);
        }
        gone
    }

    /// Profiles in the table (approximate while writers run).
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Whether the table holds no profile.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Mappings in the table: (declared IDs, ECIDs).
    pub fn mapping_len(&self) -> (usize, usize) {
        (self.declared.len(), self.ecids.len())
    }

    /// Profiles dropped so far to stay within the table's bounds: a shard's share of
    /// `max_profiles` (least recently seen first) or a bucket's `shard::MAX_BUCKET_RECORDS`
    /// (least recently written first), restore included.
    pub fn evicted(&self) -> u64 {
        self.profiles.evicted() as u64
    }

    /// The most profiles the table keeps: `max_profiles` rounded up to a whole number per
    /// shard (at least one each).
    pub fn capacity(&self) -> usize {
        self.profiles.capacity()
    }

    /// How snapshots of this table have gone (written by [`snapshot::write()`]).
    pub fn snapshot_report(&self) -> snapshot::SnapshotReport {
        self.snapshots.report()
    }

    /// Maps `(dpid, dpuuid)` to `uuid`, replacing an older mapping (most recent wins).
    pub fn map_declared(&self, dpid: u32, dpuuid: &str, uuid: Uuid) {
        let guard = self.collector.pin();
        let mut val = [0u8; 24];
        val[..16].copy_from_slice(&uuid.0.to_le_bytes());
        val[16..].copy_from_slice(&self.mapping_time().to_le_bytes());
        self.declared.put(&declared_key(dpid, dpuuid), &val, &guard, &mut Vec::new());
    }

    /// Now in Unix ms, but later than every mapping time handed out before.
    fn mapping_time(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let now = crate::log::unix_ms();
        let prev = self.mapped_ms.fetch_update(Relaxed, Relaxed, |last| Some(now.max(last + 1)));
        prev.map_or(now, |last| now.max(last + 1))
    }

    /// The UUID last mapped to `(dpid, dpuuid)`.
    pub fn lookup_declared(&self, dpid: u32, dpuuid: &str) -> Option<Uuid> {
        self.lookup_declared_at(dpid, dpuuid).map(|(u, _)| u)
    }

    /// The UUID last mapped to `(dpid, dpuuid)` and when (Unix milliseconds).
    pub fn lookup_declared_at(&self, dpid: u32, dpuuid: &str) -> Option<(Uuid, u64)> {
        let guard = self.collector.pin();
        let val = self.declared.get(&declared_key(dpid, dpuuid), &guard)?;
        let at = u64::from_le_bytes(val.get(16..24)?.try_into().ok()?);
        Some((uuid_of(&val[..16])?, at))
    }

    /// Of the UUIDs mapped to `ids`, the one mapped most recently.
    pub fn most_recent_declared<'a>(&self, ids: impl IntoIterator<Item = (u32, &'a str)>) -> Option<Uuid> {
        let mut best: Option<(Uuid, u64)> = None;
        for (dpid, dpuuid) in ids {
            if let Some((u, at)) = self.lookup_declared_at(dpid, dpuuid) {
                if best.is_none_or(|(_, b)| at > b) {
                    best = Some((u, at));
                }
            }
        }
        best.map(|(u, _)| u)
    }

    /// Counts one request naming `id` at `now_s` against `[denylist]`; returns whether `id` is
    /// denylisted (docs/http-api.md §5.3). Profile IDs count through [`Denylist::note_request`] inside
    /// their profile's update instead.
    pub fn note_id(&self, id: IdRef<'_>, now_s: u64) -> bool {
        let (key, guard, rule) = (deny_key(id), self.collector.pin(), self.config.deny);
        let mut blocked = false;
        let mut f = |old: Option<&[u8]>, out: &mut Vec<u8>| {
            let mut d = old.and_then(decode_denylist).unwrap_or_default();
            blocked = d.note_request(now_s, &rule);
            for v in [d.window_start_s, d.count, d.blocked_until_s] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            Change::Put
        };
        self.denied.upsert(&key, &guard, &mut f, &mut Vec::new());
        blocked
    }

    /// Whether `id` is denylisted at `now_s`, without counting a request.
    pub fn is_id_blocked(&self, id: IdRef<'_>, now_s: u64) -> bool {
        let guard = self.collector.pin();
        self.denied.get(&deny_key(id), &guard).and_then(decode_denylist).is_some_and(|d| d.is_blocked(now_s))
    }

    /// Records `dpuuid` as the user's ID at `dpid` in the profile of `uuid` and maps it to
    /// `uuid`, so evicting the profile also drops the mapping. The profile's previous ID at
    /// `dpid` is unmapped (if it still maps here): every mapping to a profile is listed in it,
    /// so mappings never outnumber what profiles list. (Not atomic with the update: an eviction
    /// in between can leave one stale mapping, which the declared map's own CLOCK ages out.)
    pub fn sync_declared(&self, uuid: Uuid, dpid: u32, dpuuid: &str, now_s: u64) {
        let old = self.update(uuid, now_s, |p| p.set_synced_id(dpid, dpuuid, now_s));
        self.remap_declared(uuid, dpid, old.as_deref(), dpuuid);
    }

    /// The mapping half of [`sync_declared`](Self::sync_declared), for a caller that already
    /// recorded `dpuuid` in the profile of `uuid` (replacing `old`, its previous ID at `dpid`):
    /// unmaps `old` if it still maps to `uuid`, and maps `dpuuid` to `uuid`.
    pub fn remap_declared(&self, uuid: Uuid, dpid: u32, old: Option<&str>, dpuuid: &str) {
        if let Some(old) = old.filter(|old| *old != dpuuid) {
            let (guard, value) = (self.collector.pin(), uuid.0.to_le_bytes());
            self.declared.remove_if(&declared_key(dpid, old), &guard, |v| v.get(..16) == Some(&value[..]));
        }
        self.map_declared(dpid, dpuuid, uuid);
    }

    /// Maps `ecid` to `uuid` (most recent wins). Set the ECID in the profile too (with
    /// [`Profile::set_ecid`]) so evicting the profile drops the mapping.
    pub fn map_ecid(&self, ecid: u128, uuid: Uuid) {
        let guard = self.collector.pin();
        self.ecids.put(&ecid.to_le_bytes(), &uuid.0.to_le_bytes(), &guard, &mut Vec::new());
    }

    /// The UUID last mapped to `ecid`.
    pub fn lookup_ecid(&self, ecid: u128) -> Option<Uuid> {
        let guard = self.collector.pin();
        self.ecids.get(&ecid.to_le_bytes(), &guard).and_then(uuid_of)
    }

    /// Calls `f` on every profile (as stored: nothing expired). Holds an epoch guard for at
    /// most [`WALK_REPIN_BUCKETS`] buckets at a time and never blocks writers; a profile
    /// updated during the walk is seen either before or after the update.
    pub fn for_each_profile(&self, mut f: impl FnMut(Uuid, &Profile)) {
        let mut walk = |kind, key: &[u8], val: &[u8]| {
            if let (Kind::Profile, Some(uuid), Some(p)) = (kind, uuid_of(key), codec::decode(val)) {
                f(uuid, &p);
            }
            Ok::<(), ()>(())
        };
        let _infallible = self.walk_map(Kind::Profile, &mut walk);
    }

    /// Calls `f` on every record of the `kind` map, stopping at the first error.
    pub(crate) fn walk_map<E>(&self, kind: Kind, f: &mut Visit<'_, E>) -> Result<(), E> {
        for shard in self.map(kind).shards() {
            let mut guard = self.collector.pin();
            for b in 0..shard.bucket_count() {
                for r in Records::new(shard.bucket(b, &guard)) {
                    f(kind, r.key, r.val)?;
                }
                if b % WALK_REPIN_BUCKETS == WALK_REPIN_BUCKETS - 1 {
                    guard.repin();
                }
            }
        }
        Ok(())
    }

    /// Stores a record as-is (restore; the caller validated it).
    pub(crate) fn insert_raw(&self, kind: Kind, key: &[u8], val: &[u8]) {
        let (guard, mut evicted) = (self.collector.pin(), Vec::new());
        self.map(kind).put(key, val, &guard, &mut evicted);
        if kind == Kind::Profile {
            self.forget_mappings(&evicted, &guard);
        }
    }

    fn map(&self, kind: Kind) -> &Map {
        match kind {
            Kind::Profile => &self.profiles,
            Kind::Declared => &self.declared,
            Kind::Ecid => &self.ecids,
            Kind::Denied => &self.denied,
        }
    }

    /// Drops the mappings that still point to evicted or removed profiles.
    fn forget_mappings(&self, records: &[Vec<u8>], guard: &Guard) {
        for rec in records {
            let Some(r) = Records::new(rec).next() else { continue };
            let Some(p) = codec::decode(r.val) else { continue };
            for s in &p.synced {
                self.declared.remove_if(&declared_key(s.dpid, &s.id), guard, |v| v.get(..16) == Some(r.key));
            }
            if let Some(ecid) = p.ecid {
                self.ecids.remove_if(&ecid.to_le_bytes(), guard, |v| v == r.key);
            }
        }
    }
}

/// A walk's visitor: gets each record's map, key and value.
pub(crate) type Visit<'a, E> = dyn FnMut(Kind, &[u8], &[u8]) -> Result<(), E> + 'a;

thread_local! {
    /// The profile `update` decodes into, kept per thread so its buffers are reused.
    static SCRATCH: std::cell::Cell<Profile> = std::cell::Cell::new(Profile::default());
}

/// Buckets a walk reads under one guard before re-pinning, so reclamation keeps up.
pub const WALK_REPIN_BUCKETS: usize = 256;

/// The declared-ID map key: DPID (4 bytes LE) then the DPUUID.
fn declared_key(dpid: u32, dpuuid: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + dpuuid.len());
    key.extend_from_slice(&dpid.to_le_bytes());
    key.extend_from_slice(dpuuid.as_bytes());
    key
}

/// The ID denylist holds at most `max_profiles / DENIED_SHARE` IDs (at least 1024): only IDs
/// seen within the last window or denylisted matter, and CLOCK evicts the others first.
const DENIED_SHARE: usize = 4;

/// The ID-denylist key: `1` + DPID (4 bytes LE) + DPUUID, or `2` + ECID (16 bytes LE).
fn deny_key(id: IdRef<'_>) -> Vec<u8> {
    match id {
        IdRef::Declared(dpid, dpuuid) => {
            let mut key = Vec::with_capacity(5 + dpuuid.len());
            key.push(1);
            key.extend_from_slice(&dpid.to_le_bytes());
            key.extend_from_slice(dpuuid.as_bytes());
            key
        }
        IdRef::Ecid(ecid) => {
            let mut key = Vec::with_capacity(17);
            key.push(2);
            key.extend_from_slice(&ecid.to_le_bytes());
            key
        }
    }
}

/// Whether `key` is a key `deny_key` could have made.
pub(crate) fn is_deny_key(key: &[u8]) -> bool {
    match key.split_first() {
        Some((1, rest)) => rest.len() > 4 && std::str::from_utf8(&rest[4..]).is_ok(),
        Some((2, rest)) => rest.len() == 16,
        _ => false,
    }
}

/// Denylist counters stored as three u32 LE: window start, count, denylisted until.
pub(crate) fn decode_denylist(v: &[u8]) -> Option<Denylist> {
    let word = |i: usize| Some(u32::from_le_bytes(v.get(i * 4..i * 4 + 4)?.try_into().ok()?));
    (v.len() == 12).then_some(())?;
    Some(Denylist { window_start_s: word(0)?, count: word(1)?, blocked_until_s: word(2)? })
}

/// A UUID stored as 16 bytes LE.
fn uuid_of(bytes: &[u8]) -> Option<Uuid> {
    Some(Uuid(u128::from_le_bytes(bytes.try_into().ok()?)))
}
