//! Output hardening and the per-customer privacy switches through the real binary: `/ibs:`
//! redirect targets and `Location` encoding (docs/http-api.md §8), JSON/JSONP escaping (§6.3),
//! `cors_origins` (§7), `uuid_token` (§5.1, §9), `d_coppa=1` and `OPTIONS` on `/ibs:` (§1, §4),
//! and the configuration checks of `server.node` and `[denylist]` (configuration.md §3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::process::Command;

use common::{temp_dir, Daemon, Response};

/// The `uuid_token` of customer 1 (`localhost`) in `tests/fixtures/privacy.json`.
const TOKEN: &str = "acme-server-token-0123456789";
/// Someone else's profile, which a browser call tries to name with `d_uuid`.
const VICTIM: &str = "00000000000000000000000000000000042424";
/// The calling browser's own profile (its `demdex` cookie).
const MINE: &str = "00000000000000000000000000000000013131";
/// The allowed origins of customer 1.
const ALLOWED: [&str; 3] = ["https://www.acme.example", "HTTPS://WWW.Acme.Example", "http://localhost:8080"];
/// Origins customer 1 does not list.
const DENIED: [&str; 4] =
    ["https://evil.example", "https://www.acme.example:8443", "http://www.acme.example", "null"];

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A daemon on the privacy fixture: customer 1 (`localhost`, `acme.example`) sets both
/// switches, customer 2 (`open.example`) neither.
fn daemon() -> Daemon {
    Daemon::start("uring", &format!("[server]\ntaxonomy = \"{}\"\n", fixture("privacy.json")))
}

