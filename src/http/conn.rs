//! The per-connection keep-alive loop: read, frame, hand complete requests to a [`Service`],
//! write all answers of a batch at once, repeat.
//!
//! * Pipelining: every complete request already buffered is answered, in order, before the
//!   next read; their answers go out in one write.
//! * Waiting answers: a service may answer a request later ([`Call::Wait`], e.g. after a
//!   partner call); the loop awaits it before it handles the next buffered request, so answers
//!   stay in order. The future owns its state: the loop's buffers are not borrowed while it
//!   waits.
//! * Time-outs: a request whose head (and body) has not fully arrived within
//!   `header_timeout` of its first byte gets 408 and the connection closes; an idle
//!   keep-alive connection is closed silently after `keepalive_timeout` (a fresh connection
//!   that sends nothing, after `header_timeout`). A write that cannot complete within
//!   `keepalive_timeout` (a client that stopped reading) closes the connection.
//! * Drain: once the worker drains, idle connections close at once, and the request in
//!   progress is answered with `Connection: close`.
//! * Errors: a protocol error is answered by [`Service::reject`] and the connection closes.
//!
//! Per-core: one task per connection on the worker's runtime; the buffers are owned by the
//! task and reused across requests.
//!
//! The stream is any [`Transport`]: plain TCP, or TLS (`crate::tls`), whose handshake runs
//! inside the first read and so counts against `header_timeout` like a slow first request.
//!
//! # Cancel safety
//! Reads and writes move their buffer into the io_uring operation. When a time-out or the
//! drain signal wins the race, the operation is cancelled and the buffer is dropped with it;
//! this loop then only writes an error answer from its other buffer and closes.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::time::Instant as Deadline;

use crate::error::HttpError;

use super::chunked::ChunkedDecoder;
use super::drain::Drain;
use super::io::Transport;
use super::request::{parse_head, Body, Head, HeadLimits, Parsed, Version};
use super::response::ConnHeader;

/// What a connection hands each complete request to.
pub trait Service {
    /// An answer that is not ready yet.
    type Wait: Future<Output = Deferred>;
    /// Appends the complete response for `req` to `out`, honouring `req.conn`, or returns a
    /// future of it.
    fn call(&self, req: &Request<'_>, out: &mut Vec<u8>) -> Call<Self::Wait>;
    /// Appends the answer to a protocol error; the connection closes after it.
    fn reject(&self, err: HttpError, out: &mut Vec<u8>) -> Completed;
    /// Records completed requests once their bytes were handed to the kernel.
    fn record(&self, done: Completed, elapsed: Duration);
    /// What must finish before a batch of answers is written.
    type Ready: Future<Output = ()>;
    /// Called before each batch of answers is written: `Some` to make the write wait (the
    /// event log's group commit: the batch's records on disk first, docs/eventlog.md §4).
    fn before_write(&self) -> Option<Self::Ready>;
    /// The worker drained: no request will come any more (the event log hands over what it
    /// holds).
    fn drained(&self);
}

/// What [`Service::call`] did with a request.
pub enum Call<W> {
    /// The answer is in `out`.
    Done(Completed),
    /// The answer will come from this future; nothing was written.
    Wait(W),
}

/// A waited-for answer.
#[derive(Debug)]
pub struct Deferred {
    /// The response's bytes.
    pub bytes: Vec<u8>,
    /// What it was.
    pub done: Completed,
}

/// A complete request as the service sees it.
pub struct Request<'a> {
    /// The parsed head; its spans index `buf`.
    pub head: &'a Head,
    /// The request's bytes, head first.
    pub buf: &'a [u8],
    /// The body (decoded if it was chunked).
    pub body: &'a [u8],
    /// The client's address.
    pub peer: SocketAddr,
    /// Which listener accepted the connection.
    pub listener: ListenerKind,
    /// What the response must say about the connection.
    pub conn: ConnHeader,
    /// Whether the worker is draining.
    pub draining: bool,
    /// When the read that completed this request returned (the connection's clock reading for
    /// this batch; handlers use it instead of reading the clock again).
    pub now: Instant,
}

