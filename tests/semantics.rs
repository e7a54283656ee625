//! docs/http-api.md §3–§10 through the real binary: one test per numbered rule, named after its
//! section, checking status, headers, cookies and the JSON body exactly. (Trait, segment and
//! destination rules of §3.3, §3.4, §4 and §6.4 are in `tests/engine.rs`.)
//!
//! These tests check what an answer says, so they run on one driver
//! ([`common::SEMANTICS_DRIVER`], which says why), except the rate limit, which keys on the
//! client's address and keeps the connection open after a 429: it runs on both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::net::SocketAddr;

use common::{for_each_driver, Daemon, Reader, Response, SEMANTICS_DRIVER};

/// A profile ID that no test generates (leading zeros are significant).
const KNOWN: &str = "00000000000000000000000000000000004711";
const OTHER: &str = "00000000000000000000000000000000000815";
/// TC strings built field by field (see `src/privacy/tcf/tests.rs`): purposes 1 and 10 and
/// vendor 565 consented (range encoding) …
const TC_CONSENT: &str = "CO5rKAAO5rKAAEsACBENCWEAAIBAAAAAAAYgEawAQEag";
/// … purpose 10 missing …
const TC_NO_PURPOSE_10: &str = "CO5rKAAO5rKAAEsACBENCWEAAIAAAAAAAAYgEawAQEag";
/// … vendor 564 instead of 565.
const TC_OTHER_VENDOR: &str = "CO5rKAAO5rKAAEsACBENCWEAAIBAAAAAAAYgEawAQEaA";

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A daemon on the two-customer taxonomy, with `extra` TOML appended.
fn two_customers(extra: &str) -> Daemon {
    let toml = format!(
        "[server]\ntaxonomy = \"{}\"\n[cookie]\nsecure = true\n{extra}",
        fixture("two_customers.json")
    );
    Daemon::start(SEMANTICS_DRIVER, &toml)
}

/// `GET <target>` with `Host: <host>` and optional extra header lines.
fn get(d: &Daemon, host: &str, target: &str, headers: &str) -> Response {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n");
    d.request(raw.as_bytes())
}

/// The JSON body with the transaction ID replaced by `T` (it is unique per request).
fn body(r: &Response) -> String {
    let b = r.body_str();
    match b.find("\"tid\":\"") {
        Some(i) => {
            let start = i + 7;
            let end = start + b[start..].find('"').unwrap();
            assert_eq!(end - start, 12, "tid is 12 base64 characters: {b}");
            format!("{}T{}", &b[..start], &b[end..])
        }
        None => b.to_owned(),
    }
}

fn cookie_line(uuid: &str) -> String {
    format!("demdex={uuid}; Max-Age=15552000; Path=/; SameSite=None; Secure")
}

fn uuid_of(r: &Response) -> String {
    let b = r.body_str();
    let i = b.find("\"uuid\":\"").unwrap_or_else(|| panic!("no uuid in {b}")) + 8;
    b[i..i + 38].to_owned()
}

#[test]
fn s3_1_query_pairs_then_form_body_only_for_form_posts() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let post = |ct: &str, body: &str| {
        let raw = format!(
            "POST /event?d_uuid={KNOWN} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        d.request(raw.as_bytes())
    };
    let r = post("application/x-www-form-urlencoded; charset=UTF-8", "d_rtbd=json");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(body(&r), format!("{{\"stuff\":[],\"uuid\":\"{KNOWN}\",\"dcs_region\":7,\"tid\":\"T\"}}"));
    // Another content type has no body pairs: the pixel.
    let r = post("text/plain", "d_rtbd=json");
    assert_eq!((r.status, r.header("content-type")), (200, Some("image/gif")));
    // Query pairs come first: the query's d_uuid wins over the body's.
    let r = post("application/x-www-form-urlencoded", &format!("d_rtbd=json&d_uuid={OTHER}"));
    assert_eq!(uuid_of(&r), KNOWN);
}

