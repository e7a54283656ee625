//! One simulator connection: read, frame each request with the crate's codec
//! ([`parse_head`], [`ChunkedDecoder`]), and answer it by its mode, in order.
//!
//! * Pipelining: every complete request already buffered is answered in order before the next
//!   read; answers without a delay go out together in one write. A delay, `slow-body`, `hang`
//!   and `reset` first send what is buffered, so earlier answers are never held back.
//! * Delays count from when the request's bytes arrived (the read that completed it), or, for
//!   a pipelined request, from when the one before it was answered.
//! * Bad input: a malformed head or body gets its status (400, 413, 414, 431, …) with a plain
//!   text reason, and the connection closes. There are no time-outs: a test tool waits as
//!   long as its client does.
//!
//! Per-thread: one task per connection; the read and write buffers are owned by the task.
//!
//! # Cancel safety
//! Reads and writes move their buffer into the io_uring operation; when the simulator stops,
//! the task is dropped mid-operation, which cancels it and drops the buffer with it.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rand::rngs::StdRng;
use rand::Rng;

use crate::http::chunked::ChunkedDecoder;
use crate::http::response::ConnHeader;
use crate::http::{parse_head, Body, Head, HeadLimits, Method, Parsed, Version};

use super::answer::{self, Answer, JSON, TEXT};
use super::mode::{Mode, REJECTED};
use super::plan::{user_key, Overrides};
use super::segments::segments_for;
use super::state::{OpenGuard, Shared};
use super::timer;

/// One simulator thread's state, shared by its connection tasks.
pub struct Worker {
    /// State shared with the other threads.
    pub shared: Arc<Shared>,
    /// Delay samples and fail-rate draws; seeded from `--seed` and the thread number.
    pub rng: RefCell<StdRng>,
    /// Whether delays may use the timerfd (io_uring runtimes only).
    pub precise: bool,
    /// Connection tasks alive on this thread (the thread waits for them when stopping).
    pub tasks: Cell<usize>,
}

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Head limits: generous, since partners' URL templates and headers are the test's business.
const LIMITS: HeadLimits =
    HeadLimits { max_uri_bytes: 16 * 1024, max_header_bytes: 32 * 1024, max_body_bytes: MAX_BODY_BYTES };

/// Framing bytes allowed in a chunked body (chunk size lines, extensions, trailers).
const MAX_FRAMING_BYTES: usize = 64 * 1024;

/// Bytes a read asks for at least.
const READ_CHUNK: usize = 8192;

/// A connection's IO side and per-connection counters.
struct Conn {
    stream: TcpStream,
    /// Answers not yet written.
    out: Vec<u8>,
    /// Number in the records.
    id: u64,
    /// Partner requests seen on this connection (for `close-after:N`).
    served: u32,
    /// Set at the first partner request: the connection counts in the stats until it closes.
    open: Option<OpenGuard>,
}

/// A complete request, borrowed from the connection's buffers.
struct Req<'a> {
    head: &'a Head,
    /// The request's bytes, head first.
    buf: &'a [u8],
    /// Its body (decoded if it was chunked).
    body: &'a [u8],
}

/// What the bytes buffered so far hold.
enum Frame {
    /// Not a complete request yet; `expect_continue` when the head is complete and asked for
    /// `100 Continue`.
    Need { expect_continue: bool },
    /// A protocol error: its status and reason; the connection closes after the answer.
    Error(u16, String),
    /// A complete request of `total` bytes; its body is `rbuf[range]` or the decoded body.
    Request { head: Head, total: usize, inline_body: Option<(usize, usize)> },
}

/// What the connection does after an answer.
enum Next {
    /// Serve the next request.
    Continue,
    /// Send what is buffered, then close.
    Close,
}

