//! loom models of the lock-free core: insert, update, read, evict, remove and reclaim, with
//! the epoch collector modelled too (crossbeam-epoch's loom build). Freed buckets are poisoned
//! before release (`shard::retire` under loom), so a read of a reclaimed bucket fails an
//! assertion. Run by `scripts/loom.sh`.
#![cfg(loom)]

use std::sync::Arc;

use loom::thread;

use super::shard::{Change, Shard, POISON};
use super::*;

const NOW: u64 = 20_000 * DAY_S;

/// One shard, one bucket: every key contends.
fn tiny(max_profiles: usize) -> Arc<ProfileTable> {
    Arc::new(ProfileTable::new(TableConfig { max_profiles, shards: 1, ..TableConfig::default() }))
}

fn count(t: &ProfileTable, k: u128) -> u32 {
    t.get(Uuid(k), NOW).map_or(0, |p| p.frequency(1, 0, u16::MAX))
}

#[test]
fn concurrent_updates_of_one_profile_both_land() {
    loom::model(|| {
        let t = tiny(4);
        let t2 = Arc::clone(&t);
        let h = thread::spawn(move || t2.update(Uuid(1), NOW, |p| p.realize(1, NOW)));
        t.update(Uuid(1), NOW, |p| p.realize(1, NOW));
        h.join().unwrap();
        assert_eq!(count(&t, 1), 2);
        assert_eq!(t.len(), 1);
    });
}

#[test]
fn a_reader_sees_the_old_or_the_new_profile_never_freed_memory() {
    loom::model(|| {
        let t = tiny(4);
        t.update(Uuid(1), NOW, |p| p.realize(1, NOW));
        let t2 = Arc::clone(&t);
        let h = thread::spawn(move || {
            t2.update(Uuid(1), NOW, |p| p.realize(1, NOW));
            t2.update(Uuid(2), NOW, |p| p.realize(1, NOW));
        });
        let n = count(&t, 1);
        assert!(n == 1 || n == 2, "{n}");
        h.join().unwrap();
        assert_eq!((count(&t, 1), count(&t, 2)), (2, 1));
    });
}

#[test]
fn a_guarded_bucket_is_not_reclaimed_until_the_guard_drops() {
    loom::model(|| {
        let shard = Arc::new(Shard::new(1, 8));
        let collector = Arc::new(sync::Collector::default());
        put(&shard, &collector, 1, 10);
        let (s2, c2) = (Arc::clone(&shard), Arc::clone(&collector));
        let h = thread::spawn(move || {
            put(&s2, &c2, 1, 11);
            put(&s2, &c2, 2, 20);
        });
        let guard = collector.pin();
        let first = shard.bucket(0, &guard);
        let seen: Vec<u8> = first.to_vec();
        loom::thread::yield_now();
        assert_eq!(first, &seen[..], "bucket changed or was poisoned under a guard");
        assert!(!first.contains(&POISON));
        drop(guard);
        h.join().unwrap();
    });
}

#[test]
fn inserts_past_the_cap_evict_and_stay_bounded() {
    loom::model(|| {
        let t = tiny(1);
        t.sync_declared(Uuid(1), 7, "a", NOW);
        let t2 = Arc::clone(&t);
        let h = thread::spawn(move || t2.update(Uuid(2), NOW, |p| p.realize(1, NOW)));
        t.update(Uuid(3), NOW, |p| p.realize(1, NOW));
        h.join().unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup_declared(7, "a"), None, "profile 1 was evicted with its mapping");
        assert_eq!(count(&t, 2) + count(&t, 3), 1);
    });
}

#[test]
fn remove_racing_update_leaves_a_consistent_table() {
    loom::model(|| {
        let t = tiny(4);
        t.update(Uuid(1), NOW, |p| p.realize(1, NOW));
        let t2 = Arc::clone(&t);
        let h = thread::spawn(move || t2.remove(Uuid(1)));
        t.update(Uuid(1), NOW, |p| p.realize(1, NOW));
        assert!(h.join().unwrap());
        let n = count(&t, 1);
        assert!(n == 0 || n == 1, "removed after, or re-created after the remove: {n}");
        assert_eq!(t.len(), usize::from(n == 1));
    });
}

fn put(shard: &Shard, collector: &sync::Collector, key: u8, val: u8) {
    let guard = collector.pin();
    let mut f = |_: Option<&[u8]>, out: &mut Vec<u8>| {
        out.push(val);
        Change::Put
    };
    shard.upsert(0, &[key], &guard, &mut f, &mut Vec::new());
}
