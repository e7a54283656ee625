//! The taxonomy engine through the real binary (docs/http-api.md §3.2–§3.4, §4 `d_sid`, `d_tdpid`,
//! `d_cts`, `d_ptfm`, §6.3–§6.4; docs/taxonomy.md §2–§3): `/event?…&d_rtbd=json&d_cts=2&d_dst=1`
//! against `tests/fixtures/engine.json`, plus a taxonomy reload under load.
//!
//! The rule tests check what an answer says, so they run on one driver
//! ([`common::SEMANTICS_DRIVER`], which says why); the reload under load (four clients, a
//! connection per request, while SIGHUP swaps the taxonomy) runs on both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{for_each_driver, Daemon, Response, SEMANTICS_DRIVER};

const U1: &str = "00000000000000000000000000000000000001";

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn daemon(extra: &str) -> Daemon {
    Daemon::start(SEMANTICS_DRIVER, &format!("[server]\ntaxonomy = \"{}\"\n{extra}", fixture("engine.json")))
}

fn get(d: &Daemon, host: &str, query: &str, headers: &str) -> Response {
    let raw = format!("GET /event?d_rtbd=json&{query} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n");
    d.request(raw.as_bytes())
}

/// A JSON array field, e.g. `"traits":[10,12]` → "10,12".
fn field<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    let b = r.body_str();
    let i = b.find(&format!("\"{name}\":["))? + name.len() + 4;
    let mut depth = 1;
    let end = b[i..]
        .char_indices()
        .find(|&(_, c)| {
            depth += match c {
                '[' => 1,
                ']' => -1,
                _ => 0,
            };
            depth == 0
        })
        .unwrap()
        .0;
    Some(&b[i..i + end])
}

#[test]
fn s3_2_serialized_quoted_and_repeated_values() {
    let d = daemon("");
    // `red,blue` is two values: `c_color == "red"` holds, `== "red,blue"` does not.
    let r = get(&d, "localhost", &format!("d_cts=2&c_color=red,blue&d_uuid={U1}"), "");
    assert_eq!(field(&r, "traits"), Some("10,20"));
    // Quoted: one value, quotes removed.
    let r = get(&d, "localhost", &format!("d_cts=2&c_color=%22red,blue%22&d_uuid={U1}"), "");
    assert_eq!(field(&r, "traits"), Some("11"));
    // A repeated key keeps every value.
    let r = get(&d, "localhost", &format!("d_cts=2&c_color=green&c_color=red&d_uuid={U1}"), "");
    assert_eq!(field(&r, "traits"), Some("10,20"));
}

#[test]
fn s3_2_h_keys_from_requests_and_control_keys_are_not_signals() {
    let d = daemon("");
    let r = get(
        &d,
        "localhost",
        "d_cts=2&h_forged=x&h_user-agent=Firefox&d_nsid=0&d_custom=z",
        "User-Agent: curl\r\n",
    );
    assert_eq!(field(&r, "traits"), Some("17"), "only the unlisted d_ key is a signal: {}", r.body_str());
}

#[test]
fn s3_3_header_signals() {
    let d = daemon("");
    let headers = "User-Agent: Mozilla/5.0 Firefox/120\r\nReferer: https://news.example/a\r\n";
    let r = get(&d, "localhost:8080", "d_cts=2", headers);
    assert_eq!(field(&r, "traits"), Some("12,13"), "{}", r.body_str());
    // Absent headers add nothing; h_host is matched without the port.
    let r = get(&d, "localhost:8080", "d_cts=2", "Referer: https://news.example/\r\n");
    assert_eq!(field(&r, "traits"), Some("13"));
    // h_ip: the client address, obfuscated when configured (127.0.0.1 → 127.0.0.0).
    assert_eq!(field(&get(&d, "localhost", "d_cts=2", ""), "traits"), Some(""));
    let d = daemon("[privacy]\nip_obfuscation = true\n");
    assert_eq!(field(&get(&d, "localhost", "d_cts=2", ""), "traits"), Some("14"));
}

#[test]
fn s3_4_private_signals_realize_traits_for_this_request_only() {
    let d = daemon("");
    let r = get(&d, "localhost", &format!("d_cts=2&p_age=21&d_uuid={U1}"), "");
    assert_eq!((field(&r, "traits"), field(&r, "segments")), (Some("15"), Some("102")));
    let r = get(&d, "localhost", &format!("d_cts=2&p_age=17&d_uuid={U1}"), "");
    assert_eq!(field(&r, "traits"), Some(""));
    assert_eq!(field(&r, "segments"), Some("102"), "the realization (not the value) is in the profile");
}

