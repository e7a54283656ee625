//! One core's connections to one partner: a keep-alive pool, its circuit breaker and one call.
//!
//! * At most `max_conns_per_core` connections are open (idle and in use together); a call that
//!   finds none idle and the pool full is skipped (`pool_exhausted`), never queued.
//! * Idle connections are reused last-in first-out (the warmest socket), after a non-blocking
//!   peek proves they are still open and hold no stray bytes, and are closed once idle longer
//!   than `idle_timeout_ms` ([`Pool::sweep`] and at checkout).
//! * A connection goes back to the pool only after a complete, clean exchange that the partner
//!   kept alive ([`crate::http::client::Response::reusable`]); any failure, time-out or partial
//!   read drops it, which closes it.
//! * The breaker opens after `breaker.failures` consecutive failures for `breaker.open_ms`,
//!   then lets one probe call through; the probe's result closes or re-opens it.
//!
//! * `https://` partners: the connection is TLS (`crate::tls::client`), opened within the same
//!   `timeout_ms` as the TCP connect; new connections resume the TLS session through the
//!   spec's shared client configuration, and a pooled connection keeps its session.
//!
//! Per-core state (`Rc`, `Cell`, `RefCell`); no borrow is held across an `.await`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::http::client::{exchange, ClientError, ClientLimits};
use crate::http::sock::idle_is_clean;
use crate::http::Transport;
use crate::metrics::PartnerCounters;
use crate::tls::client::ClientStream;
use crate::tls::HandshakeError;

use super::answer::{self, Answer, AnswerError, MAX_BODY_BYTES};
use super::spec::{PartnerSpec, PartnerTls};
use super::Outcome;

/// Largest response head read from a partner.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const LIMITS: ClientLimits = ClientLimits { max_head_bytes: MAX_HEAD_BYTES, max_body_bytes: MAX_BODY_BYTES };

/// One core's pool for one partner.
pub struct Pool {
    /// What the pool calls (shared with the catalog that built it; replaced when a reload
    /// keeps the endpoint). Borrowed briefly, never across an `.await`, and never cloned per
    /// call: the `Arc` is shared by every core.
    spec: RefCell<Arc<PartnerSpec>>,
    /// Idle connections, most recently used last.
    idle: RefCell<Vec<Idle>>,
    /// Connections open: idle plus leased.
    open: Cell<usize>,
    breaker: Cell<Breaker>,
    /// Counters of this core for this data source.
    pub counters: Arc<PartnerCounters>,
    /// A reload replaced or removed this partner: leased connections close when they return.
    retired: Cell<bool>,
}

struct Idle {
    stream: PartnerConn,
    since: Instant,
}

/// A connection to a partner.
enum PartnerConn {
    /// `http://`
    Plain(TcpStream),
    /// `https://` (boxed: a rustls connection is large).
    Tls(Box<ClientStream<TcpStream>>),
}

/// Circuit breaker state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Breaker {
    /// Calls flow; this many failures in a row so far.
    Closed(u32),
    /// No calls until this instant.
    Open(Instant),
    /// One probe call is out; the rest are skipped until it ends.
    Probing,
}

/// The right to make one call: a connection slot (with an idle connection or none yet).
/// Dropping it without [`Lease::call`] gives the slot back.
pub struct Lease {
    pool: Rc<Pool>,
    stream: Option<PartnerConn>,
    /// The breaker let this call through as its probe.
    probe: bool,
    /// The slot is still held.
    held: bool,
}

/// What a call produced.
#[derive(Debug)]
pub struct CallResult {
    /// `Ok`, `Empty`, `Timeout` or `Error`.
    pub outcome: Outcome,
    /// The answer, for `Ok` and `Empty`.
    pub answer: Option<Answer>,
    /// When the call ended.
    pub ended: Instant,
}

// === impl Pool ===

impl Pool {
    /// An empty pool.
    pub fn new(spec: Arc<PartnerSpec>, counters: Arc<PartnerCounters>) -> Rc<Pool> {
        Rc::new(Pool {
            spec: RefCell::new(spec),
            idle: RefCell::new(Vec::new()),
            open: Cell::new(0),
            breaker: Cell::new(Breaker::Closed(0)),
            counters,
            retired: Cell::new(false),
        })
    }