#[test]
fn s3_2_a_bad_escape_anywhere_makes_the_request_invalid_311() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    for q in ["d_rtbd=json&c_a=%zz", "d_rtbd=json&%G1=1", "d_rtbd=json&c_a=%C3%28", "d_rtbd=json&c_a=%4"] {
        let r = get(
            &d,
            "localhost",
            &format!("/event?{q}&d_cid=1%01crm-311"),
            &format!("Cookie: demdex={KNOWN}\r\n"),
        );
        assert_eq!((r.status, r.header("x-error")), (200, Some("311")), "{q}");
        assert_eq!(
            body(&r),
            "{\"stuff\":[],\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{\"code\":311,\"msg\":\"Request contains invalid parameters\"}]}",
            "{q}"
        );
        assert!(r.header("set-cookie").is_none(), "no cookie for an invalid request");
    }
    // Nothing was synced: the declared ID selects no profile.
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=1%01crm-311", "");
    assert_ne!(uuid_of(&r), KNOWN);
}

#[test]
fn s3_2_keys_without_values_and_empty_keys_are_fine() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&&=x&flag&d_uuid={KNOWN}"), "");
    assert_eq!(r.header("x-error"), None);
    assert_eq!(uuid_of(&r), KNOWN);
}

#[test]
fn s4_d_cb_is_validated_and_ignored_outside_json_mode() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_cb=cb_1.x&d_uuid={KNOWN}"), "");
    assert_eq!(r.header("content-type"), Some("application/javascript"));
    assert_eq!(
        body(&r),
        format!("cb_1.x({{\"stuff\":[],\"uuid\":\"{KNOWN}\",\"dcs_region\":7,\"tid\":\"T\"}})")
    );
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_cb=1bad()&d_uuid={KNOWN}"), "");
    assert_eq!((r.header("content-type"), r.header("x-error")), (Some("application/json"), Some("311")));
    assert_eq!(
        body(&r),
        format!("{{\"stuff\":[],\"uuid\":\"{KNOWN}\",\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{{\"code\":311,\"msg\":\"Request contains invalid parameters\"}}]}}")
    );
    let r = get(&d, "localhost", "/event?d_cb=1bad()", "");
    assert_eq!((r.header("content-type"), r.header("x-error")), (Some("image/gif"), None));
}

#[test]
fn s4_d_dst_and_d_cts_add_their_fields_for_cts_customers() {
    let d = two_customers("");
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_dst=1&d_cts=2&d_uuid={KNOWN}"), "");
    assert_eq!(
        body(&r),
        format!("{{\"stuff\":[],\"dests\":[],\"uuid\":\"{KNOWN}\",\"dcs_region\":7,\"tid\":\"T\",\"traits\":[],\"segments\":[]}}")
    );
    // beta has no `cts`: no traits or segments.
    let r = get(&d, "beta.example", &format!("/event?d_rtbd=json&d_cts=1&d_uuid={KNOWN}"), "");
    assert_eq!(body(&r), format!("{{\"stuff\":[],\"uuid\":\"{KNOWN}\",\"dcs_region\":7,\"tid\":\"T\"}}"));
}

#[test]
fn s4_d_mid_is_recorded_and_a_bad_one_is_101() {
    let d = two_customers("");
    let ecid = "12345678901234567890123456789012345678";
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_uuid={KNOWN}&d_mid={ecid}"), "");
    assert_eq!(r.header("x-error"), None);
    // Recorded: an opt-out by ECID reaches this profile.
    let r = get(&d, "localhost", &format!("/demoptout?d_mid={ecid}&d_orgid=ACME%40AdobeOrg"), "");
    assert_eq!((r.status, r.header("x-error")), (200, None));
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_uuid={KNOWN}"), "");
    assert_eq!(r.header("x-error"), Some("171"));
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_uuid={OTHER}&d_mid=0x1"), "");
    assert_eq!(
        body(&r),
        format!("{{\"stuff\":[],\"uuid\":\"{OTHER}\",\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{{\"code\":101,\"msg\":\"Invalid Experience Cloud id passed in 0x1\"}}]}}")
    );
}