/// `<method> <target>` with `Host: <host>` and extra header lines.
fn send(d: &Daemon, method: &str, host: &str, target: &str, headers: &str) -> Response {
    d.request(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n").as_bytes())
}

fn get(d: &Daemon, host: &str, target: &str, headers: &str) -> Response {
    send(d, "GET", host, target, headers)
}

/// The body with the transaction ID replaced by `T`.
fn body(r: &Response) -> String {
    let b = r.body_str();
    match b.find("\"tid\":\"") {
        Some(i) => format!("{}T{}", &b[..i + 7], &b[i + 19..]),
        None => b.to_owned(),
    }
}

fn uuid_of(r: &Response) -> String {
    let b = r.body_str();
    let i = b.find("\"uuid\":\"").unwrap_or_else(|| panic!("no uuid in {b}")) + 8;
    b[i..i + 38].to_owned()
}

fn cookie_line(uuid: &str) -> String {
    format!("demdex={uuid}; Max-Age=15552000; Path=/; SameSite=None; Secure")
}

fn cookie(uuid: &str) -> String {
    format!("Cookie: demdex={uuid}\r\n")
}

/// `dcsd ARGS`: exit code and stderr.
fn dcsd(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dcsd")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn ibs_redirect_whose_authority_parsers_read_differently_is_refused_311() {
    let d = daemon();
    for redir in [
        // Browsers read sync.partner-x.example, RFC 3986 parsers evil.com.
        "https://sync.partner-x.example%5C@evil.com",
        "https%3A%2F%2Fsync.partner-x.example%5C%40evil.com%2F",
        // The authority is checked as it would be written: after the request's decoding.
        "https://sync.partner-x.example%25%35%43@evil.com",
        "https%3A%2F%2Fsync.partner-x.example%40evil.com%2F",
        "https://evil.com%2523.sync.partner-x.example/",
        "https://sync.partner-x.exampl%C3%A9/",
        "https://sync.partner-x.example%09/",
        "https://sync.partner-x.example:99999/",
    ] {
        let r = get(&d, "localhost", &format!("/ibs:dpid=1&dpuuid=r1&redir={redir}"), &cookie(MINE));
        assert_eq!(
            (r.status, r.header("x-error"), r.header("location")),
            (200, Some("311"), None),
            "{redir}"
        );
        assert_eq!(r.header("content-type"), Some("image/gif"), "{redir}");
        // The sync itself still happened.
        assert_eq!(r.header("set-cookie"), Some(cookie_line(MINE).as_str()), "{redir}");
    }
    let r = get(&d, "localhost", "/ibs:dpid=1&dpuuid=r1&redir=https://sync.partner-x.example/ok", "");
    assert_eq!((r.status, r.header("location")), (302, Some("https://sync.partner-x.example/ok")));
}

#[test]
fn ibs_location_is_percent_encoded_where_the_url_grammar_requires() {
    let d = daemon();
    let redir =
        "https%3A%2F%2Fsync.partner-x.example%2F%22%3E%3Cscript%3E%3Fu%3D%24%7BDD_UUID%7D%26k%3D%252F%20x%7C";
    let r = get(&d, "localhost", &format!("/ibs:dpid=1&dpuuid=loc-1&redir={redir}"), &cookie(MINE));
    assert_eq!((r.status, r.header("x-error")), (302, None));
    assert_eq!(
        r.header("location"),
        Some(format!("https://sync.partner-x.example/%22%3E%3Cscript%3E?u={MINE}&k=%2F%20x%7C").as_str())
    );
    assert_eq!(r.header("content-length"), Some("0"));
}

#[test]
fn jsonp_escapes_line_separators_and_controls_from_the_host() {
    let d = daemon();
    let r =
        d.request(b"GET /event?d_rtbd=json&d_cb=cb HTTP/1.1\r\nHost: x\xe2\x80\xa8y\xe2\x80\xa9z\tw\r\n\r\n");
    assert_eq!((r.header("content-type"), r.header("x-error")), (Some("application/javascript"), Some("1")));
    assert_eq!(
        body(&r),
        r#"cb({"stuff":[],"dcs_region":7,"tid":"T","errors":[{"code":1,"msg":"Could not find config for hostname: x\u2028y\u2029z\tw"}]})"#
    );
    assert!(!r.body_str().contains(['\u{2028}', '\u{2029}', '\t']), "{}", r.body_str());
}

#[test]
fn cors_origins_allow_only_the_listed_origins() {
    let d = daemon();
    for target in
        ["/event?d_rtbd=json", "/event", "/ibs:dpid=1&dpuuid=cors-1", "/demoptout", "/event?c_x=%zz"]
    {
        for origin in ALLOWED {
            let r = get(&d, "localhost", target, &format!("Origin: {origin}\r\n"));
            assert_eq!(r.header("access-control-allow-origin"), Some(origin), "{target} {origin}");
            assert_eq!(r.header("access-control-allow-credentials"), Some("true"), "{target} {origin}");
            assert_eq!(r.header("vary"), Some("Origin"), "{target} {origin}");
        }
        for origin in DENIED {
            let r = get(&d, "localhost", target, &format!("Origin: {origin}\r\n"));
            assert_eq!(r.status, 200, "{target} {origin}");
            assert!(
                r.headers.iter().all(|(n, _)| !n.to_ascii_lowercase().starts_with("access-control-")),
                "{target} {origin}: {:?}",
                r.headers
            );
            assert_eq!(r.header("vary"), Some("Origin"), "{target} {origin}");
        }
    }
    // The preflight follows the same list, on every DCS route.
    for path in ["/event", "/ibs:dpid=1&dpuuid=x", "/demoptout.jpg"] {
        let preflight = |origin: &str| {
            let h = format!("Origin: {origin}\r\nAccess-Control-Request-Method: GET\r\n");
            send(&d, "OPTIONS", "acme.example", path, &h)
        };
        let r = preflight(ALLOWED[0]);
        assert_eq!((r.status, r.header("access-control-allow-origin")), (204, Some(ALLOWED[0])), "{path}");
        assert!(r.header("access-control-allow-methods").is_some(), "{path}");
        let r = preflight(DENIED[0]);
        assert_eq!((r.status, r.header("access-control-allow-origin")), (204, None), "{path}");
        assert_eq!(r.header("access-control-allow-credentials"), None, "{path}");
    }
    // A customer without the list, and a host no customer has: any origin (AAM's behaviour).
    for host in ["open.example", "unknown.example"] {
        let r = get(&d, host, "/event", &format!("Origin: {}\r\n", DENIED[0]));
        assert_eq!(r.header("access-control-allow-origin"), Some(DENIED[0]), "{host}");
    }
}

#[test]
fn uuid_token_d_uuid_needs_the_server_token() {
    let d = daemon();
    let token = format!("X-DCS-Token: {TOKEN}\r\n");
    // Server to server, with the token: as without the switch.
    let r = get(&d, "localhost", &format!("/event?d_rtbd=json&d_cts=2&d_sid=10&d_uuid={VICTIM}"), &token);
    assert_eq!(r.header("x-error"), None);
    assert_eq!(
        body(&r),
        format!(
            r#"{{"stuff":[],"uuid":"{VICTIM}","dcs_region":7,"tid":"T","traits":[10],"segments":[100]}}"#
        )
    );
    assert_eq!(r.header("set-cookie"), Some(cookie_line(VICTIM).as_str()));
    // A browser naming VICTIM (no token, a wrong one, a longer one): 102, answered with its own
    // profile and cookie, which gets what the request realized.
    let refused = format!(
        r#"{{"code":102,"msg":"AAM ID passed in request without the required server token (X-DCS-Token): {VICTIM}"}}"#
    );
    for extra in ["", "X-DCS-Token: wrong-token-0123456789\r\n", &format!("X-DCS-Token: {TOKEN}x\r\n")] {
        let headers = format!("{}{extra}", cookie(MINE));
        let r =
            get(&d, "localhost", &format!("/event?d_rtbd=json&d_cts=2&d_sid=11&d_uuid={VICTIM}"), &headers);
        assert_eq!(r.header("x-error"), Some("102"), "{extra}");
        assert_eq!(
            body(&r),
            format!(
                r#"{{"stuff":[],"uuid":"{MINE}","dcs_region":7,"tid":"T","traits":[11],"segments":[101],"errors":[{refused}]}}"#
            ),
            "{extra}"
        );
        assert_eq!(r.header_all("set-cookie"), [cookie_line(MINE).as_str()], "{extra}");
    }
    // Without a cookie (an <img> on any page): a new ID, never VICTIM's; no segments of VICTIM.
    for target in
        [format!("/event?d_rtbd=json&d_cts=2&d_uuid={VICTIM}"), format!("/event?d_sid=11&d_uuid={VICTIM}")]
    {
        let r = get(&d, "localhost", &target, "");
        assert_eq!(r.header("x-error"), Some("102"), "{target}");
        let set = r.header("set-cookie").unwrap_or_default();
        assert!(set.starts_with("demdex=") && !set.contains(VICTIM), "{target}: {set}");
        if target.contains("d_rtbd") {
            assert_ne!(uuid_of(&r), VICTIM);
            assert!(body(&r).contains(r#""traits":[],"segments":[]"#), "{}", body(&r));
        }
    }
    // VICTIM's profile was neither read nor written: trait 11 (segment 101) went elsewhere.
    let check = format!("/event?d_rtbd=json&d_cts=2&d_uuid={VICTIM}");
    let r = get(&d, "localhost", &check, &token);
    assert!(body(&r).contains(r#""traits":[],"segments":[100]}"#), "{}", body(&r));
    // Partner-level opt-out by d_uuid: refused without the token (nothing opted out) ...
    let r = get(&d, "localhost", &format!("/demoptout?d_uuid={VICTIM}"), &cookie(MINE));
    assert_eq!((r.header("x-error"), r.header("set-cookie")), (Some("102"), None));
    assert_eq!(get(&d, "localhost", &check, &token).header("x-error"), None);
    let r = get(&d, "localhost", "/event?d_rtbd=json", &cookie(MINE));
    assert_eq!((r.header("x-error"), uuid_of(&r)), (None, MINE.to_owned()));
    // ... and done with it.
    let r = get(&d, "localhost", &format!("/demoptout?d_uuid={VICTIM}"), &token);
    assert_eq!(r.header("x-error"), None);
    assert_eq!(get(&d, "localhost", &check, &token).header("x-error"), Some("171"));
    // A customer without uuid_token takes d_uuid from anyone (AAM's behaviour).
    let r = get(&d, "open.example", &format!("/event?d_rtbd=json&d_uuid={VICTIM}"), "");
    assert_eq!((r.header("x-error"), uuid_of(&r)), (None, VICTIM.to_owned()));
}

#[test]
fn ibs_with_d_coppa_neither_reads_nor_sets_the_cookie() {
    let d = daemon();
    let r = get(&d, "open.example", "/ibs:dpid=2&dpuuid=kid-1&d_coppa=1", &cookie(MINE));
    assert_eq!((r.status, r.header("content-type"), r.header("x-error")), (200, Some("image/gif"), None));
    assert_eq!(r.header("set-cookie"), None);
    // The cookie was not read: the ID went to a new profile.
    let r = get(&d, "open.example", "/event?d_rtbd=json&d_cid=2%01kid-1", "");
    assert_ne!(uuid_of(&r), MINE);
    // A redirecting sync with d_coppa=1 sets no cookie either; without d_coppa, as before.
    let redir = "https%3A%2F%2Fsync.partner-x.example%2F";
    let r =
        get(&d, "open.example", &format!("/ibs:dpid=2&dpuuid=kid-2&d_coppa=1&redir={redir}"), &cookie(MINE));
    assert_eq!((r.status, r.header("set-cookie")), (302, None));
    let r = get(&d, "open.example", "/ibs:dpid=2&dpuuid=kid-3", &cookie(MINE));
    assert_eq!(r.header("set-cookie"), Some(cookie_line(MINE).as_str()));
}

#[test]
fn options_on_ibs_and_demoptout_is_the_preflight() {
    let d = daemon();
    for path in ["/ibs:dpid=1&dpuuid=opt-1", "/ibs", "/demoptout", "/demoptout.jpg"] {
        let h = format!("Origin: {}\r\nAccess-Control-Request-Method: GET\r\n{}", ALLOWED[0], cookie(MINE));
        let r = send(&d, "OPTIONS", "localhost", path, &h);
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.header("access-control-allow-methods"), Some("GET, OPTIONS"), "{path}");
        assert_eq!(r.header("access-control-max-age"), Some("86400"), "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED[0]), "{path}");
        assert!(r.header("content-length").is_none() && r.header("set-cookie").is_none(), "{path}");
        assert!(!r.closes(), "{path}");
        let r = send(&d, "OPTIONS", "localhost", path, "");
        assert_eq!((r.status, r.header("allow")), (204, Some("GET, HEAD, OPTIONS")), "{path}");
    }
    let r = send(&d, "POST", "localhost", "/ibs:dpid=1&dpuuid=opt-1", "Content-Length: 0\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD, OPTIONS")));
    // The preflight synced nothing: the declared ID does not name the cookie's profile.
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cid=1%01opt-1", "");
    assert_ne!(uuid_of(&r), MINE);
}

#[test]
fn server_node_that_could_inject_headers_is_refused_64() {
    let dir = temp_dir();
    let cfg = dir.0.join("dcsd.toml");
    let path = cfg.to_str().unwrap();
    for node in [r#""edge-1\r\nSet-Cookie: a=b""#, r#""edge-1\n""#, r#""edge 1""#, r#""edge\u0000""#] {
        std::fs::write(&cfg, format!("[server]\nnode = {node}\n")).unwrap();
        let (code, err) = dcsd(&["--config", path, "--check"]);
        assert_eq!(code, 64, "{node}: {err}");
        assert!(err.starts_with(&format!("{path}:2:8:")) && err.contains("printable ASCII"), "{node}: {err}");
    }
    std::fs::write(&cfg, "[server]\nnode = \"edge-7.fra\"\n").unwrap();
    assert_eq!(dcsd(&["--config", path, "--check"]).0, 0);
}

#[test]
fn denylist_values_below_one_are_refused_64() {
    let dir = temp_dir();
    let cfg = dir.0.join("dcsd.toml");
    let path = cfg.to_str().unwrap();
    for (key, col) in [("max_requests", 16), ("window_s", 12), ("ttl_s", 9)] {
        std::fs::write(&cfg, format!("[denylist]\n{key} = 0\n")).unwrap();
        let (code, err) = dcsd(&["--config", path, "--check"]);
        assert_eq!(code, 64, "{key}: {err}");
        assert!(err.starts_with(&format!("{path}:2:{col}:")) && err.contains("1..="), "{key}: {err}");
    }
}

#[test]
fn bad_privacy_switches_are_refused_with_their_json_paths_64() {
    let dir = temp_dir();
    let tax = dir.0.join("t.json");
    std::fs::write(
        &tax,
        r#"{"customers":[{"id":1,"hosts":["a"],"cors_origins":["https://a.example/"],"uuid_token":"short-secret"}]}"#,
    )
    .unwrap();
    let (code, err) = dcsd(&["--check", "--taxonomy", tax.to_str().unwrap()]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("t.json: $.customers[0].cors_origins[0]: \"https://a.example/\" is not an origin"),
        "{err}"
    );
    assert!(err.contains("t.json: $.customers[0].uuid_token: must be at least 16 bytes"), "{err}");
    assert!(!err.contains("short-secret"), "the token is never printed: {err}");
    assert_eq!(dcsd(&["--check", "--taxonomy", &fixture("privacy.json")]).0, 0);
}