/// What a completed request was, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completed {
    /// Route index (the pipeline's numbering).
    pub route: u8,
    /// Status sent.
    pub status: u16,
    /// The response said `Connection: close`: the connection closes after it.
    pub close: bool,
}

/// Which routes a listener serves (`server.admin_listen`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// Every route (no admin listener configured).
    All,
    /// DCS routes only; `/healthz` and `/metrics` live on the admin listener.
    Public,
    /// `/healthz` and `/metrics` only.
    Admin,
}

/// Per-connection settings, from `[limits]`.
#[derive(Clone, Copy, Debug)]
pub struct ConnConfig {
    /// Head and body limits.
    pub head: HeadLimits,
    /// Time for a request to arrive once its first byte has.
    pub header_timeout: Duration,
    /// Idle time allowed between requests.
    pub keepalive_timeout: Duration,
}

/// Initial size of each connection's read and write buffers.
const INITIAL_BUF_BYTES: usize = 4096;
/// A buffer grown past this for one large request is replaced when the connection goes idle.
const SHRINK_ABOVE_BYTES: usize = 64 * 1024;

/// A request whose head is parsed and whose body is still arriving.
struct Pending {
    head: Head,
    chunked: ChunkedDecoder,
    continue_sent: bool,
}

/// Why the processing of buffered bytes stopped.
enum Next<W> {
    /// Read more bytes.
    Read,
    /// Write what is buffered, then close.
    Close,
    /// Await this answer, then carry on with the buffered bytes.
    Wait(W),
}

/// Serves one connection until the peer closes, a protocol error, a time-out, or drain, then
/// closes it ([`Transport::close`]). The caller has set the socket's options (`TCP_NODELAY`).
pub async fn serve<S: Service, T: Transport>(
    mut stream: T,
    peer: SocketAddr,
    listener: ListenerKind,
    svc: Rc<S>,
    cfg: ConnConfig,
    drain: Rc<Drain>,
) {
    serve_on(&mut stream, peer, listener, svc, cfg, drain).await;
    stream.close().await;
}

async fn serve_on<S: Service, T: Transport>(
    stream: &mut T,
    peer: SocketAddr,
    listener: ListenerKind,
    svc: Rc<S>,
    cfg: ConnConfig,
    drain: Rc<Drain>,
) {
    let mut c = Conn {
        rbuf: Vec::with_capacity(INITIAL_BUF_BYTES),
        out: Vec::with_capacity(INITIAL_BUF_BYTES),
        body: Vec::new(),
        done: Vec::with_capacity(4),
        start: 0,
        pending: None,
        req_started: None,
        fresh: true,
        peer,
        listener,
        cfg,
        max_buffered: cfg.head.max_head_bytes() + cfg.head.max_body_bytes + cfg.head.max_header_bytes,
    };
    // Two clock readings per batch: when its read returned and when its write finished. Every
    // deadline and the metrics derive from them (timeout_at reads no clock).
    let mut batch_t0 = Instant::now();
    loop {
        let next = match c.process(&*svc, drain.is_draining(), batch_t0) {
            Next::Wait(answer) => {
                let d = answer.await;
                c.out.extend_from_slice(&d.bytes);
                c.done.push(d.done);
                if !d.done.close {
                    continue; // the rest of the batch, in order, then one write
                }
                Next::Close
            }
            other => other,
        };
        if !matches!(next, Next::Read) {
            stream.closing();
        }
        let Some(done_at) = c.write_batch(stream, &*svc, batch_t0).await else { return };
        if !matches!(next, Next::Read) {
            return; // closed after its answer
        }
        c.compact();
        let idle = c.rbuf.is_empty();
        let deadline = match c.read_deadline(idle, batch_t0, done_at) {
            _ if idle && drain.is_draining() => return,
            Ok(d) => d,
            Err(e) => return c.fail(stream, &*svc, e).await,
        };
        if let Err(e) = c.reserve() {
            return c.fail(stream, &*svc, e).await;
        }
        match c.read_more(stream, deadline, idle.then_some(&*drain)).await {
            Read::Data => batch_t0 = Instant::now(),
            Read::Closed => return,
            Read::TimedOut if idle => return,
            Read::TimedOut => return c.fail(stream, &*svc, HttpError::Timeout).await,
        }
    }
}