#[test]
fn s4_d_coppa_neither_reads_nor_sets_the_cookie() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_coppa=1", &format!("Cookie: demdex={KNOWN}\r\n"));
    assert!(r.header("set-cookie").is_none());
    assert_ne!(uuid_of(&r), KNOWN, "the cookie was not read");
}

#[test]
fn s5_1_profile_id_precedence_and_cookie_attributes() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let cookie = format!("Cookie: other=1; demdex={OTHER}\r\n");
    // 1. d_uuid over the cookie.
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_uuid={KNOWN}"), &cookie);
    assert_eq!((uuid_of(&r), r.header("set-cookie")), (KNOWN.to_owned(), Some(cookie_line(KNOWN).as_str())));
    // An invalid d_uuid is 102 and ignored: 2. the cookie.
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_uuid=123", &cookie);
    assert_eq!((uuid_of(&r), r.header("x-error")), (OTHER.to_owned(), Some("102")));
    assert!(body(&r).contains("{\"code\":102,\"msg\":\"Invalid AAM ID passed in request 123\"}"));
    // 3. the UUID mapped to a declared ID (synced on the first request).
    get(&d, "localhost", "/event?d_cid=1%01precedence", &format!("Cookie: demdex={KNOWN}\r\n"));
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=1%01precedence", "");
    assert_eq!(uuid_of(&r), KNOWN);
    // 4. a new one: 38 digits, different every time.
    let (a, b) =
        (get(&d, "localhost", "/event?d_rtbd=json", ""), get(&d, "localhost", "/event?d_rtbd=json", ""));
    assert!(uuid_of(&a).bytes().all(|c| c.is_ascii_digit()) && uuid_of(&a) != uuid_of(&b));
    assert_eq!(a.header("set-cookie").unwrap(), cookie_line(&uuid_of(&a)));
}

#[test]
fn s5_1_cookie_domain_and_plain_http_settings() {
    let d = Daemon::start(
        SEMANTICS_DRIVER,
        "[cookie]\ndomain = \".acme.example\"\nsecure = false\nsame_site_none = false\n",
    );
    let r = get(&d, "localhost", &format!("/event?d_uuid={KNOWN}"), "");
    assert_eq!(
        r.header("set-cookie"),
        Some(format!("demdex={KNOWN}; Max-Age=15552000; Path=/; Domain=.acme.example").as_str())
    );
}

#[test]
fn s5_2_the_most_recently_mapped_declared_id_selects_the_profile() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    get(&d, "localhost", "/event?d_cid=1%01older", &format!("Cookie: demdex={OTHER}\r\n"));
    get(&d, "localhost", "/event?d_cid=1%01newer", &format!("Cookie: demdex={KNOWN}\r\n"));
    for q in ["d_cid=1%01older&d_cid=1%01newer", "d_cid=1%01newer&d_cid=1%01older"] {
        let r = get(&d, "localhost", &format!("/event?d_rtbd=json&{q}"), "");
        assert_eq!(uuid_of(&r), KNOWN, "{q}");
    }
}

#[test]
fn s5_2_ownership_sharing_and_validity_300_302_104() {
    let d = two_customers("");
    // dpid 2 belongs to beta and is not shared: 302; dpid 3 is shared with acme: kept.
    let r = get(
        &d,
        "localhost",
        &format!("/event?d_rtbd=json&d_uuid={KNOWN}&d_cid=2%01b-user&d_cid_ic=beta-shared%01s-user"),
        "",
    );
    assert_eq!(r.header("x-error"), Some("302"));
    assert!(body(&r).contains("{\"code\":302,\"msg\":\"Unauthorized customer id b-user\"}"), "{}", body(&r));
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=3%01s-user", "");
    assert_eq!(uuid_of(&r), KNOWN, "the shared ID was mapped");
    // Unknown integration code, empty DPUUID, bad auth state: 300 each, then 104.
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid_ic=nope%01x&d_cid=1%01&d_cid=1%01y%019", "");
    assert_eq!(r.header("x-error"), Some("300,300,300,104"));
}

