use super::*;

const UUID: &str = "12345678901234567890123456789012345678";

/// A valid `event` record as the writer lays it out.
const EVENT: &str = concat!(
    r#"{"ts":1767225600123,"tid":"ss3OTqPiQp0=","kind":"event","host":"acme.dcs.example","#,
    r#""ip":"203.0.113.0","region":7,"signals":{"c_color":["red","blue"],"h_referer":["https://shop.example/"]},"#,
    r#""customer":12,"uuid":"12345678901234567890123456789012345678","#,
    r#""ecid":"98765432109876543210987654321098765432","#,
    r#""declared":[{"dpid":1001,"dpuuid":"u-42","auth":1}],"traits":[1,2],"segments":[10],"#,
    r#""partners":{"501":"ok","502":"timeout"},"errors":[],"mode":"pixel"}"#
);

fn parse(s: &str) -> Result<Record, SchemaError> {
    parse_record(&mut s.as_bytes().to_vec())
}

/// `EVENT` with `field` replaced (its whole `"field":value` text given as `with`; "" removes
/// it).
fn with(field: &str, with: &str) -> String {
    let mut out = Vec::new();
    let rec = parse(EVENT).unwrap();
    rec.write_json(&mut out);
    let mut s = String::from_utf8(out).unwrap();
    let start = s.find(&format!("\"{field}\":")).unwrap();
    // the value ends at the next top-level comma or the closing brace
    let bytes = s.as_bytes();
    let (mut depth, mut in_str, mut i) = (0i32, false, start + field.len() + 3);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'{' | b'[' if !in_str => depth += 1,
            b'}' | b']' if !in_str && depth > 0 => depth -= 1,
            b',' | b'}' if !in_str && depth == 0 => break,
            _ => {}
        }
        i += 1;
    }
    let (mut a, mut b) = (start, i);
    if with.is_empty() {
        if bytes[i] == b',' {
            b += 1;
        } else {
            a -= 1;
        }
    }
    s.replace_range(a..b, with);
    s
}

#[test]
fn a_valid_record_parses_and_round_trips() {
    let r = parse(EVENT).unwrap();
    assert_eq!(r.ts, 1_767_225_600_123);
    assert_eq!(r.tid, "ss3OTqPiQp0=");
    assert_eq!(r.kind, Kind::Event);
    assert_eq!(r.host, "acme.dcs.example");
    assert_eq!(r.ip, "203.0.113.0");
    assert_eq!(r.region, 7);
    assert_eq!(
        r.signals,
        vec![
            ("c_color".into(), vec!["red".into(), "blue".into()]),
            ("h_referer".into(), vec!["https://shop.example/".into()])
        ]
    );
    assert_eq!(r.customer, Some(12));
    assert_eq!(r.uuid.as_deref(), Some(UUID));
    assert_eq!(r.ecid.as_deref(), Some("98765432109876543210987654321098765432"));
    assert_eq!(r.declared, vec![(1001, "u-42".into(), 1)]);
    assert_eq!(r.opt_out, None);
    assert_eq!(r.traits, vec![1, 2]);
    assert_eq!(r.segments, vec![10]);
    assert_eq!(r.partners, vec![(501, Outcome::Ok), (502, Outcome::Timeout)]);
    assert_eq!(r.expires_s, None);
    assert!(r.errors.is_empty());
    assert_eq!(r.mode, Mode::Pixel);

    let mut out = Vec::new();
    r.write_json(&mut out);
    assert_eq!(parse_record(&mut out.clone()).unwrap(), r);
    // the writer's layout is the schema's order: the example is already canonical
    assert_eq!(String::from_utf8(out).unwrap(), EVENT);
}

#[test]
fn every_field_variant_round_trips() {
    let r = Record {
        ts: 1,
        tid: "t\"\\<\u{2028}é".into(),
        kind: Kind::Partner,
        host: "".into(),
        ip: "2001:db8::".into(),
        region: u32::MAX,
        signals: vec![("".into(), vec![]), ("x\n".into(), vec!["".into()])],
        customer: None,
        uuid: None,
        ecid: None,
        declared: vec![(0, "".into(), 0), (u32::MAX, "ü".into(), 2)],
        opt_out: Some(OptOut::Global),
        traits: vec![],
        segments: vec![u32::MAX, 0],
        partners: Outcome::ALL.iter().enumerate().map(|(i, &o)| (i as u32, o)).collect(),
        expires_s: Some(u64::MAX),
        errors: vec![(311, "bad \"request\"".into())],
        mode: Mode::None,
    };
    let mut out = Vec::new();
    r.write_json(&mut out);
    assert_eq!(parse_record(&mut out).unwrap(), r);
    for &m in Mode::ALL {
        let mut out = Vec::new();
        Record { mode: m, kind: Kind::Optout, opt_out: Some(OptOut::Customer), ..r.clone() }
            .write_json(&mut out);
        let p = parse_record(&mut out).unwrap();
        assert_eq!((p.mode, p.kind, p.opt_out), (m, Kind::Optout, Some(OptOut::Customer)));
    }
}

