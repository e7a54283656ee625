//! The client role of the HTTP/1.1 codec (the partner side): response heads through
//! `httparse::Response`, bodies framed by `Content-Length`, chunked or connection close, no
//! body for 1xx/204/304 or a `HEAD` request, a cap on head and body, and one request/response
//! [`exchange`] on a connection (any [`Transport`]: plain TCP, or TLS for `https://`) under a
//! deadline.
//!
//! Framing rules are the server role's ([`super::framing`], [`super::chunked`]); what differs is
//! whose fault a violation is: here every failure is the partner's, a [`ClientError`] that the
//! caller counts as an outcome and never turns into a status for the browser.
//!
//! # Reuse
//! [`Decoded::reusable`] is true only when the answer was complete, the partner kept the
//! connection alive, and nothing followed the answer in the buffer. A connection whose
//! exchange failed, timed out or was left partly read must be closed, never reused: io_uring
//! cancellation is best-effort, and a dirty connection would hand one user's answer to another.
//!
//! # Cancel safety
//! Reads and writes move their buffer into the IO operation; when the deadline wins the race the
//! operation is cancelled and the buffer dropped with it. The caller then drops the connection.

use std::fmt;
use std::time::Instant;

use monoio::time::Instant as Deadline;

use super::chunked::ChunkedDecoder;
use super::framing::{has_token, is_chunked, merge_content_length};
use super::io::Transport;
use super::MAX_HEADERS;

/// Why a partner exchange failed. `Copy`, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The connection could not be opened.
    Connect,
    /// Writing the request failed (reset, closed).
    Write,
    /// Reading failed (reset) or the partner closed before the answer was complete.
    Closed,
    /// The deadline passed.
    Timeout,
    /// The response head is malformed, or carries more than the allowed headers or bytes.
    BadHead,
    /// The body's framing is broken or contradictory (`Content-Length` with
    /// `Transfer-Encoding`, two lengths, an unknown coding, bad chunks).
    BadFraming,
    /// The body is larger than allowed.
    TooLarge,
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304, an answer to `HEAD`, or `Content-Length: 0`).
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the partner closes the connection.
    UntilClose,
}

/// A complete, validated response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub head_len: usize,
    /// Body framing.
    pub framing: Framing,
    /// Whether the partner lets the connection be reused (version default + `Connection`).
    pub keep_alive: bool,
}

/// Limits of one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Largest response head, bytes.
    pub max_head_bytes: usize,
    /// Largest (decoded) body, bytes.
    pub max_body_bytes: usize,
}

// === impl ClientError ===

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientError::Connect => "connect failed",
            ClientError::Write => "write failed",
            ClientError::Closed => "connection closed or reset before the answer was complete",
            ClientError::Timeout => "timed out",
            ClientError::BadHead => "malformed response head",
            ClientError::BadFraming => "malformed response framing",
            ClientError::TooLarge => "response too large",
        })
    }
}

impl std::error::Error for ClientError {}