#[test]
fn s5_2_global_device_formats_312() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=20914%01NOT-A-GAID&d_cid_ic=DSID_20915%016D92078A-8246-4BA4-AE5B-76104861E7DC", "");
    assert_eq!(r.header("x-error"), Some("312"));
    assert!(body(&r).contains("{\"code\":312,\"msg\":\"Request contains an invalid Global Device ID\"}"));
}

#[test]
fn s5_2_limits_per_data_source_310_and_per_request_301_309() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let q: String = (0..4).map(|i| format!("&d_cid=1%01a{i}")).collect();
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json{q}"), "");
    assert_eq!(r.header("x-error"), Some("310"));
    // 3 each from four data sources: 12 valid IDs, the last two dropped.
    let q: String = (0..3)
        .flat_map(|i| {
            [
                format!("&d_cid=1%01b{i}"),
                format!("&d_cid=777%01c{i}"),
                format!("&d_cid=20914%01{i:08x}-0000-4000-8000-000000000000"),
                format!("&d_cid=389146%01MAID{i}"),
            ]
        })
        .collect();
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json{q}"), "");
    assert_eq!(r.header("x-error"), Some("301,309,309"), "{}", body(&r));
    assert!(body(&r).contains("{\"code\":301,\"msg\":\"Maximum number of customer ids exceeded. Maximum allowed is 10. Found is 12.\"}"));
    assert!(body(&r).contains("{\"code\":309,\"msg\":\"Customer id MAID2 was discarded because it exceeded the limit of declared customer ids per request\"}"));
}

#[test]
fn s5_3_denylisted_ids_303_306_307_survive_a_restart() {
    let dir = common::temp_dir();
    let snap = dir.0.join("profiles.snap");
    let toml = format!(
        "[denylist]\nmax_requests = 3\nwindow_s = 60\nttl_s = 3600\n[store]\nsnapshot_path = \"{}\"\n",
        snap.display()
    );
    let mut d = Daemon::start(SEMANTICS_DRIVER, &toml);
    let gaid = "6d92078a-8246-4ba4-ae5b-76104861e7dc";
    for _ in 0..3 {
        let r = get(
            &d,
            "localhost",
            &format!("/event?d_cid=1%01bot&d_cid=20914%01{gaid}"),
            &format!("Cookie: demdex={KNOWN}\r\n"),
        );
        assert_eq!(r.header("x-error"), None);
    }
    // The 4th request: both declared IDs are dropped, and the profile ID is denylisted too.
    let r = get(
        &d,
        "localhost",
        &format!("/event?d_rtbd=json&d_cid=1%01bot&d_cid=20914%01{gaid}"),
        &format!("Cookie: demdex={KNOWN}\r\n"),
    );
    assert_eq!(r.header("x-error"), Some("303,306,307"));
    assert_eq!(
        body(&r),
        format!("{{\"stuff\":[],\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{{\"code\":303,\"msg\":\"Blocked customer id bot\"}},{{\"code\":306,\"msg\":\"Blocked declared device id {gaid}\"}},{{\"code\":307,\"msg\":\"Blocked profile operation for {KNOWN}\"}}]}}")
    );
    assert!(r.header("set-cookie").is_none());
    // Another profile with the denylisted ID: the ID is dropped, the rest goes on.
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_uuid={OTHER}&d_cid=1%01bot"), "");
    assert_eq!((r.header("x-error"), uuid_of(&r)), (Some("303"), OTHER.to_owned()));
    d.signal("TERM");
    assert!(d.wait_exit(std::time::Duration::from_secs(10)).success());
    let d = Daemon::start(SEMANTICS_DRIVER, &toml);
    let r = get(&d, "localhost", "/event?d_cid=1%01bot", &format!("Cookie: demdex={KNOWN}\r\n"));
    assert_eq!(r.header("x-error"), Some("303,307"), "denylisting survives the restart");
}

