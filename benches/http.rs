//! Hot functions of the pixel path: request-head parsing and response rendering.
//!
//! Run: `cargo bench --bench http`. Inputs are what a browser tag sends (about 600 bytes of
//! head with cookies and a user agent) and what the load benchmark sends.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dcsd::config::{Cli, Config};
use dcsd::http::conn::{ListenerKind, Request, Service};
use dcsd::http::response::ConnHeader;
use dcsd::http::{parse_head, HeadLimits, Parsed};
use dcsd::pipeline::{Dcs, Shared};

const BROWSER: &[u8] = b"GET /event?d_sid=1234&c_likes=famous%20popstar&c_key=val&d_rtbd=json&d_cb=cb123 HTTP/1.1\r\n\
Host: acme.dcs.example\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Accept: image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Referer: https://www.acme.example/products/shoes?color=red\r\n\
Origin: https://www.acme.example\r\n\
Cookie: demdex=12345678901234567890123456789012345678; _ga=GA1.2.123456789.1700000000\r\n\
Connection: keep-alive\r\n\r\n";
const LOADGEN: &[u8] =
    b"GET /event?d_sid=1234&c_key=val&d_rtbd=json HTTP/1.1\r\nHost: localhost:18100\r\n\r\n";

const LIMITS: HeadLimits = HeadLimits { max_uri_bytes: 8192, max_header_bytes: 16384, max_body_bytes: 32768 };

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_head");
    for (name, raw) in [("browser", BROWSER), ("loadgen", LOADGEN)] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| match parse_head(black_box(raw), &LIMITS) {
                Ok(Parsed::Complete(h)) => h.head_len,
                _ => unreachable!("bench input is a complete head"),
            })
        });
    }
    g.finish();
}

fn render(c: &mut Criterion) {
    let config = Config::load(&Cli::default()).expect("built-in config");
    let catalog =
        dcsd::catalog::load(&config.taxonomy_source, config.taxonomy_limits()).expect("built-in taxonomy");
    let dcs = Dcs::new(0, Arc::new(Shared::new(config, catalog, 1).unwrap()));
    let mut g = c.benchmark_group("event_response");
    let pixel = b"GET /event?d_sid=1234&c_key=val HTTP/1.1\r\nHost: localhost\r\nCookie: demdex=12345678901234567890123456789012345678\r\n\r\n";
    for (name, raw) in [("pixel", &pixel[..]), ("json_loadgen", LOADGEN), ("jsonp_browser", BROWSER)] {
        let Ok(Parsed::Complete(head)) = parse_head(raw, &LIMITS) else { unreachable!("complete head") };
        let mut out = Vec::with_capacity(4096);
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let req = Request {
                    head: &head,
                    buf: raw,
                    body: &[],
                    peer: "127.0.0.1:40000".parse().expect("addr"),
                    listener: ListenerKind::All,
                    conn: ConnHeader::None,
                    draining: false,
                    now: std::time::Instant::now(),
                };
                dcs.call(black_box(&req), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

/// A realistic 20-pair tag call: customer and platform signals, a serialized list, escapes.
const TWENTY_PAIRS: &[u8] =
    b"d_sid=1234,5678&c_likes=famous%20popstar&c_category=shoes&c_color=red&c_size=42\
&c_price=89.90&c_brand=acme&c_page=%2Fproducts%2Fshoes%3Fcolor%3Dred&c_logged_in=true&c_segment=auto-intender\
&d_rtbd=json&d_cb=jQuery123&d_dst=1&d_cts=2&d_ptfm=browser&d_mid=12345678901234567890123456789012345678\
&c_search=running+shoes&c_cart=%22sku1,sku2%22&p_email_hash=abcdef0123456789&d_nsid=0";

fn pairs(c: &mut Criterion) {
    use dcsd::pipeline::params::Pairs;
    let mut g = c.benchmark_group("pairs");
    g.throughput(Throughput::Elements(1));
    let mut p = Pairs::default();
    g.bench_function("decode_20_and_control", |b| {
        b.iter(|| match p.decode(black_box(TWENTY_PAIRS), b"") {
            Ok(v) => dcsd::pipeline::params::Control::from_view(&v).json,
            Err(_) => unreachable!("valid input"),
        })
    });
    // The pairs plus the identity steps of a valid request: control parameters, one declared
    // ID validated against the taxonomy, the cookie's UUID and the ECID parsed.
    let tax = dcsd::catalog::Catalog::from_json(dcsd::config::taxonomy::DEMO_JSON.as_bytes()).unwrap();
    let with_cid = [TWENTY_PAIRS, b"&d_cid=1%01crm-user-42"].concat();
    let cookie = b"s_cc=true; demdex=03976456895177521059143426532209472360; other=1";
    g.bench_function("decode_20_control_identity", |b| {
        b.iter(|| {
            let v = p.decode(black_box(&with_cid), b"").unwrap_or_else(|_| unreachable!("valid input"));
            let ctl = dcsd::pipeline::params::Control::from_view(&v);
            let mut errors = Vec::new();
            let kept = dcsd::identity::declared::resolve(&ctl.declared, &tax, 1, &mut errors);
            let uuid = dcsd::identity::cookie_value(black_box(cookie), b"demdex")
                .and_then(dcsd::identity::Uuid::parse);
            let ecid = ctl.mid.and_then(dcsd::identity::Uuid::parse);
            (kept.len(), uuid, ecid)
        })
    });
    g.bench_function("decode_20", |b| {
        b.iter(|| match p.decode(black_box(TWENTY_PAIRS), b"") {
            Ok(v) => v.pairs().count(),
            Err(_) => unreachable!("valid input"),
        })
    });
    g.finish();
}

criterion_group!(benches, parse, render, pairs);
criterion_main!(benches);
