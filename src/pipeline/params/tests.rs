use super::*;

fn decoded(query: &[u8], body: &[u8]) -> Vec<(String, Vec<String>)> {
    let mut p = Pairs::default();
    let v = p.decode(query, body).expect("valid");
    v.pairs()
        .map(|pair| {
            let key = String::from_utf8(v.text(pair.key).to_vec()).unwrap();
            let vals = v.values(pair).map(|x| String::from_utf8(x.to_vec()).unwrap()).collect();
            (key, vals)
        })
        .collect()
}

fn kv(k: &str, v: &[&str]) -> (String, Vec<String>) {
    (k.to_string(), v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn query_then_body_in_order_with_repeats() {
    let got = decoded(b"c_a=1&d_sid=5,6&c_a=2", b"c_b=x+y&p_z=%41");
    assert_eq!(
        got,
        vec![
            kv("c_a", &["1"]),
            kv("d_sid", &["5", "6"]),
            kv("c_a", &["2"]),
            kv("c_b", &["x y"]),
            kv("p_z", &["A"])
        ]
    );
}

#[test]
fn empty_keys_skipped_and_keys_without_equals_are_empty() {
    assert_eq!(decoded(b"=1&&flag&c_x=", b""), vec![kv("flag", &[""]), kv("c_x", &[""])]);
}

#[test]
fn quoted_values_are_one_value() {
    assert_eq!(decoded(b"c_t=%22a,b%22&c_u=\"x\"", b""), vec![kv("c_t", &["a,b"]), kv("c_u", &["x"])]);
    // Quotes only at one end do not count.
    assert_eq!(decoded(b"c_t=%22a,b", b""), vec![kv("c_t", &["\"a", "b"])]);
}

#[test]
fn first_equals_splits_and_escaped_equals_stays() {
    assert_eq!(decoded(b"c_e=a=b&c_f%3D=1", b""), vec![kv("c_e", &["a=b"]), kv("c_f=", &["1"])]);
}

#[test]
fn bad_escapes_and_utf8_invalidate_everything() {
    let mut p = Pairs::default();
    for bad in [&b"c_a=%4"[..], b"c_a=%zz", b"c_a=1&c_b=%", b"c_%g1=1", b"c_a=%ff", b"c_a=%C3%28"] {
        assert_eq!(p.decode(bad, b"").err(), Some(Invalid), "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(p.decode(b"c_a=1", b"c_b=%").err(), Some(Invalid));
    // Found by fuzzing: the value of a skipped (empty-key) pair counts too.
    assert_eq!(p.decode(b"=%zz&c_a=1", b"").err(), Some(Invalid));
    assert_eq!(p.decode(b"c_a=1", &[b'c', b'=', 0xff]).err(), Some(Invalid));
    // Valid multi-byte UTF-8, escaped and raw.
    let got = decoded("c_a=%C3%A9&c_b=é".as_bytes(), b"");
    assert_eq!(got, vec![kv("c_a", &["é"]), kv("c_b", &["é"])]);
}

#[test]
fn classes() {
    assert_eq!(classify(b"c_x"), KeyClass::Customer);
    assert_eq!(classify(b"d_sid"), KeyClass::Control);
    assert_eq!(classify(b"gdpr_consent"), KeyClass::Control);
    assert_eq!(classify(b"d_custom"), KeyClass::Platform);
    assert_eq!(classify(b"h_host"), KeyClass::Header);
    assert_eq!(classify(b"p_secret"), KeyClass::Private);
    assert_eq!(classify(b"price"), KeyClass::Unprefixed);
    assert_eq!(classify(b"c"), KeyClass::Unprefixed);
}

#[test]
fn lookups() {
    let mut p = Pairs::default();
    let v = p.decode(b"d_rtbd=json&d_cid=1%01abc,def&d_cid=2", b"").unwrap();
    assert_eq!(v.first(b"d_rtbd"), Some(&b"json"[..]));
    assert_eq!(v.raw_first(b"d_cid"), Some(&b"1\x01abc,def"[..]));
    assert_eq!(v.first(b"missing"), None);
}

#[test]
fn unescaped_input_is_not_copied() {
    let mut p = Pairs::default();
    p.decode(b"c_a=1&c_b=two,three", b"x=y").unwrap();
    assert!(p.arena.is_empty());
    p.decode(b"c_a=%20", b"").unwrap();
    assert_eq!(p.arena, b" ");
}

#[test]
fn callbacks() {
    assert!(valid_callback(b"jQuery123_456.cb$"));
    assert!(valid_callback(b"_"));
    assert!(!valid_callback(b""));
    assert!(!valid_callback(b"1abc"));
    assert!(!valid_callback(b"a(b)"));
    assert!(!valid_callback(&[b'a'; 65]));
    assert!(valid_callback(&[b'a'; 64]));
}

#[test]
fn control_in_one_pass() {
    let mut p = Pairs::default();
    let q = b"dpuuid=L2&d_cid_ic=crm%01a&d_rtbd=json&d_cid=1%01x,y&d_rtbd=no&d_dpid=5&d_uuid=9&d_cid=2%01z&dpid=6&d_dpuuid=L1";
    let v = p.decode(q, b"").unwrap();
    let c = Control::from_view(&v);
    assert!(c.json, "the first d_rtbd wins");
    assert_eq!(c.uuid, Some(&b"9"[..]));
    let declared: Vec<String> = c
        .declared
        .iter()
        .map(|r| match r {
            Raw::Cid(v) => format!("cid:{}", String::from_utf8_lossy(v)),
            Raw::CidIc(v) => format!("ic:{}", String::from_utf8_lossy(v)),
            Raw::Pair(a, b) => format!("pair:{}/{}", String::from_utf8_lossy(a), String::from_utf8_lossy(b)),
        })
        .collect();
    // d_cid in order (commas kept), then d_cid_ic, then d_dpid+d_dpuuid, then dpid+dpuuid.
    assert_eq!(declared, vec!["cid:1\u{1}x,y", "cid:2\u{1}z", "ic:crm\u{1}a", "pair:5/L1", "pair:6/L2"]);
}

#[test]
fn signals_skip_control_and_forged_header_keys() {
    let mut p = Pairs::default();
    let q = b"c_a=1,2&d_rtbd=json&h_host=forged&p_x=%22q%2Cr%22&d_custom=z&gdpr=1&d_sid=5,6&price=3";
    let v = p.decode(q, b"c_b=4").unwrap();
    let got: Vec<(String, String)> = v
        .signals()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    let want = [("c_a", "1"), ("c_a", "2"), ("p_x", "q,r"), ("d_custom", "z"), ("price", "3"), ("c_b", "4")];
    assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
    let c = Control::from_view(&v);
    assert!(c.json && c.gdpr);
    assert_eq!(c.sids, vec![&b"5"[..], &b"6"[..]]);
}
