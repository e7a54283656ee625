//! Unit, property, snapshot and stress tests of the table (not under loom: see `loom_tests`).
#![cfg(not(loom))]

use std::sync::Arc;

use super::shard::{Change, Outcome, Shard, MAX_BUCKET_RECORDS};
use super::*;

mod props;
mod snapshot_files;
mod snapshots;

const NOW: u64 = 20_500 * DAY_S + 3600;

fn small(max_profiles: usize, shards: usize) -> ProfileTable {
    ProfileTable::new(TableConfig { max_profiles, shards, ..TableConfig::default() })
}

/// A profile like the memory benchmark's: 8 traits, 2 segments, 1 synced ID.
pub(super) fn sample(p: &mut Profile, n: u32) {
    for t in 0..8 {
        p.realize(420_000 + t * 17 + n % 5, NOW);
    }
    p.set_segments([984_263, 985_264]);
    p.set_synced_id(20_914, &format!("crm{n:09}"), NOW);
}

#[test]
fn update_creates_and_get_reads_a_copy() {
    let t = small(1000, 4);
    assert!(t.get(Uuid(7), NOW).is_none());
    t.update(Uuid(7), NOW, |p| sample(p, 7));
    let p = t.get(Uuid(7), NOW).unwrap();
    assert_eq!(p.trait_ids().count(), 8);
    assert_eq!(p.segments(), [984_263, 985_264]);
    assert_eq!(p.synced_id(20_914), Some("crm000000007"));
    assert_eq!(u64::from(p.last_seen_s()), NOW);
    assert_eq!(t.len(), 1);
    assert!(t.contains(Uuid(7)) && !t.contains(Uuid(8)));
}

#[test]
fn updates_accumulate_and_return_the_closure_result() {
    let t = small(1000, 4);
    for i in 1..=5u32 {
        let n = t.update(Uuid(1), NOW, |p| {
            p.realize(9, NOW);
            p.frequency(9, 0, u16::MAX)
        });
        assert_eq!(n, i);
    }
    assert_eq!(t.get(Uuid(1), NOW).unwrap().realizations(9)[0].count, 5);
}

#[test]
fn remove_drops_the_profile_and_its_mappings() {
    let t = small(1000, 4);
    t.sync_declared(Uuid(3), 77, "abc", NOW);
    t.update(Uuid(3), NOW, |p| p.set_ecid(Some(555)));
    t.map_ecid(555, Uuid(3));
    assert_eq!(t.lookup_declared(77, "abc"), Some(Uuid(3)));
    assert!(t.remove(Uuid(3)));
    assert!(!t.remove(Uuid(3)), "second remove finds nothing");
    assert_eq!((t.lookup_declared(77, "abc"), t.lookup_ecid(555)), (None, None));
    assert!(t.is_empty());
}

#[test]
fn mappings_most_recent_wins_and_survive_other_profiles_eviction() {
    let t = small(1000, 4);
    t.sync_declared(Uuid(1), 5, "x", NOW);
    t.sync_declared(Uuid(2), 5, "x", NOW);
    assert_eq!(t.lookup_declared(5, "x"), Some(Uuid(2)));
    assert!(t.remove(Uuid(1)), "profile 1 still lists x");
    assert_eq!(t.lookup_declared(5, "x"), Some(Uuid(2)), "not removed: it points to 2 now");
    assert_eq!(t.lookup_declared(6, "x"), None);
    assert_eq!(t.lookup_ecid(1), None);
}

#[test]
fn the_table_stays_bounded_and_keeps_recent_profiles() {
    let t = small(64, 1);
    for i in 0..10_000u128 {
        t.sync_declared(Uuid(i), 1, &i.to_string(), NOW);
        assert!(t.len() <= 64);
    }
    assert!(t.contains(Uuid(9_999)), "the newest profile survives");
    let (declared, _) = t.mapping_len();
    assert!(declared <= 64, "evicted profiles took their mappings along: {declared}");
    let kept = (0..10_000u128).filter(|i| t.contains(Uuid(*i))).count();
    assert_eq!(kept, t.len());
    assert_eq!(t.evicted(), 10_000 - kept as u64, "every profile not kept was counted as evicted");
}