#[test]
fn s6_2_pixel_mode_answer() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "localhost", &format!("/event?d_uuid={KNOWN}&d_mid=1"), "");
    assert_eq!(
        (r.status, r.header("content-type"), r.header("content-length")),
        (200, Some("image/gif"), Some("43"))
    );
    assert_eq!(&r.body[..6], b"GIF89a");
    assert_eq!(r.header("x-error"), Some("101"), "errors only in X-Error");
}

#[test]
fn s6_5_invalid_requests_1_100_2() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "unknown.example:8080", "/event?d_rtbd=json", "");
    assert_eq!(
        body(&r),
        "{\"stuff\":[],\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{\"code\":1,\"msg\":\"Could not find config for hostname: unknown.example\"}]}"
    );
    let r = d.request(b"GET /event?d_rtbd=json HTTP/1.0\r\n\r\n");
    assert_eq!(
        body(&r),
        "{\"stuff\":[],\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{\"code\":100,\"msg\":\"Could not retrieve host name for the request\"}]}"
    );
    let r = get(&d, "LOCALHOST", "/event?d_rtbd=json&d_orgid=X%40AdobeOrg", "");
    assert_eq!((r.header("x-error"), r.header("set-cookie")), (Some("2"), None));
}

#[test]
fn s7_cors() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "localhost", "/ibs:dpid=1&dpuuid=cors", "Origin: https://site.example\r\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("https://site.example"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn s8_id_sync_maps_the_declared_id_to_the_cookie_profile() {
    let d = two_customers("");
    let r = get(&d, "localhost", "/ibs:dpid=1&dpuuid=sync-user", &format!("Cookie: demdex={KNOWN}\r\n"));
    assert_eq!((r.status, r.header("content-type"), r.header("x-error")), (200, Some("image/gif"), None));
    assert_eq!(r.header("set-cookie"), Some(cookie_line(KNOWN).as_str()));
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=1%01sync-user", "");
    assert_eq!(uuid_of(&r), KNOWN);
    // Without a cookie: a new profile, which the ID now selects.
    let r = get(&d, "localhost", "/ibs:d_cid_ic=acme-crm%01fresh-user", "");
    let fresh = r.header("set-cookie").unwrap()[7..45].to_owned();
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=1%01fresh-user", "");
    assert_eq!(uuid_of(&r), fresh);
    // An invalid declared ID is 300 (+104), as on /event.
    let r = get(&d, "localhost", "/ibs:dpid=99&dpuuid=x", "");
    assert_eq!(r.header("x-error"), Some("300,104"));
}

#[test]
fn s8_id_sync_redirects_only_to_allowed_hosts() {
    let d = two_customers("");
    let redir = "https%3A%2F%2Fp.sync.acme.example%2Fs%3Fu%3D%24%7BDD_UUID%7D%26again%3D%24%7BDD_UUID%7D";
    let r = get(
        &d,
        "localhost",
        &format!("/ibs:dpid=1&dpuuid=r1&redir={redir}"),
        &format!("Cookie: demdex={KNOWN}\r\n"),
    );
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(format!("https://p.sync.acme.example/s?u={KNOWN}&again={KNOWN}").as_str())
    );
    assert_eq!(r.header("set-cookie"), Some(cookie_line(KNOWN).as_str()));
    for bad in [
        "https%3A%2F%2Fevil.example%2F",
        "https%3A%2F%2Fsync.acme.example%40evil.example%2F",
        "javascript%3Aalert(1)",
        "https%3A%2F%2Fsync.acme.example.evil.example%2F",
        "https%3A%2F%2Fsync.acme.example%2F%0D%0ASet-Cookie%3A%20x%3D1",
    ] {
        let r = get(
            &d,
            "localhost",
            &format!("/ibs:dpid=1&dpuuid=r2&redir={bad}"),
            &format!("Cookie: demdex={KNOWN}\r\n"),
        );
        assert_eq!((r.status, r.header("x-error"), r.header("location")), (200, Some("311"), None), "{bad}");
        assert_eq!(r.header("content-type"), Some("image/gif"));
    }
    // Allowed for dpid 1, not for dpid 3 (no redirect domains).
    let r = get(&d, "localhost", "/ibs:dpid=3&dpuuid=r3&redir=https%3A%2F%2Fsync.acme.example%2F", "");
    assert_eq!((r.status, r.header("x-error")), (200, Some("311")));
}