    /// The spec this pool calls now.
    pub fn spec(&self) -> std::cell::Ref<'_, Arc<PartnerSpec>> {
        self.spec.borrow()
    }

    /// A reload kept the endpoint: new limits and template, same connections.
    pub fn update(&self, spec: Arc<PartnerSpec>) {
        *self.spec.borrow_mut() = spec;
    }

    /// Takes a slot for one call at `now`, or says why not.
    pub fn try_lease(self: &Rc<Self>, now: Instant) -> Result<Lease, Outcome> {
        let probe = match self.breaker.get() {
            Breaker::Closed(_) => false,
            Breaker::Open(until) if now >= until => true,
            Breaker::Open(_) | Breaker::Probing => return Err(Outcome::CircuitOpen),
        };
        let stream = self.take_idle(now);
        if stream.is_none() && self.open.get() >= self.spec.borrow().max_conns {
            return Err(Outcome::PoolExhausted);
        }
        if stream.is_none() {
            self.open.set(self.open.get() + 1);
        }
        if probe {
            self.breaker.set(Breaker::Probing);
            self.counters.circuit(true);
        }
        self.gauges();
        Ok(Lease { pool: self.clone(), stream, probe, held: true })
    }

    /// The most recently used idle connection that is still clean; stale ones are closed.
    fn take_idle(&self, now: Instant) -> Option<PartnerConn> {
        let idle_timeout = self.spec.borrow().idle_timeout;
        let mut idle = self.idle.borrow_mut();
        while let Some(c) = idle.pop() {
            if now.saturating_duration_since(c.since) < idle_timeout && idle_is_clean(c.stream.tcp()) {
                return Some(c.stream);
            }
            self.open.set(self.open.get() - 1);
        }
        None
    }

    /// Closes idle connections past `idle_timeout_ms` (oldest are at the front).
    pub fn sweep(&self, now: Instant) {
        let idle_timeout = self.spec.borrow().idle_timeout;
        let mut idle = self.idle.borrow_mut();
        let stale =
            idle.iter().take_while(|c| now.saturating_duration_since(c.since) >= idle_timeout).count();
        if stale > 0 {
            idle.drain(..stale);
            self.open.set(self.open.get() - stale);
        }
        drop(idle);
        self.gauges();
    }

    /// A reload replaced or removed this partner: idle connections close now, leased ones when
    /// their call ends.
    pub fn retire(&self) {
        self.retired.set(true);
        let n = self.idle.borrow_mut().drain(..).count();
        self.open.set(self.open.get() - n);
        self.gauges();
    }

    /// Connections open (idle and leased).
    pub fn open(&self) -> usize {
        self.open.get()
    }

    fn give_back(&self, stream: PartnerConn, now: Instant) {
        if self.retired.get() {
            self.open.set(self.open.get() - 1);
        } else {
            self.idle.borrow_mut().push(Idle { stream, since: now });
        }
        self.gauges();
    }

    fn record(&self, ok: bool, probe: bool, now: Instant) {
        let (failures, open_for) = {
            let spec = self.spec.borrow();
            (spec.breaker_failures, spec.breaker_open)
        };
        let next = match (self.breaker.get(), ok) {
            (_, true) => Breaker::Closed(0),
            (Breaker::Probing, false) if probe => Breaker::Open(now + open_for),
            (Breaker::Closed(n), false) if n + 1 >= failures => Breaker::Open(now + open_for),
            (Breaker::Closed(n), false) => Breaker::Closed(n + 1),
            (other, false) => other,
        };
        self.breaker.set(next);
        self.counters.circuit(!matches!(next, Breaker::Closed(_)));
    }

    fn gauges(&self) {
        self.counters.connections(self.open.get(), self.idle.borrow().len());
    }
}

// === impl Lease ===

