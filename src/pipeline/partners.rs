//! Real-time partner calls in the DCS flow (docs/partner-protocol.md §1, §4): which partners a
//! request calls, the calls (one task each on this core), waiting for them within the budget
//! (JSON mode), and landing results that come after the answer in the profile.
//!
//! * [`decide`] — per partner: a fresh cached result skips the call (`skipped_cached`); a URL
//!   that needs `${DPUUID}` without an ID synced for the data source skips it
//!   (`skipped_no_id`); then the pool may refuse it (`pool_exhausted`, `circuit_open`).
//! * [`Fanout`] — the calls of one request. In JSON mode the answer waits for all of them or
//!   the budget, whichever is first; in pixel mode it waits for none. A result that comes when
//!   nobody waits any more is [`land`]ed: stored in the profile (cached for `ttl_s`, capped by
//!   the answer's `ttl`) with the partner traits it realizes and the segments they change, so
//!   the next request sees it without calling again. Failures store nothing.
//!
//! Per-core: the fan-out state is `Rc`/`Cell`/`RefCell`, and no borrow is held across an
//! `.await`; each request owns its state, so a second request on the core never meets a
//! borrow of the first.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::catalog::Catalog;
use crate::engine::RealizeCtx;
use crate::identity::declared::DeclaredId;
use crate::identity::Uuid;
use crate::partner::{Answer, CallResult, Lease, Outcome, PartnerSpec};
use crate::table::{day_of, Profile};

use super::Dcs;

/// What a request needs to land its partners' results in the profile.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    /// The profile.
    pub uuid: Uuid,
    /// The host's customer (whose segments are re-evaluated).
    pub customer: u32,
    /// The request's transaction ID and client address, for the `partner` record of a result
    /// that lands later.
    pub tid: u64,
    /// The client's address.
    pub ip: std::net::IpAddr,
}

/// What a partner's answer stored in the profile when it landed.
#[derive(Clone, Copy, Debug)]
pub struct Landed<'a> {
    /// The partner traits realized.
    pub traits: &'a [u32],
    /// The customer's segments after them (empty when no trait was realized).
    pub segments: &'a [u32],
    /// Until when the answer is cached, Unix seconds.
    pub expires_s: u64,
}

/// A call decided for a request: its slot in the pool and its request bytes.
pub struct Planned {
    /// The data source.
    pub dpid: u32,
    /// The connection slot.
    pub lease: Lease,
    /// The rendered request.
    pub request: Vec<u8>,
}

/// One request's calls.
pub struct Fanout {
    dcs: Dcs,
    owner: Owner,
    /// When the calls started (each partner's `timeout_ms` runs from here).
    started: Instant,
    /// Results delivered while someone waits, in arrival order.
    results: RefCell<Vec<(u32, CallResult)>>,
    /// Calls still running.
    running: Cell<usize>,
    waker: RefCell<Option<Waker>>,
    /// Nobody waits any more: results land in the profile instead.
    closed: Cell<bool>,
    /// A JSON request waits for these calls: a result after the wait is `late`.
    waits: bool,
}