/// Serves one connection until the client closes it, an answer closes it, or an error.
pub async fn serve(stream: TcpStream, w: &Worker) {
    let _ = stream.set_nodelay(true);
    let mut c =
        Conn { stream, out: Vec::with_capacity(4096), id: w.shared.next_conn_id(), served: 0, open: None };
    let mut rbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut decoded = Vec::new();
    let mut continue_sent = false;
    let mut arrived = Instant::now();
    loop {
        let mut started = arrived;
        loop {
            match frame(&rbuf, &mut decoded) {
                Frame::Need { expect_continue } => {
                    if expect_continue && !continue_sent {
                        c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        continue_sent = true;
                    }
                    break;
                }
                Frame::Error(status, why) => {
                    c.open_once(w);
                    w.shared.count(REJECTED);
                    c.push_text(status, &why, ConnHeader::Close, false);
                    c.flush().await;
                    return;
                }
                Frame::Request { head, total, inline_body } => {
                    continue_sent = false;
                    let body = inline_body.map_or(&decoded[..], |(a, b)| &rbuf[a..b]);
                    let req = Req { head: &head, buf: &rbuf[..total], body };
                    let next = c.handle(w, &req, started).await;
                    rbuf.drain(..total);
                    started = Instant::now();
                    if let Next::Close = next {
                        c.flush().await;
                        return;
                    }
                }
            }
        }
        if !c.flush().await || !read_more(&mut c.stream, &mut rbuf).await {
            return;
        }
        arrived = Instant::now();
    }
}

/// Frames the first request in `rbuf`; a chunked body is decoded into `decoded`.
fn frame(rbuf: &[u8], decoded: &mut Vec<u8>) -> Frame {
    let head = match parse_head(rbuf, &LIMITS) {
        Ok(Parsed::Partial) => return Frame::Need { expect_continue: false },
        Ok(Parsed::Complete(h)) => h,
        Err(e) => return Frame::Error(crate::error::status_for(e), e.to_string()),
    };
    let start = head.head_len;
    let rest = &rbuf[start..];
    match head.body {
        Body::None => Frame::Request { head, total: start, inline_body: Some((start, start)) },
        Body::Length(n) if rest.len() >= n => {
            Frame::Request { head, total: start + n, inline_body: Some((start, start + n)) }
        }
        Body::Length(_) => Frame::Need { expect_continue: head.expect_continue },
        Body::Chunked => {
            // Decoded from the start on every read: quadratic only in the number of reads of
            // one body, which the 1 MiB cap keeps small.
            decoded.clear();
            match ChunkedDecoder::default().decode(rest, decoded, MAX_BODY_BYTES, MAX_FRAMING_BYTES) {
                Ok(Some(len)) => Frame::Request { head, total: start + len, inline_body: None },
                Ok(None) => Frame::Need { expect_continue: head.expect_continue },
                Err(e) => Frame::Error(crate::error::status_for(e), e.to_string()),
            }
        }
    }
}

/// Reads more bytes into `rbuf`; false when the client closed or the read failed.
async fn read_more(stream: &mut TcpStream, rbuf: &mut Vec<u8>) -> bool {
    if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
        rbuf.reserve(READ_CHUNK);
    }
    let buf = std::mem::take(rbuf);
    let (len, cap) = (buf.len(), buf.capacity());
    let (res, slice) = stream.read(buf.slice_mut(len..cap)).await;
    *rbuf = slice.into_inner();
    matches!(res, Ok(n) if n > 0)
}

/// The `Connection` header for an answer that keeps (or not) the connection.
fn conn_header(version: Version, keep: bool) -> ConnHeader {
    match (keep, version) {
        (false, _) => ConnHeader::Close,
        (true, Version::Http10) => ConnHeader::KeepAlive,
        (true, Version::Http11) => ConnHeader::None,
    }
}

// === impl Conn ===

