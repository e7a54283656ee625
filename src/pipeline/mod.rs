//! The DCS service: the per-core [`Dcs`] that the connection loop calls for every complete
//! request, and the application state all cores share ([`Shared`]: configuration, catalog,
//! profile table, metrics). Routes to [`handlers`]; answers protocol errors; records metrics.
//!
//! Per-core state lives in [`Dcs`] (RNG, transaction counter, pre-rendered header bytes,
//! scratch buffers, this core's handle on the catalog); process-wide state is reached through
//! [`Shared`].

pub mod handlers;
pub mod logging;
pub mod params;
pub mod partners;
pub mod rate;
pub mod replay;
pub mod route;
pub mod shared;
pub mod signals;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::catalog::Catalog;
use crate::engine::EngineScratch;
use crate::error::{status_for, HttpError};
use crate::http::conn::{Call, Completed, Deferred, Request, Service};
use crate::http::response::{
    push_conn_header, push_content_length, push_date_header, push_status_line, ConnHeader,
};
use crate::http::Method;
use crate::metrics::ROUTE_NONE;

pub use route::Route;
pub use shared::Shared;

/// The `demdex` cookie lives 180 days, renewed by every answer (docs/http-api.md §5.1).
const COOKIE_MAX_AGE_S: u32 = 15_552_000;
/// Opt-out cookies live 10 years (docs/http-api.md §9).
const OPTOUT_MAX_AGE_S: u32 = 315_360_000;

/// The DCS service of one core: a handle on the core's state. Cloning the handle
/// ([`Dcs::handle`]) is how a request that waits (a partner call) or a call that runs on after
/// its answer keeps the state it needs; it dereferences to [`Core`].
pub struct Dcs {
    core: Rc<Core>,
}

/// One core's DCS state. Every `RefCell` here is borrowed only inside synchronous steps, never
/// across an `.await`.
pub struct Core {
    /// Worker index (for metrics and transaction IDs).
    index: usize,
    /// Process-wide state.
    shared: Arc<Shared>,
    /// CSPRNG for UUIDs (ChaCha12 seeded from the OS).
    rng: RefCell<StdRng>,
    /// Next transaction ID: worker index in the top byte, a counter below it.
    next_tid: Cell<u64>,
    /// `Cache-Control`, `Pragma`, `Expires` and `DCS` header lines, rendered once.
    common_headers: Box<[u8]>,
    /// `HTTP/1.1 200 OK` plus the common headers: the start of most answers, one copy.
    ok_head: Box<[u8]>,
    /// The `demdex` cookie attributes after the value, with the line end.
    cookie_attrs: Box<[u8]>,
    /// The attributes of the opt-out cookies (10 years), with the line end.
    optout_cookie_attrs: Box<[u8]>,
    /// Per-client-IP token buckets (`[rate_limit]`), this core's.
    rate_limit: RefCell<rate::Limiter>,
    /// This core's handle on the current catalog and the generation it was loaded at.
    catalog: RefCell<(u64, CatalogRef)>,
    /// Per-request work buffers of the engine steps, reused.
    work: RefCell<Work>,
    /// The pair decoder, reused by every request on this core.
    pairs: RefCell<params::Pairs>,
    /// Scratch for response bodies whose length must be known before the headers.
    scratch: RefCell<Vec<u8>>,
    /// This core's partner connection pools.
    partners: crate::partner::PartnerSet,
    /// The idle-connection sweeper task runs.
    sweeping: Cell<bool>,
    /// This core's lane of the event log, when the log is on.
    log: Option<Rc<crate::eventlog::Lane>>,
    /// What the current request's profile update did, for its log record.
    facts: RefCell<logging::Facts>,
}

/// A core's handle on a catalog: an `Rc` (non-atomic, per core) around the shared `Arc`, so
/// taking it per request costs no shared reference-count traffic between cores.
#[allow(clippy::redundant_allocation)] // the extra allocation is once per reload, per core
pub type CatalogRef = Rc<Arc<Catalog>>;

/// A core's reusable buffers for the engine steps of a request.
#[derive(Debug, Default)]
pub struct Work {
    /// The engine's own scratch.
    engine: EngineScratch,
    /// `d_sid` values as numbers.
    sids: Vec<u64>,
    /// Traits realized by the request.
    realized: Vec<u32>,
    /// Segments of the host's customer the profile is in.
    segments: Vec<u32>,
    /// The `stuff` and `dests` JSON arrays (empty: none rendered).
    stuff: Vec<u8>,
    dests: Vec<u8>,
    /// The profile's segments being rebuilt.
    merged: Vec<u32>,
    /// Traits partners' answers realized (JSON mode, before they join `realized`).
    partner_realized: Vec<u32>,
    /// Each partner's outcome for the request (skipped ones at once; called ones when the
    /// answer is written), in the order they were decided; for the event log.
    pub partner_outcomes: Vec<(u32, crate::partner::Outcome)>,
    /// Partners a pixel request called (their outcomes come later), for the event log.
    pub called: Vec<u32>,
}