#[test]
fn a_full_bucket_drops_its_oldest_record() {
    let (shard, guard) = (Shard::new(1, 1000), crossbeam_epoch::pin());
    let mut evicted = Vec::new();
    for i in 0..40u8 {
        let mut put = |_: Option<&[u8]>, out: &mut Vec<u8>| {
            out.push(i);
            Change::Put
        };
        assert_eq!(shard.upsert(0, &[i], &guard, &mut put, &mut evicted), Outcome::Inserted);
    }
    assert_eq!(evicted.len(), 40 - MAX_BUCKET_RECORDS);
    assert_eq!(shard.evicted(), evicted.len());
    assert_eq!(shard.len(), MAX_BUCKET_RECORDS);
    assert!(shard.get(0, &[0], &guard).is_none() && shard.get(0, &[39], &guard).is_some());
}

#[test]
fn old_realizations_and_partner_results_expire_lazily() {
    let t = small(1000, 4);
    t.update(Uuid(1), NOW, |p| {
        p.realize(1, NOW);
        p.set_partner_result(9, (NOW + 60) as u32, vec!["seg-a".into()]);
    });
    assert_eq!(t.get(Uuid(1), NOW).unwrap().partner_result(9, NOW).unwrap(), ["seg-a"]);
    let later = NOW + 121 * DAY_S;
    let p = t.get(Uuid(1), later).unwrap();
    assert!(p.all_realizations().is_empty() && p.partner_result(9, later).is_none());
    t.update(Uuid(1), later, |p| p.realize(2, later));
    let p = t.get(Uuid(1), later).unwrap();
    assert_eq!(p.trait_ids().collect::<Vec<_>>(), [2]);
    assert!(p.partner_results.is_empty(), "dropped from storage by the update");
}

#[test]
fn traits_past_the_cap_go_oldest_first() {
    let t = ProfileTable::new(TableConfig { max_traits_per_profile: 3, ..small(10, 1).config().clone() });
    for (i, trait_id) in [10, 20, 30, 40].into_iter().enumerate() {
        let now = NOW + i as u64 * DAY_S;
        t.update(Uuid(1), now, |p| p.realize(trait_id, now));
    }
    let p = t.get(Uuid(1), NOW + 4 * DAY_S).unwrap();
    assert_eq!(p.trait_ids().collect::<Vec<_>>(), [20, 30, 40]);
}

#[test]
fn opt_outs_and_denylist_counters_are_kept() {
    let t = small(10, 1);
    t.update(Uuid(1), NOW, |p| {
        p.opt_out_customer(44);
        for _ in 0..5 {
            p.denylist.note_request(NOW, &DenyRule { max_requests: 3, window_s: 10, ttl_s: 100 });
        }
    });
    let p = t.get(Uuid(1), NOW).unwrap();
    assert!(p.is_opted_out(44) && !p.is_opted_out(45) && !p.is_opted_out_globally());
    assert!(p.denylist.is_blocked(NOW) && p.denylist.count == 4, "{:?}", p.denylist);
    t.update(Uuid(1), NOW, Profile::opt_out_globally);
    assert!(t.get(Uuid(1), NOW).unwrap().is_opted_out(45));
}

#[test]
fn denylist_windows_reset() {
    let (mut d, rule) = (Denylist::default(), DenyRule { max_requests: 2, window_s: 10, ttl_s: 100 });
    assert!(!d.note_request(100, &rule) && !d.note_request(101, &rule));
    assert!(!d.note_request(111, &rule), "new window");
    assert!(!d.note_request(112, &rule) && d.note_request(113, &rule));
    assert!(d.note_request(212, &rule) && d.is_blocked(212), "denylisted for ttl_s");
    assert!(!d.note_request(213, &rule) && !d.is_blocked(213), "the denylisting ended; counting restarts");
    assert_eq!(d.count, 1);
}

#[test]
fn the_codec_refuses_every_truncation_and_broken_invariants() {
    let mut p = Profile::default();
    sample(&mut p, 1);
    p.set_ecid(Some(u128::MAX));
    p.opt_out_customer(3);
    p.set_partner_result(4, 99, vec!["a".into(), "bc".into()]);
    p.denylist.note_request(NOW, &DenyRule { max_requests: 0, window_s: 10, ttl_s: 100 });
    let mut bytes = Vec::new();
    codec::encode(&p, &mut bytes);
    assert_eq!(codec::decode(&bytes), Some(p));
    for cut in 0..bytes.len() {
        assert!(codec::decode(&bytes[..cut]).is_none(), "prefix of {cut} bytes");
    }
    let dup = Profile {
        realizations: vec![Realization { trait_id: 1, day: 5, count: 1 }; 2],
        ..Profile::default()
    };
    let mut bytes = Vec::new();
    codec::encode(&dup, &mut bytes);
    assert!(codec::decode(&bytes).is_none(), "duplicate day");
}