/// Parses the response head at the start of `buf`: `Ok(None)` while incomplete. Interim 1xx
/// heads are reported with [`Framing::Empty`]; the caller skips them.
///
/// # Errors
/// [`ClientError::BadHead`] for a malformed head or one past `max_head_bytes`;
/// [`ClientError::BadFraming`] / [`ClientError::TooLarge`] for its framing headers.
pub fn parse_response_head(
    buf: &[u8],
    head_request: bool,
    limits: &ClientLimits,
) -> Result<Option<ResponseHead>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes => n,
        Ok(httparse::Status::Partial) if buf.len() <= limits.max_head_bytes => return Ok(None),
        _ => return Err(ClientError::BadHead),
    };
    let status = resp.code.unwrap_or_default();
    let mut keep_alive = resp.version == Some(1);
    let (mut length, mut chunked) = (None, false);
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            length = Some(merge_content_length(length, h.value).ok_or(ClientError::BadFraming)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || !is_chunked(h.value) {
                return Err(ClientError::BadFraming);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(h.value, b"close") {
                keep_alive = false;
            } else if has_token(h.value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = match (length, chunked) {
        _ if no_body => Framing::Empty,
        (Some(_), true) => return Err(ClientError::BadFraming),
        (None, true) => Framing::Chunked,
        (Some(n), false) if n > limits.max_body_bytes as u64 => return Err(ClientError::TooLarge),
        (Some(0), false) => Framing::Empty,
        (Some(n), false) => Framing::Length(n as usize),
        (None, false) => {
            keep_alive = false;
            Framing::UntilClose
        }
    };
    Ok(Some(ResponseHead { status, head_len, framing, keep_alive }))
}

/// An incremental response reader without IO: feed it every byte read so far, it says when
/// the answer is complete. Interim 1xx heads are skipped.
#[derive(Debug)]
pub struct ResponseDecoder {
    head_request: bool,
    limits: ClientLimits,
    /// The final head, once parsed, and where its body starts in the fed bytes.
    head: Option<(ResponseHead, usize)>,
    /// Bytes of interim heads skipped so far.
    skipped: usize,
    chunked: ChunkedDecoder,
    body: Vec<u8>,
}

/// A complete answer, as decoded.
#[derive(Debug)]
pub struct Decoded {
    /// Status code.
    pub status: u16,
    /// The body, decoded.
    pub body: Vec<u8>,
    /// The partner kept the connection alive and nothing followed the answer.
    pub reusable: bool,
}

// === impl ResponseDecoder ===

impl ResponseDecoder {
    /// A decoder for the answer to one request (`head_request`: it was a `HEAD`).
    pub fn new(head_request: bool, limits: ClientLimits) -> ResponseDecoder {
        ResponseDecoder {
            head_request,
            limits,
            head: None,
            skipped: 0,
            chunked: ChunkedDecoder::default(),
            body: Vec::new(),
        }
    }

    /// Decodes `buf`, every byte read on the connection so far; `eof`: the partner closed
    /// after them. `Ok(None)`: read more.
    ///
    /// # Errors
    /// Any [`ClientError`] but `Connect`, `Write` and `Timeout`; `Closed` when the partner
    /// closed before the answer was complete.
    pub fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Option<Decoded>, ClientError> {
        let (head, start) = loop {
            if let Some(h) = self.head {
                break h;
            }
            match parse_response_head(&buf[self.skipped..], self.head_request, &self.limits)? {
                Some(h) if (100..200).contains(&h.status) => self.skipped += h.head_len,
                Some(h) => self.head = Some((h, self.skipped + h.head_len)),
                None if eof => return Err(ClientError::Closed),
                None => return Ok(None),
            }
        };
        let rest = &buf[start..];
        let (used, clean_end) = match head.framing {
            Framing::Empty => (0, true),
            Framing::Length(n) if rest.len() >= n => (n, true),
            Framing::Length(_) if eof => return Err(ClientError::Closed),
            Framing::Length(_) => return Ok(None),
            Framing::Chunked => {
                let max = self.limits.max_body_bytes;
                match self.chunked.decode(rest, &mut self.body, max, self.limits.max_head_bytes) {
                    Ok(Some(n)) => (n, true),
                    Ok(None) if eof => return Err(ClientError::Closed),
                    Ok(None) => return Ok(None),
                    Err(crate::error::HttpError::BodyTooLarge) => return Err(ClientError::TooLarge),
                    Err(_) => return Err(ClientError::BadFraming),
                }
            }
            Framing::UntilClose if rest.len() > self.limits.max_body_bytes => {
                return Err(ClientError::TooLarge)
            }
            Framing::UntilClose if eof => (rest.len(), false),
            Framing::UntilClose => return Ok(None),
        };
        if head.framing != Framing::Chunked {
            self.body.extend_from_slice(&rest[..used]);
        }
        // Bytes after the answer mean a confused or hostile partner: never reuse.
        let reusable = clean_end && head.keep_alive && !eof && rest.len() == used;
        Ok(Some(Decoded { status: head.status, body: std::mem::take(&mut self.body), reusable }))
    }
}

/// Writes `request` on `stream` and reads one complete answer, all before `deadline`.
///
/// # Errors
/// Any [`ClientError`]; the connection must then be closed.
pub async fn exchange<S: Transport>(
    stream: &mut S,
    request: Vec<u8>,
    head_request: bool,
    deadline: Instant,
    limits: &ClientLimits,
) -> Result<Decoded, ClientError> {
    const READ_BYTES: usize = 4096;
    let at = Deadline::from_std(deadline);
    match monoio::time::timeout_at(at, stream.send_all(request)).await {
        Ok((Ok(_), _)) => {}
        Ok((Err(_), _)) => return Err(ClientError::Write),
        Err(_) => return Err(ClientError::Timeout),
    }
    let mut dec = ResponseDecoder::new(head_request, *limits);
    let cap = limits.max_head_bytes + limits.max_body_bytes + READ_BYTES;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BYTES);
    loop {
        if buf.len() >= cap {
            return Err(ClientError::TooLarge);
        }
        buf.reserve(READ_BYTES);
        let (n, read) = match monoio::time::timeout_at(at, stream.read_spare(buf)).await {
            Ok((Ok(n), read)) => (n, read),
            Ok((Err(_), _)) => return Err(ClientError::Closed),
            Err(_) => return Err(ClientError::Timeout),
        };
        buf = read;
        if let Some(done) = dec.decode(&buf, n == 0)? {
            return Ok(done);
        }
    }
}

#[cfg(test)]
mod tests;