/// How a read ended.
enum Read {
    /// Bytes arrived.
    Data,
    /// The peer closed, an error, or drain (for an idle connection).
    Closed,
    /// The deadline passed.
    TimedOut,
}

/// The connection's buffers and framing state.
struct Conn {
    /// Bytes read and not yet consumed (from `start`).
    rbuf: Vec<u8>,
    /// Answers waiting to be written.
    out: Vec<u8>,
    /// Decoded chunked body of the pending request.
    body: Vec<u8>,
    /// Requests answered in this batch, recorded after the write.
    done: Vec<Completed>,
    /// Consumed prefix of `rbuf`.
    start: usize,
    pending: Option<Pending>,
    /// When the first byte of the request in progress arrived (for the header time-out).
    req_started: Option<Instant>,
    /// No request has arrived yet: the idle wait is `header_timeout`, not `keepalive_timeout`.
    fresh: bool,
    peer: SocketAddr,
    listener: ListenerKind,
    cfg: ConnConfig,
    /// Most bytes one request may occupy in `rbuf` (largest head + body + chunk framing).
    max_buffered: usize,
}

// === impl Conn ===

impl Conn {
    /// Answers every complete request buffered; stops at a partial one or a close.
    fn process<S: Service>(&mut self, svc: &S, draining: bool, now: Instant) -> Next<S::Wait> {
        loop {
            let avail = &self.rbuf[self.start..];
            if avail.is_empty() {
                return Next::Read;
            }
            if self.pending.is_none() {
                match parse_head(avail, &self.cfg.head) {
                    Ok(Parsed::Partial) => return Next::Read,
                    Ok(Parsed::Complete(head)) => {
                        self.body.clear();
                        self.pending =
                            Some(Pending { head, chunked: ChunkedDecoder::default(), continue_sent: false });
                    }
                    Err(e) => {
                        self.done.push(svc.reject(e, &mut self.out));
                        return Next::Close;
                    }
                }
            }
            let Some(p) = self.pending.as_mut() else { return Next::Read };
            let head_len = p.head.head_len;
            let (total, chunked) = match p.head.body {
                Body::None => (head_len, false),
                Body::Length(n) if avail.len() >= head_len + n => (head_len + n, false),
                Body::Length(_) => return self.await_body(),
                Body::Chunked => {
                    let lim = self.cfg.head;
                    match p.chunked.decode(
                        &avail[head_len..],
                        &mut self.body,
                        lim.max_body_bytes,
                        lim.max_header_bytes,
                    ) {
                        Ok(Some(n)) => (head_len + n, true),
                        Ok(None) => return self.await_body(),
                        Err(e) => {
                            self.done.push(svc.reject(e, &mut self.out));
                            return Next::Close;
                        }
                    }
                }
            };
            let head = p.head;
            let conn = if draining || !head.keep_alive {
                ConnHeader::Close
            } else if head.version == Version::Http10 {
                ConnHeader::KeepAlive
            } else {
                ConnHeader::None
            };
            let body = if chunked { &self.body[..] } else { &avail[head_len..total] };
            let req = Request {
                head: &head,
                buf: &avail[..total],
                body,
                peer: self.peer,
                listener: self.listener,
                conn,
                draining,
                now,
            };
            let call = svc.call(&req, &mut self.out);
            self.start += total;
            self.pending = None;
            let done = match call {
                Call::Done(done) => done,
                Call::Wait(answer) => return Next::Wait(answer),
            };
            self.done.push(done);
            if conn == ConnHeader::Close || done.close {
                return Next::Close;
            }
        }
    }