// === impl Work ===

impl Work {
    /// Forgets the previous request, keeping capacity.
    fn clear(&mut self) {
        self.sids.clear();
        self.realized.clear();
        self.segments.clear();
        self.stuff.clear();
        self.dests.clear();
        self.partner_realized.clear();
        self.partner_outcomes.clear();
        self.called.clear();
    }
}

/// A short plain-text answer (errors, `/healthz`).
struct Plain<'a> {
    status: u16,
    body: &'a [u8],
    /// Adds an `Allow` header.
    allow: Option<&'a str>,
    conn: ConnHeader,
    /// HEAD: headers only.
    head_only: bool,
}

// === impl Dcs ===

impl std::ops::Deref for Dcs {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Dcs {
    /// The service of worker `index`.
    pub fn new(index: usize, shared: Arc<Shared>) -> Dcs {
        let cfg = &shared.config;
        let common = format!(
            "Cache-Control: no-cache, no-store, must-revalidate\r\nPragma: no-cache\r\nExpires: 0\r\nDCS: {} {}\r\n",
            cfg.server.node,
            crate::VERSION
        );
        let attrs = |max_age: u32| {
            let mut attrs = format!("; Max-Age={max_age}; Path=/");
            if !cfg.cookie.domain.is_empty() {
                attrs.push_str("; Domain=");
                attrs.push_str(&cfg.cookie.domain);
            }
            if cfg.cookie.same_site_none {
                attrs.push_str("; SameSite=None");
            }
            if cfg.cookie.secure {
                attrs.push_str("; Secure");
            }
            attrs.push_str("\r\n");
            attrs.into_bytes().into_boxed_slice()
        };
        let mut rng = StdRng::from_os_rng();
        let start = rng.next_u64() & ((1 << 56) - 1);
        let core = Core {
            index,
            next_tid: Cell::new(((index as u64 & 0xff) << 56) | start),
            rng: RefCell::new(rng),
            ok_head: format!("HTTP/1.1 200 OK\r\n{common}").into_bytes().into(),
            common_headers: common.into_bytes().into(),
            cookie_attrs: attrs(COOKIE_MAX_AGE_S),
            optout_cookie_attrs: attrs(OPTOUT_MAX_AGE_S),
            rate_limit: RefCell::new(rate::Limiter::new(&cfg.rate_limit)),
            catalog: RefCell::new((0, Rc::new(shared.catalog.load_full()))),
            work: RefCell::new(Work::default()),
            pairs: RefCell::new(params::Pairs::default()),
            scratch: RefCell::new(Vec::with_capacity(512)),
            partners: crate::partner::PartnerSet::default(),
            sweeping: Cell::new(false),
            log: shared.eventlog.as_ref().and_then(|l| l.lane(index)),
            facts: RefCell::new(logging::Facts::default()),
            shared,
        };
        Dcs { core: Rc::new(core) }
    }

    /// Another handle on this core's state (for a task that outlives the current call).
    pub fn handle(&self) -> Dcs {
        Dcs { core: self.core.clone() }
    }

    /// This core's pools, made to follow the current catalog (a reload keeps, renews or
    /// retires pools).
    fn partner_pools(&self, catalog: &Catalog) -> &crate::partner::PartnerSet {
        let generation = self.shared.catalog_generation.load(Ordering::Acquire);
        self.partners.follow(generation, catalog.partners(), &self.shared.metrics.partners);
        &self.partners
    }

    /// Starts this core's idle-connection sweeper, once (when a first call is made: only then
    /// can a pool hold idle connections).
    fn sweep_partner_pools(&self) {
        if !self.sweeping.replace(true) {
            let core = Rc::downgrade(&self.core);
            monoio::spawn(async move {
                loop {
                    monoio::time::sleep(crate::partner::pool::SWEEP_EVERY).await;
                    let Some(core) = core.upgrade() else { return };
                    core.partners.sweep(Instant::now());
                }
            });
        }
    }

    /// The current catalog, re-loaded after a reload. A request takes it once and uses that
    /// one to the end (requests in flight finish on the old catalog). An `Rc` of this core's
    /// `Arc`, so requests never touch the shared reference count.
    pub fn catalog(&self) -> CatalogRef {
        let generation = self.shared.catalog_generation.load(Ordering::Acquire);
        let mut cached = self.catalog.borrow_mut();
        if cached.0 != generation {
            *cached = (generation, Rc::new(self.shared.catalog.load_full()));
        }
        cached.1.clone()
    }