#[test]
fn s9_global_opt_out_sets_notarget_cookies_and_stops_the_browser() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "www.optout.example", "/demoptout.jpg", &format!("Cookie: demdex={KNOWN}\r\n"));
    assert_eq!((r.status, r.header("content-type"), r.header("x-error")), (200, Some("image/gif"), None));
    assert_eq!(
        r.header_all("set-cookie"),
        [
            "demdex=NOTARGET; Max-Age=315360000; Path=/; SameSite=None; Secure",
            "dextp=NOTARGET; Max-Age=315360000; Path=/; SameSite=None; Secure"
        ]
    );
    // The browser's opt-out cookie: 171, no uuid, no cookie, nothing stored.
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=1%01opted", "Cookie: demdex=NOTARGET\r\n");
    assert_eq!(
        body(&r),
        "{\"stuff\":[],\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{\"code\":171,\"msg\":\"Encountered opt out tag for id NOTARGET\"}]}"
    );
    assert!(r.header("set-cookie").is_none());
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=1%01opted", "");
    assert_eq!(r.header("x-error"), None, "the declared ID was not synced while opted out");
    // The profile the cookie named is opted out everywhere.
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_uuid={KNOWN}"), "");
    assert_eq!(
        body(&r),
        format!("{{\"stuff\":[],\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{{\"code\":171,\"msg\":\"Encountered opt out tag for id {KNOWN}\"}}]}}")
    );
    let r = get(&d, "localhost", "/demoptout", "");
    assert_eq!(r.header_all("set-cookie").len(), 2, "/demoptout without .jpg too");
}

#[test]
fn s9_partner_level_opt_out_is_per_customer_and_changes_no_cookie() {
    let d = two_customers("");
    let r =
        get(&d, "localhost", &format!("/demoptout?d_uuid={KNOWN}"), &format!("Cookie: demdex={OTHER}\r\n"));
    assert_eq!((r.status, r.header("x-error")), (200, None));
    assert!(r.header("set-cookie").is_none(), "no cookie changes at partner level");
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_uuid={KNOWN}"), "");
    assert_eq!(r.header("x-error"), Some("171"));
    // Only for acme: beta still sees the profile.
    let r = get(&d, "beta.example", &format!("/event?d_rtbd=json&d_uuid={KNOWN}"), "");
    assert_eq!((r.header("x-error"), uuid_of(&r)), (None, KNOWN.to_owned()));
    // The cookie's profile was not touched (d_uuid wins).
    let r = get(&d, "localhost", "/event?d_rtbd=json", &format!("Cookie: demdex={OTHER}\r\n"));
    assert_eq!(uuid_of(&r), OTHER);
    // By declared ID, legacy pair and integration code: a new profile for an unmapped ID,
    // which later requests with that ID find.
    for (optout, event) in [
        ("d_cid=1%01crm-out", "d_cid=1%01crm-out"),
        ("d_dpid=1&d_dpuuid=crm-legacy", "d_cid_ic=acme-crm%01crm-legacy"),
    ] {
        let r = get(&d, "localhost", &format!("/demoptout.jpg?{optout}"), "");
        assert_eq!(r.header("x-error"), None);
        let r = get(&d, "localhost", &format!("/event?d_rtbd=json&{event}"), "");
        assert_eq!(r.header("x-error"), Some("171"), "{optout}");
        assert!(!r.body_str().contains("\"uuid\""));
    }
}

