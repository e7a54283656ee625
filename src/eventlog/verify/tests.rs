use super::*;
use crate::eventlog::read::tests::TempDir;
use crate::eventlog::read::{Mode, Record};

fn record(kind: Kind) -> Vec<u8> {
    let r = Record {
        ts: 1_767_225_600_000,
        tid: "ss3OTqPiQp0=".into(),
        kind,
        host: "acme.dcs.example".into(),
        ip: "203.0.113.0".into(),
        region: 7,
        signals: vec![("c_x".into(), vec!["1".into()])],
        customer: Some(12),
        uuid: Some("12345678901234567890123456789012345678".into()),
        ecid: None,
        declared: vec![],
        opt_out: None,
        traits: vec![1],
        segments: vec![],
        partners: vec![],
        expires_s: None,
        errors: vec![],
        mode: Mode::Pixel,
    };
    let mut out = Vec::new();
    r.write_json(&mut out);
    out.push(b'\n');
    out
}

/// Concatenated lines of the given kinds.
fn lines(kinds: &[Kind]) -> Vec<u8> {
    kinds.iter().flat_map(|&k| record(k)).collect()
}

#[test]
fn an_empty_directory_is_fine() {
    let d = TempDir::new("verify-empty");
    d.write("snapshot.bin", b"not a log file");
    let r = verify(&d.0).unwrap();
    assert!(r.ok());
    assert!(r.files.is_empty());
    assert_eq!(
        r.to_string(),
        "total: 0 files, 0 records, 0 bytes, event 0, ibs 0, optout 0, partner 0, 0 torn\nviolations: 0\n"
    );
}

#[test]
fn a_missing_directory_is_an_error() {
    let d = TempDir::new("verify-missing");
    assert!(verify(&d.0.join("nope")).is_err());
}

#[test]
fn good_files_are_counted_and_torn_tails_allowed() {
    use Kind::*;
    let d = TempDir::new("verify-good");
    let a = lines(&[Event, Event, Partner]);
    d.write("events-0-00000001.ndjson.done", &a);
    // a crash left core 0's second file with a torn line, and start-up renamed it
    let mut b = lines(&[Ibs]);
    b.extend_from_slice(&record(Event)[..40]);
    d.write("events-0-00000003.ndjson.done", &b);
    // core 1's open file, torn mid-write
    let mut c = lines(&[Optout, Event]);
    c.extend_from_slice(b"{\"ts\":17");
    d.write("events-1-00000007.ndjson", &c);
    let r = verify(&d.0).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!(r.files.len(), 3);
    assert_eq!(r.kinds, [3, 1, 1, 1]);
    assert_eq!(r.records(), 6);
    assert_eq!(r.torn, 2);
    assert_eq!(r.bytes, (a.len() + b.len() + c.len()) as u64);
    assert_eq!(
        r.files[0],
        FileReport {
            name: "events-0-00000001.ndjson.done".into(),
            records: 3,
            bytes: a.len() as u64,
            kinds: [2, 0, 0, 1],
            torn: false
        }
    );
    assert!(r.files[1].torn && r.files[2].torn);
    let text = r.to_string();
    assert!(text.starts_with(&format!(
        "events-0-00000001.ndjson.done: 3 records, {} bytes, event 2, ibs 0, optout 0, partner 1, torn no\n",
        a.len()
    )));
    assert!(text.contains("events-1-00000007.ndjson: 2 records, "), "{text}");
    assert!(text.contains(", torn yes\n"));
    assert!(text.contains("total: 3 files, 6 records, "));
    assert!(text.contains("event 3, ibs 1, optout 1, partner 1, 2 torn\nviolations: 0\n"));
}

