use proptest::prelude::*;

use super::rule::{parse, Cmp, Op};
use super::*;
use crate::config::Taxonomy;
use crate::json::escape_into as json_escape;
use crate::table::Profile;

/// Parses, validates and compiles a document as the catalog does: validation and rule errors
/// together.
fn load(json: &[u8]) -> Result<Engine, Vec<String>> {
    let (doc, mut errors) = Taxonomy::parse_unchecked(json)?;
    match Engine::compile(&doc) {
        Ok(e) if errors.is_empty() => Ok(e),
        Ok(_) => Err(errors),
        Err(rule_errors) => {
            errors.extend(rule_errors);
            Err(errors)
        }
    }
}

/// (rule, signals, realized?)
type RuleCase<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
/// (rule, realizations (trait, days ago, count), in segment?)
type SegCase<'a> = (&'a str, &'a [(u32, u16, u16)], bool);

/// Customer 1 owns DPID 1; customer 2 owns DPID 2 (shared with 1) and DPID 3 (kept).
fn doc(traits: &[(u32, u32, Option<&str>)], segments: &[(u32, u32, &str)], extra: &str) -> String {
    let js = |s: &str| {
        let mut b = Vec::new();
        json_escape(s.as_bytes(), &mut b);
        format!("\"{}\"", String::from_utf8(b).unwrap())
    };
    let ts: Vec<String> = traits
        .iter()
        .map(|(sid, dpid, r)| {
            let folder = if *sid >= 900 { r#","folder":true"# } else { "" };
            format!(r#"{{"sid":{sid},"dpid":{dpid},"rule":{}{folder}}}"#, r.map_or("null".into(), js))
        })
        .collect();
    let ss: Vec<String> = segments
        .iter()
        .map(|(sid, c, r)| {
            format!(r#"{{"sid":{sid},"legacy_id":{},"customer":{c},"rule":{}}}"#, sid + 1000, js(r))
        })
        .collect();
    format!(
        r#"{{"trait_ttl_days":30,"customers":[{{"id":1,"hosts":["a"]}},{{"id":2,"hosts":["b"]}}],
        "data_sources":[{{"dpid":1,"owner":1}},{{"dpid":2,"owner":2,"shared_with":[1]}},{{"dpid":3,"owner":2}}],
        "traits":[{}],"segments":[{}]{extra}}}"#,
        ts.join(","),
        ss.join(",")
    )
}

fn engine(traits: &[(u32, u32, Option<&str>)], segments: &[(u32, u32, &str)]) -> Engine {
    load(doc(traits, segments, "").as_bytes()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn realize(t: &Engine, signals: &[(&str, &str)], ctx: RealizeCtx<'_>) -> (Vec<u32>, RealizeStats) {
    let mut out = Vec::new();
    let mut s = EngineScratch::default();
    let sig = signals.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
    let stats = t.realize(&mut s, sig, &ctx, &mut out);
    (out, stats)
}

fn one(rule: &str, signals: &[(&str, &str)]) -> bool {
    let t = engine(&[(1, 1, Some(rule))], &[]);
    let (out, _) = realize(&t, signals, RealizeCtx { customer: 1, ..RealizeCtx::default() });
    let naive = naive(&parse(rule).unwrap(), signals);
    assert_eq!(out == [1], naive, "index vs naive for {rule:?} over {signals:?}");
    naive
}

fn naive(e: &rule::Expr, signals: &[(&str, &str)]) -> bool {
    let sig: Vec<(&[u8], &[u8])> = signals.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
    let re = |c: &Cmp, v: &[u8]| {
        regex::bytes::Regex::new(std::str::from_utf8(c.value.text()).unwrap()).unwrap().is_match(v)
    };
    e.eval(&sig, &re)
}

#[test]
fn trait_rule_semantics() {
    #[rustfmt::skip]
    let cases: &[RuleCase] = &[
        // numeric vs string equality, aliases
        ("a == 1", &[("a", "1")], true),
        ("a == 1", &[("a", "1.0")], true),
        ("a == 1", &[("a", "01")], true),
        ("a == 1", &[("a", "x")], false),
        ("a == 1", &[], false),
        ("a = 1", &[("a", "1")], true),
        ("a == \"1\"", &[("a", "1.0")], false),
        ("a == \"1\"", &[("a", "1")], true),
        ("a == -2.5", &[("a", "-2.50")], true),
        ("a => 5", &[("a", "5")], true),
        ("a => 5", &[("a", "4")], false),
        // ranges
        ("a < 10", &[("a", "abc")], false),
        ("a < 10", &[("a", "9.5")], true),
        ("a < 10", &[("a", "-3")], true),
        ("a < 10", &[("a", "10")], false),
        ("a <= 10", &[("a", "10")], true),
        ("a > 10", &[("a", "11")], true),
        ("a > 10", &[("a", "10")], false),
        ("a >= 10", &[("a", "10")], true),
        ("a > \"10\"", &[("a", "11")], true),
        // multi-valued, != and absent keys
        ("a == x", &[("a", "y"), ("a", "x")], true),
        ("a != x", &[("a", "y")], true),
        ("a != x", &[("a", "x")], false),
        ("a != x", &[("a", "x"), ("a", "y")], false),
        ("a != x", &[], false),
        ("a != x", &[("b", "y")], false),
        ("a != 1", &[("a", "1.0")], false),
        ("NOT a != 1", &[], true),
        ("NOT a != 1", &[("a", "2")], false),
        // string operators
        ("a contains ell", &[("a", "hello")], true),
        ("a contains ell", &[("a", "help")], false),
        ("a contains \"\"", &[("a", "q")], true),
        ("a startswith he", &[("a", "hello")], true),
        ("a startswith he", &[("a", "the")], false),
        ("a endswith lo", &[("a", "hello")], true),
        ("a endswith lo", &[("a", "lol")], false),
        ("a matchesregex \"l+o\"", &[("a", "hello")], true),
        ("a matchesregex \"^h\"", &[("a", "oh")], false),
        ("a matchesregex \"\\d+\"", &[("a", "x12")], true),
        ("a matchesregex \"\\d+\"", &[("b", "12")], false),
        // keywords are case-insensitive; keys and values are not
        ("a == 1 and b == 2", &[("a", "1"), ("b", "2")], true),
        ("a == 1 oR b == 2", &[("b", "2")], true),
        ("not a == 1", &[("a", "2")], true),
        ("a CONTAINS x", &[("a", "yxy")], true),
        ("a StartsWith x", &[("a", "xy")], true),
        ("a == X", &[("a", "x")], false),
        ("a == X", &[("A", "X")], false),
        // precedence and AND NOT
        ("a == 1 OR b == 1 AND c == 1", &[("a", "1")], true),
        ("a == 1 OR b == 1 AND c == 1", &[("b", "1")], false),
        ("(a == 1 OR b == 1) AND c == 1", &[("b", "1"), ("c", "1")], true),
        ("NOT a == 1 AND b == 1", &[("b", "1")], true),
        ("NOT a == 1 AND b == 1", &[("a", "1"), ("b", "1")], false),
        ("a == 1 AND NOT b == 1", &[("a", "1")], true),
        ("a == 1 AND NOT b == 1", &[("a", "1"), ("b", "1")], false),
        ("NOT a == 1", &[], true),
        ("NOT a == 1", &[("a", "1")], false),
        ("NOT NOT a == 1", &[("a", "1")], true),
        // quoting and odd keys
        ("a == \"say \\\"hi\\\"\"", &[("a", "say \"hi\"")], true),
        ("a == \"x y\"", &[("a", "x y")], true),
        ("h_user-agent contains Mozilla", &[("h_user-agent", "Mozilla/5.0")], true),
        ("a==b", &[("a", "b")], true),
    ];
    for (rule, signals, want) in cases {
        assert_eq!(one(rule, signals), *want, "{rule:?} over {signals:?}");
    }
}

#[test]
fn aam_reference_samples() {
    #[rustfmt::skip]
    let cases: &[RuleCase] = &[
        (r#"(c_make=="A") AND (c_model=="B") AND (c_search=="1")"#, &[("c_make", "A"), ("c_model", "B"), ("c_search", "1")], true),
        (r#"(c_make=="A") AND (c_model=="B") AND (c_search=="1")"#, &[("c_make", "A"), ("c_model", "B")], false),
        (r#"(a== "1" OR b=="1") AND (c=="new")"#, &[("b", "1"), ("c", "new")], true),
        (r#"(a== "1" OR b=="1") AND (c=="new")"#, &[("a", "1"), ("c", "old")], false),
        ("(price >= 1.00 AND price <= 100.00)", &[("price", "50")], true),
        ("(price >= 1.00 AND price <= 100.00)", &[("price", "100.5")], false),
        (r#"color == "blue""#, &[("color", "blue")], true),
        (r#"color == "blue""#, &[("color", "Blue")], false),
        ("productkey == 2093", &[("productkey", "2093")], true),
        ("p_age<25", &[("p_age", "24")], true),
        ("p_age<25", &[("p_age", "25")], false),
        ("d_country=CW OR d_country=SX OR d_country=BQ", &[("d_country", "SX")], true),
        ("d_country=CW OR d_country=SX OR d_country=BQ", &[("d_country", "US")], false),
        ("d_creative == 123 AND d_event == imp", &[("d_creative", "123"), ("d_event", "imp")], true),
        ("d_creative == 123 AND d_event == imp", &[("d_creative", "123"), ("d_event", "click")], false),
        ("d_event == click OR d_event=conv", &[("d_event", "conv")], true),
        ("d_event == conv AND d_conversion == 123", &[("d_event", "conv"), ("d_conversion", "123")], true),
        (r#"ic == "123""#, &[("ic", "123")], true),
    ];
    for (rule, signals, want) in cases {
        assert_eq!(one(rule, signals), *want, "{rule:?} over {signals:?}");
    }
}

#[test]
fn trait_rule_parse_errors() {
    let deep = format!("{}a == 1", "(".repeat(100));
    #[rustfmt::skip]
    let cases: &[(&str, usize, &str)] = &[
        ("a", 1, "expected operator"),
        ("a ==", 4, "expected value"),
        ("== 1", 0, "expected a key"),
        ("(a == 1", 7, "expected ')'"),
        ("a == 1 b == 2", 7, "expected AND, OR"),
        ("a == \"x", 5, "unterminated string"),
        ("a < x", 4, "expected a number"),
        ("a ! 1", 2, "expected '!='"),
        ("a == 1 AND", 10, "expected a key"),
        ("a == 1 AND NOT", 14, "expected a key"),
        ("a likes 1", 2, "expected operator"),
        ("", 0, "expected a key"),
        (&deep, 64, "nesting too deep"),
    ];
    for (rule, pos, msg) in cases {
        let e = parse(rule).unwrap_err();
        assert_eq!(e.pos, *pos, "{rule:?}: {e}");
        assert!(e.msg.contains(msg), "{rule:?}: {e}");
    }
}

#[test]
fn loader_rejects_bad_rules_with_path_and_position() {
    let bad = doc(&[(1, 1, Some("a == 1")), (2, 1, Some("x == 1 AND y z"))], &[], "");
    let e = load(bad.as_bytes()).unwrap_err();
    assert_eq!(e, ["$.traits[1].rule: at 13: expected operator"]);
    let bad = doc(&[(1, 1, Some("a matchesregex \"(\""))], &[], "");
    let e = load(bad.as_bytes()).unwrap_err();
    assert!(e[0].starts_with("$.traits[0].rule: at 15: invalid regex"), "{e:?}");
    let bad = doc(&[(1, 1, None)], &[(7, 1, "1T AND 2T"), (8, 1, "NOT 1T"), (9, 1, "1T AND")], "");
    let e = load(bad.as_bytes()).unwrap_err();
    assert_eq!(e[0], "$.segments[0].rule: at 7: unknown trait 2");
    assert!(e[1].starts_with("$.segments[1].rule: matches a profile that never realized"), "{e:?}");
    assert_eq!(e[2], "$.segments[2].rule: at 6: expected a trait (123T), FREQUENCY, NOT or '('");
    let big = doc(&[(1, 1, None)], &[], "").replace(r#""sid":1,"#, r#""sid":4294967296,"#);
    let e = load(big.as_bytes()).unwrap_err();
    assert_eq!(e, ["$.traits[0].sid: 4294967296 does not fit in 32 bits"]);
}

#[test]
fn demo_taxonomy_compiles() {
    let t = load(crate::config::taxonomy::DEMO_JSON.as_bytes()).unwrap();
    let (out, _) = realize(
        &t,
        &[("c_likes", "famous popstar"), ("price", "5")],
        RealizeCtx { customer: 1, ..RealizeCtx::default() },
    );
    assert_eq!(out, [1234, 5678]);
}

#[test]
fn partner_traits_are_realized_only_from_partner_answers() {
    // Demo: trait 9001 (`segment == "auto-intender"`) belongs to DPID 777, a real-time source.
    let t = load(crate::config::taxonomy::DEMO_JSON.as_bytes()).unwrap();
    let own = RealizeCtx { customer: 1, ..RealizeCtx::default() };
    let (out, _) = realize(&t, &[("segment", "auto-intender"), ("c_likes", "famous popstar")], own);
    assert_eq!(out, [1234], "a request's own signal cannot forge a partner trait");
    let sids = [9001];
    let (out, stats) = realize(&t, &[], RealizeCtx { d_sid: &sids, ..own });
    assert!(out.is_empty(), "nor can d_sid");
    assert_eq!(stats.sid_foreign, 1);
    let answer = RealizeCtx { customer: 1, tdpid: Some(777), partner: true, ..RealizeCtx::default() };
    let (out, _) = realize(&t, &[("segment", "auto-intender"), ("c_likes", "famous popstar")], answer);
    assert_eq!(out, [9001], "the partner's answer realizes only its own traits");
    let other = RealizeCtx { tdpid: Some(1), ..answer };
    assert!(realize(&t, &[("segment", "auto-intender")], other).0.is_empty());
}

#[test]
fn d_sid_ownership_and_tdpid() {
    let t = engine(
        &[
            (1, 1, Some("k == v")),
            (2, 2, Some("k == v")),
            (3, 3, Some("k == v")),
            (4, 1, None),
            (900, 1, None),
        ],
        &[],
    );
    let c1 = RealizeCtx { customer: 1, ..RealizeCtx::default() };
    assert_eq!(realize(&t, &[("k", "v")], c1).0, [1, 2], "DPID 3 is not shared with customer 1");
    let c2 = RealizeCtx { customer: 2, ..c1 };
    assert_eq!(realize(&t, &[("k", "v")], c2).0, [2, 3]);
    let td = RealizeCtx { tdpid: Some(2), ..c1 };
    assert_eq!(realize(&t, &[("k", "v")], td).0, [2]);
    let sids = [4, 1, 3, 900, 77, 1 << 40, 4];
    let ctx = RealizeCtx { d_sid: &sids, ..c1 };
    let (out, stats) = realize(&t, &[("k", "v"), ("k", "v")], ctx);
    assert_eq!(out, [1, 2, 4]);
    assert_eq!(stats, RealizeStats { sid_unknown: 2, sid_folder: 1, sid_foreign: 1 });
    let nobody = RealizeCtx { customer: 9, d_sid: &sids, ..c1 };
    assert_eq!(realize(&t, &[("k", "v")], nobody).0, Vec::<u32>::new());
}

#[test]
fn scratch_is_reused_across_requests() {
    let t = engine(&[(1, 1, Some("a == 1 AND b == 2")), (2, 1, Some("NOT c == 1"))], &[]);
    let mut s = EngineScratch::default();
    let mut out = Vec::new();
    let ctx = RealizeCtx { customer: 1, ..RealizeCtx::default() };
    for round in 0..3 {
        let sig: [(&[u8], &[u8]); 2] = [(b"a", b"1"), (b"b", b"2")];
        t.realize(&mut s, sig, &ctx, &mut out);
        assert_eq!(out, [1, 2], "round {round}");
        t.realize(&mut s, [(&b"c"[..], &b"1"[..])], &ctx, &mut out);
        assert_eq!(out, Vec::<u32>::new(), "round {round}");
    }
}

// --- segments ---

const TODAY: u16 = 20_000;

fn seg_engine(rules: &[&str]) -> Engine {
    let segs: Vec<(u32, u32, &str)> =
        rules.iter().enumerate().map(|(i, r)| (100 + i as u32, 1, *r)).collect();
    engine(&[(1, 1, None), (2, 1, None), (3, 1, None)], &segs)
}

fn in_segments(t: &Engine, p: &Profile) -> Vec<u32> {
    let mut out = Vec::new();
    t.segments(p, TODAY, 1, &mut out);
    out
}

fn profile(rs: &[(u32, u16, u16)]) -> Profile {
    let mut p = Profile::default();
    for &(t, ago, n) in rs {
        p.realize_n(t, TODAY - ago, n);
    }
    p
}

#[test]
fn segment_semantics() {
    #[rustfmt::skip]
    let cases: &[SegCase] = &[
        ("1T", &[(1, 0, 1)], true),
        ("1T", &[(1, 29, 1)], true),
        ("1T", &[(1, 30, 1)], false), // past the 30-day TTL
        ("1t", &[(1, 0, 1)], true),
        ("1T AND 2T", &[(1, 0, 1)], false),
        ("1T AND 2T", &[(1, 0, 1), (2, 3, 1)], true),
        ("1T OR 2T", &[(2, 3, 1)], true),
        ("1T AND NOT 2T", &[(1, 0, 1)], true),
        ("1T AND NOT 2T", &[(1, 0, 1), (2, 0, 1)], false),
        ("1T AND NOT 2T", &[(1, 0, 1), (2, 30, 1)], true),
        ("(1T OR 2T) and not 3T", &[(2, 0, 1)], true),
        ("FREQUENCY([1T,2T] <= 7D) >= 3", &[(1, 0, 2), (2, 6, 1)], true),
        ("FREQUENCY([1T,2T] <= 7D) >= 3", &[(1, 0, 2), (2, 7, 1)], false),
        ("FREQUENCY([1T] >= 7D) >= 1", &[(1, 7, 1)], true),
        ("FREQUENCY([1T] >= 7D) >= 1", &[(1, 6, 1)], false),
        ("FREQUENCY([1T] >= 7D) >= 1", &[(1, 30, 1)], false), // expired
        ("frequency([1T]) == 2 AND 2T", &[(1, 0, 1), (1, 5, 1), (2, 0, 1)], true),
        ("frequency([1T]) == 2 AND 2T", &[(1, 0, 3), (2, 0, 1)], false),
        ("FREQUENCY([1T]) >= 1 AND FREQUENCY([1T]) <= 5", &[(1, 0, 5)], true),
        ("FREQUENCY([1T]) >= 1 AND FREQUENCY([1T]) <= 5", &[(1, 0, 6)], false),
        ("FREQUENCY([1T]) <= 5 AND 2T", &[(2, 0, 1)], true),
        ("(FREQUENCY([1T] <= 2D) >= 5)", &[(1, 0, 3), (1, 1, 2)], true),
        ("(FREQUENCY([1T] <= 2D) >= 5)", &[(1, 0, 3), (1, 2, 2)], false),
        ("FREQUENCY( [ 1T , 2T ] ) >= 2", &[(1, 0, 1), (2, 0, 1)], true),
        ("1T", &[(2, 0, 1)], false),
    ];
    for (rule, rs, want) in cases {
        let t = seg_engine(&[rule]);
        let got = in_segments(&t, &profile(rs)) == [100];
        assert_eq!(got, *want, "{rule:?} over {rs:?}");
    }
}

#[test]
fn segments_rejected_forms_and_errors() {
    for rule in [
        "NOT 1T",
        "FREQUENCY([1T]) <= 5",
        "FREQUENCY([1T]) >= 0",
        "1T OR NOT 2T",
        "FREQUENCY([1T] <= 3D) == 0",
    ] {
        let e = load(doc(&[(1, 1, None), (2, 1, None)], &[(5, 1, rule)], "").as_bytes()).unwrap_err();
        assert!(e[0].contains("never realized"), "{rule}: {e:?}");
    }
    #[rustfmt::skip]
    let cases: &[(&str, usize, &str)] = &[
        ("1T AND", 6, "expected a trait"),
        ("FREQUENCY([1T] <= 0D) >= 1", 18, "recency must be"),
        ("FREQUENCY([1T]) > 1", 16, "unexpected character"),
        ("FREQUENCY([1T] <= 7) >= 1", 18, "expected days"),
        ("FREQUENCY([1T)", 13, "expected ',' or ']'"),
        ("12", 0, "expected a trait"),
        ("(1T", 3, "expected ')'"),
        ("1T 2T", 3, "expected AND, OR"),
        ("4294967296T", 0, "does not fit"),
        ("1Tx", 0, "unexpected character after number"),
    ];
    for (rule, pos, msg) in cases {
        let e = segment::parse(rule).unwrap_err();
        assert_eq!(e.pos, *pos, "{rule:?}: {e}");
        assert!(e.msg.contains(msg), "{rule:?}: {e}");
    }
}

#[test]
fn segments_by_customer_sorted_with_legacy_ids() {
    let t = engine(&[(1, 1, None), (2, 2, None)], &[(30, 1, "1T"), (20, 1, "1T OR 2T"), (10, 2, "1T")]);
    let p = profile(&[(1, 0, 1)]);
    assert_eq!(in_segments(&t, &p), [20, 30]);
    let mut out = Vec::new();
    t.segments(&p, TODAY, 2, &mut out);
    assert_eq!(out, [10]);
    assert_eq!(t.legacy_id(20), Some(1020));
    assert_eq!(t.legacy_id(21), None);
    let mut legacy = Vec::new();
    t.legacy_ids_into(&[30, 20, 99], &mut legacy);
    assert_eq!(legacy, [1020, 1030]);
}

// --- destinations ---

const DESTS: &str = r#","destinations":[
 {"id":1,"customer":1,"type":"url","url":"http://x/?s=%alias%&u=%did%&r=%rnd%&t=%timestamp%&g=%region%&d=%dpid_7%&c=${GDPR}&k=${GDPR_CONSENT_565}&z=%2F%zz%",
  "secure_url":"","serialize":true,"delimiter":",","mappings":[{"segment":10,"alias":"a b"},{"segment":20,"alias":"c\"d"}]},
 {"id":2,"customer":1,"type":"url","platform":"ios","url":"http://y/%alias%","kind":"iframe","mappings":[{"segment":10,"alias":"p"},{"segment":20,"alias":"q"}]},
 {"id":3,"customer":1,"type":"cookie","name":"ck","domain":".d","ttl_days":30,"format":"single_key","key":"seg","max_size":11,
  "mappings":[{"segment":10,"value":"10"},{"segment":20,"value":"2,0"}]},
 {"id":4,"customer":1,"type":"cookie","name":"kv","format":"key_value","key_separator":":","value_separator":";","mappings":[{"segment":20,"key":"k","value":"v"},{"segment":10,"key":"j","value":"w"}]}]"#;

fn render(platform: Option<&[u8]>, segments: &[u32]) -> (String, String) {
    let d = doc(&[(1, 1, None)], &[(10, 1, "1T"), (20, 1, "1T")], DESTS);
    let t = load(d.as_bytes()).unwrap();
    let declared: [(u32, &[u8]); 2] = [(5, b"no"), (7, b"id/7")];
    let req = DestRequest {
        customer: 1,
        segments,
        uuid: "123",
        platform,
        declared: &declared,
        gdpr: 1,
        gdpr_consent: b"CO-x",
        rnd: 42,
        timestamp_s: 1_700_000_000,
        region: 9,
    };
    let (mut stuff, mut dests) = (Vec::new(), Vec::new());
    t.render_destinations(&mut EngineScratch::default(), &req, &mut stuff, &mut dests);
    (String::from_utf8(stuff).unwrap(), String::from_utf8(dests).unwrap())
}

#[test]
fn destinations_render() {
    let (stuff, dests) = render(None, &[10, 20]);
    assert_eq!(
        dests,
        r#"[{"c":"http://x/?s=a%20b,c%22d&u=123&r=42&t=1700000000&g=9&d=id%2F7&c=1&k=CO-x&z=%2F%zz%","e":"","y":"img"}]"#
    );
    // seg=10 is 6 bytes; ,2%2C0 would make it 12 > 11: cut on the value boundary. Separators
    // are written as they are, keys and values percent-encoded.
    assert_eq!(
        stuff,
        r#"[{"cn":"ck","cv":"seg=10","ttl":30,"dmn":".d"},{"cn":"kv","cv":"j:w;k:v","ttl":0,"dmn":""}]"#
    );
    let (_, dests) = render(Some(b"ios"), &[20]);
    assert_eq!(
        dests,
        r#"[{"c":"http://x/?s=c%22d&u=123&r=42&t=1700000000&g=9&d=id%2F7&c=1&k=CO-x&z=%2F%zz%","e":"","y":"img"},{"c":"http://y/q","e":"","y":"iframe"}]"#
    );
    let (_, dests) = render(Some(b"ios"), &[10, 20]);
    assert!(
        dests.ends_with(r#"{"c":"http://y/p","e":"","y":"iframe"},{"c":"http://y/q","e":"","y":"iframe"}]"#),
        "{dests}"
    );
    assert_eq!(render(None, &[]), ("[]".into(), "[]".into()));
    assert_eq!(render(Some(b"android"), &[30]), ("[]".into(), "[]".into()));
}

// --- generator ---

#[test]
fn generated_taxonomy_loads_and_requests_hit() {
    let g = gen::generate(gen::GenParams::small(7));
    assert_eq!(g.json, gen::generate(gen::GenParams::small(7)).json, "deterministic");
    let t = load(g.json.as_bytes()).unwrap_or_else(|e| panic!("{:?}", &e[..e.len().min(5)]));
    let mut s = EngineScratch::default();
    let mut out = Vec::new();
    let mut total = 0;
    for seed in 0..50 {
        let req = g.request(seed, 20);
        let ctx = RealizeCtx { customer: 1, ..RealizeCtx::default() };
        t.realize(&mut s, req.iter().map(|(k, v)| (&k[..], &v[..])), &ctx, &mut out);
        total += out.len();
    }
    assert!(total > 50, "requests should realize traits: {total}");
    let p = g.profile(3, 20, TODAY);
    let mut segs = Vec::new();
    t.segments(&p, TODAY, 1, &mut segs);
    assert!(segs.windows(2).all(|w| w[0] < w[1]));
}

// --- equivalence: compiled index vs naive evaluation ---

const KEYS: &[&str] = &["a", "b", "c", "d"];
const VALUES: &[&str] = &["x", "y", "xy", "yx", "1", "1.0", "2", "10", "-1", "x y", "hello", ""];

fn cmp_strategy() -> impl Strategy<Value = String> {
    let key = prop::sample::select(KEYS);
    let num = prop::sample::select(&["1", "2", "10", "-1", "1.5", "\"2\""][..]);
    let val = prop::sample::select(
        &["x", "y", "\"xy\"", "1", "1.0", "10", "\"1\"", "\"x y\"", "hello", "\"\""][..],
    );
    let pat = prop::sample::select(&["x", "y", "\"xy\"", "1", "l", "\"\"", "hel", "lo", "\"x \""][..]);
    let re = prop::sample::select(&["x", "\"^x\"", "\"y$\"", "\"[0-9]+\"", "\"l{2}\""][..]);
    prop_oneof![
        (key.clone(), prop::sample::select(&["==", "=", "!="][..]), val)
            .prop_map(|(k, o, v)| format!("{k} {o} {v}")),
        (key.clone(), prop::sample::select(&["<", "<=", ">", ">=", "=>"][..]), num)
            .prop_map(|(k, o, v)| format!("{k} {o} {v}")),
        (key.clone(), prop::sample::select(&["contains", "startswith", "endswith"][..]), pat)
            .prop_map(|(k, o, v)| format!("{k} {o} {v}")),
        (key, re).prop_map(|(k, v)| format!("{k} matchesregex {v}")),
    ]
}

fn rule_strategy() -> impl Strategy<Value = String> {
    cmp_strategy().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND NOT ({b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn index_matches_naive_evaluation(
        rules in prop::collection::vec(rule_strategy(), 1..40),
        requests in prop::collection::vec(
            prop::collection::vec((prop::sample::select(KEYS), prop::sample::select(VALUES)), 0..8), 1..6),
    ) {
        let traits: Vec<(u32, u32, Option<&str>)> =
            rules.iter().enumerate().map(|(i, r)| (i as u32 + 1, 1, Some(r.as_str()))).collect();
        let t = engine(&traits, &[]);
        let asts: Vec<_> = rules.iter().map(|r| parse(r).unwrap()).collect();
        let mut s = EngineScratch::default();
        let mut out = Vec::new();
        let ctx = RealizeCtx { customer: 1, ..RealizeCtx::default() };
        for req in &requests {
            t.realize(&mut s, req.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())), &ctx, &mut out);
            let want: Vec<u32> = asts.iter().enumerate()
                .filter(|(_, e)| naive(e, req)).map(|(i, _)| i as u32 + 1).collect();
            prop_assert_eq!(&out, &want, "rules {:?} request {:?}", rules, req);
        }
    }

    #[test]
    fn trait_parser_never_panics(s in "\\PC{0,40}") {
        let _ = parse(&s);
        let _ = segment::parse(&s);
    }
}

#[test]
fn ops_roundtrip_through_parser() {
    for (text, op) in
        [("==", Op::Eq), ("=", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), ("<=", Op::Le), (">", Op::Gt)]
    {
        let rule::Expr::Cmp(c) = parse(&format!("k {text} 1")).unwrap() else { panic!("{text}") };
        assert_eq!(c.op, op);
    }
}

#[test]
fn numbers_follow_the_number_token_grammar() {
    for (s, want) in [("1", Some(1.0)), ("-2.50", Some(-2.5)), ("007", Some(7.0)), ("1.", None), (".5", None)]
    {
        assert_eq!(rule::number(s.as_bytes()), want, "{s}");
    }
    for s in ["", "-", "+1", "1e3", "inf", "NaN", " 1", "1 ", "1.2.3", "--1"] {
        assert_eq!(rule::number(s.as_bytes()), None, "{s}");
    }
}

#[test]
fn cookie_with_no_value_that_fits_is_left_out() {
    let dests = r#","destinations":[{"id":1,"customer":1,"type":"cookie","name":"c","format":"single_key",
        "key":"k","max_size":4,"mappings":[{"segment":10,"value":"long"}]}]"#;
    let t = load(doc(&[(1, 1, None)], &[(10, 1, "1T")], dests).as_bytes()).unwrap();
    let req = DestRequest { customer: 1, segments: &[10], ..DestRequest::default() };
    let (mut stuff, mut out) = (Vec::new(), Vec::new());
    t.render_destinations(&mut EngineScratch::default(), &req, &mut stuff, &mut out);
    assert_eq!((&stuff[..], &out[..]), (&b"[]"[..], &b"[]"[..]));
}