    /// The body is incomplete: send `100 Continue` once if the client waits for it.
    fn await_body<W>(&mut self) -> Next<W> {
        if let Some(p) = self.pending.as_mut() {
            if p.head.expect_continue && !p.continue_sent {
                p.continue_sent = true;
                self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        Next::Read
    }

    /// Drops the consumed prefix; gives back buffers that grew for one large request.
    fn compact(&mut self) {
        if self.start == self.rbuf.len() {
            self.rbuf.clear();
            if self.rbuf.capacity() > SHRINK_ABOVE_BYTES {
                self.rbuf = Vec::with_capacity(INITIAL_BUF_BYTES);
                self.body = Vec::new();
            }
            if self.out.capacity() > SHRINK_ABOVE_BYTES {
                self.out = Vec::with_capacity(INITIAL_BUF_BYTES);
            }
        } else if self.start > 0 {
            self.rbuf.drain(..self.start);
        }
        self.start = 0;
    }

    /// Makes room to read; the request in progress may not outgrow its limits.
    fn reserve(&mut self) -> Result<(), HttpError> {
        let want = match self.pending.as_ref().map(|p| p.head.body) {
            Some(Body::Length(n)) => self.pending.as_ref().map_or(0, |p| p.head.head_len) + n,
            _ => self.rbuf.len() + INITIAL_BUF_BYTES,
        };
        if self.rbuf.len() >= self.max_buffered {
            return Err(HttpError::BodyTooLarge);
        }
        let want = want.clamp(self.rbuf.len() + 1, self.max_buffered);
        if self.rbuf.capacity() < want {
            let grow = (want - self.rbuf.len()).max(self.rbuf.capacity());
            self.rbuf.reserve(grow.min(self.max_buffered - self.rbuf.len()));
        }
        Ok(())
    }

    /// Writes the batch's answers and records them. Returns when the write finished, or
    /// `None` if the connection is gone.
    async fn write_batch<S: Service, T: Transport>(
        &mut self,
        stream: &mut T,
        svc: &S,
        t0: Instant,
    ) -> Option<Instant> {
        let mut done_at = t0;
        if !self.out.is_empty() {
            if let Some(ready) = svc.before_write() {
                ready.await;
            }
            let out = std::mem::take(&mut self.out);
            let deadline = Deadline::from_std(t0 + self.cfg.keepalive_timeout);
            match monoio::time::timeout_at(deadline, stream.send_all(out)).await {
                Ok((Ok(_), mut out)) => {
                    out.clear();
                    self.out = out;
                }
                _ => return None,
            }
            done_at = Instant::now();
        }
        let elapsed = done_at.saturating_duration_since(t0);
        for d in self.done.drain(..) {
            svc.record(d, elapsed);
        }
        Some(done_at)
    }

    /// When the next read must complete: the idle time-out between requests, or what is left
    /// of the header time-out of the request in progress (408 once it has passed).
    fn read_deadline(&mut self, idle: bool, t0: Instant, done_at: Instant) -> Result<Instant, HttpError> {
        if idle {
            self.req_started = None;
            let wait = if self.fresh { self.cfg.header_timeout } else { self.cfg.keepalive_timeout };
            return Ok(done_at + wait);
        }
        let deadline = *self.req_started.get_or_insert(t0) + self.cfg.header_timeout;
        if deadline <= done_at {
            return Err(HttpError::Timeout);
        }
        Ok(deadline)
    }

    /// Reads more bytes by `deadline`; an idle connection also gives up when `drain` fires.
    async fn read_more<T: Transport>(
        &mut self,
        stream: &mut T,
        deadline: Instant,
        drain: Option<&Drain>,
    ) -> Read {
        let buf = std::mem::take(&mut self.rbuf);
        let read = monoio::time::timeout_at(Deadline::from_std(deadline), stream.read_spare(buf));
        let res = match drain {
            Some(drain) => monoio::select! {
                r = read => r,
                _ = drain.wait() => return Read::Closed,
            },
            None => read.await,
        };
        match res {
            Ok((Ok(n), buf)) if n > 0 => {
                self.rbuf = buf;
                self.fresh = false;
                Read::Data
            }
            Ok(_) => Read::Closed,
            Err(_elapsed) => Read::TimedOut,
        }
    }

    /// Answers a protocol error found between reads (408, or a request outgrowing its
    /// buffer), then the connection closes.
    async fn fail<S: Service, T: Transport>(mut self, stream: &mut T, svc: &S, err: HttpError) {
        stream.closing();
        self.done.push(svc.reject(err, &mut self.out));
        let _ = self.write_batch(stream, svc, Instant::now()).await;
    }
}
