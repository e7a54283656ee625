//! Request-head parsing over httparse, with the limits and smuggling defences of docs/http-api.md §1.
//!
//! [`parse_head`] is called on the bytes buffered so far and answers `Partial` (read more),
//! `Complete(Head)` or an [`HttpError`] that carries the status. A [`Head`] holds no borrows:
//! it records [`Span`]s into the buffer, so the connection keeps ownership of its buffer and
//! the head can be passed around freely. Only the headers the daemon uses are indexed.
//!
//! Limits: the request target is checked against `max_uri_bytes` (414) and the header block
//! — the bytes after the request line, up to and including the blank line — against
//! `max_header_bytes` (431), both while the head is still arriving, so a slow or endless
//! head is refused as soon as it crosses a limit.

use crate::error::{BadRequest, HttpError};

use super::framing::{has_token, is_chunked, merge_content_length};
use super::MAX_HEADERS;

/// A byte range `[start, end)` into the connection's read buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// Request methods the daemon knows; anything else is answered 405.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `OPTIONS`
    Options,
}

/// HTTP version of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: keep-alive only on request.
    Http10,
    /// HTTP/1.1: keep-alive by default.
    Http11,
}

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete, validated request head.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    /// Method.
    pub method: Method,
    /// Version.
    pub version: Version,
    /// Path (origin form; for an absolute-form target the part after the authority).
    pub path: Span,
    /// Query without the `?`, if any.
    pub query: Option<Span>,
    /// Bytes of the head, blank line included.
    pub head_len: usize,
    /// Body framing.
    pub body: Body,
    /// Whether the client asked to keep the connection open (version default + `Connection`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on a request with a body.
    pub expect_continue: bool,
    /// `Host` value (or the authority of an absolute-form target).
    pub host: Option<Span>,
    /// `Cookie` (the first one).
    pub cookie: Option<Span>,
    /// `Origin`.
    pub origin: Option<Span>,
    /// `Access-Control-Request-Method`.
    pub ac_request_method: Option<Span>,
    /// `Content-Type`.
    pub content_type: Option<Span>,
    /// `User-Agent`.
    pub user_agent: Option<Span>,
    /// `Referer`.
    pub referer: Option<Span>,
    /// `Accept-Language`.
    pub accept_language: Option<Span>,
    /// `Date`.
    pub date: Option<Span>,
    /// `X-DCS-Token`: the server token that lets a request name a profile with `d_uuid`
    /// (docs/http-api.md §5.1).
    pub dcs_token: Option<Span>,
}

/// Outcome of [`parse_head`].
#[derive(Clone, Copy, Debug)]
pub enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A complete head.
    Complete(Head),
}

/// The limits [`parse_head`] enforces (from `[limits]`).
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Longest request target, bytes.
    pub max_uri_bytes: usize,
    /// Largest header block, bytes.
    pub max_header_bytes: usize,
    /// Largest body, bytes.
    pub max_body_bytes: usize,
}

/// Longest request line apart from the target: method, two spaces, `HTTP/1.1`, CRLF.
const REQUEST_LINE_SLACK: usize = 32;

// === impl Span ===

impl Span {
    /// The bytes of this span in `buf`.
    #[inline]
    pub fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize).unwrap_or_default()
    }

    /// Span of `part`, which must lie inside `buf`.
    fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
        Span { start: start as u32, end: (start + part.len()) as u32 }
    }

    /// A sub-span `[from, to)` relative to this span's start.
    fn sub(self, from: usize, to: usize) -> Span {
        Span { start: self.start + from as u32, end: self.start + to as u32 }
    }
}

// === impl HeadLimits ===

impl HeadLimits {
    /// The largest head these limits allow (request line + header block).
    pub fn max_head_bytes(&self) -> usize {
        self.max_uri_bytes + REQUEST_LINE_SLACK + self.max_header_bytes
    }
}

/// Parses the request head at the start of `buf`.
///
/// # Errors
/// The protocol error to answer (its status comes from [`crate::error::status_for`]).
pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Result<Parsed, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            check_partial(buf, limits)?;
            return Ok(Parsed::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
        Err(_) => return Err(HttpError::BadRequest(BadRequest::Syntax)),
    };
    let line_len = line_end(buf).unwrap_or(head_len);
    let target = req.path.unwrap_or_default();
    if target.len() > limits.max_uri_bytes {
        return Err(HttpError::UriTooLong);
    }
    if head_len - line_len > limits.max_header_bytes {
        return Err(HttpError::HeadersTooLarge);
    }
    let method = match req.method.unwrap_or_default() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        _ => return Err(HttpError::MethodNotAllowed),
    };
    let version = if req.version == Some(0) { Version::Http10 } else { Version::Http11 };
    let mut head = Head {
        method,
        version,
        path: Span::default(),
        query: None,
        head_len,
        body: Body::None,
        keep_alive: version == Version::Http11,
        expect_continue: false,
        host: None,
        cookie: None,
        origin: None,
        ac_request_method: None,
        content_type: None,
        user_agent: None,
        referer: None,
        accept_language: None,
        date: None,
        dcs_token: None,
    };
    read_headers(&mut head, buf, req.headers, limits)?;
    split_target(&mut head, buf, Span::of(buf, target.as_bytes()))?;
    if head.host.is_none() && version == Version::Http11 {
        return Err(HttpError::BadRequest(BadRequest::Host));
    }
    Ok(Parsed::Complete(head))
}

