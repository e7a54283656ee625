use super::*;

const LIMITS: HeadLimits = HeadLimits { max_uri_bytes: 64, max_header_bytes: 256, max_body_bytes: 100 };

fn complete(raw: &[u8]) -> Head {
    match parse_head(raw, &LIMITS) {
        Ok(Parsed::Complete(h)) => h,
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn error(raw: &[u8]) -> HttpError {
    match parse_head(raw, &LIMITS) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn simple_get() {
    let raw = b"GET /event?a=1&b=2 HTTP/1.1\r\nHost: x.example:80\r\nCookie: demdex=1\r\n\r\n";
    let h = complete(raw);
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.path.get(raw), b"/event");
    assert_eq!(h.query.unwrap().get(raw), b"a=1&b=2");
    assert_eq!(h.host.unwrap().get(raw), b"x.example:80");
    assert_eq!(h.cookie.unwrap().get(raw), b"demdex=1");
    assert!(h.keep_alive);
    assert_eq!(h.body, Body::None);
    assert_eq!(h.head_len, raw.len());
}

#[test]
fn partial_heads_ask_for_more() {
    let raw = b"GET /event HTTP/1.1\r\nHost: x\r\n";
    assert!(matches!(parse_head(raw, &LIMITS), Ok(Parsed::Partial)));
    assert!(matches!(parse_head(b"GE", &LIMITS), Ok(Parsed::Partial)));
}

#[test]
fn http10_keep_alive_on_request_only() {
    let h = complete(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h.version, Version::Http10);
    assert!(!h.keep_alive);
    assert!(h.host.is_none());
    let h = complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.keep_alive);
    let h = complete(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive);
}

#[test]
fn missing_or_duplicate_host_is_400() {
    assert_eq!(error(b"GET / HTTP/1.1\r\n\r\n"), HttpError::BadRequest(BadRequest::Host));
    assert_eq!(
        error(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        HttpError::BadRequest(BadRequest::Host)
    );
}

#[test]
fn framing_defences() {
    let e = error(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e, HttpError::BadRequest(BadRequest::ContentLengthAndTransferEncoding));
    let e = error(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
    assert_eq!(e, HttpError::BadRequest(BadRequest::ContentLength));
    let e = error(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n");
    assert_eq!(e, HttpError::BadRequest(BadRequest::ContentLength));
    let e = error(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n");
    assert_eq!(e, HttpError::BadRequest(BadRequest::ContentLength));
    let e = error(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(e, HttpError::BadRequest(BadRequest::TransferEncoding));
    let e = error(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e, HttpError::BadRequest(BadRequest::TransferEncoding));
    // Identical duplicates are one value (RFC 9110 §8.6).
    let h = complete(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(h.body, Body::Length(3));
    let h = complete(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(h.body, Body::Chunked);
}

#[test]
fn obs_fold_is_400() {
    let e = error(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n");
    assert_eq!(e, HttpError::BadRequest(BadRequest::Syntax));
}

#[test]
fn malformed_lines_are_400() {
    assert_eq!(error(b"GET\r\n\r\n"), HttpError::BadRequest(BadRequest::Syntax));
    assert_eq!(error(b"GET / HTTP/1.1\r\nHost a\r\n\r\n"), HttpError::BadRequest(BadRequest::Syntax));
    assert_eq!(error(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), HttpError::BadRequest(BadRequest::Syntax));
    assert_eq!(error(b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), HttpError::BadRequest(BadRequest::Target));
}

#[test]
fn limits() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(64));
    assert_eq!(error(long.as_bytes()), HttpError::UriTooLong);
    // Detected before the head is complete, and before the line is complete.
    let partial = format!("GET /{} HTTP/1.1\r\n", "a".repeat(64));
    assert_eq!(error(partial.as_bytes()), HttpError::UriTooLong);
    let no_line = format!("GET /{}", "a".repeat(200));
    assert_eq!(error(no_line.as_bytes()), HttpError::UriTooLong);
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "b".repeat(300));
    assert_eq!(error(big.as_bytes()), HttpError::HeadersTooLarge);
    let big_partial = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "b".repeat(300));
    assert_eq!(error(big_partial.as_bytes()), HttpError::HeadersTooLarge);
    let many: String = (0..65).map(|i| format!("h{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    let roomy = HeadLimits { max_header_bytes: 4096, ..LIMITS };
    assert_eq!(parse_head(many.as_bytes(), &roomy).unwrap_err(), HttpError::HeadersTooLarge);
    let e = error(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n");
    assert_eq!(e, HttpError::BodyTooLarge);
}

#[test]
fn methods() {
    assert_eq!(error(b"PUT / HTTP/1.1\r\nHost: a\r\n\r\n"), HttpError::MethodNotAllowed);
    assert_eq!(complete(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").method, Method::Head);
    let h = complete(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.method, Method::Options);
}

#[test]
fn absolute_form_sets_host() {
    let raw = b"GET http://dcs.example:8080/event?x=1 HTTP/1.1\r\nHost: other\r\n\r\n";
    let h = complete(raw);
    assert_eq!(h.host.unwrap().get(raw), b"dcs.example:8080");
    assert_eq!(h.path.get(raw), b"/event");
    assert_eq!(h.query.unwrap().get(raw), b"x=1");
}

#[test]
fn expect_continue_only_with_a_body() {
    let h = complete(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert!(h.expect_continue);
    let h = complete(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
    assert!(!h.expect_continue);
}

#[test]
fn tokens() {
    assert!(has_token(b"keep-alive, Upgrade", b"upgrade"));
    assert!(!has_token(b"keep-alive-ish", b"keep-alive"));
}

#[test]
fn the_server_token_header_is_indexed_first_wins() {
    let raw =
        b"GET /event HTTP/1.1\r\nHost: x\r\nX-DCS-Token:  s3cret-0123456789 \r\nx-dcs-token: other\r\n\r\n";
    assert_eq!(complete(raw).dcs_token.unwrap().get(raw), b"s3cret-0123456789");
    assert!(complete(b"GET /event HTTP/1.1\r\nHost: x\r\nX-DCS-Tokens: a\r\n\r\n").dcs_token.is_none());
}

#[test]
fn ports_are_stripped() {
    assert_eq!(host_without_port(b"acme.example:8080"), b"acme.example");
    assert_eq!(host_without_port(b"acme.example"), b"acme.example");
    assert_eq!(host_without_port(b"[::1]:80"), b"[::1]");
    assert_eq!(host_without_port(b"[::1"), b"[::1");
}