#[test]
fn field_order_does_not_matter() {
    let s = r#"{"mode":"none","errors":[{"msg":"m","code":311}],"partners":{},"segments":[],"traits":[],"declared":[{"auth":0,"dpuuid":"x","dpid":1}],"uuid":null,"customer":null,"signals":{},"region":0,"ip":"::1","host":"h","kind":"ibs","tid":"t","ts":5}"#;
    let r = parse(s).unwrap();
    assert_eq!(r.kind, Kind::Ibs);
    assert_eq!(r.errors, vec![(311, "m".into())]);
    assert_eq!(r.declared, vec![(1, "x".into(), 0)]);
}

fn refused(s: &str) -> String {
    match parse(s) {
        Ok(r) => panic!("accepted {s}: {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_unknown_and_duplicate_fields_are_refused() {
    for f in &FIELDS[..REQUIRED] {
        assert_eq!(refused(&with(f, "")), format!("missing field `{f}`"), "{f}");
    }
    // the optional ones may be absent
    assert!(parse(&with("ecid", "")).is_ok());
    assert_eq!(refused(&with("mode", r#""mode":"pixel","extra":1"#)), "unknown field `extra`");
    assert_eq!(refused(&with("mode", r#""mode":"pixel","ts":2"#)), "duplicate key `ts`");
}

#[test]
fn bad_values_are_refused() {
    let cases: &[(&str, &str, &str)] = &[
        ("ts", r#""ts":0"#, "`ts`: must be an integer > 0"),
        ("ts", r#""ts":-5"#, "`ts`"),
        ("ts", r#""ts":1.5"#, "`ts`"),
        ("ts", r#""ts":"1""#, "`ts`"),
        ("tid", r#""tid":"""#, "`tid`: must not be empty"),
        ("tid", r#""tid":null"#, "`tid`"),
        ("kind", r#""kind":"click""#, "`kind`"),
        ("host", r#""host":1"#, "`host`"),
        ("ip", r#""ip":"203.0.113""#, "`ip`"),
        ("region", r#""region":-1"#, "`region`"),
        ("region", r#""region":4294967296"#, "`region`"),
        ("signals", r#""signals":{"p_secret":["x"]}"#, "`signals.p_secret`: private"),
        ("signals", r#""signals":{"d_rtbd":["json"]}"#, "`signals.d_rtbd`"),
        ("signals", r#""signals":{"c_a":"x"}"#, "`signals.c_a`"),
        ("signals", r#""signals":{"c_a":[1]}"#, "`signals.c_a`"),
        ("signals", r#""signals":{"c_a":[],"c_a":[]}"#, "duplicate key `signals.c_a`"),
        ("signals", r#""signals":[]"#, "`signals`"),
        ("customer", r#""customer":"12""#, "`customer`"),
        ("uuid", r#""uuid":"1234""#, "`uuid`: must be a string of exactly 38 ASCII digits"),
        ("uuid", r#""uuid":"1234567890123456789012345678901234567x""#, "`uuid`"),
        ("uuid", r#""uuid":123"#, "`uuid`"),
        ("ecid", r#""ecid":null"#, "`ecid`"),
        ("ecid", r#""ecid":"1""#, "`ecid`"),
        ("declared", r#""declared":[{"dpid":1,"dpuuid":"x"}]"#, "`declared[0]`: must be {"),
        ("declared", r#""declared":[{"dpid":1,"dpuuid":"x","auth":0,"ns":2}]"#, "`declared[0]`"),
        ("declared", r#""declared":[{"dpid":1,"dpuuid":"x","auth":0,"auth":0}]"#, "`declared[0]`"),
        ("declared", r#""declared":[{"dpid":"1","dpuuid":"x","auth":0}]"#, "`declared[0].dpid`"),
        ("declared", r#""declared":[{"dpid":1,"dpuuid":2,"auth":0}]"#, "`declared[0].dpuuid`"),
        ("declared", r#""declared":[[1,"x",0]]"#, "`declared[0]`"),
        ("declared", r#""declared":{}"#, "`declared`"),
        ("traits", r#""traits":[1,-2]"#, "`traits[1]`"),
        ("traits", r#""traits":[1,2.0]"#, "`traits[1]`"),
        ("segments", r#""segments":null"#, "`segments`"),
        ("partners", r#""partners":{"501":"great"}"#, "`partners.501`: must be one of"),
        ("partners", r#""partners":{"x1":"ok"}"#, "`partners.x1`: key"),
        ("partners", r#""partners":{"501":"ok","501":"late"}"#, "duplicate key `partners.501`"),
        ("partners", r#""partners":{"501":1}"#, "`partners.501`"),
        ("errors", r#""errors":[{"code":311}]"#, "`errors[0]`"),
        ("errors", r#""errors":[{"code":311,"msg":"x","at":1}]"#, "`errors[0]`"),
        ("errors", r#""errors":[{"code":"311","msg":"x"}]"#, "`errors[0].code`"),
        ("mode", r#""mode":"gif""#, "`mode`: must be"),
        ("mode", r#""mode":null"#, "`mode`"),
    ];
    for (field, text, want) in cases {
        let line = with(field, text);
        let got = refused(&line);
        assert!(got.starts_with(want), "{line}\n  got  {got}\n  want {want}…");
    }
    let opt = |t: &str| refused(&with("mode", &format!(r#""mode":"pixel",{t}"#)));
    assert!(opt(r#""opt_out":"all""#).starts_with("`opt_out`"));
    assert!(opt(r#""opt_out":null"#).starts_with("`opt_out`"));
    assert!(opt(r#""expires_s":-1"#).starts_with("`expires_s`"));
}

#[test]
fn what_is_not_one_object_is_refused() {
    for s in ["[1,2]", "\"x\"", "null", "42", " ", ""] {
        let e = parse(s).unwrap_err();
        assert!(matches!(e, SchemaError::NotObject | SchemaError::Json(_)), "{s}: {e}");
    }
    assert_eq!(parse("[1,2]").unwrap_err(), SchemaError::NotObject);
    // invalid JSON, a torn record, trailing garbage, surrounding whitespace, CRLF, bad UTF-8
    assert!(matches!(parse(r#"{"ts":1,"#).unwrap_err(), SchemaError::Json(_)));
    assert!(matches!(parse(&EVENT[..EVENT.len() - 7]).unwrap_err(), SchemaError::Json(_)));
    assert!(parse(&format!("{EVENT}x")).is_err());
    assert!(parse(&format!("{EVENT}{EVENT}")).is_err());
    assert!(parse(&format!("{EVENT} ")).is_err());
    assert!(parse(&format!(" {EVENT}")).is_err());
    assert!(parse(&format!("{EVENT}\r")).is_err());
    let mut bytes = EVENT.as_bytes().to_vec();
    let at = EVENT.find("acme").unwrap();
    bytes[at] = 0xff;
    assert!(matches!(parse_record(&mut bytes).unwrap_err(), SchemaError::Json(_)));
}

#[test]
fn file_names_parse_and_print() {
    let n = FileName::parse("events-0-00000042.ndjson").unwrap();
    assert_eq!(n, FileName { core: 0, seq: 42, done: false });
    assert_eq!(n.to_name(), "events-0-00000042.ndjson");
    assert_eq!(n.finished().to_name(), "events-0-00000042.ndjson.done");
    let n = FileName::parse("events-17-7.ndjson.done").unwrap();
    assert_eq!(n, FileName { core: 17, seq: 7, done: true });
    assert_eq!(n.to_string(), "events-17-00000007.ndjson.done");
    let big = FileName { core: u32::MAX, seq: u64::MAX, done: true };
    assert_eq!(FileName::parse(&big.to_name()), Some(big));
    assert_eq!(FileName::parse("events-1-123456789.ndjson").map(|n| n.seq), Some(123_456_789));
    for bad in [
        "events-0-1.ndjson.tmp",
        "events-0-1.json",
        "events--1.ndjson",
        "events-0-.ndjson",
        "events-+1-1.ndjson",
        "events-0-1-2.ndjson",
        "events-4294967296-1.ndjson",
        "events-0-18446744073709551616.ndjson",
        "events-a-1.ndjson",
        "event-0-1.ndjson",
        "events-0-1.ndjson.done.done",
        "xevents-0-1.ndjson",
        "",
    ] {
        assert_eq!(FileName::parse(bad), None, "{bad}");
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("dcsd-eventlog-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn list_sorts_log_files_and_ignores_the_rest() {
    let d = TempDir::new("list");
    for n in [
        "events-1-00000002.ndjson",
        "events-0-00000010.ndjson.done",
        "events-1-00000002.ndjson.done",
        "events-0-00000009.ndjson.done",
        "events-10-00000001.ndjson.done",
        "events-2-1.ndjson",
        "snapshot.bin",
        "events-0-00000011.ndjson.tmp",
    ] {
        d.write(n, b"");
    }
    fs::create_dir(d.0.join("events-3-00000001.ndjson.done")).unwrap();
    let got: Vec<String> = list(&d.0).unwrap().iter().map(|(n, _)| n.to_name()).collect();
    assert_eq!(
        got,
        [
            "events-0-00000009.ndjson.done",
            "events-0-00000010.ndjson.done",
            "events-1-00000002.ndjson",
            "events-1-00000002.ndjson.done",
            "events-2-00000001.ndjson",
            "events-10-00000001.ndjson.done",
        ]
    );
    let (n, p) = &list(&d.0).unwrap()[4];
    assert_eq!(p.file_name().unwrap(), "events-2-1.ndjson");
    assert_eq!(n.seq, 1);
    assert!(list(&d.0.join("missing")).is_err());
}

/// Every line `lines_from` hands out (as text, `cut` marked) and the tail.
fn collect(data: &[u8], from: u64, max_line: usize, chunk: usize) -> (Vec<(u64, u64, u64, String)>, Tail) {
    let mut got = Vec::new();
    let mut r = &data[from as usize..];
    let tail = lines_from(&mut r, from, max_line, chunk, |l| {
        let mark = if l.is_cut() { "…" } else { "" };
        got.push((l.offset, l.line_no, l.len, format!("{}{mark}", String::from_utf8_lossy(l.bytes))));
        ControlFlow::Continue(())
    })
    .unwrap();
    (got, tail)
}

#[test]
fn lines_are_streamed_with_offsets_and_a_torn_tail() {
    let data = b"one\n\ntwo two\nthree";
    for chunk in [1, 2, 3, 5, 64] {
        let (got, tail) = collect(data, 0, 1024, chunk);
        assert_eq!(
            got,
            vec![(0, 1, 3, "one".into()), (4, 2, 0, "".into()), (5, 3, 7, "two two".into())],
            "chunk {chunk}"
        );
        assert_eq!(tail, Tail { end: 13, lines: 3, stopped: false, torn: Some(Torn { offset: 13, len: 5 }) });
        // from an offset: line numbers count from there
        let (got, tail) = collect(data, 5, 1024, chunk);
        assert_eq!(got, vec![(5, 1, 7, "two two".into())]);
        assert_eq!((tail.end, tail.lines), (13, 1));
    }
    let (got, tail) = collect(b"a\nb\n", 0, 1024, 3);
    assert_eq!(got.len(), 2);
    assert_eq!(tail, Tail { end: 4, lines: 2, stopped: false, torn: None });
    let (got, tail) = collect(b"", 0, 1024, 3);
    assert!(got.is_empty());
    assert_eq!(tail, Tail::default());
}

#[test]
fn long_lines_are_cut_but_counted_whole() {
    let data = b"0123456789abcdef\nxy\n0123456789";
    for chunk in [1, 3, 4, 7, 100] {
        let (got, tail) = collect(data, 0, 4, chunk);
        assert_eq!(got.len(), 2, "chunk {chunk}");
        assert_eq!((got[0].0, got[0].2), (0, 16));
        assert_eq!(&got[0].3[..4], "0123", "chunk {chunk}");
        assert!(got[0].3.ends_with('…'));
        assert_eq!(got[1], (17, 2, 2, "xy".into()));
        assert_eq!(tail.torn, Some(Torn { offset: 20, len: 10 }), "chunk {chunk}");
    }
}

#[test]
fn read_lines_reads_a_file_from_an_offset_and_stops_when_asked() {
    let d = TempDir::new("lines");
    let p = d.write("events-0-00000001.ndjson", b"a\nbb\nccc\ndddd\n");
    let mut seen = Vec::new();
    let tail = read_lines(&p, 2, |l| {
        seen.push(String::from_utf8(l.bytes.to_vec()).unwrap());
        if l.line_no == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(seen, ["bb", "ccc"]);
    assert_eq!(tail, Tail { end: 9, lines: 2, stopped: true, torn: None });
    let tail = read_lines(&p, tail.end, |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(tail, Tail { end: 14, lines: 1, stopped: false, torn: None });
    let tail = read_lines(&p, 100, |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(tail, Tail { end: 100, ..Tail::default() });
    assert!(read_lines(&d.0.join("nope"), 0, |_| ControlFlow::Continue(())).is_err());
}