#[test]
fn bad_lines_are_violations_with_their_line_numbers() {
    let d = TempDir::new("verify-lines");
    let mut a = lines(&[Kind::Event]);
    a.extend_from_slice(b"\n"); // line 2: empty
    a.extend_from_slice(&record(Kind::Event)[..50]); // line 3: torn, then more lines
    a.extend_from_slice(b"\n");
    a.extend_from_slice(&lines(&[Kind::Event]));
    a.extend_from_slice(b"{\"ts\":1}\n"); // line 5: fields missing
    a.extend_from_slice(&lines(&[Kind::Ibs]));
    d.write("events-0-00000001.ndjson.done", &a);
    let r = verify(&d.0).unwrap();
    assert!(!r.ok());
    assert_eq!(r.violation_count, 3);
    let shown: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
    assert_eq!(shown[0], "events-0-00000001.ndjson.done:2: empty line");
    assert!(shown[1].starts_with("events-0-00000001.ndjson.done:3: invalid JSON"), "{}", shown[1]);
    assert_eq!(shown[2], "events-0-00000001.ndjson.done:5: missing field `tid`");
    assert_eq!(r.files[0].records, 3);
    assert!(!r.files[0].torn);
    let text = r.to_string();
    assert!(text.contains("violations: 3\nevents-0-00000001.ndjson.done:2: empty line\n"), "{text}");
}

#[test]
fn names_are_checked_per_core() {
    let d = TempDir::new("verify-names");
    let one = lines(&[Kind::Event]);
    // core 0: an open file below a finished one
    d.write("events-0-00000001.ndjson", &one);
    d.write("events-0-00000002.ndjson.done", &one);
    // core 1: the same sequence open and finished
    d.write("events-1-00000005.ndjson", &one);
    d.write("events-1-00000005.ndjson.done", &one);
    // core 2: the same sequence spelled twice; a gap and an open last file are fine
    d.write("events-2-00000003.ndjson.done", &one);
    d.write("events-2-3.ndjson.done", &one);
    d.write("events-2-00000009.ndjson", &one);
    // core 3: two open files
    d.write("events-3-00000001.ndjson", &one);
    d.write("events-3-00000002.ndjson", &one);
    let r = verify(&d.0).unwrap();
    let shown: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        shown,
        [
            "events-0-00000001.ndjson: open file below a higher sequence (events-0-00000002.ndjson.done): \
             a core has at most one open file, its last",
            "events-1-00000005.ndjson.done: sequence 5 of core 1 is also events-1-00000005.ndjson",
            "events-2-3.ndjson.done: sequence 3 of core 2 is also events-2-00000003.ndjson.done",
            "events-3-00000001.ndjson: open file below a higher sequence (events-3-00000002.ndjson): \
             a core has at most one open file, its last",
        ]
    );
    assert_eq!(r.files.len(), 9);
    assert_eq!(r.records(), 9);
}

#[test]
fn at_most_a_hundred_violations_are_listed() {
    let d = TempDir::new("verify-many");
    d.write("events-0-00000001.ndjson.done", &b"{}\n".repeat(250));
    let r = verify(&d.0).unwrap();
    assert_eq!(r.violation_count, 250);
    assert_eq!(r.violations.len(), MAX_LISTED);
    let text = r.to_string();
    assert!(text.contains("violations: 250\n"));
    assert!(
        text.contains("events-0-00000001.ndjson.done:100: missing field `ts`\n... and 150 more\n"),
        "{text}"
    );
    assert!(!text.contains(":101:"));
}

#[test]
fn a_file_gone_when_opened_is_skipped() {
    let d = TempDir::new("verify-gone");
    // a dangling symlink is listed, and not found when opened: like a file a shipper deleted
    std::os::unix::fs::symlink(d.0.join("nowhere"), d.0.join("events-0-00000001.ndjson.done")).unwrap();
    let r = verify(&d.0).unwrap();
    assert!(r.ok());
    assert_eq!(r.vanished, ["events-0-00000001.ndjson.done"]);
    assert!(r.to_string().contains("events-0-00000001.ndjson.done: gone while verifying"));
}

/// Not a check of behaviour: how long a 64 MiB file takes (`cargo test --release -- --ignored
/// verify_speed --nocapture`).
#[test]
#[ignore]
fn verify_speed() {
    let d = TempDir::new("verify-speed");
    let line = record(Kind::Event);
    let n = (64 << 20) / line.len();
    d.write("events-0-00000001.ndjson.done", &line.repeat(n));
    let t = std::time::Instant::now();
    let r = verify(&d.0).unwrap();
    assert!(r.ok());
    assert_eq!(r.records(), n as u64);
    eprintln!("{n} records, {} bytes in {:?}", r.bytes, t.elapsed());
}
