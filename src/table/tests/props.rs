//! The table against a `HashMap` model, driven by random operation sequences.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::super::*;
use super::NOW;

#[derive(Clone, Debug)]
enum Op {
    Realize { key: u8, trait_id: u8, day: u8 },
    Segments { key: u8, segs: Vec<u16> },
    Sync { key: u8, dpid: u8, id: u8 },
    OptOut { key: u8, cid: u8 },
    Remove { key: u8 },
    Get { key: u8 },
}

/// What the model keeps per profile.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    traits: BTreeMap<(u32, u16), u16>,
    segments: Vec<u32>,
    synced: BTreeMap<u32, String>,
    opted_out: Vec<u32>,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..12;
    prop_oneof![
        4 => (key.clone(), 0u8..6, 0u8..3).prop_map(|(key, trait_id, day)| Op::Realize { key, trait_id, day }),
        1 => (key.clone(), proptest::collection::vec(0u16..50, 0..4)).prop_map(|(key, segs)| Op::Segments { key, segs }),
        1 => (key.clone(), 0u8..3, 0u8..4).prop_map(|(key, dpid, id)| Op::Sync { key, dpid, id }),
        1 => (key.clone(), 0u8..3).prop_map(|(key, cid)| Op::OptOut { key, cid }),
        1 => key.clone().prop_map(|key| Op::Remove { key }),
        2 => key.prop_map(|key| Op::Get { key }),
    ]
}

fn view(p: &Profile) -> Model {
    Model {
        traits: p.all_realizations().iter().map(|r| ((r.trait_id, r.day), r.count)).collect(),
        segments: p.segments().to_vec(),
        synced: p.synced_ids().iter().map(|s| (s.dpid, s.id.clone())).collect(),
        opted_out: p.opted_out_customers.clone(),
    }
}

fn apply(
    t: &ProfileTable,
    model: &mut HashMap<u8, Model>,
    declared: &mut HashMap<(u32, String), u8>,
    op: Op,
) {
    match op {
        Op::Realize { key, trait_id, day } => {
            let day = day_of(NOW) - u16::from(day);
            t.update(Uuid(key.into()), NOW, |p| p.realize_n(trait_id.into(), day, 1));
            *model.entry(key).or_default().traits.entry((trait_id.into(), day)).or_default() += 1;
        }
        Op::Segments { key, segs } => {
            t.update(Uuid(key.into()), NOW, |p| p.set_segments(segs.iter().map(|s| u32::from(*s))));
            let mut s: Vec<u32> = segs.iter().map(|s| u32::from(*s)).collect();
            s.sort_unstable();
            s.dedup();
            model.entry(key).or_default().segments = s;
        }
        Op::Sync { key, dpid, id } => {
            let id = format!("id{id}");
            t.sync_declared(Uuid(key.into()), dpid.into(), &id, NOW);
            let m = model.entry(key).or_default();
            if let Some(prev) = m.synced.insert(dpid.into(), id.clone()) {
                declared.retain(|(d, i), k| !(*d == u32::from(dpid) && *i == prev && *k == key));
            }
            declared.insert((dpid.into(), id), key);
        }
        Op::OptOut { key, cid } => {
            t.update(Uuid(key.into()), NOW, |p| p.opt_out_customer(cid.into()));
            let m = model.entry(key).or_default();
            if !m.opted_out.contains(&cid.into()) {
                m.opted_out.push(cid.into());
                m.opted_out.sort_unstable();
            }
        }
        Op::Remove { key } => {
            assert_eq!(t.remove(Uuid(key.into())), model.remove(&key).is_some());
            declared.retain(|_, k| *k != key);
        }
        Op::Get { key } => {
            assert_eq!(t.get(Uuid(key.into()), NOW).as_ref().map(view), model.get(&key).cloned());
        }
    }
}

proptest! {
    #[test]
    fn the_table_behaves_like_a_hashmap(ops in proptest::collection::vec(op(), 1..80)) {
        let t = ProfileTable::new(TableConfig { max_profiles: 1000, shards: 2, ..TableConfig::default() });
        let (mut model, mut declared) = (HashMap::new(), HashMap::new());
        for op in ops {
            apply(&t, &mut model, &mut declared, op);
            prop_assert_eq!(t.len(), model.len());
        }
        for (key, m) in &model {
            let got = t.get(Uuid((*key).into()), NOW).as_ref().map(view);
            prop_assert_eq!(got.as_ref(), Some(m));
        }
        for dpid in 0..3u32 {
            for id in 0..4 {
                let id = format!("id{id}");
                let want = declared.get(&(dpid, id.clone())).map(|k| Uuid((*k).into()));
                prop_assert_eq!(t.lookup_declared(dpid, &id), want);
            }
        }
    }

    #[test]
    fn profiles_round_trip_through_the_codec(
        traits in proptest::collection::btree_map((any::<u32>(), any::<u16>()), 1u16.., 0..20),
        segs in proptest::collection::vec(any::<u32>(), 0..5),
        synced in proptest::collection::btree_map(any::<u32>(), ".{0,8}", 0..3),
        last_seen_s in any::<u32>(),
        ecid in any::<Option<u128>>(),
        results in proptest::collection::btree_map(any::<u32>(), (any::<u32>(), proptest::collection::vec(".{0,5}", 0..3)), 0..3),
    ) {
        let mut p = Profile { last_seen_s, ecid, ..Profile::default() };
        for ((t, d), n) in traits {
            p.realize_n(t, d, n);
        }
        p.set_segments(segs);
        for (dpid, id) in synced {
            p.set_synced_id(dpid, &id, u64::from(last_seen_s));
        }
        for (dpid, (exp, values)) in results {
            p.set_partner_result(dpid, exp, values);
        }
        let mut bytes = Vec::new();
        codec::encode(&p, &mut bytes);
        prop_assert_eq!(codec::decode(&bytes), Some(p));
    }

    #[test]
    fn the_codec_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = codec::decode(&bytes);
    }
}