impl Conn {
    /// Answers one complete request that arrived (or became next in line) at `started`.
    async fn handle(&mut self, w: &Worker, req: &Req<'_>, started: Instant) -> Next {
        let head = req.head;
        let path = head.path.get(req.buf);
        if path.starts_with(b"/__sim/") {
            return self.admin(w, req, path);
        }
        self.open_once(w);
        w.shared.record_request(self.id, &req.buf[..head.head_len], req.body);
        let ov = match head.query.map_or(Ok(Overrides::default()), |q| Overrides::parse(q.get(req.buf))) {
            Ok(ov) => ov,
            Err(e) => {
                w.shared.count(REJECTED);
                let why = format!("bad override: {e}");
                self.push_text(
                    400,
                    &why,
                    conn_header(head.version, head.keep_alive),
                    head.method == Method::Head,
                );
                return if head.keep_alive { Next::Continue } else { Next::Close };
            }
        };
        self.served = self.served.saturating_add(1);
        let mode = choose_mode(w, &ov);
        w.shared.count(mode.index());
        if mode == Mode::Hang {
            self.flush().await;
            self.hang().await;
            return Next::Close;
        }
        let delay = ov.delay.unwrap_or(w.shared.opts.delay).sample(&mut *w.rng.borrow_mut());
        if !delay.is_zero() {
            if !self.flush().await {
                return Next::Close;
            }
            timer::sleep_until(started + delay, w.precise).await;
        }
        self.answer(w, req, mode, &ov).await
    }

    /// Writes (or, for `reset` and `slow-body`, performs) the answer of `mode`.
    async fn answer(&mut self, w: &Worker, req: &Req<'_>, mode: Mode, ov: &Overrides) -> Next {
        let head = req.head;
        let keep = head.keep_alive && !matches!(mode, Mode::CloseAfter(n) if self.served >= n);
        let next = if keep { Next::Continue } else { Next::Close };
        let body: Vec<u8>;
        let (status, content_type, bytes): (u16, Option<&str>, &[u8]) = match mode {
            Mode::Reset => {
                self.flush().await;
                // If this fails the close is a FIN instead: still no answer.
                let _ = crate::http::sock::reset_on_close(&self.stream);
                return Next::Close;
            }
            Mode::Hang => return Next::Close,
            Mode::Empty => (204, None, b""),
            Mode::NotFound => (404, None, b""),
            Mode::Status(code @ (204 | 304)) => (code, None, b""),
            Mode::Status(code) => {
                body = answer::status_body(code);
                (code, Some(TEXT), &body)
            }
            Mode::Garbage => (200, Some(JSON), answer::GARBAGE_BODY),
            Mode::WrongShape => (200, Some(JSON), answer::WRONG_SHAPE_BODY),
            Mode::Oversize => {
                body = answer::oversize_body();
                (200, Some(JSON), &body)
            }
            Mode::Ok | Mode::CloseAfter(_) | Mode::SlowBody(_) => {
                body = segments_answer(w, req, ov);
                (200, Some(JSON), &body)
            }
        };
        let a = Answer {
            status,
            content_type,
            body: bytes,
            conn: conn_header(head.version, keep),
            head_only: head.method == Method::Head,
        };
        if let Mode::SlowBody(step) = mode {
            return if self.slow_body(&a, step, w.precise).await { next } else { Next::Close };
        }
        a.push(&mut self.out, Instant::now());
        next
    }

