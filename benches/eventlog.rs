//! The event log's hot functions: serializing one `/event` record into a core's reused buffer
//! (what every logged request pays on its core) and parsing one back (what start-up replay and
//! `dcsd verify-log` pay per record). Prints the record's size once.
//!
//! Run: `cargo bench --bench eventlog -- --warm-up-time 1 --measurement-time 3`. Records per
//! second per core = 1 / the median.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, Throughput};
use dcsd::eventlog::read::parse_record;
use dcsd::eventlog::record::{self, Kind, Outcome, Profile};

/// A typical JSON `/event`: three customer signals, the header signals a browser sends, one
/// declared ID, two traits, one segment, two partners.
fn serialize(out: &mut Vec<u8>) {
    let signals: [(&[u8], &[u8]); 8] = [
        (b"c_likes", b"famous popstar"),
        (b"c_section", b"sports"),
        (b"c_likes", b"jazz"),
        (b"h_host", b"acme.dcs.example"),
        (b"h_user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"),
        (b"h_accept-language", b"en-US,en;q=0.9"),
        (b"h_referer", b"https://www.acme.example/sports/today?utm_source=news"),
        (b"h_ip", b"203.0.113.0"),
    ];
    let ip: IpAddr = [203, 0, 113, 0].into();
    let uuid = *b"07955261652886032950143702505894272138";
    let declared = br#"{"dpid":1,"dpuuid":"crm-42","auth":1}"#;
    record::open(out, 1_763_805_600_123, b"ss3OTqPiQp0=", Kind::Event);
    record::request(out, b"acme.dcs.example", ip, 7, || signals.iter().copied());
    let p = Profile { customer: Some(1), uuid: Some(&uuid), ecid: None, declared, opt_out: None };
    let o = Outcome { traits: &[1234, 5678], segments: &[984263], expires_s: None, mode: "json" };
    let partners = [(777, "ok"), (778, "timeout")];
    record::close(out, &p, &o, partners.into_iter(), std::iter::empty());
    out.push(b'\n');
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut buf = Vec::with_capacity(256 * 1024);
    serialize(&mut buf);
    let one = buf.len();
    println!("record: {one} bytes (with its line end)");
    let mut g = c.benchmark_group("eventlog");
    g.throughput(Throughput::Elements(1));
    g.bench_function("serialize_event_record", |b| {
        b.iter(|| {
            if buf.len() > 200 * 1024 {
                buf.clear();
            }
            serialize(black_box(&mut buf));
        })
    });
    let mut line = Vec::new();
    serialize(&mut line);
    line.pop();
    let mut scratch = line.clone();
    g.bench_function("parse_event_record", |b| {
        b.iter(|| {
            scratch.clear();
            scratch.extend_from_slice(&line);
            black_box(parse_record(&mut scratch).unwrap());
        })
    });
    g.finish();
    c.final_summary();
}
