//! docs/http-api.md §1, §2, §6–§7 through the real binary: one test per row of the §1 status table,
//! pipelining, keep-alive, HTTP/1.0, HEAD, OPTIONS/CORS, chunked bodies, `Date`, `/event`
//! answers. Every test in this file runs on both drivers (io_uring and epoll), the two daemons
//! side by side ([`common::for_each_driver`]); the harness checks that each daemon's ready line
//! names the driver asked for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{connect, for_each_driver, Daemon, Reader, Response};

/// Runs `test` against a default daemon on each driver.
fn each_driver(test: impl Fn(&Daemon) + Sync) {
    for_each_driver(|driver| test(&Daemon::start(driver, "")));
}

/// Sends `raw` on a fresh connection and expects `status` followed by a close.
fn expect_close_with(d: &Daemon, raw: &[u8], status: u16) -> Response {
    let mut r = Reader::new(connect(d.addr));
    r.send(raw);
    let resp =
        r.response(false).unwrap_or_else(|| panic!("no response to {:?}", String::from_utf8_lossy(raw)));
    assert_eq!(resp.status, status, "{:?} -> {resp:?}", String::from_utf8_lossy(raw));
    assert!(resp.closes(), "protocol errors close: {resp:?}");
    assert!(r.closed(), "connection must be closed after {status}");
    resp
}

#[test]
fn status_400_malformed_request_line_and_header() {
    each_driver(|d| {
        expect_close_with(d, b"GET /event HTTP/1.1 extra\r\nHost: localhost\r\n\r\n", 400);
        expect_close_with(d, b"GET /event HTTP/1.1\r\nHost a\r\n\r\n", 400);
        expect_close_with(d, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400);
    });
}

#[test]
fn status_400_obs_fold() {
    each_driver(|d| {
        expect_close_with(d, b"GET /event HTTP/1.1\r\nHost: localhost\r\nX-Long: a\r\n b\r\n\r\n", 400);
    });
}

#[test]
fn status_400_bad_chunk_framing() {
    each_driver(|d| {
        let raw =
            b"POST /event HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
        expect_close_with(d, raw, 400);
        let raw = b"POST /event HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n";
        expect_close_with(d, raw, 400);
    });
}

#[test]
fn status_400_http11_without_host() {
    each_driver(|d| {
        expect_close_with(d, b"GET /event HTTP/1.1\r\n\r\n", 400);
    });
}

#[test]
fn status_400_content_length_with_transfer_encoding() {
    each_driver(|d| {
        let raw = b"POST /event HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        expect_close_with(d, raw, 400);
    });
}

#[test]
fn status_400_two_different_content_lengths() {
    each_driver(|d| {
        let raw =
            b"POST /event HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        expect_close_with(d, raw, 400);
    });
}