    /// Process-wide state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A fresh transaction ID, unique within this process.
    fn tid(&self) -> u64 {
        let t = self.next_tid.get();
        let top = t & !((1 << 56) - 1);
        self.next_tid.set(top | (t.wrapping_add(1) & ((1 << 56) - 1)));
        t
    }

    /// Status line, the common headers and `Date` (for `now`, the batch's clock reading).
    fn start_response(&self, out: &mut Vec<u8>, status: u16, now: Instant) {
        if status == 200 {
            out.extend_from_slice(&self.ok_head);
        } else {
            push_status_line(out, status);
            out.extend_from_slice(&self.common_headers);
        }
        push_date_header(out, now);
    }

    /// The rate limit of DCS routes (`[rate_limit]`): `Err(retry_after_s)` when the client's
    /// bucket on this core is empty.
    fn admit(&self, route: Route, req: &Request<'_>) -> Result<(), u32> {
        if !route.is_dcs() {
            return Ok(());
        }
        self.rate_limit.borrow_mut().admit(req.peer.ip(), req.now)
    }

    /// `429 Too Many Requests` with `Retry-After`; the connection stays open.
    fn too_many_requests(&self, out: &mut Vec<u8>, req: &Request<'_>, retry_after_s: u32) {
        const BODY: &[u8] = b"too many requests\n";
        self.start_response(out, 429, req.now);
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\nRetry-After: ");
        crate::http::response::push_u64(out, u64::from(retry_after_s));
        out.extend_from_slice(b"\r\n");
        push_content_length(out, BODY.len());
        push_conn_header(out, req.conn);
        out.extend_from_slice(b"\r\n");
        if req.head.method != Method::Head {
            out.extend_from_slice(BODY);
        }
    }

    /// A short plain-text answer.
    fn plain(&self, out: &mut Vec<u8>, p: Plain<'_>, now: Instant) {
        self.start_response(out, p.status, now);
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
        push_content_length(out, p.body.len());
        if let Some(a) = p.allow {
            out.extend_from_slice(b"Allow: ");
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        push_conn_header(out, p.conn);
        out.extend_from_slice(b"\r\n");
        if !p.head_only {
            out.extend_from_slice(p.body);
        }
    }
}

impl Service for Dcs {
    type Wait = Pin<Box<dyn Future<Output = Deferred>>>;

    fn call(&self, req: &Request<'_>, out: &mut Vec<u8>) -> Call<Self::Wait> {
        if self.log.is_some() {
            self.facts.borrow_mut().clear();
        }
        let route = Route::of(req.head.path.get(req.buf), req.listener);
        let head_only = req.head.method == Method::Head;
        let mut close = req.conn == ConnHeader::Close;
        let status = if route == Route::NotFound {
            // Protocol-level answers close the connection (docs/http-api.md §1).
            let p =
                Plain { status: 404, body: b"not found\n", allow: None, conn: ConnHeader::Close, head_only };
            self.plain(out, p, req.now);
            close = true;
            404
        } else if !route.allows(req.head.method) {
            let allow = Some(route.allow());
            let p = Plain {
                status: 405,
                body: b"method not allowed\n",
                allow,
                conn: ConnHeader::Close,
                head_only,
            };
            self.plain(out, p, req.now);
            close = true;
            405
        } else if let Err(retry_after) = self.admit(route, req) {
            self.too_many_requests(out, req, retry_after);
            429
        } else {
            match route {
                Route::Event => match handlers::event(self, req, out) {
                    handlers::Reply::Now(status) => status,
                    handlers::Reply::Later(answer) => return Call::Wait(answer),
                },
                Route::Ibs => handlers::ibs(self, req, out),
                Route::Optout => handlers::optout(self, req, out),
                Route::Healthz => handlers::healthz(self, req, out),
                Route::Metrics => handlers::metrics(self, req, out),
                Route::NotFound => 404,
            }
        };
        Call::Done(Completed { route: route as u8, status, close })
    }

    fn reject(&self, err: HttpError, out: &mut Vec<u8>) -> Completed {
        let status = status_for(err);
        let allow = (err == HttpError::MethodNotAllowed).then_some("GET, HEAD, POST, OPTIONS");
        let mut body = err.to_string().into_bytes();
        body.push(b'\n');
        let p = Plain { status, body: &body, allow, conn: ConnHeader::Close, head_only: false };
        self.plain(out, p, Instant::now());
        Completed { route: ROUTE_NONE, status, close: true }
    }

    fn record(&self, done: Completed, elapsed: Duration) {
        self.shared.metrics.core(self.index).record(done.route, done.status, elapsed);
    }

    type Ready = crate::eventlog::Durable;

    fn before_write(&self) -> Option<Self::Ready> {
        self.log.as_ref()?.durable()
    }

    fn drained(&self) {
        if let Some(log) = &self.log {
            log.close();
        }
    }
}
