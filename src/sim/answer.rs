//! The bytes of the simulator's answers: response heads, the segments body and the deliberately
//! broken bodies of the failure modes. Pure: everything appends to the connection's write
//! buffer; the `Date` line comes from [`crate::http::response`].

use std::time::Instant;

use crate::http::response::{push_conn_header, push_content_length, push_date_header, push_u64, ConnHeader};

/// Size of the `oversize` body: over dcsd's 64 KiB cap on partner answers (protocol §3).
pub const OVERSIZE_BYTES: usize = 70 * 1024;

/// The `garbage` body: served as `application/json`, but not JSON.
pub const GARBAGE_BODY: &[u8] = b"<html>this is not JSON {\"segments\": [\"oops\"\n";

/// The `wrong-shape` body: JSON, but `segments` is not a list.
pub const WRONG_SHAPE_BODY: &[u8] = br#"{"segments": 5}"#;

/// `Content-Type` of the answers.
pub const JSON: &str = "application/json";
/// `Content-Type` of the plain-text answers (errors, `status:CODE`).
pub const TEXT: &str = "text/plain; charset=utf-8";

/// One response head (and body) to write.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, when there is a body.
    pub content_type: Option<&'a str>,
    /// The body (its length goes into `Content-Length`).
    pub body: &'a [u8],
    /// What the head says about the connection.
    pub conn: ConnHeader,
    /// A `HEAD` request: the body's length is announced but the body is not sent.
    pub head_only: bool,
}

// === impl Answer ===

impl Answer<'_> {
    /// Appends the head and, unless `head_only`, the body.
    pub fn push(&self, out: &mut Vec<u8>, now: Instant) {
        self.push_head(out, now);
        if !self.head_only {
            out.extend_from_slice(self.body);
        }
    }

    /// Appends the head only (`slow-body` sends the body itself).
    pub fn push_head(&self, out: &mut Vec<u8>, now: Instant) {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_u64(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\nServer: dcsd-partner-sim\r\n");
        push_date_header(out, now);
        // RFC 9110 §8.6: no Content-Length in a 204.
        if self.status != 204 {
            if let Some(ct) = self.content_type {
                out.extend_from_slice(b"Content-Type: ");
                out.extend_from_slice(ct.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            push_content_length(out, self.body.len());
        }
        push_conn_header(out, self.conn);
        out.extend_from_slice(b"\r\n");
    }
}

/// `{"segments":[…]}` with `"ttl":S` when given; strings JSON-escaped.
pub fn segments_body(segments: &[String], ttl_s: Option<u64>) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + segments.iter().map(|s| s.len() + 3).sum::<usize>());
    b.extend_from_slice(b"{\"segments\":[");
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        crate::json::push_string(&mut b, s);
    }
    b.push(b']');
    if let Some(ttl) = ttl_s {
        b.extend_from_slice(b",\"ttl\":");
        push_u64(&mut b, ttl);
    }
    b.push(b'}');
    b
}

/// A syntactically valid `{"segments":["xxx…"]}` of exactly [`OVERSIZE_BYTES`].
pub fn oversize_body() -> Vec<u8> {
    const OPEN: &[u8] = b"{\"segments\":[\"";
    const CLOSE: &[u8] = b"\"]}";
    let mut b = Vec::with_capacity(OVERSIZE_BYTES);
    b.extend_from_slice(OPEN);
    b.resize(OVERSIZE_BYTES - CLOSE.len(), b'x');
    b.extend_from_slice(CLOSE);
    b
}

/// The short body of a `status:CODE` answer.
pub fn status_body(status: u16) -> Vec<u8> {
    format!("dcsd-partner-sim: simulated status {status}\n").into_bytes()
}

/// Reason phrase: the codec's table plus the statuses a simulated partner is likely to send.
fn reason(status: u16) -> &'static str {
    match status {
        201 => "Created",
        202 => "Accepted",
        301 => "Moved Permanently",
        304 => "Not Modified",
        401 => "Unauthorized",
        403 => "Forbidden",
        410 => "Gone",
        418 => "I'm a teapot",
        422 => "Unprocessable Content",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => match crate::http::response::reason(status) {
            "Unknown" => "Status",
            r => r,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let segs = vec!["a\"b".to_string(), "c".to_string()];
        assert_eq!(segments_body(&segs, None), br#"{"segments":["a\"b","c"]}"#);
        assert_eq!(segments_body(&[], Some(60)), br#"{"segments":[],"ttl":60}"#);
        let big = oversize_body();
        assert_eq!(big.len(), OVERSIZE_BYTES);
        assert!(big.starts_with(b"{\"segments\":[\"xx") && big.ends_with(b"xx\"]}"));
    }

    #[test]
    fn heads() {
        let mut out = Vec::new();
        let a = Answer {
            status: 502,
            content_type: Some(TEXT),
            body: b"x",
            conn: ConnHeader::Close,
            head_only: false,
        };
        a.push(&mut out, Instant::now());
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 502 Bad Gateway\r\nServer: dcsd-partner-sim\r\nDate: "), "{s}");
        assert!(s.ends_with("Content-Length: 1\r\nConnection: close\r\n\r\nx"), "{s}");
        let mut out = Vec::new();
        Answer { status: 204, content_type: Some(JSON), body: b"", conn: ConnHeader::None, head_only: false }
            .push(&mut out, Instant::now());
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains("Content-Length") && s.ends_with("GMT\r\n\r\n"), "{s}");
        assert_eq!(reason(599), "Status");
    }
}