#[test]
fn the_benchmark_profile_encodes_in_about_80_bytes() {
    let mut p = Profile::default();
    sample(&mut p, 123);
    p.last_seen_s = NOW as u32;
    let mut bytes = Vec::new();
    codec::encode(&p, &mut bytes);
    assert!(bytes.len() <= 82, "{} bytes", bytes.len());
}

#[test]
fn for_each_profile_sees_every_profile() {
    let t = small(10_000, 8);
    for i in 0..1000u128 {
        t.update(Uuid(i), NOW, |p| p.realize(1, NOW));
    }
    let mut seen = 0;
    t.for_each_profile(|_, p| seen += usize::from(p.frequency(1, 0, u16::MAX) == 1));
    assert_eq!(seen, 1000);
}

/// Threads hammer overlapping keys; returns the total the table counted.
fn hammer(threads: u32, keys: u128, rounds: u32) -> (Arc<ProfileTable>, u64) {
    let t = Arc::new(small(1_000_000, 16));
    let handles: Vec<_> = (0..threads)
        .map(|n| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let k = u128::from(i.wrapping_mul(2_654_435_761).wrapping_add(n)) % keys;
                    t.update(Uuid(k), NOW, |p| p.realize(u32::try_from(k % 3).unwrap(), NOW));
                    let _ = t.get(Uuid((k + 1) % keys), NOW);
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let mut total = 0u64;
    t.for_each_profile(|_, p| total += p.all_realizations().iter().map(|r| u64::from(r.count)).sum::<u64>());
    (t, total)
}

#[test]
fn concurrent_updates_of_one_key_all_land() {
    let (t, total) = hammer(4, 1, 2000);
    assert_eq!(total, 8000);
    assert_eq!(t.len(), 1);
}

/// `cargo test --release --lib table::tests::stress -- --ignored`
#[test]
#[ignore = "stress test: run in release"]
fn stress_overlapping_keys_match_the_model() {
    let (threads, keys, rounds) = (8, 257, 200_000);
    let (t, total) = hammer(threads, keys, rounds);
    assert_eq!(total, u64::from(threads * rounds));
    let mut model = std::collections::HashMap::<u128, u64>::new();
    for n in 0..threads {
        for i in 0..rounds {
            *model.entry(u128::from(i.wrapping_mul(2_654_435_761).wrapping_add(n)) % keys).or_default() += 1;
        }
    }
    for (k, want) in model {
        let p = t.get(Uuid(k), NOW).unwrap();
        assert_eq!(p.frequency(u32::try_from(k % 3).unwrap(), 0, u16::MAX), u32::try_from(want).unwrap());
    }
}

#[test]
fn declared_ids_and_ecids_are_denylisted_for_ttl() {
    let mut t = small(100, 2);
    t.config.deny = DenyRule { max_requests: 2, window_s: 10, ttl_s: 50 };
    let (crm, ecid) = (IdRef::Declared(7, "user-1"), IdRef::Ecid(42));
    assert!(!t.note_id(crm, NOW) && !t.note_id(crm, NOW + 1));
    assert!(t.note_id(crm, NOW + 2), "the third request in the window");
    assert!(t.is_id_blocked(crm, NOW + 51) && !t.is_id_blocked(crm, NOW + 52));
    assert!(!t.is_id_blocked(IdRef::Declared(8, "user-1"), NOW + 3), "keyed by data source");
    assert!(!t.is_id_blocked(ecid, NOW + 3) && !t.note_id(ecid, NOW + 3));
    assert_eq!(t.denied.len(), 2);
}

#[test]
fn the_most_recently_mapped_declared_id_wins() {
    let t = small(100, 2);
    t.map_declared(1, "a", Uuid(10));
    t.map_declared(2, "b", Uuid(20));
    assert_eq!(t.most_recent_declared([(1, "a"), (2, "b")]), Some(Uuid(20)));
    assert_eq!(t.most_recent_declared([(2, "b"), (1, "a")]), Some(Uuid(20)));
    assert_eq!(t.most_recent_declared([(3, "c"), (1, "a")]), Some(Uuid(10)));
    assert_eq!(t.most_recent_declared([(3, "c")]), None);
    t.map_declared(1, "a", Uuid(11));
    assert_eq!(t.most_recent_declared([(1, "a"), (2, "b")]), Some(Uuid(11)));
}