#[test]
fn s10_consent_gdpr_1_needs_purposes_1_and_10_and_the_vendor() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let ok = get(
        &d,
        "localhost",
        &format!("/event?d_rtbd=json&gdpr=1&gdpr_consent={TC_CONSENT}&d_uuid={KNOWN}"),
        "",
    );
    assert_eq!((ok.header("x-error"), uuid_of(&ok)), (None, KNOWN.to_owned()));
    // gdpr=0 (or absent) needs nothing.
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&gdpr=0&d_uuid={KNOWN}"), "");
    assert_eq!(r.header("x-error"), None);
    for (i, tc) in ["", TC_NO_PURPOSE_10, TC_OTHER_VENDOR, "not*base64", "BO5rKAAO5rKAA"].iter().enumerate() {
        let uuid = format!("{:038}", 900 + i);
        let consent = if tc.is_empty() { String::new() } else { format!("&gdpr_consent={tc}") };
        let r = get(&d, "localhost", &format!("/event?d_rtbd=json&gdpr=1{consent}&d_uuid={uuid}"), "");
        assert_eq!(
            body(&r),
            "{\"stuff\":[],\"dcs_region\":7,\"tid\":\"T\",\"errors\":[{\"code\":315,\"msg\":\"Consent string indicates no consent\"}]}",
            "{tc:?}"
        );
        assert!(r.header("set-cookie").is_none());
        // The profile is now opted out for the host's customer.
        let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_uuid={uuid}"), "");
        assert_eq!(r.header("x-error"), Some("171"), "{tc:?}");
    }
    // /ibs: too.
    let r = get(
        &d,
        "localhost",
        "/ibs:dpid=1&dpuuid=c1&gdpr=1&gdpr_consent=",
        &format!("Cookie: demdex={OTHER}\r\n"),
    );
    assert_eq!((r.header("x-error"), r.header("set-cookie")), (Some("315"), None));
}

/// A connection to `to` from the local address `from` (any 127/8 address is this host).
fn connect_from(from: &str, to: SocketAddr) -> Reader {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&from.parse::<SocketAddr>().unwrap().into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s = std::net::TcpStream::from(s);
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    Reader::new(s)
}

#[test]
fn rate_limit_429_with_retry_after_per_client() {
    for_each_driver(|driver| {
        let d = Daemon::start(driver, "[rate_limit]\nper_ip_rps = 1\nburst = 2\n");
        // One keep-alive connection: a 429 does not close it.
        let mut r = connect_from("127.0.0.1:0", d.addr);
        let mut statuses = Vec::new();
        let mut limited = None;
        // Two for the burst, then one token a second: a 429 within ten quick requests (each
        // takes milliseconds) unless this machine stalls for seconds.
        while limited.is_none() && statuses.len() < 10 {
            r.send(b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n");
            let resp = r.response(false).expect("429 keeps the connection");
            statuses.push(resp.status);
            limited = Some(resp).filter(|resp| resp.status == 429);
        }
        assert_eq!(statuses[..2], [200, 200]);
        let r429 = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
        assert_eq!(r429.header("retry-after"), Some("1"), "{r429:?}");
        assert!(!r429.closes(), "429 keeps the connection");
        // Per client: another address has its own bucket; admin routes are not limited.
        let mut other = connect_from("127.0.0.2:0", d.addr);
        other.send(b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(other.response(false).unwrap().status, 200, "127.0.0.2 is another client");
        r.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.response(false).unwrap().status, 200);
        assert!(d.metric("dcsd_http_requests_total{route=\"event\",status=\"429\"}") >= 1);
    });
}

#[test]
fn s5_1_a_new_id_with_nothing_to_record_creates_no_profile() {
    let d = Daemon::start(SEMANTICS_DRIVER, "");
    let r = get(&d, "localhost", "/event?d_rtbd=json&c_unknown=1", "");
    assert!(r.header("set-cookie").is_some(), "the browser still gets its ID");
    assert_eq!(d.metric("dcsd_profiles"), 0);
    // A realized trait (demo taxonomy: d_sid 4242) is worth a profile.
    get(&d, "localhost", "/event?d_sid=4242", "");
    assert_eq!(d.metric("dcsd_profiles"), 1);
    assert_eq!(d.metric("dcsd_traits_realized_total"), 1);
}
