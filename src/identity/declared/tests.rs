use super::*;
use crate::catalog::Catalog;

fn taxonomy() -> Catalog {
    let doc = br#"{"customers":[{"id":1,"hosts":["a"]},{"id":2,"hosts":["b"]}],
        "data_sources":[{"dpid":10,"ic":"crm","owner":1},
                        {"dpid":20,"owner":2,"shared_with":[1]},
                        {"dpid":30,"owner":2}]}"#;
    Catalog::from_json(doc).expect("test taxonomy")
}

/// Kept IDs, error codes, error messages.
type Outcome = (Vec<(u32, String, AuthState)>, Vec<u16>, Vec<String>);

fn run(raws: &[Raw<'_>]) -> Outcome {
    let tax = taxonomy();
    let mut errors = Vec::new();
    let kept = resolve(raws, &tax, 1, &mut errors);
    let kept = kept.iter().map(|d| (d.dpid, d.dpuuid.to_string(), d.auth)).collect();
    (kept, errors.iter().map(|e| e.0).collect(), errors.into_iter().map(|e| e.1).collect())
}

#[test]
fn forms_and_auth_states() {
    let (kept, codes, _) = run(&[
        Raw::Cid(b"10\x01abc"),
        Raw::CidIc(b"crm\x01def\x011"),
        Raw::Cid(b"20\x01shared\x012"),
        Raw::Pair(b"10", b"legacy"),
    ]);
    assert!(codes.is_empty(), "{codes:?}");
    assert_eq!(
        kept,
        vec![
            (10, "abc".into(), AuthState::Unknown),
            (10, "def".into(), AuthState::Authenticated),
            (20, "shared".into(), AuthState::LoggedOut),
            (10, "legacy".into(), AuthState::Unknown),
        ]
    );
}

#[test]
fn invalid_ids_are_300_and_all_invalid_adds_104() {
    let (kept, codes, msgs) = run(&[
        Raw::Cid(b"99\x01x"),      // unknown data source
        Raw::CidIc(b"nope\x01y"),  // unknown integration code
        Raw::Cid(b"10\x01"),       // empty DPUUID
        Raw::Cid(b"ten\x01z"),     // not a number
        Raw::Cid(b"10\x01w\x019"), // bad auth state
        Raw::Cid(b"10"),           // one field
    ]);
    assert!(kept.is_empty());
    assert_eq!(codes, vec![300, 300, 300, 300, 300, 300, 104]);
    assert_eq!(msgs[0], "Invalid customer id x");
    assert_eq!(msgs[6], "All customer IDs are invalid");
}

#[test]
fn other_customers_sources_are_302() {
    let (kept, codes, msgs) = run(&[Raw::Cid(b"30\x01theirs"), Raw::Cid(b"10\x01mine")]);
    assert_eq!(kept.len(), 1);
    assert_eq!(codes, vec![302]);
    assert_eq!(msgs[0], "Unauthorized customer id theirs");
}

#[test]
fn global_device_ids_are_checked_and_exist_for_everyone() {
    let (kept, codes, _) = run(&[
        Raw::Cid(b"20915\x01AEBE52E7-03EE-455A-B3C4-E57283966239"),
        Raw::Cid(b"20915\x01aebe52e7-03ee-455a-b3c4-e57283966239"), // IDFA must be upper case
        Raw::CidIc(b"DSID_20914\x01e4fe9bde-caa0-47b6-908d-ffba3fa184f2"),
        Raw::Cid(b"20914\x01E4FE9BDE-CAA0-47B6-908D-FFBA3FA184F2"), // GAID must be lower case
        Raw::Cid(b"1171489\x017XCBNROQJQPYW"),
        Raw::Cid(b"389146\x01not-alnum"),
    ]);
    assert_eq!(codes, vec![312, 312, 312]);
    assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), vec![20915, 20914, 1_171_489]);
}

#[test]
fn three_per_source_then_the_rest_are_310() {
    let ids: Vec<String> =
        (0..5).map(|i| format!("10\x01a{i}")).chain((0..9).map(|i| format!("20\x01b{i}"))).collect();
    let raws: Vec<Raw<'_>> = ids.iter().map(|s| Raw::Cid(s.as_bytes())).collect();
    let (kept, codes, msgs) = run(&raws);
    // Source 10: a3, a4 dropped (310); source 20: b3..b8 dropped (310); 6 left, under 10.
    assert_eq!(codes, vec![310; 8]);
    assert_eq!(kept.len(), 6);
    assert_eq!(msgs[0], "Customer id was discarded because it exceeded the limit for a given namespace. Namespace id is 10, customer id is a3.");
}

#[test]
fn more_than_ten_is_301_once_and_309_each() {
    // 4 sources × 3 IDs = 12 valid IDs: the last two go.
    let ids: Vec<String> = [10, 20, 1_171_489, 389_146]
        .iter()
        .flat_map(|d| (0..3).map(move |i| format!("{d}\x01X{d}x{i}")))
        .collect();
    let raws: Vec<Raw<'_>> = ids.iter().map(|s| Raw::Cid(s.as_bytes())).collect();
    let (kept, codes, msgs) = run(&raws);
    assert_eq!(kept.len(), 10);
    assert_eq!(codes, vec![301, 309, 309]);
    assert_eq!(msgs[0], "Maximum number of customer ids exceeded. Maximum allowed is 10. Found is 12.");
    assert_eq!(msgs[1], "Customer id X389146x1 was discarded because it exceeded the limit of declared customer ids per request");
}