/// Limits that can be checked before the head is complete.
fn check_partial(buf: &[u8], limits: &HeadLimits) -> Result<(), HttpError> {
    match line_end(buf) {
        None if buf.len() > limits.max_uri_bytes + REQUEST_LINE_SLACK => Err(HttpError::UriTooLong),
        None => Ok(()),
        Some(n) => {
            let target_len = buf[..n].split(|&b| b == b' ').nth(1).map_or(0, <[u8]>::len);
            if target_len > limits.max_uri_bytes {
                Err(HttpError::UriTooLong)
            } else if buf.len() - n > limits.max_header_bytes {
                Err(HttpError::HeadersTooLarge)
            } else {
                Ok(())
            }
        }
    }
}

/// Length of the request line including its line ending, if it is complete.
fn line_end(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n').map(|i| i + 1)
}

/// Indexes the known headers and works out framing and keep-alive.
fn read_headers(
    head: &mut Head,
    buf: &[u8],
    headers: &[httparse::Header<'_>],
    limits: &HeadLimits,
) -> Result<(), HttpError> {
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0;
    for h in headers {
        let v = h.value;
        let name = h.name.as_bytes();
        let slot = match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts += 1;
                &mut head.host
            }
            6 if name.eq_ignore_ascii_case(b"cookie") => &mut head.cookie,
            6 if name.eq_ignore_ascii_case(b"origin") => &mut head.origin,
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                content_length = Some(
                    merge_content_length(content_length, v)
                        .ok_or(HttpError::BadRequest(BadRequest::ContentLength))?,
                );
                continue;
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if chunked || head.version == Version::Http10 || !is_chunked(v) {
                    return Err(HttpError::BadRequest(BadRequest::TransferEncoding));
                }
                chunked = true;
                continue;
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                if has_token(v, b"close") {
                    head.keep_alive = false;
                } else if has_token(v, b"keep-alive") {
                    head.keep_alive = true;
                }
                continue;
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                head.expect_continue = v.trim_ascii().eq_ignore_ascii_case(b"100-continue");
                continue;
            }
            12 if name.eq_ignore_ascii_case(b"content-type") => &mut head.content_type,
            10 if name.eq_ignore_ascii_case(b"user-agent") => &mut head.user_agent,
            7 if name.eq_ignore_ascii_case(b"referer") => &mut head.referer,
            15 if name.eq_ignore_ascii_case(b"accept-language") => &mut head.accept_language,
            4 if name.eq_ignore_ascii_case(b"date") => &mut head.date,
            11 if name.eq_ignore_ascii_case(b"x-dcs-token") => &mut head.dcs_token,
            29 if name.eq_ignore_ascii_case(b"access-control-request-method") => &mut head.ac_request_method,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(Span::of(buf, v.trim_ascii()));
        }
    }
    if hosts > 1 {
        return Err(HttpError::BadRequest(BadRequest::Host));
    }
    head.body = match (content_length, chunked) {
        (Some(_), true) => return Err(HttpError::BadRequest(BadRequest::ContentLengthAndTransferEncoding)),
        (None, true) => Body::Chunked,
        (Some(n), false) if n > limits.max_body_bytes as u64 => return Err(HttpError::BodyTooLarge),
        (Some(0), false) | (None, false) => Body::None,
        (Some(n), false) => Body::Length(n as usize),
    };
    if head.body == Body::None || head.version == Version::Http10 {
        head.expect_continue = false;
    }
    Ok(())
}

/// `host[:port]` or `[v6]:port` → the host part (docs/http-api.md §6.5: matched without the port).
pub fn host_without_port(h: &[u8]) -> &[u8] {
    if h.first() == Some(&b'[') {
        return h.iter().position(|&b| b == b']').map_or(h, |i| &h[..=i]);
    }
    h.iter().position(|&b| b == b':').map_or(h, |i| &h[..i])
}

/// Splits the target into path and query; absolute-form targets also give the host.
fn split_target(head: &mut Head, buf: &[u8], target: Span) -> Result<(), HttpError> {
    let bytes = target.get(buf);
    let mut path = target;
    if bytes.first() != Some(&b'/') {
        let scheme_len = if starts_with_ci(bytes, b"http://") {
            7
        } else if starts_with_ci(bytes, b"https://") {
            8
        } else if bytes == b"*" && head.method == Method::Options {
            head.path = target;
            return Ok(());
        } else {
            return Err(HttpError::BadRequest(BadRequest::Target));
        };
        let rest = &bytes[scheme_len..];
        let auth_len = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
        if auth_len == 0 {
            return Err(HttpError::BadRequest(BadRequest::Target));
        }
        // RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host.
        head.host = Some(target.sub(scheme_len, scheme_len + auth_len));
        path = target.sub(scheme_len + auth_len, bytes.len());
    }
    let p = path.get(buf);
    match p.iter().position(|&b| b == b'?') {
        Some(q) => {
            head.path = path.sub(0, q);
            head.query = Some(path.sub(q + 1, p.len()));
        }
        None => head.path = path,
    }
    Ok(())
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests;