#[test]
fn status_414_uri_too_long() {
    each_driver(|d| {
        let raw = format!("GET /event?x={} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(8200));
        expect_close_with(d, raw.as_bytes(), 414);
    });
}

#[test]
fn status_431_header_block_too_large() {
    each_driver(|d| {
        let raw = format!("GET /event HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "b".repeat(17000));
        expect_close_with(d, raw.as_bytes(), 431);
    });
}

#[test]
fn status_431_more_than_64_headers() {
    each_driver(|d| {
        let many: String = (0..65).map(|i| format!("X-H{i}: v\r\n")).collect();
        let raw = format!("GET /event HTTP/1.1\r\nHost: localhost\r\n{many}\r\n");
        expect_close_with(d, raw.as_bytes(), 431);
        // 64 headers are fine.
        let ok: String = (0..63).map(|i| format!("X-H{i}: v\r\n")).collect();
        let r = d.request(format!("GET /event HTTP/1.1\r\nHost: localhost\r\n{ok}\r\n").as_bytes());
        assert_eq!(r.status, 200);
    });
}

#[test]
fn status_413_body_too_large() {
    each_driver(|d| {
        let raw = b"POST /event HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40000\r\n\r\n";
        expect_close_with(d, raw, 413);
        let mut chunked =
            b"POST /event HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..5 {
            chunked.extend_from_slice(b"2000\r\n");
            chunked.extend_from_slice(&[b'a'; 0x2000]);
            chunked.extend_from_slice(b"\r\n");
        }
        expect_close_with(d, &chunked, 413);
    });
}

#[test]
fn status_405_with_allow() {
    each_driver(|d| {
        let r =
            expect_close_with(d, b"PUT /event HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
        let r = expect_close_with(
            d,
            b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
            405,
        );
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    });
}

#[test]
fn status_404_unknown_path() {
    each_driver(|d| {
        expect_close_with(d, b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n", 404);
        expect_close_with(d, b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n", 404);
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    each_driver(|d| {
        let mut r = Reader::new(connect(d.addr));
        r.send(
            b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n\
              GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n\
              POST /event HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\nd_rtbd=json\
              HEAD /event HTTP/1.1\r\nHost: localhost\r\n\r\n\
              GET /event?d_rtbd=json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        let a = r.response(false).unwrap();
        assert_eq!((a.status, a.header("content-type")), (200, Some("image/gif")));
        let b = r.response(false).unwrap();
        assert_eq!((b.status, b.body_str()), (200, "ok\n"));
        let c = r.response(false).unwrap();
        assert_eq!(c.header("content-type"), Some("application/json"));
        let h = r.response(true).unwrap();
        assert_eq!(h.header("content-length"), Some("43"));
        let e = r.response(false).unwrap();
        assert!(e.body_str().starts_with("{\"stuff\":[]"), "{e:?}");
        assert!(e.closes());
        assert!(r.closed());
    });
}

#[test]
fn keep_alive_reuses_the_connection() {
    each_driver(|d| {
        let mut r = Reader::new(connect(d.addr));
        for _ in 0..5 {
            r.send(b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n");
            let resp = r.response(false).unwrap();
            assert_eq!(resp.status, 200);
            assert_eq!(resp.body.len(), 43);
            assert!(resp.header("connection").is_none());
        }
        assert_eq!(d.metric("dcsd_http_connections_open"), 1 + 1, "this one plus the scrape");
    });
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    each_driver(|d| {
        let mut r = Reader::new(connect(d.addr));
        r.send(b"GET /event HTTP/1.0\r\n\r\n");
        let resp = r.response(false).unwrap();
        assert_eq!(resp.status, 200);
        assert!(resp.closes());
        assert!(r.closed());
        let mut r = Reader::new(connect(d.addr));
        r.send(b"GET /event HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = r.response(false).unwrap();
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        r.send(b"GET /healthz HTTP/1.0\r\n\r\n");
        let resp = r.response(false).unwrap();
        assert_eq!(resp.status, 200);
        assert!(resp.closes(), "keep-alive is asked per request: {resp:?}");
        assert!(r.closed());
    });
}

#[test]
fn pixel_answer_has_the_contract_headers() {
    each_driver(|d| {
        let r = d.request(b"GET /event?d_sid=1234 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("image/gif"));
        assert_eq!(r.body.len(), 43);
        assert!(r.body.starts_with(b"GIF89a") && r.body.ends_with(b";"));
        assert_eq!(r.header("cache-control"), Some("no-cache, no-store, must-revalidate"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
        assert_eq!(r.header("expires"), Some("0"));
        let dcs = r.header("dcs").unwrap();
        assert!(dcs.ends_with(&format!(" {}", env!("CARGO_PKG_VERSION"))), "{dcs}");
        assert!(r.header("date").unwrap().ends_with(" GMT"));
        let cookie = r.header("set-cookie").unwrap();
        let uuid = cookie.strip_prefix("demdex=").unwrap().split(';').next().unwrap();
        assert_eq!(uuid.len(), 38);
        assert!(uuid.bytes().all(|b| b.is_ascii_digit()));
        assert!(cookie.ends_with("; Max-Age=15552000; Path=/; SameSite=None; Secure"), "{cookie}");
    });
}

/// Unix seconds now.
fn wall_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn date_header_is_the_current_second_and_moves_on() {
    each_driver(|d| {
        let fmt = |s: u64| String::from_utf8(dcsd::http::response::imf_fixdate(s).to_vec()).unwrap();
        let mut r = Reader::new(connect(d.addr));
        // The `Date` of an answer, checked against the wall clock read around the request.
        let mut dated = || {
            let before = wall_s();
            r.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
            let date = r.response(false).unwrap().header("date").unwrap().to_string();
            let after = wall_s();
            assert!(
                (before..=after).any(|s| fmt(s) == date),
                "{date} not in {}..={}",
                fmt(before),
                fmt(after)
            );
            date
        };
        let first = dated();
        // Past the end of this second, on the same connection (and worker): a cached line must
        // not outlive its second.
        let into_second = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_millis();
        std::thread::sleep(Duration::from_millis(u64::from(1000 - into_second) + 20));
        let next = dated();
        assert_ne!(first, next);
    });
}

#[test]
fn head_is_get_without_a_body() {
    each_driver(|d| {
        let mut r = Reader::new(connect(d.addr));
        r.send(b"HEAD /event HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let h = r.response(true).unwrap();
        assert_eq!((h.status, h.header("content-length")), (200, Some("43")));
        assert!(h.body.is_empty());
        // The next response follows directly: no body bytes were sent for HEAD.
        assert_eq!(r.response(false).unwrap().body_str(), "ok\n");
    });
}

#[test]
fn json_mode_fields_and_identity() {
    each_driver(|d| {
        let r = d.request(b"GET /event?d_rtbd=json HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.body_str();
        let uuid = r.header("set-cookie").unwrap()[7..45].to_string();
        let prefix = format!("{{\"stuff\":[],\"uuid\":\"{uuid}\",\"dcs_region\":7,\"tid\":\"");
        assert!(body.starts_with(&prefix), "{body}");
        let tid = &body[prefix.len()..body.len() - 2];
        assert_eq!(tid.len(), 12, "{body}");
        assert!(tid.ends_with('=') && tid.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
        assert!(body.ends_with("\"}"));
        // A second call: same cookie → same UUID, new transaction ID.
        let raw = format!(
            "GET /event?d_rtbd=json HTTP/1.1\r\nHost: localhost\r\nCookie: x=1; demdex={uuid}\r\n\r\n"
        );
        let r2 = d.request(raw.as_bytes());
        assert!(r2.body_str().contains(&format!("\"uuid\":\"{uuid}\"")));
        assert!(!r2.body_str().contains(tid));
        // d_uuid wins over the cookie.
        let other = "00000000000000000000000000000000000042";
        let raw = format!(
            "GET /event?d_rtbd=json&d_uuid={other} HTTP/1.1\r\nHost: localhost\r\nCookie: demdex={uuid}\r\n\r\n"
        );
        let r3 = d.request(raw.as_bytes());
        assert!(r3.body_str().contains(&format!("\"uuid\":\"{other}\"")));
        assert!(r3.header("set-cookie").unwrap().starts_with(&format!("demdex={other};")));
    });
}

#[test]
fn jsonp_and_bad_callback() {
    each_driver(|d| {
        let r = d.request(b"GET /event?d_rtbd=json&d_cb=jQuery_1.cb HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.header("content-type"), Some("application/javascript"));
        assert!(r.body_str().starts_with("jQuery_1.cb({\"stuff\":[]") && r.body_str().ends_with("})"));
        let r = d.request(b"GET /event?d_rtbd=json&d_cb=alert(1) HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-error"), Some("311"));
        assert!(r
            .body_str()
            .ends_with(",\"errors\":[{\"code\":311,\"msg\":\"Request contains invalid parameters\"}]}"));
    });
}

#[test]
fn coppa_sets_no_cookie() {
    each_driver(|d| {
        let r = d.request(b"GET /event?d_coppa=1 HTTP/1.1\r\nHost: localhost\r\nCookie: demdex=12345678901234567890123456789012345678\r\n\r\n");
        assert_eq!(r.status, 200);
        assert!(r.header("set-cookie").is_none());
    });
}

#[test]
fn chunked_post_body_pairs_are_read() {
    each_driver(|d| {
        let raw = b"POST /event HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                    Transfer-Encoding: chunked\r\n\r\n4;x=y\r\nd_rt\r\n7\r\nbd=json\r\n0\r\nTrailer: 1\r\n\r\n";
        let r = d.request(raw);
        assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    });
}

#[test]
fn expect_100_continue() {
    each_driver(|d| {
        let mut r = Reader::new(connect(d.addr));
        r.send(b"POST /event HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n");
        let cont = r.response(false).unwrap();
        assert_eq!(cont.status, 100);
        r.send(b"d_rtbd=json");
        let resp = r.response(false).unwrap();
        assert_eq!(resp.header("content-type"), Some("application/json"));
    });
}

#[test]
fn cors_and_preflight() {
    each_driver(|d| {
        let r = d.request(b"GET /event HTTP/1.1\r\nHost: localhost\r\nOrigin: https://shop.example\r\n\r\n");
        assert_eq!(r.header("access-control-allow-origin"), Some("https://shop.example"));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("vary"), Some("Origin"));
        let r = d.request(
            b"OPTIONS /event HTTP/1.1\r\nHost: localhost\r\nOrigin: https://shop.example\r\nAccess-Control-Request-Method: POST\r\n\r\n",
        );
        assert_eq!(r.status, 204);
        assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST, OPTIONS"));
        assert_eq!(r.header("access-control-allow-headers"), Some("Content-Type"));
        assert_eq!(r.header("access-control-max-age"), Some("86400"));
        assert_eq!(r.header("access-control-allow-origin"), Some("https://shop.example"));
        assert!(r.header("content-length").is_none());
    });
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    each_driver(|d| {
        for _ in 0..3 {
            d.request(b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n");
        }
        d.request(b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n");
        d.request(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(d.metric("dcsd_http_requests_total{route=\"event\",status=\"200\"}"), 3);
        assert_eq!(d.metric("dcsd_http_requests_total{route=\"not_found\",status=\"404\"}"), 1);
        assert_eq!(d.metric("dcsd_http_requests_total{route=\"none\",status=\"400\"}"), 1);
        assert_eq!(d.metric("dcsd_http_request_duration_seconds_count{route=\"event\",status=\"200\"}"), 3);
        // The harness's /healthz, the five requests, the four scrapes above and this one.
        assert_eq!(d.metric("dcsd_http_connections_accepted_total"), 1 + 5 + 4 + 1);
    });
}

#[test]
fn bad_escape_is_311_with_no_cookie_and_no_uuid() {
    each_driver(|d| {
        let r = d.request(b"GET /event?c_a=%zz&d_rtbd=json HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-error"), Some("311"));
        assert!(r.header("set-cookie").is_none(), "{r:?}");
        let body = r.body_str();
        assert!(body.starts_with("{\"stuff\":[],\"dcs_region\":7,\"tid\":\""), "{body}");
        assert!(
            body.ends_with(",\"errors\":[{\"code\":311,\"msg\":\"Request contains invalid parameters\"}]}"),
            "{body}"
        );
        // Pixel mode: the GIF, the error in X-Error only.
        let r = d.request(b"GET /event?c_a=%E9 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!((r.status, r.body.len(), r.header("x-error")), (200, 43, Some("311")));
        assert!(r.header("set-cookie").is_none());
        // In a form body too.
        let r = d.request(
            b"POST /event?d_rtbd=json HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\nc_b=%1",
        );
        assert_eq!(r.header("x-error"), Some("311"));
    });
}

#[test]
fn invalid_d_uuid_is_102_and_a_new_uuid() {
    each_driver(|d| {
        let r = d.request(b"GET /event?d_rtbd=json&d_uuid=123 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.header("x-error"), Some("102"));
        let body = r.body_str();
        assert!(body.contains("{\"code\":102,\"msg\":\"Invalid AAM ID passed in request 123\"}"), "{body}");
        let cookie = r.header("set-cookie").unwrap();
        assert!(body.contains(&format!("\"uuid\":\"{}\"", &cookie[7..45])), "{body} {cookie}");
    });
}

#[test]
fn escaped_control_values_are_decoded() {
    each_driver(|d| {
        let r = d.request(b"GET /event?d%5Frtbd=%6Ason HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.header("content-type"), Some("application/json"));
    });
}

#[test]
fn unknown_host_is_error_1_and_invalid() {
    each_driver(|d| {
        let r = d.request(b"GET /event?d_rtbd=json HTTP/1.1\r\nHost: Nowhere.Example:8080\r\n\r\n");
        assert_eq!((r.status, r.header("x-error")), (200, Some("1")));
        assert!(r.header("set-cookie").is_none());
        let body = r.body_str();
        assert!(body.starts_with("{\"stuff\":[],\"dcs_region\":7,\"tid\":\""), "{body}");
        assert!(
            body.ends_with(
                ",\"errors\":[{\"code\":1,\"msg\":\"Could not find config for hostname: Nowhere.Example\"}]}"
            ),
            "{body}"
        );
        // Host names match case-insensitively and without the port.
        let r = d.request(b"GET /event HTTP/1.1\r\nHost: LOCALHOST:9\r\n\r\n");
        assert!(r.header("x-error").is_none());
        assert!(r.header("set-cookie").is_some());
    });
}

#[test]
fn missing_host_in_http10_is_error_100() {
    each_driver(|d| {
        let r = d.request(b"GET /event?d_rtbd=json HTTP/1.0\r\n\r\n");
        assert_eq!(r.header("x-error"), Some("100"));
        assert!(r
            .body_str()
            .contains("{\"code\":100,\"msg\":\"Could not retrieve host name for the request\"}"));
        assert!(!r.body_str().contains("\"uuid\""));
    });
}

#[test]
fn unknown_org_is_error_2_and_bad_ecid_is_101() {
    each_driver(|d| {
        let r =
            d.request(b"GET /event?d_rtbd=json&d_orgid=NOPE%40AdobeOrg HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.header("x-error"), Some("2"));
        let body = r.body_str();
        assert!(body.contains("{\"code\":2,\"msg\":\"Invalid d_orgid value (could not find a config for this org id): NOPE@AdobeOrg\"}"), "{body}");
        assert!(!body.contains("\"uuid\"") && r.header("set-cookie").is_none());
        // A known org is fine; a bad d_mid is reported and ignored (the request stays valid).
        let r = d.request(
            b"GET /event?d_rtbd=json&d_orgid=ACME%40AdobeOrg&d_mid=12x HTTP/1.1\r\nHost: localhost\r\n\r\n",
        );
        assert_eq!(r.header("x-error"), Some("101"));
        let body = r.body_str();
        assert!(
            body.contains("\"uuid\"")
                && body.contains("{\"code\":101,\"msg\":\"Invalid Experience Cloud id passed in 12x\"}"),
            "{body}"
        );
        // Errors keep the order they arose in.
        let r = d.request(b"GET /event?d_rtbd=json&d_uuid=1&d_mid=2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.header("x-error"), Some("102,101"));
    });
}

#[test]
fn declared_ids_are_mapped_and_select_the_profile() {
    each_driver(|d| {
        let known = "00000000000000000000000000000000004711";
        let raw = format!("GET /event?d_rtbd=json&d_cid=1%01crm-user-7 HTTP/1.1\r\nHost: localhost\r\nCookie: demdex={known}\r\n\r\n");
        let r = d.request(raw.as_bytes());
        assert!(r.header("x-error").is_none(), "{r:?}");
        assert!(r.body_str().contains(&format!("\"uuid\":\"{known}\"")));
        // Without a cookie, the declared ID (by DPID or integration code) selects that profile.
        for q in
            ["d_cid=1%01crm-user-7", "d_cid_ic=acme-crm%01crm-user-7%011", "d_dpid=1&d_dpuuid=crm-user-7"]
        {
            let raw = format!("GET /event?d_rtbd=json&{q} HTTP/1.1\r\nHost: localhost\r\n\r\n");
            let r = d.request(raw.as_bytes());
            assert!(r.body_str().contains(&format!("\"uuid\":\"{known}\"")), "{q}: {}", r.body_str());
            assert!(r.header("set-cookie").unwrap().starts_with(&format!("demdex={known};")));
        }
        assert!(d.metric("dcsd_profiles") >= 1);
        // Unknown data source: 300, and as it is the only one, 104; a new profile.
        let r = d.request(b"GET /event?d_rtbd=json&d_cid=999%01x HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(r.header("x-error"), Some("300,104"));
        assert!(
            r.body_str().contains("{\"code\":300,\"msg\":\"Invalid customer id x\"}"),
            "{}",
            r.body_str()
        );
        assert!(!r.body_str().contains(known));
    });
}
