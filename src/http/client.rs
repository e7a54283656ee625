//! The client role of the HTTP/1.1 codec (the partner side): response heads through
//! `httparse::Response`, bodies framed by `Content-Length`, chunked or connection close, no
//! body for 1xx/204/304 or a `HEAD` request, a cap on head and body, and one request/response
//! [`exchange`] on a connection under a deadline.
//!
//! Framing rules are the server role's ([`super::framing`], [`super::chunked`]); what differs is
//! whose fault a violation is: here every failure is the partner's, a [`ClientError`] that the
//! caller counts as an outcome and never turns into a status for the browser.
//!
//! # Reuse
//! [`Response::reusable`] is true only when the answer was complete, the partner kept the
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
#[derive(Clone, Copy, Debug)]
pub struct ClientLimits {
    /// Largest response head, bytes.
    pub max_head_bytes: usize,
    /// Largest (decoded) body, bytes.
    pub max_body_bytes: usize,
}

/// A complete answer.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body, decoded.
    pub body: Vec<u8>,
    /// The connection may carry another exchange.
    pub reusable: bool,
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

/// Writes `request` on `stream` and reads one complete answer, all before `deadline`. `buf` is
/// a reusable read buffer (cleared first; returned with the result, so its capacity survives).
///
/// # Errors
/// Any [`ClientError`]; the connection must then be closed.
pub async fn exchange<S: Transport>(
    stream: &mut S,
    request: Vec<u8>,
    buf: Vec<u8>,
    head_request: bool,
    deadline: Instant,
    limits: &ClientLimits,
) -> (Result<Response, ClientError>, Vec<u8>, Vec<u8>) {
    let at = Deadline::from_std(deadline);
    let request = match monoio::time::timeout_at(at, stream.send_all(request)).await {
        Ok((Ok(_), req)) => req,
        Ok((Err(_), req)) => return (Err(ClientError::Write), req, buf),
        Err(_) => return (Err(ClientError::Timeout), Vec::new(), buf),
    };
    let mut r = Reader { buf, body: Vec::new(), limits };
    r.buf.clear();
    let res = r.read_response(stream, head_request, at).await;
    (res.map(|(status, reusable)| Response { status, body: r.body, reusable }), request, r.buf)
}

/// The state of reading one answer.
struct Reader<'l> {
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    /// The decoded body.
    body: Vec<u8>,
    limits: &'l ClientLimits,
}

// === impl Reader ===

impl Reader<'_> {
    /// Reads a head (skipping interim 1xx heads), then the body; returns the status and
    /// whether the connection is reusable.
    async fn read_response<S: Transport>(
        &mut self,
        stream: &mut S,
        head_request: bool,
        at: Deadline,
    ) -> Result<(u16, bool), ClientError> {
        let head = loop {
            match parse_response_head(&self.buf, head_request, self.limits)? {
                Some(h) if (100..200).contains(&h.status) => {
                    self.buf.drain(..h.head_len);
                }
                Some(h) => break h,
                None => {
                    if !self.fill(stream, at).await? {
                        return Err(ClientError::Closed);
                    }
                }
            }
        };
        self.buf.drain(..head.head_len);
        let complete = match head.framing {
            Framing::Empty => true,
            Framing::Length(n) => self.read_length(stream, n, at).await?,
            Framing::Chunked => self.read_chunked(stream, at).await?,
            Framing::UntilClose => self.read_to_close(stream, at).await?,
        };
        // Bytes after the answer mean a confused or hostile partner: never reuse.
        Ok((head.status, complete && head.keep_alive && self.buf.is_empty()))
    }

    async fn read_length<S: Transport>(
        &mut self,
        s: &mut S,
        n: usize,
        at: Deadline,
    ) -> Result<bool, ClientError> {
        while self.buf.len() < n {
            if !self.fill(s, at).await? {
                return Err(ClientError::Closed);
            }
        }
        self.body.extend(self.buf.drain(..n));
        Ok(true)
    }

    async fn read_chunked<S: Transport>(&mut self, s: &mut S, at: Deadline) -> Result<bool, ClientError> {
        let mut dec = ChunkedDecoder::default();
        let max = self.limits.max_body_bytes;
        loop {
            match dec.decode(&self.buf, &mut self.body, max, self.limits.max_head_bytes) {
                Ok(Some(n)) => {
                    self.buf.drain(..n);
                    return Ok(true);
                }
                Ok(None) => {}
                Err(crate::error::HttpError::BodyTooLarge) => return Err(ClientError::TooLarge),
                Err(_) => return Err(ClientError::BadFraming),
            }
            if !self.fill(s, at).await? {
                return Err(ClientError::Closed);
            }
        }
    }

    async fn read_to_close<S: Transport>(&mut self, s: &mut S, at: Deadline) -> Result<bool, ClientError> {
        loop {
            if self.buf.len() > self.limits.max_body_bytes {
                return Err(ClientError::TooLarge);
            }
            if !self.fill(s, at).await? {
                self.body.append(&mut self.buf);
                return Ok(false);
            }
        }
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    async fn fill<S: Transport>(&mut self, s: &mut S, at: Deadline) -> Result<bool, ClientError> {
        const READ_BYTES: usize = 4096;
        let cap = self.limits.max_head_bytes + self.limits.max_body_bytes + READ_BYTES;
        if self.buf.len() >= cap {
            return Err(ClientError::TooLarge);
        }
        self.buf.reserve(READ_BYTES);
        let buf = std::mem::take(&mut self.buf);
        match monoio::time::timeout_at(at, s.read_spare(buf)).await {
            Ok((Ok(0), buf)) => {
                self.buf = buf;
                Ok(false)
            }
            Ok((Ok(_), buf)) => {
                self.buf = buf;
                Ok(true)
            }
            Ok((Err(_), _)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests;