#[test]
fn s3_4_private_values_reach_neither_the_snapshot_nor_the_log() {
    let dir = common::temp_dir();
    let snap = dir.0.join("profiles.snap");
    let mut d = daemon(&format!("[store]\nsnapshot_path = \"{}\"\n", snap.display()));
    let r =
        get(&d, "localhost", &format!("d_cts=2&p_age=21&p_email=secret-4711%40mail.example&d_uuid={U1}"), "");
    assert_eq!(field(&r, "traits"), Some("15"));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
    let bytes = std::fs::read(&snap).unwrap();
    assert!(d.log().iter().any(|l| l.contains("snapshot written: 1 profiles")), "{:?}", d.log());
    assert!(!bytes.windows(11).any(|w| w == b"secret-4711"), "a p_ value reached the snapshot");
    assert!(!d.log().iter().any(|l| l.contains("secret-4711")), "a p_ value reached the log (debug level)");
}

#[test]
fn taxonomy_errors_name_the_path_and_the_position_in_the_rule() {
    let dir = common::temp_dir();
    let bad = dir.0.join("bad.json");
    let text = std::fs::read_to_string(fixture("engine.json")).unwrap();
    std::fs::write(&bad, text.replace("\"rule\": \"p_age >= 18\"", "\"rule\": \"p_age >= \"")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dcsd"))
        .args(["--check", "--taxonomy", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("$.traits[5].rule: at 9: expected value"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dcsd"))
        .args(["--check", "--taxonomy", &fixture("engine.json")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).split(';').next(),
        Some("ok: 2 hosts, 3 data sources, 14 traits, 4 segments, 4 destinations")
    );
}

#[test]
fn s4_d_sid_realizes_owned_traits_and_counts_the_rest() {
    let d = daemon("");
    let r = get(&d, "localhost", &format!("d_cts=2&d_sid=40,41,42,999,x&d_uuid={U1}"), "");
    assert_eq!(field(&r, "traits"), Some("40"));
    assert_eq!(d.metric("dcsd_sid_ignored_total{reason=\"unknown\"}"), 2);
    assert_eq!(d.metric("dcsd_sid_ignored_total{reason=\"folder\"}"), 1);
    assert_eq!(d.metric("dcsd_sid_ignored_total{reason=\"foreign\"}"), 1);
    assert!(d.metric("dcsd_traits_realized_total") >= 1);
}

#[test]
fn s4_d_tdpid_limits_rules_to_one_data_source_and_ownership_applies() {
    let d = daemon("");
    let r = get(&d, "localhost", "d_cts=2&c_color=red", "");
    assert_eq!(field(&r, "traits"), Some("10,20"), "dpid 3 belongs to beta");
    let r = get(&d, "localhost", "d_cts=2&c_color=red&d_tdpid=2", "");
    assert_eq!(field(&r, "traits"), Some("20"));
    let r = get(&d, "localhost", "d_cts=2&c_color=red&d_tdpid_ic=acme-site", "");
    assert_eq!(field(&r, "traits"), Some("10"));
    let r = get(&d, "beta.example", "d_cts=2&c_color=red", "");
    assert_eq!((field(&r, "traits"), field(&r, "segments")), (Some("30"), Some("200")));
}

#[test]
fn s4_d_cts_1_lists_legacy_segment_ids() {
    let d = daemon("");
    let r = get(&d, "localhost", &format!("d_cts=1&c_color=red&d_sid=40&d_uuid={U1}"), "");
    assert_eq!((field(&r, "traits"), field(&r, "segments")), (Some("10,20,40"), Some("7")));
    let r = get(&d, "localhost", &format!("d_uuid={U1}"), "");
    assert_eq!(field(&r, "traits"), None, "no d_cts, no fields");
}

#[test]
fn s6_segments_recency_and_frequency_over_requests() {
    let d = daemon("");
    let r = get(&d, "localhost", &format!("d_cts=2&c_color=red&d_uuid={U1}"), "");
    assert_eq!(field(&r, "segments"), Some(""), "one realization is not enough for 101");
    let r = get(&d, "localhost", &format!("d_cts=2&c_color=red&d_uuid={U1}"), "");
    assert_eq!(field(&r, "segments"), Some("101"));
    // The profile keeps its traits: a request with no signals is still in the segment.
    let r = get(&d, "localhost", &format!("d_cts=2&d_uuid={U1}"), "");
    assert_eq!((field(&r, "traits"), field(&r, "segments")), (Some(""), Some("101")));
}

#[test]
fn s6_3_json_fields_in_order() {
    let d = daemon("");
    let r = get(&d, "localhost", &format!("d_cts=2&d_dst=1&c_color=red&d_sid=40&d_uuid={U1}"), "");
    let b = r.body_str();
    let at = |k: &str| b.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} in {b}"));
    let order = ["stuff", "dests", "uuid", "dcs_region", "tid", "traits", "segments"].map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{b}");
}

#[test]
fn s6_4_url_and_cookie_destinations() {
    let d = daemon("");
    let q = format!("d_cts=2&d_dst=1&c_color=red&d_sid=40&p_age=30&d_uuid={U1}&d_cid=2%01crm%20x&gdpr=0");
    let r = get(&d, "localhost", &q, "");
    assert_eq!(field(&r, "segments"), Some("100,102"));
    assert_eq!(
        field(&r, "dests"),
        Some(&*format!("{{\"c\":\"http://ads.example/px?seg=a100,a102&u={U1}&crm=crm%20x&g=0\",\"e\":\"https://ads.example/px?seg=a100,a102\",\"y\":\"img\"}}"))
    );
    assert_eq!(
        field(&r, "stuff"),
        Some("{\"cn\":\"aam_seg\",\"cv\":\"seg=s100,s102\",\"ttl\":30,\"dmn\":\".acme.example\"},{\"cn\":\"aam_kv\",\"cv\":\"k1=v%201&k2=v2\",\"ttl\":7,\"dmn\":\"\"}")
    );
    // Platform filter: the ios destination, one entry per alias (serialize = false).
    let r = get(&d, "localhost", &format!("d_dst=1&d_ptfm=ios&d_uuid={U1}"), "");
    let dests = field(&r, "dests").unwrap();
    assert!(dests.contains("{\"c\":\"http://ios.example/?s=i100\",\"e\":\"\",\"y\":\"iframe\"},{\"c\":\"http://ios.example/?s=i102\",\"e\":\"\",\"y\":\"iframe\"}"), "{dests}");
    // Without d_dst=1 there is no dests field; pixel mode has no body to carry them.
    let r = get(&d, "localhost", &format!("d_uuid={U1}"), "");
    assert_eq!(field(&r, "dests"), None);
    assert!(field(&r, "stuff").unwrap().contains("aam_seg"));
}

#[test]
fn reload_under_load_loses_no_request() {
    for_each_driver(|driver| {
        let dir = common::temp_dir();
        let tax = dir.0.join("taxonomy.json");
        std::fs::copy(fixture("engine.json"), &tax).unwrap();
        let d = Daemon::start(driver, &format!("[server]\ntaxonomy = \"{}\"\n", tax.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let addr = d.addr;
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (stop, ok, bad) = (stop.clone(), ok.clone(), bad.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let raw =
                            b"GET /event?d_rtbd=json&d_cts=2&c_color=red HTTP/1.1\r\nHost: localhost\r\n\r\n";
                        match common::try_request(addr, raw) {
                            Ok(r) if r.status == 200 && r.body_str().contains("\"traits\":[") => {
                                ok.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => bad.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        let original = std::fs::read_to_string(&tax).unwrap();
        // Reload only once the clients are running.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ok.load(Ordering::Relaxed) < 20 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        for i in 0..6 {
            // Alternate a changed rule and a broken file (rejected, the old taxonomy stays).
            let text = if i % 2 == 0 {
                original.replace(
                    "c_color == \\\"red\\\"\"}",
                    "c_color == \\\"red\\\" OR c_color == \\\"pink\\\"\"}",
                )
            } else {
                original.replace("\"rule\": \"10T AND 40T\"", "\"rule\": \"10T AND\"")
            };
            std::fs::write(&tax, text).unwrap();
            d.signal("HUP");
            // Each reload is done (swapped in or rejected) before the file changes again.
            if i % 2 == 0 {
                d.wait_log("reloaded taxonomy", i / 2 + 1);
            } else {
                d.wait_log("reload rejected", i / 2 + 1);
            }
        }
        // Requests keep being answered after the reloads.
        let (after, deadline) = (ok.load(Ordering::Relaxed), Instant::now() + Duration::from_secs(10));
        while ok.load(Ordering::Relaxed) < after + 40 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        assert_eq!(bad.load(Ordering::Relaxed), 0);
        assert!(ok.load(Ordering::Relaxed) > 50, "{}", ok.load(Ordering::Relaxed));
        let log = d.log().join("\n");
        assert!(log.contains("$.segments[0].rule"), "the broken file is rejected with its path: {log}");
        // The last good reload is in effect: `pink` realizes trait 10.
        let r = get(&d, "localhost", "d_cts=2&c_color=pink", "");
        assert!(field(&r, "traits").unwrap().starts_with("10"), "{}", r.body_str());
    });
}