impl Lease {
    /// Makes the call: connects if needed, writes `request`, reads the answer, all within the
    /// partner's `timeout_ms` of `started` (connect time included). The connection returns to
    /// the pool only after a clean, complete exchange.
    pub async fn call(mut self, request: Vec<u8>, started: Instant) -> CallResult {
        let pool = self.pool.clone();
        let (deadline, addr, tls) = {
            let spec = pool.spec.borrow();
            (started + spec.timeout, spec.addr, spec.tls.clone())
        };
        let result = match self.stream.take() {
            Some(s) => self.exchange(s, request, deadline).await,
            None => match connect(addr, tls, deadline).await {
                Ok(s) => self.exchange(s, request, deadline).await,
                Err(e) => Err(e),
            },
        };
        let ended = Instant::now();
        pool.counters.call(ended.saturating_duration_since(started));
        let (outcome, answer) = match result {
            Ok(a) if a.segments.is_empty() => (Outcome::Empty, Some(a)),
            Ok(a) => (Outcome::Ok, Some(a)),
            Err(Failure::Timeout) => (Outcome::Timeout, None),
            Err(Failure::Error) => (Outcome::Error, None),
        };
        pool.record(answer.is_some(), self.probe, ended);
        CallResult { outcome, answer, ended }
    }

    async fn exchange(
        &mut self,
        mut s: PartnerConn,
        request: Vec<u8>,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let resp = exchange(&mut s, request, false, deadline, &LIMITS).await.map_err(Failure::from)?;
        let reusable = resp.reusable;
        // A well-framed answer that is still a failure (a 503, a bad body) closes the
        // connection like any other failure: only a good answer's connection is reused.
        let answer = answer::parse(resp.status, resp.body).map_err(|_: AnswerError| Failure::Error)?;
        if reusable {
            self.held = false;
            self.pool.give_back(s, Instant::now());
        }
        Ok(answer)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.held {
            // The slot's connection (if any) is dropped with the lease: closed, never reused.
            self.pool.open.set(self.pool.open.get().saturating_sub(1));
            if self.probe && self.pool.breaker.get() == Breaker::Probing {
                // A probe that never ran (its task was dropped) decides nothing: let another try.
                self.pool.breaker.set(Breaker::Open(Instant::now()));
            }
            self.pool.gauges();
        }
    }
}

/// Why a call failed, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Timeout,
    Error,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        if e == ClientError::Timeout {
            Failure::Timeout
        } else {
            Failure::Error
        }
    }
}

/// Opens a connection to the partner by `deadline`, with its TLS handshake for `https://`
/// (no address: its name did not resolve).
async fn connect(
    addr: Option<std::net::SocketAddr>,
    tls: Option<PartnerTls>,
    deadline: Instant,
) -> Result<PartnerConn, Failure> {
    let Some(addr) = addr else { return Err(Failure::Error) };
    let at = monoio::time::Instant::from_std(deadline);
    let open = async {
        let s = TcpStream::connect_addr(addr).await.map_err(|_| Failure::Error)?;
        let _ = s.set_nodelay(true);
        match tls {
            None => Ok(PartnerConn::Plain(s)),
            Some(t) => match crate::tls::client::connect(s, t.config, t.name).await {
                Ok(s) => Ok(PartnerConn::Tls(Box::new(s))),
                Err(HandshakeError::Timeout) => Err(Failure::Timeout),
                Err(_) => Err(Failure::Error),
            },
        }
    };
    match monoio::time::timeout_at(at, open).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout),
    }
}

// === impl PartnerConn ===

impl PartnerConn {
    /// The TCP socket under it.
    fn tcp(&self) -> &TcpStream {
        match self {
            PartnerConn::Plain(s) => s,
            PartnerConn::Tls(s) => s.get_ref(),
        }
    }
}

impl Transport for PartnerConn {
    async fn read_spare(&mut self, buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
        match self {
            PartnerConn::Plain(s) => s.read_spare(buf).await,
            PartnerConn::Tls(s) => s.read_spare(buf).await,
        }
    }

    async fn send_all(&mut self, buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
        match self {
            PartnerConn::Plain(s) => s.send_all(buf).await,
            PartnerConn::Tls(s) => s.send_all(buf).await,
        }
    }
}

/// How often each core closes idle connections past their time-out.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests;