    /// The `/__sim/…` endpoints: never delayed, counted or recorded.
    fn admin(&mut self, w: &Worker, req: &Req<'_>, path: &[u8]) -> Next {
        let head = req.head;
        let method = head.method;
        let (status, content_type, body) = match (path, method) {
            (b"/__sim/requests", Method::Get | Method::Head) => {
                (200, "application/x-ndjson", w.shared.requests_ndjson())
            }
            (b"/__sim/stats", Method::Get | Method::Head) => (200, JSON, w.shared.stats().to_json()),
            (b"/__sim/reset", Method::Post) => {
                w.shared.reset();
                (200, JSON, b"{\"reset\":true}".to_vec())
            }
            (b"/__sim/requests" | b"/__sim/stats" | b"/__sim/reset", _) => (
                405,
                TEXT,
                b"dcsd-partner-sim: GET /__sim/requests, GET /__sim/stats, POST /__sim/reset\n".to_vec(),
            ),
            _ => (
                404,
                TEXT,
                b"dcsd-partner-sim: unknown admin endpoint; known: GET /__sim/requests, GET /__sim/stats, \
                  POST /__sim/reset\n"
                    .to_vec(),
            ),
        };
        let conn = conn_header(head.version, head.keep_alive);
        Answer {
            status,
            content_type: Some(content_type),
            body: &body,
            conn,
            head_only: method == Method::Head,
        }
        .push(&mut self.out, Instant::now());
        if head.keep_alive {
            Next::Continue
        } else {
            Next::Close
        }
    }

    /// Counts the connection in the stats, once.
    fn open_once(&mut self, w: &Worker) {
        if self.open.is_none() {
            self.open = Some(w.shared.open_connection());
        }
    }

    /// Appends a plain-text answer.
    fn push_text(&mut self, status: u16, why: &str, conn: ConnHeader, head_only: bool) {
        let body = format!("dcsd-partner-sim: {why}\n");
        Answer { status, content_type: Some(TEXT), body: body.as_bytes(), conn, head_only }
            .push(&mut self.out, Instant::now());
    }

    /// The head now, then the body one byte per `step` (counted from the head, so the total
    /// time stays right even when single sleeps run late).
    async fn slow_body(&mut self, a: &Answer<'_>, step: Duration, precise: bool) -> bool {
        a.push_head(&mut self.out, Instant::now());
        if !self.flush().await {
            return false;
        }
        if a.head_only {
            return true;
        }
        let mut due = Instant::now();
        for &b in a.body {
            due += step;
            timer::sleep_until(due, precise).await;
            self.out.push(b);
            if !self.flush().await {
                return false;
            }
        }
        true
    }

    /// `hang`: reads and discards until the client closes the connection.
    async fn hang(&mut self) {
        let mut buf = Vec::with_capacity(READ_CHUNK);
        loop {
            buf.clear();
            let (res, b) = self.stream.read(buf).await;
            buf = b;
            if !matches!(res, Ok(n) if n > 0) {
                return;
            }
        }
    }

    /// Writes the buffered answers; false if the write failed.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let buf = std::mem::take(&mut self.out);
        let (res, mut buf) = self.stream.write_all(buf).await;
        buf.clear();
        self.out = buf;
        res.is_ok()
    }
}

/// The request's mode: its override or the option, replaced by the fail mode with the
/// probability of the fail rate (no draw at rate 0, so delays stay reproducible).
fn choose_mode(w: &Worker, ov: &Overrides) -> Mode {
    let opts = &w.shared.opts;
    let mode = ov.mode.unwrap_or(opts.mode);
    let rate = ov.fail_rate.unwrap_or(opts.fail_rate);
    if rate > 0.0 && w.rng.borrow_mut().random::<f64>() < rate {
        ov.fail_mode.unwrap_or(opts.fail_mode)
    } else {
        mode
    }
}

/// `{"segments":[…]}`: the override's list, or the pool's choice for the request's user key.
fn segments_answer(w: &Worker, req: &Req<'_>, ov: &Overrides) -> Vec<u8> {
    let opts = &w.shared.opts;
    let ttl = ov.ttl_s.or(opts.ttl_s);
    if let Some(list) = &ov.segments {
        return answer::segments_body(list, ttl);
    }
    let query = req.head.query.map(|q| q.get(req.buf));
    let key = user_key(query, req.head.method == Method::Post, req.body);
    answer::segments_body(&segments_for(&key, &opts.segments, ov.per_user.unwrap_or(opts.per_user)), ttl)
}