/// Whether to call `spec` for a request whose profile is `profile` (`None`: no profile yet)
/// and whose declared IDs are `declared`: `Ok(dpuuid)` to call, else the skip outcome.
pub fn decide(
    spec: &PartnerSpec,
    profile: Option<&Profile>,
    declared: &[DeclaredId<'_>],
    now_s: u64,
) -> Result<Option<String>, Outcome> {
    if profile.is_some_and(|p| p.partner_result(spec.dpid, now_s).is_some()) {
        return Err(Outcome::SkippedCached);
    }
    let dpuuid = declared
        .iter()
        .find(|d| d.dpid == spec.dpid)
        .map(|d| d.dpuuid.to_owned())
        .or_else(|| profile.and_then(|p| p.synced_id(spec.dpid)).map(str::to_owned));
    if spec.needs_dpuuid && dpuuid.is_none() {
        return Err(Outcome::SkippedNoId);
    }
    Ok(dpuuid)
}

/// When a result stays fresh until: now + the partner's `ttl_s`, capped by the answer's own.
pub fn expires_s(spec_ttl_s: u32, answer: &Answer, now_s: u64) -> u32 {
    let ttl = answer.ttl_s.map_or(spec_ttl_s, |t| t.min(spec_ttl_s));
    u32::try_from(now_s.saturating_add(u64::from(ttl))).unwrap_or(u32::MAX)
}

/// The traits of data source `dpid` that a partner's answer realizes for `customer`,
/// appended to `out` (each segment string is a value of the signal `segment`; only that
/// partner's traits can realize).
pub fn partner_traits(
    engine: &crate::engine::Engine,
    scratch: &mut crate::engine::EngineScratch,
    customer: u32,
    dpid: u32,
    answer: &Answer,
    out: &mut Vec<u32>,
) {
    if answer.segments.is_empty() {
        return;
    }
    let ctx = RealizeCtx { customer, tdpid: Some(dpid), partner: true, ..RealizeCtx::default() };
    let signals = answer.segments.iter().map(|s| (&b"segment"[..], s.as_bytes()));
    let mut realized = Vec::new();
    engine.realize(scratch, signals, &ctx, &mut realized);
    out.extend_from_slice(&realized);
}

/// The freshness of data source `dpid`'s results for `customer`'s requests (`ttl_s`).
pub fn ttl_of(catalog: &Catalog, customer: u32, dpid: u32) -> u32 {
    catalog.partners_for(customer).iter().find(|s| s.dpid == dpid).map_or(0, |s| s.ttl_s)
}

/// Stores a result that came after its request's answer (or for a pixel request) in the
/// profile: the answer cached until it expires, the partner traits realized, the customer's
/// segments re-evaluated. A profile that opted out of the customer meanwhile stores nothing.
/// `json`: a JSON request's late answer (for its log record).
fn land(dcs: &Dcs, owner: Owner, json: bool, dpid: u32, outcome: Outcome, answer: &Answer) {
    let catalog = dcs.catalog();
    let now = super::handlers::now_s();
    let mut traits = Vec::new();
    {
        let mut w = dcs.work.borrow_mut();
        partner_traits(&catalog.engine, &mut w.engine, owner.customer, dpid, answer, &mut traits);
    }
    let expires = expires_s(ttl_of(&catalog, owner.customer, dpid), answer, now);
    let (engine, today) = (&catalog.engine, day_of(now));
    let (mut segments, mut merged) = (Vec::new(), Vec::new());
    let stored = dcs.shared.table.update(owner.uuid, now, |p| {
        if p.is_opted_out(owner.customer) {
            return false;
        }
        p.set_partner_result(dpid, expires, Vec::new());
        if traits.is_empty() {
            return true;
        }
        for &t in &traits {
            p.realize(t, now);
        }
        engine.segments(p, today, owner.customer, &mut segments);
        set_customer_segments(engine, p, owner.customer, &segments, &mut merged);
        true
    });
    let landed =
        stored.then_some(Landed { traits: &traits, segments: &segments, expires_s: u64::from(expires) });
    dcs.log_partner(&owner, json, dpid, outcome, landed);
}

/// Replaces `customer`'s segments in `p` with `segments`, keeping other customers' (and
/// dropping segments the taxonomy no longer has); `merged` is scratch.
pub fn set_customer_segments(
    engine: &crate::engine::Engine,
    p: &mut Profile,
    customer: u32,
    segments: &[u32],
    merged: &mut Vec<u32>,
) {
    merged.clear();
    merged
        .extend(p.segments().iter().filter(|&&s| engine.segment_customer(s).is_some_and(|c| c != customer)));
    merged.extend_from_slice(segments);
    p.set_segments(merged.iter().copied());
}

// === impl Fanout ===

impl Fanout {
    /// Starts `calls` on this core. `wait`: a JSON request will wait for them
    /// ([`Fanout::wait`]); otherwise every result lands in the profile.
    pub fn start(dcs: &Dcs, owner: Owner, calls: Vec<Planned>, wait: bool) -> Rc<Fanout> {
        let started = Instant::now();
        let f = Rc::new(Fanout {
            dcs: dcs.handle(),
            owner,
            started,
            results: RefCell::new(Vec::with_capacity(calls.len())),
            running: Cell::new(calls.len()),
            waker: RefCell::new(None),
            closed: Cell::new(!wait),
            waits: wait,
        });
        for c in calls {
            let f = f.clone();
            monoio::spawn(async move {
                let result = c.lease.call(c.request, f.started).await;
                f.deliver(c.dpid, result);
            });
        }
        f
    }

    /// Waits for every call or `deadline`, whichever is first, then stops waiting (results
    /// after that land in the profile). Returns what arrived, in arrival order.
    pub async fn wait(&self, deadline: Instant) -> Vec<(u32, CallResult)> {
        let all = poll_fn(|cx| {
            if self.running.get() == 0 {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        });
        let at = monoio::time::Instant::from_std(deadline);
        monoio::select! {
            _ = all => {},
            _ = monoio::time::sleep_until(at) => {},
        }
        self.closed.set(true);
        std::mem::take(&mut *self.results.borrow_mut())
    }

    /// A call ended: hand its result to the waiting request, or land it.
    fn deliver(&self, dpid: u32, result: CallResult) {
        self.running.set(self.running.get().saturating_sub(1));
        let pool = self.dcs.partners.pool(dpid);
        if !self.closed.get() {
            if let Some(p) = &pool {
                p.counters.outcome(result.outcome as usize);
            }
            self.results.borrow_mut().push((dpid, result));
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
            return;
        }
        // Nobody waits: a JSON request's late answer, or a pixel request's call.
        let late = result.answer.is_some() && self.waits;
        let outcome = if late { Outcome::Late } else { result.outcome };
        if let Some(p) = &pool {
            p.counters.outcome(outcome as usize);
        }
        match &result.answer {
            Some(answer) => land(&self.dcs, self.owner, self.waits, dpid, outcome, answer),
            // A pixel request's failed call: its record says `called`; this says how it ended.
            None if !self.waits => self.dcs.log_partner(&self.owner, false, dpid, outcome, None),
            None => {}
        }
    }
}
